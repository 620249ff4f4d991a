"""What callers hand the engine and get back: a request, a handle to stream or cancel it, its result."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class GenerationRequest:
    """One generation: a prompt (text or token ids) and how to sample it."""

    prompt: str | list[int]
    max_new_tokens: int = 1024
    temperature: float = 0.0
    """0 means greedy."""
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    """Stop strings: generation ends before the first one, which is not returned."""
    stop_token_ids: tuple[int, ...] | None = None
    """Stop tokens; None means the model's end-of-turn tokens."""
    seed: int | None = None
    thinking_budget: int | None = None
    """Most tokens the model may think (inside ``<think>``) before the engine closes the thought for it
    and the answer begins; None means unlimited, 0 skips thinking."""


@dataclass(frozen=True)
class GenerationResult:
    """What a finished request produced, with its token counts and timings."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """``stop``, ``length`` or ``cancelled``."""
    cached_prompt_tokens: int
    """Prompt tokens whose KV came from an earlier request (not recomputed)."""
    first_token_seconds: float | None
    seconds: float
    token_ids: tuple[int, ...] = ()
    """Every generated token (forced ones included), the final stop token included."""
    thinking_tokens: int = 0
    """Tokens the model generated inside its ``<think>`` block (the forced closing not counted)."""
    thinking_cut: bool = False
    """True when ``thinking_budget`` ended the thought (the engine wrote the closing)."""


_DONE = object()
HEALTH_CHECK_SECONDS = 0.5
"""How often a waiting consumer asks the engine whether it is still making progress."""


class RequestHandle:
    """A submitted request: iterate it (sync or async) for text deltas, ``cancel()`` it, read ``result``.

    No wait is unbounded: while waiting, the consumer asks ``health`` (the engine) every
    ``HEALTH_CHECK_SECONDS`` whether to give up, and raises the error it returns (after cancelling).
    """

    _ids = itertools.count(1)

    def __init__(self, request: GenerationRequest, prompt_ids: list[int],
                 health: Callable[[], BaseException | None]) -> None:
        self.id = next(self._ids)
        self.request = request
        self.prompt_ids = prompt_ids
        self.submitted_at = time.perf_counter()
        """When it was submitted: its timings (first token, total) count from here."""
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self._health = health
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop generating; the engine frees this request's batch slot at its next step."""
        self._cancelled.set()

    def _push(self, item: Any) -> None:
        self._events.put(item)
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the consumer's loop is closed
                pass

    def _finish(self, result: GenerationResult | None, error: BaseException | None = None) -> None:
        if self._finished.is_set():
            return
        self.result, self.error = result, error
        self._finished.set()
        self._push(_DONE)

    def _take(self, item: Any) -> str | None:
        if item is _DONE:
            if self.error is not None:
                raise self.error
            return None
        return item

    def _check_health(self) -> None:
        """Raise the engine's reason to give up, if it has one (the request is cancelled on the way out)."""
        error = self._health()
        if error is not None and not self._finished.is_set():
            raise error

    def __iter__(self) -> Iterator[str]:
        with self._cancelled_unless_finished():
            while (delta := self._take(self._next_event_blocking())) is not None:
                yield delta

    def _next_event_blocking(self) -> Any:
        while True:
            try:
                return self._events.get(timeout=HEALTH_CHECK_SECONDS)
            except queue.Empty:
                self._check_health()

    async def __aiter__(self) -> AsyncIterator[str]:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        with self._cancelled_unless_finished():
            while (delta := self._take(await self._next_event())) is not None:
                yield delta

    async def _next_event(self) -> Any:
        """The next pushed item, waiting on the consumer's event loop (never blocking it)."""
        assert self._wakeup is not None
        while True:
            self._wakeup.clear()
            try:
                return self._events.get_nowait()
            except queue.Empty:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), HEALTH_CHECK_SECONDS)
                except TimeoutError:
                    self._check_health()

    @contextlib.contextmanager
    def _cancelled_unless_finished(self) -> Iterator[None]:
        """Cancel the request when its consumer stops early (breaks out, closes the stream, fails)."""
        try:
            yield
        finally:
            if not self._finished.is_set():
                self.cancel()

    def wait(self, timeout: float | None = None) -> GenerationResult:
        """Block until finished; return the result or raise the request's error (or the engine's reason
        to give up: stopped, or no progress for its ``stall_seconds``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished.is_set():
            left = HEALTH_CHECK_SECONDS if deadline is None else min(HEALTH_CHECK_SECONDS, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"request {self.id} still running after {timeout} s")
            if not self._finished.wait(left):
                try:
                    self._check_health()
                except Exception:
                    self.cancel()
                    raise
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
