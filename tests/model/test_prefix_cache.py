"""The prefix cache stays bounded by entries as well as bytes, keeping the most recently used histories."""

from __future__ import annotations

import torch

from docmind.model.prefix_cache import MAX_ENTRIES, MIN_REUSED_TOKENS, PrefixCache


def _kv(tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, 1, tokens, 2), torch.zeros(1, 1, tokens, 2))]


def test_at_most_max_entries_are_kept_and_the_recently_used_survive() -> None:
    cache = PrefixCache(budget_bytes=1 << 30)
    histories = [tuple([n] * MIN_REUSED_TOKENS) for n in range(MAX_ENTRIES + 10)]
    cache.add(histories[0], _kv(MIN_REUSED_TOKENS))
    for history in histories[1:]:
        cache.lookup(list(histories[0]) + [1])  # chat 0 stays in use
        cache.add(history, _kv(MIN_REUSED_TOKENS))
    assert len(cache.entries) == MAX_ENTRIES
    kept = {entry.ids for entry in cache.entries.values()}
    assert histories[0] in kept and histories[-1] in kept and histories[1] not in kept


def test_the_byte_budget_still_applies() -> None:
    one = sum(k.numel() * k.element_size() * 2 for k, _ in _kv(MIN_REUSED_TOKENS))
    cache = PrefixCache(budget_bytes=3 * one)
    for n in range(5):
        cache.add(tuple([n] * MIN_REUSED_TOKENS), _kv(MIN_REUSED_TOKENS))
    assert len(cache.entries) == 3
