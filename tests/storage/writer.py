"""A writer process for the kill -9 and multi-process tests.

    python -m tests.storage.writer DB NAME COUNT LOG    numbered small transactions, alternating a KV put and a
                                                        chunk upsert; appends ``i`` to LOG after each commit
    python -m tests.storage.writer DB NAME big LOG      one huge, slow transaction; writes "inside" to LOG once it
                                                        holds the write lock, and never finishes on its own

Any exception ends the process with a traceback and a non-zero exit code, so the parent sees it.
"""

from __future__ import annotations

import os
import sys
import time

from llama_index.core.schema import TextNode

from docmind.storage import SQLiteKVStore, SQLiteVectorStore, open_database

COLLECTION = "writers"


def key(name: str, i: int) -> str:
    return f"{name}-{i:06d}"


def write_numbered(db_path: str, name: str, count: int, log_fd: int) -> None:
    kv, vectors = SQLiteKVStore(db_path), SQLiteVectorStore(db_path)
    for i in range(count):
        if i % 2:
            vectors.add([TextNode(id_=key(name, i), text=f"writer {name} chunk {i}", embedding=[float(i % 7), 1.0])])
        else:
            kv.put(key(name, i), {"writer": name, "i": i}, collection=COLLECTION)
        os.write(log_fd, f"{i}\n".encode())


def write_forever_in_one_transaction(db_path: str, name: str, log_fd: int) -> None:
    def rows():
        os.write(log_fd, b"inside\n")
        i = 0
        while True:
            yield (COLLECTION, key(name, i), "{}")
            i += 1
            if i % 1000 == 0:
                time.sleep(0.001)

    open_database(db_path).write(lambda conn: conn.executemany("INSERT INTO kv (collection, key, value) VALUES (?, ?, ?)", rows()))


def main(argv: list[str]) -> None:
    db_path, name, count, log_path = argv
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    if count == "big":
        write_forever_in_one_transaction(db_path, name, log_fd)
    else:
        write_numbered(db_path, name, int(count), log_fd)


if __name__ == "__main__":
    main(sys.argv[1:])
