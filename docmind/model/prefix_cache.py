"""KV caches of finished requests, kept so that a later prompt with the same start skips recomputing it.

A chat's next turn starts with the previous turn's prompt (and an agent's next step with the previous
step's), so its prefill only runs the new tokens.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Any

MIN_REUSED_TOKENS = 16
MAX_ENTRIES = 32
"""Histories kept at most (the most recently used): a few per chat that is active now is all reuse needs.
Without it a small model's cache held thousands (a 20-minute soak grew the app by 1.6 GB) and every
lookup compared the prompt with each of them."""


@dataclass
class PrefixEntry:
    """One finished request's tokens and their per-layer (keys, values), batch dimension 1."""

    ids: tuple[int, ...]
    kv: list[tuple[Any, Any]]
    nbytes: int


@dataclass
class PrefixCache:
    """KV caches of finished requests, reused by later prompts that start with the same tokens."""

    budget_bytes: int
    entries: collections.OrderedDict[int, PrefixEntry] = field(default_factory=collections.OrderedDict)
    _keys: itertools.count = field(default_factory=itertools.count)

    def lookup(self, ids: list[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` and that length (< len(ids))."""
        best, best_n = None, 0
        for key, entry in self.entries.items():
            n = common_prefix(entry.ids, ids)
            if n > best_n:
                best, best_n = key, n
        best_n = min(best_n, len(ids) - 1)
        if best is None or best_n < MIN_REUSED_TOKENS:
            return None, 0
        self.entries.move_to_end(best)
        return self.entries[best], best_n

    def add(self, ids: tuple[int, ...], kv: list[tuple[Any, Any]]) -> None:
        nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if nbytes > self.budget_bytes or len(ids) < MIN_REUSED_TOKENS:
            return
        for key in [k for k, e in self.entries.items() if ids[: len(e.ids)] == e.ids]:
            del self.entries[key]  # superseded by this longer history
        self.entries[next(self._keys)] = PrefixEntry(ids, kv, nbytes)
        while len(self.entries) > MAX_ENTRIES or sum(e.nbytes for e in self.entries.values()) > self.budget_bytes:
            self.entries.popitem(last=False)


def common_prefix(a: tuple[int, ...], b: list[int]) -> int:
    """Length of the shared start of two token sequences (vectorised: histories run to 30k tokens)."""
    import numpy as np

    n = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n
