"""One generation engine for every session: concurrent requests share each decoding step.

A single worker thread owns the model. Waiting requests are prefilled before they join the running
batch. Short prompts that arrive together share one left-padded forward pass. A prompt that can
reuse the KV cache of an earlier prompt with the same start (such as the previous turn of the same
chat) runs on its own, from the end of the reused part. Requests waiting together whose prompts open
with the same long start (an agent's system prompt and tool descriptions) prefill it once: the first
stops at the end of the shared start and leaves its KV in the prefix cache, where the others find it.
While other requests are decoding, prefill advances about ``prefill_chunk`` tokens between their steps.
A new row's KV is left-padded to the batch length. Every step decodes one token for all rows at once.
A row leaves when it stops, hits ``max_new_tokens``, is cancelled or fails, and its KV is kept for the
next turn. This is static batching with rows joining and leaving (measured 4.7x decode at batch 5 on
CPU, against 2.3x for transformers' continuous batching, STACK.md).

A request's ``thinking_budget`` bounds its thought (the budget control Qwen documents for its thinking
models): a row counts the tokens it generates inside ``<think>`` (the prompt may already have opened
it, as Qwen3-Thinking-2507's template does), and when the count reaches the budget its next steps feed
a closing sentence and ``</think>`` instead of sampled tokens, one per step so the batch keeps its
shape (21 steps with Qwen3's tokenizer); then the model writes the answer.

On CPU the model's decode-step attention runs as plain matmuls (``attention.py``), and the KV cache
grows in place (``kv.py``). Both matter most for long prompts. int4 weights on CPU prefill through
bf16 matmuls and decode through the int4 kernel (``int4_prefill.py``).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from docmind.model.attention import use_decode_attention
from docmind.model.errors import EngineStalledError, EngineStoppedError, GenerationFaultError, PromptTooLongError
from docmind.model.int4_prefill import use_dense_prefill
from docmind.model.prefix_cache import PrefixCache, common_prefix
from docmind.model.requests import GenerationRequest, GenerationResult, RequestHandle
from docmind.model.text import partial_suffix
from docmind.model.thinking import CLOSE_TAG, OPEN_TAG, thinking_closing

log = logging.getLogger(__name__)

DEFAULT_PREFIX_CACHE_BYTES = 2 * 1024**3
MIN_SHARED_TOKENS = 64
"""A prompt start shared with waiting requests at least this long is prefilled once for all of them."""
DEFAULT_STALL_SECONDS = 600.0
"""A waiting request gives up when the engine has made no progress for this long (a long prompt's
prefill on a slow CPU is the slowest honest step)."""


class _Detokenizer:
    """Incremental decoding that never emits half a UTF-8 character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def add(self, token_id: int) -> None:
        self.ids.append(token_id)
        prefix_text = self.tokenizer.decode(self.ids[self._prefix:self._read], skip_special_tokens=False)
        new_text = self.tokenizer.decode(self.ids[self._prefix:], skip_special_tokens=False)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text):]
            self._prefix, self._read = self._read, len(self.ids)

    def flush(self) -> None:
        """At the end of a stream: decode whatever is left, incomplete characters included."""
        self.text += self.tokenizer.decode(self.ids[self._prefix:], skip_special_tokens=False)[
            len(self.tokenizer.decode(self.ids[self._prefix:self._read], skip_special_tokens=False)):]
        self._prefix = self._read = len(self.ids)


@dataclass
class _Row:
    """A request being decoded: its tokens in the KV cache and what it has produced."""

    handle: RequestHandle
    stop_ids: frozenset[int]
    cached_ids: list[int]
    detok: _Detokenizer
    generator: Any
    started: float
    cached_prompt_tokens: int = 0
    next_token: int = -1
    generated: list[int] = field(default_factory=list)
    emitted: int = 0
    first_token_at: float | None = None
    finish_reason: str | None = None
    error: BaseException | None = None
    """Set when this row failed alone (invalid logits, a decoding error); it leaves with this error."""
    in_thinking: bool = False
    """Inside a ``<think>`` block now (the prompt may have opened it)."""
    thinking_tokens: int = 0
    forced: list[int] = field(default_factory=list)
    """Tokens to feed next instead of sampling: the closing of a thought cut by the thinking budget."""
    thinking_cut: bool = False

    @property
    def length(self) -> int:
        return len(self.cached_ids)


@dataclass
class _Prefill:
    """Requests whose prompts are being run through the model: one row chunk by chunk, or a group of
    short prompts in one left-padded pass."""

    rows: list[_Row]
    cache: Any
    done: int
    """Prompt positions already in ``cache`` (a group's are all done in its single pass)."""
    shared: int = 0
    """A single row's prompt start that waiting requests share: once prefilled, its KV goes to the prefix
    cache, so that they start from it (0: none)."""

    @property
    def width(self) -> int:
        return max(len(row.handle.prompt_ids) for row in self.rows)


class GenerationEngine:
    """Serves all generation requests from one model, batching concurrent ones step by step.

    Faults stay local: a row whose logits are not finite, or whose token cannot be decoded, fails alone;
    any other exception in a step fails the requests of that step; a worker thread that dies anyway is
    restarted by the next submit. Every waiting consumer gives up after ``stall_seconds`` without progress.
    """

    def __init__(self, model: Any, tokenizer: Any, *, context_window: int | None = None, max_batch: int = 8,
                 prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES, prefill_chunk: int = 256,
                 stall_seconds: float = DEFAULT_STALL_SECONDS) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk
        self.stall_seconds = stall_seconds
        config_window = getattr(model.config, "max_position_embeddings", None) or 32768
        self.context_window = min(context_window or config_window, config_window)
        self.default_stop_ids = _stop_ids(model, tokenizer)
        self._think_ids = _think_ids(tokenizer)
        """The ids of ``<think>`` and ``</think>`` when they are single tokens (else no thinking budget)."""
        self._prefix = PrefixCache(prefix_cache_bytes)
        self._incoming: queue.SimpleQueue[list[RequestHandle] | None] = queue.SimpleQueue()
        self._pending: collections.deque[RequestHandle] = collections.deque()
        self._rows: list[_Row] = []
        self._cache: Any = None
        self._prefilling: _Prefill | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop_reason: EngineStoppedError | None = None
        """Why the engine was shut down (None while it serves); unfinished requests end with it."""
        self._submitted: weakref.WeakSet[RequestHandle] = weakref.WeakSet()
        self.peak_batch = 0
        """The most requests decoded in one step so far."""
        self.prefill_passes = 0
        """Forward passes run over prompts so far (a group of prompts prefilled together counts once)."""
        self.prefill_tokens = 0
        """Prompt positions run through the model so far (a group's padding included)."""
        self.decode_attention = use_decode_attention(model)
        """Whether decode steps use ``attention.decode_attention`` (CPU) instead of sdpa."""
        self.dense_prefill_layers = use_dense_prefill(model)
        """int4 linear layers that run prompts through bf16 matmuls (``int4_prefill``; CPU)."""
        self.on_logits: Callable[[list[RequestHandle], Any], None] | None = None
        """Test hook: called in the worker with each step's rows and their next-token logits
        (rows x vocab) before sampling; it may change the logits in place or raise (fault injection)."""
        self.failed_steps = 0
        """Steps that raised and failed their requests (the engine kept serving)."""
        self.restarts = 0
        """Times a dead worker thread was replaced by a new one."""
        self._last_progress = time.monotonic()

    # --- public API --------------------------------------------------------------------------------

    def tokenize(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return list(prompt)

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue ``request``; raise ``PromptTooLongError`` at once if its prompt cannot fit."""
        return self.submit_many([request])[0]

    def submit_many(self, requests: list[GenerationRequest]) -> list[RequestHandle]:
        """Queue requests that arrive together, so that their short prompts share one prefill pass.

        Raises (and queues none of them) if any prompt is empty or cannot fit the context.
        """
        handles = [RequestHandle(request, self._prompt_ids(request), health=self._health) for request in requests]
        with self._lock:
            if self._stop_reason is not None:
                raise self._stop_error()
            self._ensure_thread()
            self._submitted.update(handles)
            self._incoming.put(handles)
        return handles

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.thinking_budget is not None and request.thinking_budget < 0:
            raise ValueError(f"The thinking budget must be 0 or more tokens, not {request.thinking_budget}.")
        ids = self.tokenize(request.prompt)
        if not ids:
            raise ValueError("The prompt is empty.")
        if len(ids) >= self.context_window:
            raise PromptTooLongError(
                f"The prompt is {len(ids)} tokens but the model's context holds {self.context_window}. "
                "Shorten the question or start a new session.")
        return ids

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate to the end (blocking)."""
        return self.submit(request).wait()

    async def agenerate(self, request: GenerationRequest) -> GenerationResult:
        """Generate to the end without blocking the event loop."""
        handle = self.submit(request)
        async for _ in handle:
            pass
        assert handle.result is not None
        return handle.result

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """Yield text deltas as they are generated; closing the iterator cancels the request."""
        async for delta in self.submit(request):
            yield delta

    def shutdown(self, drain_seconds: float = 0.0, reason: EngineStoppedError | None = None) -> None:
        """Stop the worker once the requests already submitted have finished, waiting at most
        ``drain_seconds``; those still unfinished, and any submitted later, end with ``reason``
        (an ``EngineStoppedError`` saying the engine was shut down when None)."""
        deadline = time.monotonic() + drain_seconds
        while any(not handle.finished for handle in list(self._submitted)) and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            self._stop_reason = reason or EngineStoppedError(
                "The generation engine was shut down before this request finished.")
            thread = self._thread
        self._incoming.put(None)
        if thread is not None:
            thread.join()

    @property
    def active_requests(self) -> int:
        """Requests currently holding a batch slot."""
        return len(self._rows)

    # --- worker ------------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and not self._thread.is_alive():
            log.warning("the generation engine's worker had stopped; starting a new one")
            self._thread = None
            self.restarts += 1
        if self._thread is None:
            self._last_progress = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="docmind-engine", daemon=True)
            self._thread.start()

    def _health(self) -> BaseException | None:
        """Why a waiting request should give up (worker gone, no progress for ``stall_seconds``), or None."""
        thread = self._thread
        if self._stop_reason is not None:
            return self._stop_error()
        if thread is None or not thread.is_alive():
            return EngineStoppedError("The generation engine stopped before this request finished. "
                                      "Send the message again.")
        if time.monotonic() - self._last_progress > self.stall_seconds:
            return EngineStalledError(f"The model produced nothing for {self.stall_seconds:.0f} s, so this "
                                      "request was stopped. Send the message again, or restart DocMind.")
        return None

    def _stop_error(self) -> EngineStoppedError:
        """A fresh copy of the shutdown's reason (each waiter raises its own)."""
        assert self._stop_reason is not None
        return type(self._stop_reason)(*self._stop_reason.args)

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._serve()  # returns once shut down
        except BaseException as fault:  # noqa: BLE001 - the thread ends; the next submit starts a new one
            log.exception("the generation engine's worker died")
            error = EngineStoppedError(f"The generation engine failed ({fault!r}). Send the message again.")
        finally:
            self._fail_all(error or self._stop_error(), include_pending=True)

    def _serve(self) -> None:
        import torch

        with torch.inference_mode():
            while self._intake():
                try:
                    self._step()
                except Exception as error:  # noqa: BLE001 - fail this step's requests, keep serving
                    log.exception("a generation step failed")
                    self.failed_steps += 1
                    self._fail_all(GenerationFaultError(f"Generation failed ({error!r}). Send the message again."))

    def _step(self) -> None:
        self._last_progress = time.monotonic()
        self._drop_cancelled()
        self._prefill_some()
        if self._rows:
            self.peak_batch = max(self.peak_batch, len(self._rows))
            self._decode_step()

    def _fail_all(self, error: BaseException, *, include_pending: bool = False) -> None:
        """End the running and prefilling requests with ``error`` (and, when the worker stops, the
        waiting ones too), and drop the batch state they shared."""
        handles = [row.handle for row in self._rows]
        handles += [row.handle for row in self._prefilling.rows] if self._prefilling is not None else []
        if include_pending:
            handles += self._pending
            self._pending = collections.deque()
            while True:
                try:
                    queued = self._incoming.get_nowait()
                except queue.Empty:
                    break
                handles += queued or []
        for handle in dict.fromkeys(handles):  # a row being joined is in both lists
            handle._finish(None, error)
        self._rows, self._cache, self._prefilling = [], None, None

    def _prefill_some(self) -> None:
        """Prefill waiting prompts: all of them when nothing is decoding, else about ``prefill_chunk``
        tokens per step, so a long prompt does not freeze the other streams."""
        budget = self.prefill_chunk if self._rows else None
        while budget is None or budget > 0:
            if budget is None and self._rows:
                budget = self.prefill_chunk  # a row is decoding now: give it its turn
            prefill = self._prefilling
            if prefill is None:
                if not self._pending or len(self._rows) >= self.max_batch:
                    return
                self._prefilling = self._start_prefill()
                continue
            if len(prefill.rows) > 1 and budget is not None and len(prefill.rows) * prefill.width > budget:
                return  # a group runs in one pass: wait for a whole step's budget
            done = self._prefill_pass(prefill, budget)
            if budget is not None:
                budget -= done

    def _intake(self) -> bool:
        """Move submitted requests to the pending queue; wait when idle. False means shut down."""
        block = not self._rows and not self._pending and self._prefilling is None
        while True:
            try:
                handles = self._incoming.get(block=block)
            except queue.Empty:
                return True
            if handles is None:
                return False
            if block:  # woken from idle: progress is counted from now
                self._last_progress = time.monotonic()
            self._pending.extend(handles)
            block = False

    def _start_prefill(self) -> _Prefill | None:
        """Set up the next waiting request, reusing the longest cached prefix of its prompt; without
        one, the short prompts queued right behind it join its prefill pass. If setting up fails, only
        the requests taken from the queue for it fail."""
        taken: list[RequestHandle] = []
        try:
            return self._set_up_prefill(taken)
        except Exception as error:  # noqa: BLE001 - reported to these requests only
            log.exception("starting requests %s failed", [handle.id for handle in taken])
            for handle in taken:
                handle._finish(None, GenerationFaultError(f"Could not start this request ({error!r})."))
            return None

    def _set_up_prefill(self, taken: list[RequestHandle]) -> _Prefill | None:
        from docmind.model.kv import new_cache

        handle = self._pending.popleft()
        taken.append(handle)
        if handle.cancelled:
            handle._finish(self._result(None, handle, "cancelled"))
            return None
        row = self._new_row(handle)
        entry, reused = self._prefix.lookup(handle.prompt_ids)
        if entry is not None:
            row.cached_prompt_tokens = reused
            kv = [(k[:, :, :reused], v[:, :, :reused]) for k, v in entry.kv]
            return _Prefill([row], new_cache(self.model.config, kv), reused)
        shared = self._shared_start(handle.prompt_ids)
        if shared:
            return _Prefill([row], new_cache(self.model.config), 0, shared)
        return _Prefill([row, *self._companions(len(handle.prompt_ids), taken)], new_cache(self.model.config), 0)

    def _shared_start(self, prompt_ids: list[int]) -> int:
        """How much of ``prompt_ids`` the longest-matching waiting request also starts with (such as the
        system prompt and tool descriptions that every agent prompt opens with), or 0 when that is
        shorter than ``MIN_SHARED_TOKENS``."""
        shared = max((common_prefix(tuple(h.prompt_ids), prompt_ids) for h in self._pending if not h.cancelled),
                     default=0)
        shared = min(shared, len(prompt_ids) - 1)
        return shared if shared >= MIN_SHARED_TOKENS else 0

    def _companions(self, width: int, taken: list[RequestHandle]) -> list[_Row]:
        """Rows for the waiting requests at the head of the queue that can share a prefill pass with a
        prompt of ``width`` tokens: all padded to the longest, the pass stays within ``prefill_chunk``."""
        rows: list[_Row] = []
        while self._pending and len(self._rows) + len(rows) + 2 <= self.max_batch:
            handle = self._pending[0]
            wider = max(width, len(handle.prompt_ids))
            if (handle.cancelled or (len(rows) + 2) * wider > self.prefill_chunk
                    or self._prefix.lookup(handle.prompt_ids)[0] is not None):
                break
            taken.append(self._pending.popleft())
            rows.append(self._new_row(handle))
            width = wider
        return rows

    def _new_row(self, handle: RequestHandle) -> _Row:
        import torch

        request = handle.request
        generator = None
        if request.temperature > 0:
            generator = torch.Generator().manual_seed(request.seed if request.seed is not None else handle.id)
        row = _Row(handle=handle, stop_ids=frozenset(request.stop_token_ids or self.default_stop_ids),
                   cached_ids=list(handle.prompt_ids), detok=_Detokenizer(self.tokenizer), generator=generator,
                   started=handle.submitted_at, in_thinking=self._opens_thought(handle.prompt_ids))
        self._check_thinking_budget(row)
        return row

    def _opens_thought(self, prompt_ids: list[int]) -> bool:
        """Whether the prompt ends inside a ``<think>`` block it opened (only whitespace after the tag)."""
        if self._think_ids is None:
            return False
        open_id, close_id = self._think_ids
        tail = prompt_ids[-8:]
        last = max((i for i, token in enumerate(tail) if token in (open_id, close_id)), default=-1)
        return last >= 0 and tail[last] == open_id and not self.tokenizer.decode(tail[last + 1:]).strip()

    def _check_thinking_budget(self, row: _Row) -> None:
        """Queue the closing of the thought when the row has thought as long as its budget allows."""
        budget = row.handle.request.thinking_budget
        if budget is not None and row.in_thinking and not row.forced and row.thinking_tokens >= budget:
            row.forced = self.tokenize(thinking_closing(budget))
            row.thinking_cut = True

    def _track_thinking(self, row: _Row, token: int, forced: bool) -> None:
        if self._think_ids is None:
            return
        open_id, close_id = self._think_ids
        if token == open_id:
            row.in_thinking = True
        elif token == close_id:
            row.in_thinking = False
        elif row.in_thinking and not forced:
            row.thinking_tokens += 1
        self._check_thinking_budget(row)

    def _prefill_pass(self, prefill: _Prefill, budget: int | None) -> int:
        """Run one forward pass over prompt tokens: up to ``budget`` of a single row (all if None), or a
        whole group. When the prompts are done, sample each row's first token and move the rows into
        the batch. Returns the number of (padded) positions processed."""
        rows, start = prefill.rows, prefill.done
        if len(rows) == 1 and rows[0].handle.cancelled:
            self._prefilling = None
            rows[0].handle._finish(self._result(None, rows[0].handle, "cancelled"))
            return 0
        end = prefill.width if budget is None or len(rows) > 1 else min(prefill.width, start + max(budget, 1))
        if start < prefill.shared < end:
            end = prefill.shared  # stop at the shared start, to hand its KV to the prefix cache
        try:
            out = self.model(**self._prefill_inputs(rows, start, end), cache=prefill.cache, use_cache=True,
                             logits_to_keep=1)
        except Exception as error:  # noqa: BLE001 - reported to these requests only
            log.exception("prefill failed for requests %s", [row.handle.id for row in rows])
            self._prefilling = None
            for row in rows:
                row.handle._finish(None, error)
            return (end - start) * len(rows)
        self.prefill_passes += 1
        self.prefill_tokens += (end - start) * len(rows)
        prefill.done = end
        if end == prefill.shared:
            self._prefix.add(tuple(rows[0].handle.prompt_ids[:end]),
                             [(layer.keys[:, :, :end].clone(), layer.values[:, :, :end].clone())
                              for layer in prefill.cache.layers])
        if end < prefill.width:
            return end - start  # a single row's chunk
        self._take_tokens(rows, out.logits[:, -1, :])
        self._join(rows, prefill.cache)
        self._prefilling = None
        self._release([i for i, row in enumerate(self._rows) if row.finish_reason])
        return (end - start) * len(rows)

    def _prefill_inputs(self, rows: list[_Row], start: int, end: int) -> dict[str, Any]:
        """Model inputs for prompt positions ``start:end``; several rows are left-padded to ``end``."""
        import torch

        device = self.model.device
        if len(rows) == 1:
            return {"input_ids": torch.tensor([rows[0].handle.prompt_ids[start:end]], device=device),
                    "attention_mask": torch.ones(1, end, dtype=torch.long, device=device),
                    "position_ids": torch.arange(start, end, device=device).unsqueeze(0)}
        prompts = [row.handle.prompt_ids for row in rows]
        ids = torch.tensor([[0] * (end - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (end - len(p)) + [1] * len(p) for p in prompts], device=device)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}

    def _join(self, rows: list[_Row], cache: Any) -> None:
        """Add prefilled rows (and their KV, right-aligned like the batch's) to the running batch."""
        from docmind.model.kv import cat_left_padded

        if self._cache is None:
            self._cache, self._rows = cache, list(rows)
            return
        total = max(self._cache.get_seq_length(), cache.get_seq_length())
        for layer, new in zip(self._cache.layers, cache.layers):
            layer.keys = cat_left_padded(layer.keys, new.keys, total)
            layer.values = cat_left_padded(layer.values, new.values, total)
        self._rows.extend(rows)

    def _decode_step(self) -> None:
        import torch

        rows, device = self._rows, self.model.device
        width = self._cache.get_seq_length() + 1
        lengths = torch.tensor([[row.length + 1] for row in rows], device=device)
        mask = (torch.arange(width, device=device) >= width - lengths).long()  # rows are right-aligned
        try:
            out = self.model(
                input_ids=torch.tensor([[row.next_token] for row in rows], device=device),
                attention_mask=mask,
                position_ids=torch.tensor([[row.length] for row in rows], device=device),
                cache=self._cache, use_cache=True,
            )
        except Exception as error:  # noqa: BLE001 - the batch state is unusable: fail its requests
            log.exception("decode step failed")
            for row in rows:
                row.handle._finish(None, error)
            self._rows, self._cache = [], None
            return
        for row in rows:
            row.cached_ids.append(row.next_token)
        self._take_tokens(rows, out.logits[:, -1, :])
        self._release([i for i, row in enumerate(rows) if row.finish_reason])

    def _take_tokens(self, rows: list[_Row], logits: Any) -> None:
        """Sample each row's next token from its row of ``logits``. A row whose logits are not finite
        (NaN/inf), or whose token fails to decode, fails alone; the others carry on."""
        import torch

        if self.on_logits is not None:
            self.on_logits([row.handle for row in rows], logits)
        best, greedy = logits.max(dim=-1)  # max propagates NaN: one pass gives the greedy token and the check
        finite, greedy = torch.isfinite(best).tolist(), greedy.tolist()
        for i, row in enumerate(rows):
            if not finite[i]:
                log.error("request %s: the model produced NaN/inf logits", row.handle.id)
                self._fail_row(row, GenerationFaultError(
                    "The model produced invalid numbers (NaN or infinity) for this request, so it was stopped. "
                    "Send the message again; if it keeps happening, choose another quantization or model."))
                continue
            try:
                if row.forced:
                    self._accept_token(row, row.forced.pop(0), forced=True)
                else:
                    self._accept_token(row, greedy[i] if row.handle.request.temperature <= 0
                                       else self._sample(logits[i], row))
            except Exception as error:  # noqa: BLE001 - a decoding error ends this request only
                log.exception("request %s: taking the next token failed", row.handle.id)
                self._fail_row(row, GenerationFaultError(f"Generation failed for this request ({error!r})."))

    @staticmethod
    def _fail_row(row: _Row, error: BaseException) -> None:
        row.error, row.finish_reason = error, "error"

    def _drop_cancelled(self) -> None:
        cancelled = [i for i, row in enumerate(self._rows) if row.handle.cancelled]
        for i in cancelled:
            self._rows[i].finish_reason = "cancelled"
        self._release(cancelled)

    def _release(self, indices: list[int]) -> None:
        """Take finished rows out of the batch, keep their KV for reuse, trim shared padding."""
        if not indices:
            return
        import torch

        width = self._cache.get_seq_length()
        for i in indices:
            row = self._rows[i]
            if row.error is not None:  # its KV may be poisoned: not kept for reuse
                row.handle._finish(None, row.error)
                continue
            kv = [(layer.keys[i:i + 1, :, width - row.length:].clone(),
                   layer.values[i:i + 1, :, width - row.length:].clone()) for layer in self._cache.layers]
            self._retire(row, kv)
        keep = [i for i in range(len(self._rows)) if i not in set(indices)]
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache = None
            return
        index = torch.tensor(keep, device=self.model.device)
        start = width - max(row.length for row in self._rows)
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]

    def _retire(self, row: _Row, kv: list[tuple[Any, Any]]) -> None:
        self._prefix.add(tuple(row.cached_ids), kv)
        row.handle._finish(self._result(row, row.handle, row.finish_reason or "stop"))

    def _result(self, row: _Row | None, handle: RequestHandle, reason: str) -> GenerationResult:
        if row is None:
            return GenerationResult("", len(handle.prompt_ids), 0, reason, 0, None, 0.0)
        return GenerationResult(
            text=row.detok.text[: row.emitted], prompt_tokens=len(handle.prompt_ids),
            completion_tokens=len(row.generated), finish_reason=reason, token_ids=tuple(row.generated),
            cached_prompt_tokens=row.cached_prompt_tokens,
            first_token_seconds=None if row.first_token_at is None else row.first_token_at - row.started,
            seconds=time.perf_counter() - row.started, thinking_tokens=row.thinking_tokens,
            thinking_cut=row.thinking_cut)

    def _sample(self, logits: Any, row: _Row) -> int:
        import torch

        request = row.handle.request
        if request.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > request.top_p
            sorted_probs[outside] = 0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs.cpu(), 1, generator=row.generator))

    def _accept_token(self, row: _Row, token: int, forced: bool = False) -> None:
        """Record a sampled (or ``forced``) token, stream the text it completes, and decide whether the row stops."""
        if row.first_token_at is None:
            row.first_token_at = time.perf_counter()
        row.generated.append(token)
        row.next_token = token
        self._track_thinking(row, token, forced)
        request = row.handle.request
        if token in row.stop_ids:
            row.finish_reason = "stop"
        else:
            row.detok.add(token)
        if row.finish_reason is None and (len(row.generated) >= request.max_new_tokens
                                          or row.length + 1 >= self.context_window):
            row.finish_reason = "length"
        if row.finish_reason is not None:
            row.detok.flush()
        text, end = row.detok.text, len(row.detok.text)
        for stop in request.stop:
            found = text.find(stop, max(0, row.emitted - len(stop) + 1))
            if found >= 0 and found < end:
                end, row.finish_reason = found, "stop"
        if row.finish_reason is None:
            end -= max((partial_suffix(text, stop) for stop in request.stop), default=0)
        if end > row.emitted:
            row.handle._push(text[row.emitted:end])
            row.emitted = end


def _think_ids(tokenizer: Any) -> tuple[int, int] | None:
    ids = [tokenizer.convert_tokens_to_ids(tag) for tag in (OPEN_TAG, CLOSE_TAG)]
    if all(isinstance(i, int) and i != tokenizer.unk_token_id for i in ids):
        return ids[0], ids[1]
    return None


def _stop_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    for token in ("<|im_end|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return tuple(sorted(ids))
