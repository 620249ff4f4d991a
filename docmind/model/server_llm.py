"""``ServerLLM``: answer with an OpenAI-compatible model server (see ``docmind.model.server``).

``ServerLLM`` is a LlamaIndex LLM over ``/v1/chat/completions`` through the maintained ``openai`` client,
so the agent, its tools, citations and sessions above work unchanged. It streams raw text exactly as
``EngineLLM`` does: thinking the server sends as ``reasoning_content`` (or ``reasoning``) is wrapped in
``<think>…</think>``, and thinking the model writes inline already is; ``ThinkParser`` splits both.

- Stop: closing the stream (the async generator's ``aclose``) closes the HTTP response, and the server
  stops generating for a client that left.
- Retries: a connection that could not be made is retried a few times (tenacity) before any byte of the
  answer; a stream that breaks after it started is never retried, it ends the turn with
  ``ModelServerError`` and what was streamed so far stays.
- Token counts: the server's reported usage; for memory limits, the Qwen3 tokenizer when one is on
  disk and the server's model is a Qwen3 (or a local model folder), else ``estimate_tokens``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import Field, PrivateAttr

from docmind.config import Settings
from docmind.model.llm import chat_role
from docmind.model.registry import MODELS, local_dir_for
from docmind.model.server import (
    DEFAULT_CONTEXT_WINDOW,
    ModelServerError,
    async_retrying,
    client_options,
    retrying,
    explain,
    probe,
)
from docmind.model.thinking import CLOSE_TAG, OPEN_TAG

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 3.0
"""``estimate_tokens``: Qwen3's tokenizer averages about 4 characters per token on English prose and
fewer on code and other scripts; 3 overestimates, so memory limits err on the safe side."""


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` when no tokenizer of the server's model is on disk: ``CHARS_PER_TOKEN`` per token."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def token_counter(settings: Settings, model: str) -> Callable[[str], int]:
    """Count tokens with a Qwen3 tokenizer on disk when the server's model is a Qwen3 (or a local model
    folder with a ``tokenizer.json``); else ``estimate_tokens``."""
    path = _tokenizer_file(settings, model)
    if path is None:
        log.info("no tokenizer on disk for the server's model %s; token counts are estimated", model)
        return estimate_tokens
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids) if text else 0


def _tokenizer_file(settings: Settings, model: str) -> Path | None:
    candidates = [Path(model).expanduser() / "tokenizer.json"] if model.startswith(("/", "~", ".")) else []
    if "qwen3" in model.lower():
        if settings.model_path:
            candidates.append(Path(settings.model_path).expanduser() / "tokenizer.json")
        candidates += [local_dir_for(settings, spec.hub_id) / "tokenizer.json" for spec in MODELS]
    return next((path for path in candidates if path.is_file()), None)


# --- the LLM ---------------------------------------------------------------------------------------


class _Reassembler:
    """Turns a stream of chat-completion chunks into raw text with ``<think>`` tags, and keeps the usage."""

    def __init__(self) -> None:
        self.text = ""
        self.thinking_open = False
        self.usage: dict[str, int] = {}
        self.finish_reason: str | None = None
        self.chunks = 0

    def feed(self, chunk: Any) -> str:
        self.chunks += 1
        if getattr(chunk, "usage", None):
            self.usage = {"prompt_tokens": chunk.usage.prompt_tokens, "completion_tokens": chunk.usage.completion_tokens}
        delta = ""
        for choice in chunk.choices[:1]:
            self.finish_reason = choice.finish_reason or self.finish_reason
            extra = choice.delta.model_extra or {}
            delta = self._piece(extra.get("reasoning_content") or extra.get("reasoning"), choice.delta.content)
        self.text += delta
        return delta

    def whole(self, message: Any, usage: Any) -> str:
        """A non-streamed answer, as one piece."""
        extra = message.model_extra or {}
        text = self._piece(extra.get("reasoning_content") or extra.get("reasoning"), message.content) + self.end()
        if usage is not None:
            self.usage = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        self.text += text
        return text

    def _piece(self, reasoning: str | None, content: str | None) -> str:
        out = ""
        if reasoning:
            out += ("" if self.thinking_open else OPEN_TAG + "\n") + reasoning
            self.thinking_open = True
        if content:
            out += self.end() + content
        return out

    def end(self) -> str:
        """Close a thought the server sent as ``reasoning_content`` and never ended."""
        if not self.thinking_open:
            return ""
        self.thinking_open = False
        return "\n" + CLOSE_TAG + "\n\n"

    def raw(self, count: Callable[[str], int]) -> dict[str, Any]:
        usage = self.usage or {"completion_tokens": count(self.text)}
        return {**usage, "finish_reason": self.finish_reason, "usage_from_server": bool(self.usage)}


class ServerLLM(CustomLLM):
    """LlamaIndex LLM over an OpenAI-compatible server. Per-call kwargs: temperature, top_p,
    max_new_tokens (or max_tokens), stop, enable_thinking (sent as ``chat_template_kwargs``)."""

    model_name: str = Field(description="The server's model id.")
    context_window: int = Field(default=DEFAULT_CONTEXT_WINDOW)
    max_new_tokens: int = Field(default=2048)
    temperature: float = Field(default=0.6)
    top_p: float = Field(default=0.95)
    enable_thinking: bool = Field(default=True)
    stop: list[str] = Field(default_factory=list)
    _settings: Settings = PrivateAttr()
    _count: Callable[[str], int] = PrivateAttr()

    def __init__(self, settings: Settings, count_tokens: Callable[[str], int] = estimate_tokens,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._count = count_tokens

    @classmethod
    def class_name(cls) -> str:
        return "docmind_server_llm"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_new_tokens,
                           is_chat_model=True, model_name=self.model_name)

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": chat_role(m.role), "content": m.content or ""} for m in messages],
            "max_tokens": kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens)),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": kwargs.get("top_p", self.top_p),
            "extra_body": {"chat_template_kwargs": {"enable_thinking": kwargs.get("enable_thinking",
                                                                                  self.enable_thinking)}},
        }
        stop = list(kwargs.get("stop") or self.stop)
        if stop:
            request["stop"] = stop
        if stream:
            request.update(stream=True, stream_options={"include_usage": True})
        return request

    # --- async: what the agent uses ----------------------------------------------------------------

    async def _astream(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        """``(delta, raw)`` pairs; the last has ``raw``. Closing it closes the HTTP stream."""
        import openai

        client = openai.AsyncOpenAI(**client_options(self._settings))
        parts = _Reassembler()
        stream = None
        try:
            async for attempt in async_retrying():
                with attempt:
                    stream = await client.chat.completions.create(**self._request(messages, kwargs, stream=True))
            async for chunk in stream:
                delta = parts.feed(chunk)
                if delta:
                    yield delta, None
            if parts.chunks == 0:  # the server ignored stream=true: ask once more without streaming
                log.info("the model server at %s does not stream; answering without streaming",
                         self._settings.llm_base_url)
                response = await client.chat.completions.create(**self._request(messages, kwargs, stream=False))
                yield parts.whole(response.choices[0].message, response.usage), None
            closing = parts.end()
            yield closing, parts.raw(self._count)
        except Exception as error:
            raise explain(error, self._settings) from error
        finally:
            if stream is not None:
                await stream.close()
            await client.close()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        async def gen() -> ChatResponseAsyncGen:
            text = ""
            pieces = self._astream(messages, kwargs)
            try:
                async for delta, raw in pieces:
                    text += delta
                    yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta,
                                       raw=raw)
            finally:
                await pieces.aclose()

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text, raw = "", None
        async for delta, raw in self._astream(messages, kwargs):
            text += delta
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=raw)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = await self.achat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        chat = await self.astream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            async for chunk in chat:
                yield CompletionResponse(text=chunk.message.content or "", delta=chunk.delta, raw=chunk.raw)

        return gen()

    # --- sync ------------------------------------------------------------------------------------

    def _stream(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        import openai

        client = openai.OpenAI(**client_options(self._settings))
        parts = _Reassembler()
        stream = None
        try:
            for attempt in retrying():
                with attempt:
                    stream = client.chat.completions.create(**self._request(messages, kwargs, stream=True))
            for chunk in stream:
                delta = parts.feed(chunk)
                if delta:
                    yield delta, None
            if parts.chunks == 0:
                response = client.chat.completions.create(**self._request(messages, kwargs, stream=False))
                yield parts.whole(response.choices[0].message, response.usage), None
            yield parts.end(), parts.raw(self._count)
        except Exception as error:
            raise explain(error, self._settings) from error
        finally:
            if stream is not None:
                stream.close()
            client.close()

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for delta, raw in self._stream(messages, kwargs):
                text += delta
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta,
                                   raw=raw)

        return gen()

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text, raw = "", None
        for delta, raw in self._stream(messages, kwargs):
            text += delta
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=raw)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            for chunk in self.stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs):
                yield CompletionResponse(text=chunk.message.content or "", delta=chunk.delta, raw=chunk.raw)

        return gen()


@dataclass
class ServerBackend:
    """The model server as the agent sees it: the LLM, its token counter and context window."""

    llm: ServerLLM
    count_tokens: Callable[[str], int]
    context_window: int


def connect_server(settings: Settings) -> ServerBackend:
    """The backend for ``settings.llm_base_url``. The server is asked for its model info once; when it
    cannot be reached now, the settings' model and context window are used and each question reports
    the problem (the server may come up later)."""
    model = settings.llm_model
    window = settings.llm_context_window
    try:
        info = probe(settings)
        model, window = info.model, window or info.context_window
    except ModelServerError as error:
        if not model:
            raise
        log.warning("%s", error)
    count = token_counter(settings, model)
    window = window or DEFAULT_CONTEXT_WINDOW
    llm = ServerLLM(settings, count, model_name=model, context_window=window)
    return ServerBackend(llm, count, window)
