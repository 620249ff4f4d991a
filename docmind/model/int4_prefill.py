"""int4 weights read two ways on CPU: torch's int4 kernel for decode steps, bf16 matmuls for prefill.

torch's CPU int4 kernel (``_weight_int4pack_mm_for_cpu``, reached through TorchAO's ``Int4OpaqueTensor``)
decodes about twice as fast as bf16, since it reads a quarter of the bytes, but it is no tuned GEMM: on
the Qwen3-0.6B shape it prefilled 2,000 tokens 1.7x slower than bf16. So a linear layer whose input has
at least ``DENSE_MIN_ROWS`` rows (a prompt being prefilled) dequantizes its weight to bf16 for that call
only and multiplies with torch's bf16 matmul; the copy is freed when the call returns, so only one
layer's copy exists at a time and no second set of weights is held. Fewer rows (decode steps, a batch of
a few rows) keep the int4 kernel.

The byte layout that ``_convert_weight_to_int4pack_for_cpu`` packs depends on the CPU's vector width
(blocks of 64 output rows with AVX-512, 32 with AVX2, pairs elsewhere). It is found once per process by
packing a known probe and matching the candidate layouts; if none matches (a future torch), every call
keeps the int4 kernel.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DENSE_MIN_ROWS = 64
"""Rows from which a call dequantizes to bf16 instead of using the int4 kernel. Measured on one decoder
layer's linears of the Qwen3-0.6B shape, 1 thread (tests/benchmarks/bench_int4_prefill.py): int4 kernel vs
dequantize + bf16 matmul 26 vs 35 ms at 48 rows, 36 vs 36 ms at 64, 67 vs 50 ms at 128, 142 vs 77 ms at 256;
dequantizing alone 11-17 ms. Decode steps (one row per request, at most ``max_batch``) stay far below."""
_ZERO_POINT = 8
"""tinygemm's int4 codes are 0..15 around this midpoint: weight = (code - 8) * scale + zero."""


@dataclass(frozen=True)
class _Layout:
    """How the packed bytes hold a weight: blocks of ``block`` output rows, each stored as K rows of
    ``block // 2`` bytes; a whole block keeps its first half of rows in the low nibbles (``halves``) or
    pairs neighbouring rows in one byte (as a short last block always does)."""

    block: int
    halves: bool


def _unpack(packed: Any, n: int, k: int, layout: _Layout, scale: Any, zero: Any) -> Any:
    """The dequantized weight of an (n, k) matrix, shape (k, n) in ``scale``'s dtype: codes unpacked with
    bitwise operations (a lookup-table gather measured 20x slower), then one multiply-add per group."""
    import torch

    out = torch.empty(k, n, dtype=scale.dtype)
    flat = packed.reshape(-1)
    start, offset = 0, 0
    while start < n:
        whole = n - start >= layout.block
        rows, blocks = (layout.block, (n - start) // layout.block) if whole else (n - start, 1)
        size = k * rows * blocks // 2
        data = flat[offset:offset + size].view(blocks, k, rows // 2).permute(1, 0, 2)  # (k, blocks, rows / 2)
        target = out[:, start:start + rows * blocks]
        if layout.halves and whole:  # a byte holds row r (low nibble) and row r + rows / 2 of its block
            low, high = target.view(k, blocks, 2, rows // 2).unbind(2)
        else:  # a byte holds neighbouring rows
            low, high = target.view(k, blocks, rows // 2, 2).unbind(3)
        low.copy_((data & 15).view(torch.int8) - _ZERO_POINT)
        high.copy_((data >> 4).view(torch.int8) - _ZERO_POINT)
        start, offset = start + rows * blocks, offset + size
    grouped = out.view(scale.shape[0], -1, n)  # (k / group, group, n)
    torch.addcmul(zero[:, None, :], grouped, scale[:, None, :], out=grouped)
    return out


@functools.cache
def packed_layout() -> _Layout | None:
    """This CPU's int4 packing layout, found by packing a probe (None when no known layout matches)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    n, k, group = 112, 256, 128  # 112 rows: whole blocks and a short last one for blocks of 64 and 32
    codes = torch.randint(0, 16, (n, k), dtype=torch.int32, generator=generator)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
    scale = torch.ones(k // group, n)
    expected = (codes.T - _ZERO_POINT).float()
    for layout in (_Layout(64, True), _Layout(32, True), _Layout(16, True), _Layout(64, False),
                   _Layout(32, False), _Layout(16, False)):
        if torch.equal(_unpack(packed, n, k, layout, scale, torch.zeros_like(scale)), expected):
            return layout
    log.warning("unknown int4 packing layout on this CPU: prefill keeps the int4 kernel")
    return None


def dequantize(weight: Any) -> Any:
    """An ``Int4OpaqueTensor`` weight (n, k) as a dense (k, n) tensor in its dtype (the transpose,
    which is what a matmul wants)."""
    layout = packed_layout()
    assert layout is not None and weight.act_mapping_type is None and weight.act_pre_scale is None
    n, k = weight.shape
    scale_and_zero = weight.scale_and_zero  # (k / group, n, 2); strided halves made the multiply-add 8x slower
    return _unpack(weight.qdata, n, k, layout, scale_and_zero[..., 0].contiguous(),
                   scale_and_zero[..., 1].contiguous())


def _dense_capable(weight: Any) -> bool:
    int4 = sys.modules.get("torchao.prototype.quantization.int4")  # imported by any model holding int4 weights
    return (int4 is not None and isinstance(weight, int4.Int4OpaqueTensor) and weight.device.type == "cpu"
            and weight.act_mapping_type is None and weight.act_pre_scale is None)


def _forward(self: Any, x: Any) -> Any:
    """``nn.Linear.forward`` for an int4 weight: many rows through a bf16 copy made for this call."""
    import torch
    import torch.nn.functional as F

    if x.numel() < DENSE_MIN_ROWS * self.in_features:
        return F.linear(x, self.weight, self.bias)
    y = torch.matmul(x, dequantize(self.weight))
    return y if self.bias is None else y + self.bias


def use_dense_prefill(model: Any) -> int:
    """Give every int4 linear layer of ``model`` (CPU) the two-way forward; returns how many now have it."""
    import types

    import torch.nn as nn

    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and _dense_capable(m.weight)]
    if not layers or packed_layout() is None:
        return 0
    for layer in layers:
        layer.forward = types.MethodType(_forward, layer)
    return len(layers)
