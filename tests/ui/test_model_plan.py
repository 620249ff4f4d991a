"""The Model tab's "on this computer" paragraph in Debian Chromium, against real ``docmind serve`` processes:
the tuning progress while the first load measures the formats, then the measured speed, the format, the
quality check and the thinking budget, as recorded in the data dir's ``models/plan.json``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from docmind.config import load_settings
from tests.fixtures.plan_record import record_plan
from tests.ui.conftest import Server, start_server, stop_server

WAIT_MS = 90_000


def _env(model_dir: Path, **extra: str) -> dict[str, str]:
    return {"DOCMIND_MODEL_PATH": str(model_dir), "HF_HUB_OFFLINE": "1", "DOCMIND_QUANTIZATION": "auto",
            "DOCMIND_TUNE_MIN_WEIGHTS_BYTES": "0", **extra}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def start(data_dir: Path, env: dict[str, str]) -> Server:
        servers.append(start_server(data_dir, tmp_path / f"server{len(servers)}.log", env=env))
        return servers[-1]

    yield start
    for server in servers:
        stop_server(server)


def _model_tab(browser, server: Server):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(server.url)
    page.get_by_role("tab", name="Model").click()
    return page


def _budget_tokens(decode_tok_s: float) -> int:
    return min(max(round(20 * decode_tok_s), 128), 2048)


def test_the_first_load_shows_tuning_then_the_speed_and_format_it_measured(
        browser, serve, int4_model_dir: Path, tmp_path: Path, artifacts: Path) -> None:
    server = serve(tmp_path / "data", _env(int4_model_dir, DOCMIND_QUANTIZATION_MIN_AGREEMENT="0"))
    page = _model_tab(browser, server)
    plan_text = page.locator("#docmind-model-plan")
    plan_text.get_by_text("Tuning for this computer…").wait_for()
    assert re.search(r"\d+% done", plan_text.inner_text())
    page.screenshot(path=artifacts / "model-plan-tuning.png", full_page=True)
    plan_text.get_by_text("words per second").wait_for()
    page.screenshot(path=artifacts / "model-plan-measured.png", full_page=True)

    record = next(iter(json.loads((server.data_dir / "models" / "plan.json").read_text()).values()))
    shown = plan_text.inner_text()
    words = float(re.search(r"Answers at about ([\d.]+) words per second on this computer", shown).group(1))
    assert words == pytest.approx(record["decode_tok_s"] * 0.75, rel=0.06)
    weights = {"int4-weight": "int4", "int8-weight": "int8", "none": {"bfloat16": "bf16", "float32": "float32"}
               .get(record["dtype"])}[record["quantization"]]
    assert f"uses {weights} weights." in shown
    tokens = _budget_tokens(record["decode_tok_s"])
    assert f"Thinks for up to about {tokens / record['decode_tok_s']:.0f} s before answering ({tokens} tokens)." in shown
    assert "Tuning" not in shown


def test_a_recorded_int4_plan_shows_its_quality_check_and_a_twenty_second_thinking_budget(
        browser, serve, int4_model_dir: Path, tmp_path: Path, artifacts: Path) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, model_path=int4_model_dir, quantization="auto")
    record_plan(settings, [("bfloat16", "int4-weight", 25.0), ("bfloat16", "none", 10.0)])
    server = serve(data_dir, _env(int4_model_dir, DOCMIND_QUANTIZATION_MIN_AGREEMENT="0"))
    page = _model_tab(browser, server)
    plan_text = page.locator("#docmind-model-plan")
    plan_text.get_by_text("Quality check").wait_for()
    page.screenshot(path=artifacts / "model-plan-int4.png", full_page=True)
    shown = plan_text.inner_text()
    quality = json.loads(next((data_dir / "models" / "quantized").glob("*.quality.json")).read_text())
    assert "Answers at about 19 words per second on this computer; uses int4 weights." in shown
    assert (f"the int4 weights pick the same next word as the uncompressed model "
            f"{quality['top1_agreement']:.0%} of the time (✓ good enough)") in shown
    assert "Thinks for up to about 20 s before answering (500 tokens)." in shown
