"""Shared fixtures: a private data dir per test, and the environment that keeps tests offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir, set as DOCMIND_DATA_DIR for this test and its subprocesses."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("DOCMIND_DATA_DIR", str(path))
    return path


@pytest.fixture
def db_path(data_dir: Path) -> Path:
    return data_dir / "docmind.db"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3 checkpoint (same files as a hub model), built once per test run."""
    from tests.fixtures.tiny_model import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))
