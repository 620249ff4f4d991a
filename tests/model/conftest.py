"""The tiny model loaded once per module through the real loading code, and its engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmind.config import load_settings


@pytest.fixture(scope="module")
def loaded_tiny(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from docmind.model.hardware import LoadPlan
    from docmind.model.loading import load_model

    settings = load_settings(data_dir=tmp_path_factory.mktemp("data"), model_path=tiny_model_dir, quantization="none")
    # float32 so that batched and single-request greedy tokens can be compared exactly (bf16 rounding
    # differs between batch shapes, which flips near-tied argmaxes of a random model).
    return load_model(settings, plan=LoadPlan("cpu", "float32", "none", "exact comparisons in tests"))


@pytest.fixture(scope="module")
def engine(loaded_tiny):
    from docmind.model.engine import GenerationEngine

    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def chat_prompts(loaded_tiny) -> list[str]:
    from llama_index.core.llms import ChatMessage

    from docmind.model.llm import chat_prompt

    questions = ["What is on page 3?", "Summarise the report", "Who wrote it", "Find the quick brown fox",
                 "Answer with citations please"]
    return [chat_prompt(loaded_tiny.tokenizer, [ChatMessage(role="user", content=q)], enable_thinking=False)
            for q in questions]
