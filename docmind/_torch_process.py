"""What every model load in this process shares: environment defaults torch and transformers read once,
and one lock for loading weights. Both weight loaders (the chat model's and the embedding model's) import
this module before they import torch or transformers.

Environment defaults (set only where the environment does not already set them):

- ``LRU_CACHE_CAPACITY`` and ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``: 64. On CPU, each bf16 matmul of a shape not
  seen before makes oneDNN build a kernel, which torch keeps in two caches (ideep's and oneDNN's), 1,024
  entries each by default, about half a MB per entry. Chat prompts have ever-new lengths, so every turn
  added entries: the soak benchmark's server grew about 5 MB per chat turn (1.4 to 2.9 GB in 20 minutes)
  with no Python object to show for it. A decoding batch reuses only a few shapes, so a small cache keeps
  them all: five requests decoding together on the tiny model ran as fast with 64 entries as with 1,024.
  torch reads both when it first builds a kernel.
- ``USE_HUB_KERNELS``: NO. With the ``kernels`` package (a dependency of transformers 5) a model loaded on a
  GPU fetches compiled kernels from the Hub (the rotary embedding, for one); offline that load fails ("not
  available in the local cache"), and DocMind never runs code fetched at run time.
- ``TORCHAO_FORCE_SKIP_LOADING_SO_FILES``: 1. torchao's compiled extras are CUDA/mxfp8 kernels built for
  another torch; DocMind's int4/int8 paths use torch's own kernels, and loading them only prints warnings.

The lock: while transformers loads a model it changes torch's process-wide default dtype. A second load at
the same moment (the chat model and the embedding model, say) then gets weights of mixed dtypes, and every
later generation fails with "expected m1 and m2 to have the same dtype". That was seen in the app when the
first upload's embedding load overlapped the model load.
"""

from __future__ import annotations

import os
import threading

KERNEL_CACHE_ENTRIES = 64
ENVIRONMENT_DEFAULTS = {
    "LRU_CACHE_CAPACITY": str(KERNEL_CACHE_ENTRIES),
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(KERNEL_CACHE_ENTRIES),
    "USE_HUB_KERNELS": "NO",
    "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1",
}

for _name, _value in ENVIRONMENT_DEFAULTS.items():
    os.environ.setdefault(_name, _value)

weights_load_lock = threading.RLock()
"""Held while any model's weights are loaded (or quantized) in this process."""
