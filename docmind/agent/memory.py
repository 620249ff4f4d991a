"""Session memory: a ``ChatMemoryBuffer`` that trusts stored token counts and forgets thinking.

Stock ``ChatMemoryBuffer.get`` re-tokenizes the remaining history every time it drops a message
(about 0.4 s over 70K tokens). Here every message carries its model-tokenizer count in
``additional_kwargs["tokens"]`` (the ``tokens`` column), counted once when it is stored, so
``get`` is one backwards walk that adds integers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.storage.chat_store.base import BaseChatStore

from docmind.storage.chat import SQLiteChatStore
from docmind.storage.sessions import STATUS_COMPLETE

SESSION_TOKEN_LIMIT = 65536
MESSAGE_OVERHEAD_TOKENS = 5
"""Chat-template tokens around each message (``<|im_start|>role\\n … <|im_end|>\\n``)."""


def message_tokens(message: ChatMessage, count: Callable[[str], int]) -> int:
    """The stored token count of ``message``, counting (and remembering) it when unknown."""
    tokens = message.additional_kwargs.get("tokens")
    if tokens is None:
        tokens = count(message.content or "")
        message.additional_kwargs["tokens"] = tokens
    return tokens


class SessionMemory(ChatMemoryBuffer):
    """The newest complete messages of one session that fit in ``token_limit``, without thinking.

    Only ``complete`` messages take part: an answer still streaming or left ``interrupted`` by a
    crash stays in the transcript but is never fed back to the model. Each returned message
    holds its role and text only (never the stored thinking).
    """

    @classmethod
    def class_name(cls) -> str:
        return "SessionMemory"

    @classmethod
    def for_session(
        cls,
        chat_store: BaseChatStore,
        session_id: str,
        count_tokens: Callable[[str], int],
        token_limit: int = SESSION_TOKEN_LIMIT,
    ) -> SessionMemory:
        return cls(
            token_limit=token_limit,
            tokenizer_fn=_CountAsList(count_tokens),
            chat_store=chat_store,
            chat_store_key=session_id,
        )

    def count(self, text: str) -> int:
        return len(self.tokenizer_fn(text))

    def get(self, input: str | None = None, initial_token_count: int = 0, **kwargs: object) -> list[ChatMessage]:
        budget = self.token_limit - initial_token_count
        if budget < 0:
            raise ValueError("Initial token count exceeds token limit")
        entries = self._entries()
        start, used, counted = len(entries), 0, []
        while start > 0:
            message_id, role, content, tokens = entries[start - 1]
            if tokens is None:
                tokens = self.count(content)
                if message_id is not None:
                    counted.append((message_id, tokens))
            if used + tokens + MESSAGE_OVERHEAD_TOKENS > budget:
                break
            used += tokens + MESSAGE_OVERHEAD_TOKENS
            entries[start - 1] = (message_id, role, content, tokens)
            start -= 1
        if counted and isinstance(self.chat_store, SQLiteChatStore):
            self.chat_store.chat_log.set_tokens(counted)  # count each message once, ever
        kept = entries[start:]
        while kept and kept[0][1] in (MessageRole.ASSISTANT.value, MessageRole.TOOL.value):
            kept = kept[1:]  # a history never starts with an answer whose question was dropped
        if not kept and entries:
            kept = entries[-1:]  # one message over the limit: let the model report it, as stock does
        return [
            ChatMessage(role=role, content=content, additional_kwargs={"tokens": tokens})
            for _, role, content, tokens in kept
        ]

    def _entries(self) -> list[tuple[int | None, str, str, int | None]]:
        """``(id, role, content, tokens)`` of the complete messages, oldest first (thinking never read)."""
        if isinstance(self.chat_store, SQLiteChatStore):
            return self.chat_store.chat_log.context(self.chat_store_key)
        return [
            (None, m.role.value, m.content or "", m.additional_kwargs.get("tokens"))
            for m in self.get_all()
            if m.additional_kwargs.get("status", STATUS_COMPLETE) == STATUS_COMPLETE
        ]

    def put(self, message: ChatMessage) -> None:
        message_tokens(message, self.count)
        super().put(message)

    async def aput(self, message: ChatMessage) -> None:
        await asyncio.to_thread(message_tokens, message, self.count)  # tokenizing stays off the event loop
        await super().aput(message)

    def set(self, messages: list[ChatMessage]) -> None:
        for message in messages:
            message_tokens(message, self.count)
        super().set(messages)

    async def aset(self, messages: list[ChatMessage]) -> None:
        await asyncio.to_thread(lambda: [message_tokens(message, self.count) for message in messages])
        await super().aset(messages)


class _CountAsList:
    """Adapts a token counter to ``ChatMemoryBuffer``'s ``tokenizer_fn`` (which must return a sized list)."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count

    def __call__(self, text: str) -> range:
        return range(self._count(text))
