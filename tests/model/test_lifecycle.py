"""Model switches: the runtime follows the settings' model and plan, and the newest switch wins."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from docmind.config import load_settings
from docmind.model.errors import EngineStoppedError, ModelSwitchedError
from docmind.model.lifecycle import ModelPhase, ModelState
from docmind.model.requests import GenerationRequest
from tests.fixtures.tiny_model import build_tiny_qwen3

WIDE_HIDDEN, WIDE_LAYERS = 96, 3


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model, of another shape than ``tiny_model_dir`` (hidden 64, 2 layers)."""
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny-wide"), seed=1, hidden_size=WIDE_HIDDEN,
                            num_hidden_layers=WIDE_LAYERS)


@pytest.fixture
def runtime_module():
    from docmind.model import runtime

    yield runtime
    runtime.unload()


def _generate(runtime) -> int:
    request = GenerationRequest("hello", max_new_tokens=4, stop_token_ids=(-1,))
    return runtime.engine.generate(request).completion_tokens


def test_switching_while_a_load_runs_ends_with_the_new_model(data_dir: Path, tiny_model_dir: Path,
                                                              wide_model_dir: Path, runtime_module) -> None:
    first_load_started, first_load_may_go_on = threading.Event(), threading.Event()
    loads: list[int] = []

    def prepare() -> None:  # holds the first load in the middle of loading, until the switch is made
        loads.append(len(loads))
        if len(loads) == 1:
            first_load_started.set()
            first_load_may_go_on.wait(60)

    state = ModelState(load_settings(model_path=tiny_model_dir, quantization="none"), prepare=prepare)
    state.start_loading()
    assert first_load_started.wait(60)
    state.use_settings(load_settings(model_path=wide_model_dir, quantization="none"))
    state.start_loading()
    assert state.status.phase is ModelPhase.LOADING and state.status.name == str(wide_model_dir)
    first_load_may_go_on.set()

    status = state.wait_until_settled(180)
    assert (status.phase, status.name) == (ModelPhase.READY, str(wide_model_dir)), status
    assert loads == [0, 1], "the overtaken load ran to its end, then the switch loaded its model"
    runtime = runtime_module.get_runtime(state.settings)
    config = runtime.loaded.model.config
    assert (config.hidden_size, config.num_hidden_layers) == (WIDE_HIDDEN, WIDE_LAYERS)
    assert runtime.loaded.choice.path == wide_model_dir
    assert _generate(runtime) == 4


def test_the_runtime_is_keyed_by_model_and_plan(data_dir: Path, tiny_model_dir: Path, wide_model_dir: Path,
                                                runtime_module) -> None:
    small = load_settings(model_path=tiny_model_dir, quantization="none")
    first = runtime_module.get_runtime(small)
    assert runtime_module.get_runtime(load_settings(model_path=tiny_model_dir, quantization="none")) is first
    wide = runtime_module.get_runtime(load_settings(model_path=wide_model_dir, quantization="none"))
    assert wide is not first and wide.loaded.model.config.hidden_size == WIDE_HIDDEN
    with pytest.raises(EngineStoppedError):
        first.engine.submit(GenerationRequest("hello", max_new_tokens=1))
    assert _generate(wide) == 4
    requantized = runtime_module.get_runtime(load_settings(model_path=wide_model_dir, quantization="int8-weight"))
    assert requantized is not wide and requantized.loaded.plan.quantization == "int8-weight"


def test_a_model_without_files_is_missing_and_never_loads(data_dir: Path, tmp_path: Path) -> None:
    state = ModelState(load_settings(model_path=tmp_path / "nothing-here"))
    state.start_loading()
    status = state.wait_until_settled(5)
    assert status.phase is ModelPhase.MISSING and "nothing-here" in status.name and status.detail


def test_an_answer_cut_by_a_switch_says_the_model_was_switched(data_dir: Path, tiny_model_dir: Path,
                                                                wide_model_dir: Path, runtime_module,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer still running when the switch's drain time runs out ends saying why, not "engine shut down"."""
    monkeypatch.setattr(runtime_module, "SWITCH_DRAIN_SECONDS", 0.3)
    old = runtime_module.get_runtime(load_settings(model_path=tiny_model_dir, quantization="none"))
    writing = threading.Event()
    old.engine.on_logits = lambda handles, logits: writing.set()
    endless = old.engine.submit(GenerationRequest("hello", max_new_tokens=100_000, stop_token_ids=(-1,)))
    assert writing.wait(60)
    runtime_module.get_runtime(load_settings(model_path=wide_model_dir, quantization="none"))
    with pytest.raises(ModelSwitchedError) as cut:
        endless.wait(30)
    assert str(cut.value) == str(ModelSwitchedError()) and "model was switched" in str(cut.value)
    with pytest.raises(ModelSwitchedError):  # a later step of the same answer (an agent's next call) too
        old.engine.submit(GenerationRequest("hello", max_new_tokens=1))
    current = runtime_module.get_runtime(load_settings(model_path=wide_model_dir, quantization="none"))
    runtime_module.unload()
    with pytest.raises(EngineStoppedError) as unloaded:  # a plain unload is no switch
        current.engine.submit(GenerationRequest("hello", max_new_tokens=1))
    assert not isinstance(unloaded.value, ModelSwitchedError)
