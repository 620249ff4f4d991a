"""Shared fixtures: a private data dir per test, and the environment that keeps tests offline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import docmind._torch_process  # noqa: F401 - the environment defaults every model load shares, before torch loads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Session fixtures (built before any test's own data dir) also never see the developer's data dir."""
    root = tmp_path_factory.mktemp("session-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCMIND_DATA_DIR", str(root / "data"))
        patch.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        yield root / "data"


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs on its own data dir (``DOCMIND_DATA_DIR``, not created yet), so a developer's own
    config and database never leak in. ``XDG_DATA_HOME`` moves the platform default too, for tests
    that unset ``DOCMIND_DATA_DIR``."""
    path = tmp_path / "data"
    monkeypatch.setenv("DOCMIND_DATA_DIR", str(path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return path


@pytest.fixture
def data_dir(private_data_dir: Path) -> Path:
    """This test's data dir, created, and set as DOCMIND_DATA_DIR for this test and its subprocesses."""
    private_data_dir.mkdir(exist_ok=True)
    return private_data_dir


@pytest.fixture
def db_path(data_dir: Path) -> Path:
    return data_dir / "docmind.db"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3 checkpoint (same files as a hub model), built once per test run."""
    from tests.fixtures.tiny_model import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def int4_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with hidden size 128, so that int4's group size of 128 applies to its linear layers."""
    from tests.fixtures.tiny_model import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-qwen3-128"), hidden_size=128, num_hidden_layers=2)


@pytest.fixture(scope="session")
def served_tiny_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``transformers serve`` over the tiny model on a loopback port (one process per test run)."""
    from tests.fixtures.model_server import start_transformers_serve

    served = start_transformers_serve(tiny_model_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    yield served
    served.stop()
