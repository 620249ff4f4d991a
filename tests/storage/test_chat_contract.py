"""SQLiteChatStore is a drop-in for LlamaIndex's SimpleChatStore: the same assertions run on both."""

from __future__ import annotations

import sqlite3

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store import SimpleChatStore

from docmind.storage import SQLiteChatStore, StorageError


@pytest.fixture(params=["simple", "sqlite"])
def store(request, db_path):
    return SimpleChatStore() if request.param == "simple" else SQLiteChatStore(db_path)


def _messages() -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content='A "quoted" question, a \\ backslash and ünïcödé 🙂?'),
        ChatMessage(role="assistant", content="An answer [1].",
                    additional_kwargs={"thinking": "hmm", "tokens": 4, "citations": [{"source": "/a.pdf", "page": 2}]}),
        ChatMessage(role="user", content="", additional_kwargs={"name": "x", "status": "mine", "nested": {"a": [1, 2.5, None]}}),
        ChatMessage(role="tool", content="tool output", additional_kwargs={"tool_call_id": "call-1"}),
    ]


def test_set_and_get_return_equal_messages(store):
    store.set_messages("k", _messages())
    assert store.get_messages("k") == _messages()
    assert store.get_messages("other") == []
    store.set_messages("k", _messages()[:2])
    assert store.get_messages("k") == _messages()[:2]


def test_add_message_appends_equal_messages(store):
    for message in _messages():
        store.add_message("k", message)
    assert store.get_messages("k") == _messages()
    for message in store.get_messages("k"):
        assert not {"message_id", "created_at"} & set(message.additional_kwargs)


def test_delete_message_and_delete_last_message(store):
    store.set_messages("k", _messages())
    assert store.delete_message("k", 1) == _messages()[1]
    assert store.delete_message("k", 10) is None
    assert store.delete_message("missing", 0) is None
    assert store.delete_last_message("k") == _messages()[4]
    assert store.delete_last_message("missing") is None
    expected = [_messages()[i] for i in (0, 2, 3)]
    assert store.get_messages("k") == expected


def test_delete_messages_and_get_keys(store):
    store.set_messages("a", _messages()[:1])
    store.set_messages("b", _messages()[1:3])
    assert sorted(store.get_keys()) == ["a", "b"]
    assert store.delete_messages("b") == _messages()[1:3]
    assert store.get_messages("b") == []
    assert store.get_keys() == ["a"]
    assert store.delete_messages("missing") is None


async def test_async_round_trip(store):
    await store.aset_messages("k", _messages())
    await store.async_add_message("k", ChatMessage(role="user", content="more"))
    assert await store.aget_messages("k") == [*_messages(), ChatMessage(role="user", content="more")]
    assert await store.aget_keys() == ["k"]


def test_sqlite_errors_become_storage_errors(db_path):
    store = SQLiteChatStore(db_path)
    store.set_messages("k", _messages())
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE messages")
    conn.close()
    for call in (lambda: store.get_messages("k"), lambda: store.add_message("k", _messages()[0]), store.get_keys):
        with pytest.raises(StorageError, match="no such table") as raised:
            call()
        assert not isinstance(raised.value, sqlite3.Error)
