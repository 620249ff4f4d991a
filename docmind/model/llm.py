"""``EngineLLM``: a LlamaIndex LLM whose calls all go through the shared batched ``GenerationEngine``.

Chat calls apply the model's chat template (with ``enable_thinking``); the async methods never block
the event loop, so concurrent sessions (for example one ``ReActAgent`` per chat) batch in the engine.
When the template already opened ``<think>`` in the prompt (Qwen3-Thinking-2507), the streamed text
starts with ``<think>\\n`` so callers always see balanced tags; ``ThinkParser`` splits them.
``enable_thinking=False`` always ends the prompt with an empty think block, also for a template that
ignores the flag, and ``thinking_budget`` bounds the thought (the engine closes it at that many tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
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

from docmind.model.engine import GenerationEngine, GenerationRequest, RequestHandle
from docmind.model.thinking import EMPTY_THOUGHT, OPEN_TAG


def chat_prompt(tokenizer: Any, messages: Sequence[ChatMessage], *, enable_thinking: bool = True) -> str:
    """Render ``messages`` with the model's chat template, ending with the assistant's turn.

    Without thinking, a template that opens ``<think>`` anyway (Qwen3-Thinking-2507 always does) gets
    that block closed empty, as Qwen3's hybrid template does itself: the model goes straight to the answer.
    """
    rendered = [{"role": chat_role(m.role), "content": m.content or ""} for m in messages]
    prompt = tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True,
                                           enable_thinking=enable_thinking)
    if not enable_thinking and prompt.rstrip().endswith(OPEN_TAG):
        prompt = prompt.rstrip()[: -len(OPEN_TAG)] + EMPTY_THOUGHT
    return prompt


def chat_role(role: MessageRole) -> str:
    value = role.value if isinstance(role, MessageRole) else str(role)
    return {"chatbot": "assistant", "model": "assistant", "function": "tool", "developer": "system"}.get(value, value)


class EngineLLM(CustomLLM):
    """LlamaIndex LLM over the shared engine. Per-call kwargs: temperature, top_p, max_new_tokens, stop,
    enable_thinking, thinking_budget."""

    model_name: str = Field(default="docmind", description="The model's hub id or local path.")
    context_window: int = Field(default=32768)
    max_new_tokens: int = Field(default=2048)
    temperature: float = Field(default=0.6)
    top_p: float = Field(default=0.95)
    enable_thinking: bool = Field(default=True)
    thinking_budget: int | None = Field(default=None, description="Most thinking tokens per call (None: unlimited).")
    stop: list[str] = Field(default_factory=list)
    _engine: GenerationEngine = PrivateAttr()

    def __init__(self, engine: GenerationEngine, **kwargs: Any) -> None:
        kwargs.setdefault("context_window", engine.context_window)
        super().__init__(**kwargs)
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        return "docmind_engine_llm"

    @property
    def engine(self) -> GenerationEngine:
        return self._engine

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_new_tokens,
                           is_chat_model=True, model_name=self.model_name)

    # --- prompts and requests ----------------------------------------------------------------------

    def _chat_prompt(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> str:
        thinking = kwargs.pop("enable_thinking", self.enable_thinking)
        return chat_prompt(self._engine.tokenizer, messages, enable_thinking=thinking)

    def _request(self, prompt: str, kwargs: dict[str, Any]) -> GenerationRequest:
        return GenerationRequest(
            prompt=prompt,
            max_new_tokens=kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens)),
            temperature=kwargs.get("temperature", self.temperature),
            top_p=kwargs.get("top_p", self.top_p),
            stop=tuple(kwargs.get("stop") or self.stop),
            seed=kwargs.get("seed"),
            thinking_budget=kwargs.get("thinking_budget", self.thinking_budget),
        )

    def _format(self, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> str:
        if formatted:
            return prompt
        return self._chat_prompt([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)

    @staticmethod
    def _prefix(prompt: str) -> str:
        return OPEN_TAG + "\n" if prompt.rstrip().endswith(OPEN_TAG) else ""

    @staticmethod
    def _raw(handle: RequestHandle) -> dict[str, Any]:
        result = handle.result
        if result is None:
            return {}
        return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                "cached_prompt_tokens": result.cached_prompt_tokens, "finish_reason": result.finish_reason,
                "first_token_seconds": result.first_token_seconds, "seconds": result.seconds,
                "thinking_tokens": result.thinking_tokens, "thinking_cut": result.thinking_cut}

    # --- completion --------------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        prompt = self._format(prompt, formatted, kwargs)
        handle = self._engine.submit(self._request(prompt, kwargs))
        result = handle.wait()
        return CompletionResponse(text=self._prefix(prompt) + result.text, raw=self._raw(handle))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        prompt = self._format(prompt, formatted, kwargs)
        handle = self._engine.submit(self._request(prompt, kwargs))
        prefix = self._prefix(prompt)

        def gen() -> CompletionResponseGen:
            text = prefix
            if prefix:
                yield CompletionResponse(text=text, delta=prefix)
            try:
                for delta in handle:
                    text += delta
                    yield CompletionResponse(text=text, delta=delta)
            finally:
                handle.cancel()
            yield CompletionResponse(text=text, delta="", raw=self._raw(handle))

        return gen()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        prompt = self._format(prompt, formatted, kwargs)
        handle = self._engine.submit(self._request(prompt, kwargs))
        text = self._prefix(prompt)
        async for delta in handle:
            text += delta
        return CompletionResponse(text=text, raw=self._raw(handle))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        prompt = self._format(prompt, formatted, kwargs)
        handle = self._engine.submit(self._request(prompt, kwargs))
        prefix = self._prefix(prompt)

        async def gen() -> CompletionResponseAsyncGen:
            text = prefix
            if prefix:
                yield CompletionResponse(text=text, delta=prefix)
            async for delta in handle:
                text += delta
                yield CompletionResponse(text=text, delta=delta)
            yield CompletionResponse(text=text, delta="", raw=self._raw(handle))

        return gen()

    # --- chat --------------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        response = self.complete(self._chat_prompt(messages, kwargs), formatted=True, **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=response.text), raw=response.raw)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self.stream_complete(self._chat_prompt(messages, kwargs), formatted=True, **kwargs)

        def gen() -> ChatResponseGen:
            for chunk in stream:
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=chunk.text),
                                   delta=chunk.delta, raw=chunk.raw)

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        response = await self.acomplete(self._chat_prompt(messages, kwargs), formatted=True, **kwargs)
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=response.text), raw=response.raw)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        stream = await self.astream_complete(self._chat_prompt(messages, kwargs), formatted=True, **kwargs)

        async def gen() -> ChatResponseAsyncGen:
            async for chunk in stream:
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=chunk.text),
                                   delta=chunk.delta, raw=chunk.raw)

        return gen()
