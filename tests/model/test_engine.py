"""The batched engine on the tiny real Qwen3: batching is exact, requests are independent, faults stay local."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.errors import PromptTooLongError


def _greedy(prompt: str | list[int], n: int = 24, **kw) -> GenerationRequest:
    return GenerationRequest(prompt, max_new_tokens=n, temperature=0.0, stop_token_ids=(-1,), **kw)


@pytest.fixture(scope="module")
def singles(engine: GenerationEngine, chat_prompts: list[str]):
    """Each prompt generated alone (batch of one)."""
    return [engine.generate(_greedy(p)) for p in chat_prompts]


def test_single_request_matches_transformers_generate(loaded_tiny, chat_prompts, singles) -> None:
    import torch

    tok, model = loaded_tiny.tokenizer, loaded_tiny.model
    ids = tok(chat_prompts[0], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=None, min_new_tokens=24)
    assert list(singles[0].token_ids) == out[0, ids.shape[1]:].tolist()


def test_concurrent_requests_are_batched_and_each_gets_its_own_tokens(loaded_tiny, chat_prompts, singles) -> None:
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        handles = [engine.submit(_greedy(p)) for p in chat_prompts]
        streamed = [[] for _ in handles]
        threads = [threading.Thread(target=lambda h=h, out=out: out.extend(h)) for h, out in zip(handles, streamed)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        results = [h.wait(60) for h in handles]
    finally:
        engine.shutdown()
    assert engine.peak_batch >= 4, "concurrent requests share decoding steps"
    for result, single, deltas in zip(results, singles, streamed):
        assert result.token_ids == single.token_ids
        assert "".join(deltas) == result.text
        assert result.prompt_tokens > 0 and result.completion_tokens == 24 and result.finish_reason == "length"
    assert len({r.token_ids for r in results}) == len(results), "different prompts, different outputs"


def test_identical_prompts_in_a_batch_match_the_single_run(loaded_tiny, chat_prompts, singles) -> None:
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        handles = [engine.submit(_greedy(chat_prompts[1])) for _ in range(5)]
        results = [h.wait(60) for h in handles]
    finally:
        engine.shutdown()
    assert all(r.token_ids == singles[1].token_ids for r in results)


def test_cancel_mid_stream_frees_the_slot(engine: GenerationEngine, chat_prompts, singles) -> None:
    long = engine.submit(GenerationRequest(chat_prompts[2], max_new_tokens=3000, stop_token_ids=(-1,)))
    other = engine.submit(_greedy(chat_prompts[0]))
    stream = iter(long)
    for _ in range(3):
        next(stream)
    long.cancel()
    result = long.wait(30)
    assert result.finish_reason == "cancelled" and result.completion_tokens < 3000
    assert other.wait(30).token_ids == singles[0].token_ids
    deadline = time.time() + 5
    while engine.active_requests and time.time() < deadline:
        time.sleep(0.01)
    assert engine.active_requests == 0


def test_over_long_prompt_fails_alone(engine: GenerationEngine, chat_prompts, singles) -> None:
    running = engine.submit(_greedy(chat_prompts[3]))
    with pytest.raises(PromptTooLongError, match="context holds"):
        engine.submit(_greedy([5] * (engine.context_window + 10)))
    assert running.wait(30).token_ids == singles[3].token_ids


def test_max_new_tokens_stop_tokens_and_stop_strings(engine: GenerationEngine, chat_prompts, singles) -> None:
    reference = singles[4]
    short = engine.generate(_greedy(chat_prompts[4], n=5))
    assert short.token_ids == reference.token_ids[:5] and short.finish_reason == "length"

    stop_token = reference.token_ids[6]
    first = reference.token_ids.index(stop_token)
    stopped = engine.generate(GenerationRequest(chat_prompts[4], max_new_tokens=24, stop_token_ids=(stop_token,)))
    assert stopped.finish_reason == "stop" and stopped.token_ids == reference.token_ids[: first + 1]

    stop_text = reference.text[8:11]
    cut = engine.generate(_greedy(chat_prompts[4], stop=(stop_text,)))
    assert cut.finish_reason == "stop" and cut.text == reference.text[: reference.text.index(stop_text)]


def test_sampling_is_per_request_and_seeded(engine: GenerationEngine, chat_prompts, singles) -> None:
    sampled = [engine.submit(GenerationRequest(chat_prompts[0], max_new_tokens=24, temperature=1.5, top_p=0.95,
                                               seed=seed, stop_token_ids=(-1,))) for seed in (1, 1, 2)]
    greedy = engine.submit(_greedy(chat_prompts[0]))
    a, b, c = (h.wait(30) for h in sampled)
    assert a.token_ids == b.token_ids != c.token_ids
    assert a.token_ids != singles[0].token_ids
    assert greedy.wait(30).token_ids == singles[0].token_ids


def test_next_turn_reuses_the_previous_kv(loaded_tiny, engine: GenerationEngine, chat_prompts) -> None:
    first = engine.generate(_greedy(chat_prompts[1]))
    follow_up = engine.tokenize(chat_prompts[1]) + list(first.token_ids) + engine.tokenize(
        "<|im_end|>\n<|im_start|>user\nAnd page 4?<|im_end|>\n<|im_start|>assistant\n")
    reused = engine.generate(_greedy(follow_up))
    assert reused.cached_prompt_tokens >= len(engine.tokenize(chat_prompts[1]))
    fresh_engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        fresh = fresh_engine.generate(_greedy(follow_up))
    finally:
        fresh_engine.shutdown()
    assert fresh.cached_prompt_tokens == 0
    assert reused.token_ids == fresh.token_ids


async def test_async_streams_never_block_the_event_loop(engine: GenerationEngine, chat_prompts, singles) -> None:
    """Every step holds in the worker (test hook) until the event loop has run another task. Were a
    consumer to wait for its next token on the loop, that task could not run and the step would not go on."""
    loop_ran = threading.Event()
    steps_held: list[bool] = []

    def hold_step(handles: list, logits: object) -> None:
        loop_ran.clear()
        steps_held.append(loop_ran.wait(10))
        if not steps_held[-1]:
            engine.on_logits = None  # found blocked: let the rest run

    async def ticker() -> None:
        while True:
            loop_ran.set()
            await asyncio.sleep(0.001)

    async def consume(prompt: str) -> str:
        return "".join([delta async for delta in engine.stream(_greedy(prompt, n=48))])

    tick = asyncio.create_task(ticker())
    engine.on_logits = hold_step
    try:
        texts = await asyncio.gather(*(consume(p) for p in chat_prompts))
    finally:
        engine.on_logits = None
        tick.cancel()
    assert all(texts)
    assert len(steps_held) >= 48 and all(steps_held), f"{steps_held.count(False)} steps found the event loop blocked"


async def test_closing_an_async_stream_cancels_the_request(engine: GenerationEngine, chat_prompts) -> None:
    handle = engine.submit(GenerationRequest(chat_prompts[0], max_new_tokens=3000, stop_token_ids=(-1,)))
    async for _ in handle:
        break
    result = await asyncio.to_thread(handle.wait, 30)
    assert result.finish_reason == "cancelled"


def test_long_prompt_is_prefilled_in_chunks_while_others_stream(loaded_tiny, chat_prompts, engine) -> None:
    long_prompt = engine.tokenize(chat_prompts[2]) * 40
    alone = engine.generate(_greedy(long_prompt, n=8))
    chunked = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefill_chunk=32, prefix_cache_bytes=0)
    steps: list[set[int]] = []  # the requests that got a token, step by step (test hook, in the worker)
    chunked.on_logits = lambda handles, logits: steps.append({handle.id for handle in handles})
    try:
        streaming = chunked.submit(GenerationRequest(chat_prompts[0], max_new_tokens=400, stop_token_ids=(-1,)))
        reader = threading.Thread(target=lambda: [_ for _ in streaming])
        reader.start()
        while not steps:  # the stream is decoding
            time.sleep(0.001)
        passes_before, submitted_at = chunked.prefill_passes, len(steps)
        long = chunked.submit(_greedy(long_prompt, n=8))
        result = long.wait(60)
        long_passes = chunked.prefill_passes - passes_before
        streaming.cancel()
        reader.join(30)
    finally:
        chunked.shutdown()
    first_long = next(i for i, ids in enumerate(steps) if long.id in ids)
    during = sum(streaming.id in ids for ids in steps[submitted_at:first_long])
    chunks = -(-len(long_prompt) // 32)
    assert long_passes == chunks, "the long prompt was prefilled 32 tokens per pass"
    assert during >= chunks - 2, f"the running stream decoded {during} steps during {chunks} prefill chunks"
    assert result.token_ids == alone.token_ids


def test_requests_arriving_together_share_one_prefill_pass(loaded_tiny, chat_prompts, singles) -> None:
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        assert len({len(engine.tokenize(p)) for p in chat_prompts}) > 1, "prompts of different lengths get padded"
        results = [h.wait(60) for h in engine.submit_many([_greedy(p) for p in chat_prompts])]
    finally:
        engine.shutdown()
    assert engine.prefill_passes == 1
    assert [r.token_ids for r in results] == [s.token_ids for s in singles]
    assert all(r.first_token_seconds is not None and r.first_token_seconds <= r.seconds for r in results)


def test_prefill_groups_respect_the_chunk_budget(loaded_tiny, chat_prompts, singles) -> None:
    prompts = chat_prompts[:4]
    widest = max(len(loaded_tiny.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0,
                              prefill_chunk=2 * widest)
    try:
        results = [h.wait(60) for h in engine.submit_many([_greedy(p) for p in prompts])]
    finally:
        engine.shutdown()
    assert engine.prefill_passes == 2, "four prompts, two per pass"
    assert [r.token_ids for r in results] == [s.token_ids for s in singles[:4]]


def test_a_prompt_with_a_reusable_prefix_is_prefilled_on_its_own(loaded_tiny, chat_prompts, singles) -> None:
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    try:
        first = engine.generate(_greedy(chat_prompts[1]))
        follow_up = engine.tokenize(chat_prompts[1]) + list(first.token_ids) + engine.tokenize(
            "<|im_end|>\n<|im_start|>user\nAnd page 4?<|im_end|>\n<|im_start|>assistant\n")
        passes = engine.prefill_passes
        reused, *others = [h.wait(60) for h in engine.submit_many(
            [_greedy(follow_up), _greedy(chat_prompts[3]), _greedy(chat_prompts[4])])]
    finally:
        engine.shutdown()
    assert engine.prefill_passes - passes == 2, "the follow-up alone, then the two new prompts together"
    assert reused.cached_prompt_tokens >= len(engine.tokenize(chat_prompts[1]))
    assert [r.token_ids for r in others] == [singles[3].token_ids, singles[4].token_ids]
    alone = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        assert reused.token_ids == alone.generate(_greedy(follow_up)).token_ids
    finally:
        alone.shutdown()


def test_a_group_joins_a_batch_that_is_already_decoding(loaded_tiny, chat_prompts, singles) -> None:
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        running = engine.submit(_greedy(chat_prompts[0], n=400))
        stream = iter(running)
        for _ in range(5):
            next(stream)
        passes = engine.prefill_passes
        results = [h.wait(60) for h in engine.submit_many([_greedy(p) for p in chat_prompts[1:]])]
        assert engine.prefill_passes - passes == 1
        assert engine.peak_batch == 5
        running.cancel()
        running.wait(30)
    finally:
        engine.shutdown()
    assert [r.token_ids for r in results] == [s.token_ids for s in singles[1:]]


def test_submit_many_queues_nothing_when_one_prompt_cannot_fit(engine: GenerationEngine, chat_prompts) -> None:
    passes = engine.prefill_passes
    with pytest.raises(PromptTooLongError):
        engine.submit_many([_greedy(chat_prompts[0]), _greedy([5] * (engine.context_window + 1))])
    engine.generate(_greedy(chat_prompts[1], n=1))  # the worker has taken everything queued before it
    assert engine.prefill_passes == passes + 1, "only the later request was prefilled"


def test_shutdown_lets_running_requests_finish_within_the_drain_time(loaded_tiny, chat_prompts) -> None:
    """A model switch shuts the old engine down with a drain: answers being written still end normally."""
    from docmind.model.errors import EngineStoppedError

    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    running = engine.submit(GenerationRequest(chat_prompts[0], max_new_tokens=40, stop_token_ids=(-1,)))
    engine.shutdown(drain_seconds=60)
    assert running.result is not None and running.result.finish_reason == "length"
    assert running.result.completion_tokens == 40

    cut = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    endless = cut.submit(GenerationRequest(chat_prompts[1], max_new_tokens=100_000, stop_token_ids=(-1,)))
    cut.shutdown(drain_seconds=0.3)
    with pytest.raises(EngineStoppedError):
        endless.wait()


def test_requests_arriving_together_prefill_their_shared_start_once(loaded_tiny) -> None:
    """Five agent prompts opening with the same system prompt and tool descriptions, none cached yet: the
    first stops its prefill at the end of the shared start and leaves that KV in the prefix cache; the
    other four start from it. The tokens are those of each prompt prefilled alone."""
    from docmind.model.engine import MIN_SHARED_TOKENS
    from docmind.model.prefix_cache import common_prefix

    system = ("<|im_start|>system\nYou answer questions about the user's documents. Tools: search_documents "
              "(query: words to look for) returns passages with citation ids; list_documents lists them. " * 3)
    questions = ["What is on page 3?", "Summarise the report", "Name the author", "Find the quick brown fox",
                 "List the documents"]
    prompts = [f"{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n" for q in questions]
    alone = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0)
    try:
        ids = [alone.tokenize(p) for p in prompts]
        expected = [alone.generate(_greedy(p, n=8)).token_ids for p in prompts]
    finally:
        alone.shutdown()
    shared = common_prefix(tuple(ids[0]), ids[1])
    assert shared >= MIN_SHARED_TOKENS and all(common_prefix(tuple(ids[0]), i) == shared for i in ids[1:])

    together = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    try:
        results = [h.wait(60) for h in together.submit_many([_greedy(p, n=8) for p in prompts])]
    finally:
        together.shutdown()
    assert together.prefill_tokens == sum(len(i) for i in ids) - 4 * shared
    assert [r.cached_prompt_tokens for r in results] == [0] + [shared] * 4
    assert [r.token_ids for r in results] == expected
