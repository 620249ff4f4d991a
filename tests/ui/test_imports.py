"""The app's background threads import the heavy libraries one at a time (a real fresh interpreter).

Without ``import_heavy_libraries``, these four threads fail almost every time: "cannot import name
'BaseEmbedding' from partially initialized module" or a _DeadlockError inside llama_index.core.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, threading
from docmind.ui.imports import import_heavy_libraries

WHAT_EACH_THREAD_IMPORTS = [
    ("llama_index.llms.huggingface",),  # the model load
    ("docmind.agent.chat",),  # the first chat
    ("llama_index.embeddings.huggingface", "llama_index.core.ingestion"),  # the first ingest
    ("transformers", "torch"),  # a warm-up
]
errors = []

def start(modules):
    try:
        import_heavy_libraries()
        for name in modules:
            importlib.import_module(name)
    except Exception as error:
        errors.append(repr(error))

threads = [threading.Thread(target=start, args=(modules,)) for modules in WHAT_EACH_THREAD_IMPORTS]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors)
"""


def test_threads_starting_at_once_all_get_fully_imported_libraries() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
