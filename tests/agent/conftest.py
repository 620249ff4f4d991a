"""Agent fixtures: a small real library (real MiniLM embeddings), a scripted LLM for ReAct paths, the tiny model."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr

from docmind.agent.chat import ChatService, ModelHandle

REPORT = """# Quarterly report

Revenue grew by 12 percent in the third quarter, driven by sales of the blue widget.
The company opened two new offices in Lisbon and Oslo.
"""
GARDEN = """# Gardening notes

Tomatoes need full sun and regular watering. Plant basil next to them to keep pests away.
"""

Reply = str | Exception | Callable[[Sequence[ChatMessage]], str]


class ScriptedLLM(CustomLLM):
    """Answers each call with the next scripted reply (the last one repeats), streamed word by word.

    Records every list of messages it was given. Used only for ReAct parsing and fallback paths.
    """

    replies: list[Any]
    delay: float = 0.0
    _calls: list[list[ChatMessage]] = PrivateAttr(default_factory=list)

    @property
    def calls(self) -> list[list[ChatMessage]]:
        return self._calls

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=32768, num_output=512, is_chat_model=True, model_name="scripted")

    def _next(self, messages: Sequence[ChatMessage]) -> str:
        self._calls.append(list(messages))
        reply = self.replies[min(len(self._calls), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply(messages) if callable(reply) else reply

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError("ScriptedLLM is chat-only")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError("ScriptedLLM is chat-only")

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role="assistant", content=self._next(messages)))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        text = self._next(messages)

        async def gen() -> ChatResponseAsyncGen:
            sent = ""
            for word in text.split(" "):
                delta = (" " if sent else "") + word
                sent += delta
                await asyncio.sleep(self.delay)
                yield ChatResponse(message=ChatMessage(role="assistant", content=sent), delta=delta)
            words = len(text.split())
            yield ChatResponse(message=ChatMessage(role="assistant", content=sent), delta="",
                               raw={"prompt_tokens": 100, "completion_tokens": words})

        return gen()


def word_count(text: str) -> int:
    return len(text.split())


def scripted_service(
    settings: Any, *replies: Reply, delay: float = 0.0, **kwargs: Any
) -> tuple[ChatService, ScriptedLLM]:
    llm = ScriptedLLM(replies=list(replies), delay=delay)
    handle = ModelHandle(llm=llm, count_tokens=word_count, context_window=32768)
    return ChatService(settings, model=handle, **kwargs), llm


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two small documents ingested with the real MiniLM embeddings (built once)."""
    from docmind.cache.ingest import Ingestor
    from docmind.config import load_settings

    root = tmp_path_factory.mktemp("library")
    docs = root / "docs"
    docs.mkdir()
    (docs / "report.md").write_text(REPORT)
    (docs / "garden.md").write_text(GARDEN)
    settings = load_settings(data_dir=root / "data")
    ingestor = Ingestor(settings)
    report = ingestor.ingest([docs])
    assert not report.files_failed
    ingestor.db.close()
    return root / "data" / "docmind.db"


@pytest.fixture
def settings_with_library(data_dir: Path, library: Path):
    """Settings on a fresh copy of the library database."""
    from docmind.config import load_settings

    for suffix in ("", "-wal"):
        source = Path(str(library) + suffix)
        if source.exists():
            shutil.copy(source, data_dir / ("docmind.db" + suffix))
    return load_settings(data_dir=data_dir)


@pytest.fixture
def empty_settings(data_dir: Path):
    from docmind.config import load_settings

    return load_settings(data_dir=data_dir)


async def run_turn(service: ChatService, session_id: str | None, text: str) -> list[Any]:
    return [event async for event in service.chat(session_id, text)]
