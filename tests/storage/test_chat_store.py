"""SQLiteChatStore semantics on a real SQLite file, through LlamaIndex's own memory class too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from llama_index.core.llms import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer

from docmind.storage import SQLiteChatStore
from docmind.storage.chat import to_stored


def _texts(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    return [(m.role.value, m.content) for m in messages]


def test_add_creates_session_and_keeps_order(db_path):
    store = SQLiteChatStore(db_path)
    store.add_message("s1", ChatMessage(role="user", content="hello"))
    store.add_message("s1", ChatMessage(role="assistant", content="hi there"))
    assert _texts(store.get_messages("s1")) == [("user", "hello"), ("assistant", "hi there")]
    assert store.get_keys() == ["s1"]
    assert store.chat_log.session("s1").messages == 2
    assert store.get_messages("unknown") == []


def test_set_messages_replaces_and_empty_clears(db_path):
    store = SQLiteChatStore(db_path)
    store.set_messages("s", [ChatMessage(role="user", content="a"), ChatMessage(role="assistant", content="b")])
    store.set_messages("s", [ChatMessage(role="user", content="c")])
    assert _texts(store.get_messages("s")) == [("user", "c")]
    store.set_messages("s", [])
    assert store.get_messages("s") == []
    assert store.get_keys() == []
    assert store.chat_log.session("s") is not None  # clearing history keeps the session


def test_delete_variants(db_path):
    store = SQLiteChatStore(db_path)
    store.set_messages("s", [ChatMessage(role="user", content=str(i)) for i in range(5)])
    assert store.delete_message("s", 1).content == "1"
    assert store.delete_last_message("s").content == "4"
    assert store.delete_message("s", 10) is None
    assert [m.content for m in store.get_messages("s")] == ["0", "2", "3"]
    assert [m.content for m in store.delete_messages("s")] == ["0", "2", "3"]
    assert store.delete_messages("s") is None
    assert store.delete_last_message("s") is None


def test_sessions_are_isolated(db_path):
    store = SQLiteChatStore(db_path)
    store.add_message("a", ChatMessage(role="user", content="for a"))
    store.add_message("b", ChatMessage(role="user", content="for b"))
    store.set_messages("a", [])
    assert _texts(store.get_messages("b")) == [("user", "for b")]


def test_thinking_tokens_and_extra_round_trip_and_bookkeeping_stays_out(db_path):
    store = SQLiteChatStore(db_path)
    citations = [{"source": "/docs/a.pdf", "page": 3, "text": "passage"}]
    message = ChatMessage(
        role="assistant",
        content="the answer [1]",
        additional_kwargs={"thinking": "let me think", "tokens": 7, "citations": citations},
    )
    store.add_message("s", message)
    (back,) = store.get_messages("s")
    assert back == message  # thinking is never part of the content; no status, id or time added
    row = store.chat_log.messages("s")[0]
    assert (row.thinking, row.tokens, row.status, row.extra) == ("let me think", 7, "complete", {"citations": citations})
    assert row.id is not None and row.created_at
    store.chat_log.update(row.id, status="interrupted")
    assert store.get_messages("s") == [message]
    assert store.chat_log.messages("s")[0].status == "interrupted"
    # a round trip through set_messages keeps the kwargs where they were
    store.set_messages("s", store.get_messages("s"))
    assert store.chat_log.messages("s")[0].extra == {"citations": citations}
    assert to_stored(back).thinking == "let me think"


async def test_async_methods_do_not_block_the_loop(db_path):
    store = SQLiteChatStore(db_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    for i in range(20):
        await store.async_add_message("s", ChatMessage(role="user", content=f"m{i}"))
    await store.aset_messages("t", [ChatMessage(role="user", content="x")])
    assert len(await store.aget_messages("s")) == 20
    assert (await store.adelete_last_message("s")).content == "m19"
    assert (await store.adelete_message("s", 0)).content == "m0"
    assert sorted(await store.aget_keys()) == ["s", "t"]
    assert len(await store.adelete_messages("s")) == 18
    task.cancel()
    assert ticks > 20  # the loop kept running while SQLite worked in a thread


def test_chat_memory_buffer_drops_in(db_path):
    store = SQLiteChatStore(db_path)
    memory = ChatMemoryBuffer.from_defaults(token_limit=1000, chat_store=store, chat_store_key="s")
    memory.put(ChatMessage(role="user", content="question"))
    memory.put(ChatMessage(role="assistant", content="answer"))
    assert _texts(memory.get()) == [("user", "question"), ("assistant", "answer")]
    memory.reset()
    assert store.get_messages("s") == []


def test_persists_across_processes(db_path):
    SQLiteChatStore(db_path).set_messages("s", [ChatMessage(role="user", content="from the parent")])
    code = (
        "import sys; from llama_index.core.llms import ChatMessage; from docmind.storage import SQLiteChatStore\n"
        "s = SQLiteChatStore(sys.argv[1]); assert [m.content for m in s.get_messages('s')] == ['from the parent']\n"
        "s.add_message('s', ChatMessage(role='assistant', content='from the child'))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db_path)], check=True, timeout=120)
    assert [m.content for m in SQLiteChatStore(db_path).get_messages("s")] == ["from the parent", "from the child"]


def test_updated_at_moves_on_add(db_path):
    store = SQLiteChatStore(db_path)
    store.add_message("s", ChatMessage(role="user", content="one"))
    first = store.chat_log.session("s").updated_at
    time.sleep(0.01)
    store.add_message("s", ChatMessage(role="user", content="two"))
    assert store.chat_log.session("s").updated_at > first
