"""A LlamaIndex key-value store on the ``kv`` table: backs the docstore, index store and ingestion cache."""

from __future__ import annotations

from pathlib import Path

import orjson

from llama_index.core.storage.kvstore.types import DEFAULT_BATCH_SIZE, DEFAULT_COLLECTION, BaseKVStore

from docmind.storage.db import Database, open_database

_UPSERT = "INSERT OR REPLACE INTO kv (collection, key, value) VALUES (?, ?, ?)"


def _dumps(value: dict) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class SQLiteKVStore(BaseKVStore):
    """Collections of JSON dicts in one SQLite file, shared safely by several processes.

    ``put_all`` writes all pairs in one transaction whatever ``batch_size`` asks for.
    """

    def __init__(self, db: str | Path | Database) -> None:
        self._db = open_database(db)

    @property
    def database(self) -> Database:
        return self._db

    def put(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self.put_all([(key, val)], collection=collection)

    async def aput(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        await self.aput_all([(key, val)], collection=collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        rows = [(collection, key, _dumps(val)) for key, val in kv_pairs]
        if rows:
            self._db.write(lambda conn: conn.executemany(_UPSERT, rows))

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        rows = [(collection, key, _dumps(val)) for key, val in kv_pairs]
        if rows:
            await self._db.awrite(lambda conn: conn.executemany(_UPSERT, rows))

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        rows = self._db.read("SELECT value FROM kv WHERE collection = ? AND key = ?", (collection, key))
        return orjson.loads(rows[0][0]) if rows else None

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        rows = await self._db.aread("SELECT value FROM kv WHERE collection = ? AND key = ?", (collection, key))
        return orjson.loads(rows[0][0]) if rows else None

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        rows = self._db.read("SELECT key, value FROM kv WHERE collection = ?", (collection,))
        return {key: orjson.loads(value) for key, value in rows}

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        rows = await self._db.aread("SELECT key, value FROM kv WHERE collection = ?", (collection,))
        return {key: orjson.loads(value) for key, value in rows}

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self._db.execute("DELETE FROM kv WHERE collection = ? AND key = ?", (collection, key)) > 0

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        changed = await self._db.awrite(
            lambda conn: conn.execute("DELETE FROM kv WHERE collection = ? AND key = ?", (collection, key)).rowcount
        )
        return changed > 0
