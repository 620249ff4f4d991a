"""Faults inside the engine stay local: NaN logits or a decoding error fail one request, a failed step
fails only its requests, a dead worker is restarted, and no consumer waits without a bound."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.errors import EngineStalledError, EngineStoppedError, GenerationFaultError
from docmind.model.requests import RequestHandle


def _greedy(prompt: str | list[int], n: int = 24) -> GenerationRequest:
    return GenerationRequest(prompt, max_new_tokens=n, temperature=0.0, stop_token_ids=(-1,))


@pytest.fixture
def fresh(loaded_tiny):
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, prefix_cache_bytes=0, stall_seconds=2)
    yield engine
    engine.on_logits = None
    engine.shutdown()


@pytest.fixture(scope="module")
def singles(engine: GenerationEngine, chat_prompts: list[str]):
    return [engine.generate(_greedy(p)) for p in chat_prompts]


def _poison_after(victim: list[RequestHandle], steps: int):
    """A logits hook that sets the victim's row to NaN at its ``steps``-th step."""
    seen = {"steps": 0}

    def hook(handles: list[RequestHandle], logits: Any) -> None:
        if victim[0] in handles:
            seen["steps"] += 1
            if seen["steps"] == steps:
                logits[handles.index(victim[0])] = float("nan")

    return hook


def test_nan_logits_fail_only_that_row_while_the_batch_keeps_decoding(fresh, chat_prompts, singles) -> None:
    victim: list[RequestHandle] = []
    fresh.on_logits = _poison_after(victim, steps=4)
    handles = fresh.submit_many([_greedy(p) for p in chat_prompts[:3]])
    victim.append(handles[1])
    with pytest.raises(GenerationFaultError, match="NaN"):
        handles[1].wait(60)
    assert fresh.peak_batch == 3, "the poisoned row was decoding together with the others"
    assert [handles[i].wait(60).token_ids for i in (0, 2)] == [singles[0].token_ids, singles[2].token_ids]
    assert fresh.failed_steps == 0, "one bad row is not a failed step"
    assert fresh.generate(_greedy(chat_prompts[1])).token_ids == singles[1].token_ids


def test_nan_at_the_first_token_fails_only_that_prompt_of_a_prefill_group(fresh, chat_prompts, singles) -> None:
    victim: list[RequestHandle] = []
    fresh.on_logits = _poison_after(victim, steps=1)
    handles = fresh.submit_many([_greedy(p) for p in chat_prompts[:3]])
    victim.append(handles[0])
    with pytest.raises(GenerationFaultError, match="NaN"):
        list(handles[0])
    assert fresh.prefill_passes == 1, "the three prompts shared one prefill pass"
    assert [h.wait(60).token_ids for h in handles[1:]] == [s.token_ids for s in singles[1:3]]


class _DecodeFailsOn:
    """The real tokenizer, except that decoding ``bad_id`` raises (a tokenizer fault in one request)."""

    def __init__(self, tokenizer: Any, bad_id: int) -> None:
        self._tokenizer, self._bad_id = tokenizer, bad_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tokenizer(*args, **kwargs)

    def decode(self, ids: list[int], **kwargs: Any) -> str:
        if self._bad_id in ids:
            raise ValueError(f"cannot decode token {self._bad_id}")
        return self._tokenizer.decode(ids, **kwargs)


def test_a_tokenizer_error_fails_only_its_request(loaded_tiny, chat_prompts, singles) -> None:
    produced = {t for s in singles for t in s.token_ids}
    bad_id = next(t for t in range(len(loaded_tiny.tokenizer)) if t not in produced)
    engine = GenerationEngine(loaded_tiny.model, _DecodeFailsOn(loaded_tiny.tokenizer, bad_id), prefix_cache_bytes=0)
    victim: list[RequestHandle] = []

    def force_bad_token(handles: list[RequestHandle], logits: Any) -> None:
        if victim and victim[0] in handles:
            logits[handles.index(victim[0]), bad_id] = 1e4  # finite, but the tokenizer cannot decode it

    engine.on_logits = force_bad_token
    try:
        handles = engine.submit_many([_greedy(p) for p in chat_prompts[:2]])
        victim.append(handles[0])
        with pytest.raises(GenerationFaultError, match="cannot decode"):
            handles[0].wait(60)
        assert handles[1].wait(60).token_ids == singles[1].token_ids
        engine.on_logits = None
        assert engine.generate(_greedy(chat_prompts[0])).token_ids == singles[0].token_ids
    finally:
        engine.shutdown()


def test_an_exception_in_a_step_fails_that_step_and_the_engine_keeps_serving(fresh, chat_prompts, singles) -> None:
    calls = {"n": 0}

    def explode_once(handles: list[RequestHandle], logits: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected fault (out of memory)")

    fresh.on_logits = explode_once
    running = fresh.submit(_greedy(chat_prompts[0]))
    with pytest.raises(GenerationFaultError, match="out of memory"):
        running.wait(60)
    assert fresh.failed_steps == 1 and fresh.restarts == 0
    assert fresh.generate(_greedy(chat_prompts[2])).token_ids == singles[2].token_ids


class _WorkerKilled(BaseException):
    """Escapes every ``except Exception``: it ends the worker thread."""


def test_a_dead_worker_is_restarted_by_the_next_submit(fresh, chat_prompts, singles) -> None:
    def kill(handles: list[RequestHandle], logits: Any) -> None:
        raise _WorkerKilled()

    fresh.on_logits = kill
    doomed = fresh.submit(_greedy(chat_prompts[0]))
    with pytest.raises(EngineStoppedError, match="failed"):
        doomed.wait(60)
    fresh._thread.join(30)
    assert not fresh._thread.is_alive()
    fresh.on_logits = None
    assert fresh.generate(_greedy(chat_prompts[3])).token_ids == singles[3].token_ids
    assert fresh.restarts == 1


def test_a_hung_step_ends_every_wait_with_a_clear_error(fresh, chat_prompts, singles) -> None:
    release = threading.Event()

    def hang(handles: list[RequestHandle], logits: Any) -> None:
        release.wait(60)

    fresh.on_logits = hang
    blocked = fresh.submit(_greedy(chat_prompts[0]))
    with pytest.raises(EngineStalledError, match="produced nothing for 2 s"):
        blocked.wait()
    queued = fresh.submit(_greedy(chat_prompts[1]))
    with pytest.raises(EngineStalledError):
        list(queued)

    async def stream() -> list[str]:
        return [delta async for delta in fresh.submit(_greedy(chat_prompts[2]))]

    with pytest.raises(EngineStalledError):
        asyncio.run(stream())
    assert blocked.cancelled and queued.cancelled, "a consumer that gives up cancels its request"
    fresh.on_logits = None
    release.set()
    assert fresh.generate(_greedy(chat_prompts[4])).token_ids == singles[4].token_ids


def test_a_request_that_cannot_start_fails_alone(fresh, chat_prompts, singles) -> None:
    running = fresh.submit(_greedy(chat_prompts[0], n=200))
    stream = iter(running)  # kept: an abandoned iterator cancels its request
    next(stream)  # decoding
    bad_seed = GenerationRequest(chat_prompts[1], max_new_tokens=4, temperature=1.0, seed=2**70)
    doomed, queued_with_it = fresh.submit_many([bad_seed, _greedy(chat_prompts[2])])
    with pytest.raises(GenerationFaultError, match="Could not start"):
        doomed.wait(60)
    assert queued_with_it.wait(60).token_ids == singles[2].token_ids
    assert running.wait(60).finish_reason == "length" and fresh.failed_steps == 0
