"""Bounds on the kernel caches of torch's CPU backend (oneDNN), set before any model runs.

On CPU, each bf16 matmul of a shape not seen before makes oneDNN build a kernel, which torch keeps in two
caches: ideep's (``LRU_CACHE_CAPACITY``) and oneDNN's primitive cache (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``),
1,024 entries each by default, about half a MB per entry. Chat prompts have ever-new lengths, so every
turn added entries: the soak benchmark's server grew about 5 MB per chat turn (1.4 to 2.9 GB in 20
minutes) with no Python object to show for it. A decoding batch reuses only a few shapes (one per linear
layer kind and batch size), so a small cache keeps them all: five requests decoding together on the
tiny model ran as fast with 64 entries as with 1,024 (21.2 against 21.7 tokens/s on a busy machine).
"""

from __future__ import annotations

import os

KERNEL_CACHE_ENTRIES = 64
_CACHES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")


def bound_kernel_caches() -> None:
    """Cap both caches at ``KERNEL_CACHE_ENTRIES`` unless the environment already sets them.

    torch reads them when it first builds a kernel, so call this before a model runs (loading one does).
    """
    for name in _CACHES:
        os.environ.setdefault(name, str(KERNEL_CACHE_ENTRIES))
