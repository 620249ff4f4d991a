"""Decode-step attention for CPU, registered with transformers under the name ``docmind_sdpa``.

PyTorch's CPU flash-attention kernel is slow for a single query against the KV cache. On the
Qwen3-0.6B shape, in bf16 on 1 thread at batch 5, one layer takes 1.0 ms at 80 cached tokens and
14 ms at 1,000 tokens. Two plain matmuls take 0.11 ms and 1.15 ms for the same work (measured on
2026-11-26). So on CPU, decode steps (one query per row) use the matmuls here. Prefill, and every
other device, keep transformers' sdpa.

The engine's KV cache (``kv.GrowingLayer``) returns a view of the first ``length`` positions of a
buffer that has spare room. A bf16 batched matmul over such a strided view is about 20 times slower
than over a contiguous tensor. So the scores are computed over the whole buffer, and the spare tail
is masked out. The tail holds zeros or older finite keys, never uninitialised memory.
"""

from __future__ import annotations

import math
from typing import Any

NAME = "docmind_sdpa"


def use_decode_attention(model: Any) -> bool:
    """Route ``model``'s single-query attention through ``decode_attention`` when it runs sdpa on CPU.

    Returns whether the model now uses it. Registering the name again is harmless.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.device.type != "cpu" or model.config._attn_implementation not in ("sdpa", NAME):
        return False
    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    if model.config._attn_implementation != NAME:
        model.set_attn_implementation(NAME)
    return True


def decode_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                     dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention in transformers' interface: plain matmuls for one query per row on CPU, sdpa otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.shape[2] != 1 or query.device.type != "cpu" or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    import torch

    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    key, value = _whole_buffer(key), _whole_buffer(value)
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # query heads that share a KV head
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float()
    scores *= scaling if scaling is not None else 1 / math.sqrt(dim)
    scores[..., length:] = float("-inf")
    if attention_mask is not None:
        mask = attention_mask[:, :1, -1:, -length:].reshape(batch, 1, 1, length)
        if mask.dtype == torch.bool:
            scores[..., :length].masked_fill_(~mask, float("-inf"))
        else:
            scores[..., :length] += mask
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value).reshape(batch, heads, 1, value.shape[-1])
    return out.transpose(1, 2).contiguous(), None


def _whole_buffer(t: Any) -> Any:
    """The whole buffer behind a view of its first positions (dim 2), else ``t`` made contiguous."""
    batch, heads, length, dim = t.shape
    s_batch, s_head, s_pos, s_dim = t.stride()
    if s_dim != 1 or s_pos != dim or s_head % dim or s_batch != heads * s_head:
        return t.contiguous()
    capacity = s_head // dim
    if capacity == length:
        return t
    last = t.storage_offset() + (batch - 1) * s_batch + (heads - 1) * s_head + capacity * dim
    if capacity < length or t.untyped_storage().nbytes() < last * t.element_size():
        return t.contiguous()
    return t.as_strided((batch, heads, capacity, dim), t.stride())
