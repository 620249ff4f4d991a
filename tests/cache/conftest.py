"""Cache-test fixtures: the real MiniLM model loaded once per session, settings on a private data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from docmind.cache.embeddings import default_embed_model_path, load_embed_model
from docmind.config import Settings, load_settings


@pytest.fixture(scope="session")
def embed_model():
    """The shipped all-MiniLM-L6-v2, loaded once for the whole test session."""
    return load_embed_model(default_embed_model_path())


@pytest.fixture
def settings(data_dir: Path, embed_model) -> Settings:
    return load_settings(data_dir=data_dir)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, wrapper: list[str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m docmind ARGS`` in a fresh process (DOCMIND_DATA_DIR comes from the environment),
    under ``wrapper`` (such as ``unshare -rn``) if given."""
    return subprocess.run(
        [*(wrapper or []), sys.executable, "-m", "docmind", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
