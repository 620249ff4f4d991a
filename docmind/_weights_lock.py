"""One lock for loading model weights in this process.

While transformers loads a model it changes torch's process-wide default dtype. A second load at the
same moment (the chat model and the embedding model, say) then gets weights of mixed dtypes, and every
later generation fails with "expected m1 and m2 to have the same dtype". That was seen in the app when
the first upload's embedding load overlapped the model load.

Importing this module also turns off transformers' Hub kernels. With the ``kernels`` package (a
dependency of transformers 5) a model loaded on a GPU fetches compiled kernels from the Hub (the
rotary embedding, for one); offline that load fails ("not available in the local cache"), and DocMind
never runs code fetched at run time. Both weight loaders import this module before they load.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("USE_HUB_KERNELS", "NO")

weights_load_lock = threading.RLock()
"""Held while any model's weights are loaded (or quantized) in this process."""
