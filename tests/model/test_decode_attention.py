"""CPU decode attention and the in-place KV cache against transformers' own sdpa and DynamicLayer."""

from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")


def _gqa_module(groups: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(num_key_value_groups=groups, is_causal=True, training=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_matches_sdpa_on_a_padded_batch_over_a_growing_buffer(dtype) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from docmind.model.attention import decode_attention
    from docmind.model.kv import GrowingLayer

    torch.manual_seed(0)
    batch, heads, kv_heads, dim, length = 3, 8, 2, 64, 40
    layer = GrowingLayer()
    layer.update(torch.randn(batch, kv_heads, length - 1, dim, dtype=dtype),
                 torch.randn(batch, kv_heads, length - 1, dim, dtype=dtype))
    keys, values = layer.update(torch.randn(batch, kv_heads, 1, dim, dtype=dtype),
                                torch.randn(batch, kv_heads, 1, dim, dtype=dtype))
    assert not keys.is_contiguous(), "a view of a buffer with spare room"
    query = torch.randn(batch, heads, 1, dim, dtype=dtype)
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    mask[1, ..., :7] = False  # left padding
    mask[2, ..., :30] = False
    module = _gqa_module(heads // kv_heads)
    got, _ = decode_attention(module, query, keys, values, mask, scaling=dim ** -0.5)
    want, _ = sdpa_attention_forward(module, query, keys.contiguous(), values.contiguous(), mask,
                                     scaling=dim ** -0.5)
    assert got.shape == want.shape == (batch, 1, heads, dim)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(got.float(), want.float(), atol=tolerance, rtol=tolerance)


def test_growing_layer_appends_in_place_and_recovers_when_replaced() -> None:
    from docmind.model.kv import GrowingLayer

    layer, keys = GrowingLayer(), []
    for n in (5, 1, 1, 1):
        keys.append(torch.randn(2, 2, n, 4))
        layer.update(keys[-1], keys[-1] * 2)
        if n == 5:
            buffer = layer.keys.data_ptr()
    assert layer.keys.data_ptr() == buffer, "single-token appends reuse the buffer"
    assert torch.equal(layer.keys, torch.cat(keys, dim=2)) and torch.equal(layer.values, layer.keys * 2)
    assert layer.get_seq_length() == 8

    layer.keys, layer.values = layer.keys[1:].clone(), layer.values[1:].clone()  # a row left the batch
    extra = torch.randn(1, 2, 200, 4)  # more than the spare room
    layer.update(extra, extra * 2)
    assert torch.equal(layer.keys, torch.cat([torch.cat(keys, dim=2)[1:], extra], dim=2))
    assert torch.equal(layer.values, layer.keys * 2)


def test_engine_on_cpu_uses_decode_attention_and_matches_stock_generate(loaded_tiny, tiny_model_dir, chat_prompts):
    from transformers import AutoModelForCausalLM

    from docmind.model.engine import GenerationEngine, GenerationRequest

    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        assert engine.decode_attention
        assert loaded_tiny.model.config._attn_implementation == "docmind_sdpa"
        result = engine.generate(GenerationRequest(chat_prompts[2], max_new_tokens=24, stop_token_ids=(-1,)))
    finally:
        engine.shutdown()
    stock = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    ids = loaded_tiny.tokenizer(chat_prompts[2], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.inference_mode():
        out = stock.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=None, min_new_tokens=24)
    assert list(result.token_ids) == out[0, ids.shape[1]:].tolist()
