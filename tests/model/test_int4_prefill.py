"""int4 weights on CPU: prompts run through bf16 matmuls on weights dequantized per call, decode steps
through torch's int4 kernel (docmind.model.int4_prefill), on the real kernel and the tiny int4 model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from docmind.config import load_settings
from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.int4_prefill import DENSE_MIN_ROWS, dequantize, packed_layout
from docmind.model.loading import load_model, quantize_linears

KERNEL = "aten::_weight_int4pack_mm_for_cpu"


def _ops(fn) -> Counter:
    """The aten ops ``fn`` ran, in any thread (the engine's worker too), counted by torch's profiler."""
    from torch._C._profiler import _ExperimentalConfig
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU],
                 experimental_config=_ExperimentalConfig(profile_all_threads=True)) as prof:
        fn()
    return Counter({event.key: event.count for event in prof.key_averages()})


def _int4_linear(n: int, k: int, seed: int):
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    linear = nn.Linear(k, n, bias=False).to(torch.bfloat16)
    quantize_linears(linear, "int4-weight", "cpu")
    return linear


@pytest.mark.parametrize("n, k", [(112, 256), (256, 128), (64, 384), (2048 + 48, 128)])
def test_dequantized_weight_is_what_the_int4_kernel_multiplies_by(n: int, k: int) -> None:
    """Shapes with whole blocks of output rows and a short last block: feeding the identity matrix through
    the kernel reads back its weights (transposed); the dense copy matches to bf16 rounding."""
    import torch
    import torch.nn.functional as F

    assert packed_layout() is not None
    linear = _int4_linear(n, k, seed=n + k)
    through_kernel = F.linear(torch.eye(k, dtype=torch.bfloat16), linear.weight)  # (k, n) = W^T
    dense = dequantize(linear.weight)
    assert dense.shape == (k, n) and dense.dtype == torch.bfloat16
    torch.testing.assert_close(dense, through_kernel, rtol=2**-8, atol=1e-6)


def test_rows_at_the_threshold_switch_from_the_int4_kernel_to_a_bf16_matmul() -> None:
    import torch

    from docmind.model.int4_prefill import use_dense_prefill

    linear = _int4_linear(256, 128, seed=1)
    assert use_dense_prefill(linear) == 1
    few = torch.randn(1, DENSE_MIN_ROWS - 1, 128, dtype=torch.bfloat16)
    many = torch.randn(1, DENSE_MIN_ROWS, 128, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert _ops(lambda: linear(few))[KERNEL] == 1
        ops = _ops(lambda: linear(many))
        y = linear(many)
    assert ops[KERNEL] == 0 and ops["aten::mm"] == 1
    reference = torch.nn.functional.linear(many, linear.weight)  # the kernel, bypassing the module
    torch.testing.assert_close(y, reference, rtol=0.02, atol=0.02)


def _mean_gap(a, b) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_engine_prefills_int4_prompts_densely_and_decodes_with_the_int4_kernel(
        int4_model_dir: Path, tmp_path: Path) -> None:
    """The engine's prefill of a long prompt never calls the int4 kernel (but for the output layer's single
    row, when it is int4); every decode step calls it once per int4 layer.

    The dense path rounds each dequantized weight to bf16 where the kernel keeps it in float32, so logits
    move a little (measured here: mean 0.011, against 0.29 for int4 itself vs bf16; 98% same top-1), and a
    random model's near-ties may flip a greedy token. So the check is on logits: the dense path's distance
    to the int4 kernel's must be under a tenth of int4's own distance to the unquantized model."""
    import torch
    from torchao.prototype.quantization.int4 import Int4OpaqueTensor

    settings = load_settings(data_dir=tmp_path, model_path=int4_model_dir, quantization="int4-weight")
    kernel_only, loaded = load_model(settings), load_model(settings)  # two instances of the cached int4 weights
    unquantized = load_model(load_settings(data_dir=tmp_path, model_path=int4_model_dir, quantization="none"))
    int4_layers = sum(isinstance(m.weight, Int4OpaqueTensor) for m in loaded.model.modules()
                      if isinstance(m, torch.nn.Linear))
    passage = "DocMind reads PDF files, Word documents and slides, splits them into passages and searches them. "
    prompt = f"<|im_start|>user\n{passage * 6}What is on page three?<|im_end|>\n<|im_start|>assistant\n"
    ids = list(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert len(ids) >= 2 * DENSE_MIN_ROWS

    engine = GenerationEngine(loaded.model, loaded.tokenizer)
    step_logits = []
    engine.on_logits = lambda handles, logits: step_logits.append(logits[0].float().clone())
    try:
        assert engine.dense_prefill_layers == int4_layers > 4
        new_tokens = 8
        ops = _ops(lambda: engine.generate(GenerationRequest(ids, max_new_tokens=new_tokens, stop_token_ids=(-1,))))
    finally:
        engine.shutdown()
    decode_steps = new_tokens - 1  # the first token comes from the prefill pass
    head_rows_at_prefill = int(isinstance(loaded.model.lm_head.weight, Int4OpaqueTensor))  # logits of 1 position
    assert ops[KERNEL] == head_rows_at_prefill + decode_steps * int4_layers

    with torch.inference_mode():
        batch = torch.tensor([ids])
        dense, kernel, reference = (m.model(batch).logits[0] for m in (loaded, kernel_only, unquantized))
    assert _mean_gap(dense, kernel) < 0.1 * _mean_gap(kernel, reference)
    assert _mean_gap(step_logits[0], kernel[-1]) < 0.1 * _mean_gap(kernel[-1], reference[-1])
