"""Settings: config.toml lives in the settings' data dir, is written as real TOML, and a broken one is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import platformdirs
import pytest

from docmind.config import SettingsError, load_settings, save_settings


def test_tests_never_touch_the_developers_data_dir(tmp_path, monkeypatch):
    assert load_settings().data_dir == tmp_path / "data"
    monkeypatch.delenv("DOCMIND_DATA_DIR")
    fallback = load_settings().data_dir
    assert fallback.is_relative_to(tmp_path)
    assert fallback == Path(platformdirs.user_data_dir("DocMind", appauthor=False))


def test_save_then_load_in_the_env_data_dir(data_dir):
    path = save_settings(model="Qwen/Qwen3-0.6B", port=8123)
    assert path == data_dir / "config.toml"
    settings = load_settings()
    assert (settings.model, settings.port) == ("Qwen/Qwen3-0.6B", 8123)


@pytest.mark.parametrize("value", ['say "hi"', "C:\\Users\\me\\models\\", "ünïcödé 🙂 模型", "two\nlines\ttab", "'"])
def test_text_values_round_trip(data_dir, value):
    save_settings(model=value)
    assert load_settings().model == value
    assert tomllib.loads((data_dir / "config.toml").read_text(encoding="utf-8"))["model"] == value


def test_other_data_dir_is_read_and_written_there(data_dir, tmp_path):
    other = tmp_path / "other"
    save_settings(data_dir=other, model="from-other")
    assert (other / "config.toml").exists() and not (data_dir / "config.toml").exists()
    assert load_settings(data_dir=other).model == "from-other"
    assert load_settings().model != "from-other"


def test_save_keeps_comments_and_other_keys_and_none_forgets(data_dir):
    path = data_dir / "config.toml"
    path.write_text("# my settings\nport = 9000  # fixed port\nmodel = \"old\"\n", encoding="utf-8")
    save_settings(model="new", quantization="none")
    text = path.read_text(encoding="utf-8")
    assert "# my settings" in text and "# fixed port" in text
    assert tomllib.loads(text) == {"port": 9000, "model": "new", "quantization": "none"}
    save_settings(model=None)
    assert "model" not in tomllib.loads(path.read_text(encoding="utf-8"))
    assert load_settings().model == "Qwen/Qwen3-4B-Thinking-2507"


def test_environment_wins_over_config(data_dir, monkeypatch):
    save_settings(model="from-file")
    monkeypatch.setenv("DOCMIND_MODEL", "from-env")
    assert load_settings().model == "from-env"


@pytest.mark.parametrize("content", [b"model = \n", b"model = 'unclosed\n", b"\xff\xfe not text"])
def test_corrupt_config_is_refused_by_name_and_left_untouched(data_dir, content):
    path = data_dir / "config.toml"
    path.write_bytes(content)
    with pytest.raises(SettingsError, match="config.toml is not a valid settings file") as raised:
        load_settings()
    assert str(path) in str(raised.value)
    with pytest.raises(SettingsError, match="left untouched"):
        save_settings(model="x")
    assert path.read_bytes() == content


def test_a_value_of_the_wrong_kind_names_the_setting_and_the_file(data_dir):
    (data_dir / "config.toml").write_text('port = "eighty"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="port") as raised:
        load_settings()
    assert str(data_dir / "config.toml") in str(raised.value)


def test_cli_refuses_a_corrupt_config_with_one_line(data_dir):
    (data_dir / "config.toml").write_text("model = = 1\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "docmind", "sessions", "list", "--json"],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("docmind: error: ") and str(data_dir / "config.toml") in lines[0]
