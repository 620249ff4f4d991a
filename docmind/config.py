"""All DocMind settings in one place: ``DOCMIND_*`` env, then ``<data dir>/config.toml``, then defaults.

A ``config.toml`` that is not valid TOML, or holds a value of the wrong kind, is refused with a
``SettingsError`` naming the file: DocMind does not start on guessed settings, and the file is
never overwritten until it parses again.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

APP_NAME = "DocMind"
DEFAULT_MODEL = "Qwen/Qwen3-4B-Thinking-2507"
CONFIG_FILE = "config.toml"


class SettingsError(ValueError):
    """The settings (``config.toml`` or a ``DOCMIND_*`` variable) cannot be used; the message says why."""


def default_data_dir() -> Path:
    """The data dir: ``DOCMIND_DATA_DIR`` if set, else the platform's user data dir."""
    env = os.environ.get("DOCMIND_DATA_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings):
    """DocMind settings. Every field can be set as ``DOCMIND_<NAME>`` or in ``config.toml``."""

    model_config = SettingsConfigDict(env_prefix="DOCMIND_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    model: str = DEFAULT_MODEL
    model_path: Path | None = None
    quantization: str = "auto"  # auto | none | int8-weight | int8-dynamic | int4-weight (TorchAO)
    quantization_min_agreement: float = 0.70  # quality guard: least top-1 agreement of quantized with bf16
    tune_min_weights_bytes: int = 50_000_000  # smaller models are not timed per machine (bf16 is fast enough)
    max_new_tokens: int | None = None  # cap on tokens generated per model call (None: the model layer's default)
    # tokens the model may think per call before its answer is forced (None: about 20 s at this machine's
    # decode speed, see docmind.model.thinking.thinking_budget; 0: never think)
    thinking_budget: int | None = Field(default=None, ge=0)
    embed_model_path: Path | None = None
    # answer with an OpenAI-compatible model server instead of the built-in engine (None: built-in)
    llm_base_url: str | None = None  # e.g. http://gpu-box:8000/v1 (vLLM, Ollama, llama.cpp, LM Studio)
    llm_model: str = ""  # the server's model id ("": the first model the server lists)
    llm_api_key: str | None = None  # sent as "Authorization: Bearer <key>"; never logged
    llm_context_window: int | None = None  # None: from the server's model info, else 32768
    llm_timeout_seconds: float = Field(default=120.0, gt=0)  # longest wait for the server's next bytes
    embed_backend: Literal["onnx-int8", "torch"] = "onnx-int8"  # see docmind.cache.embeddings
    ocr: bool = True  # read scanned PDF pages and image files with local OCR
    max_file_size_mb: float = 200.0
    busy_timeout_ms: int = 5000
    watch_debounce_seconds: float = Field(default=2.0, gt=0)  # a watched file is ingested once quiet this long
    watch_rescan_seconds: float = Field(default=300.0, gt=0)  # watched folders are rescanned this often
    host: str = "127.0.0.1"
    login_session_seconds: int = Field(default=12 * 3600, gt=0)  # a team login lasts this long (see docmind.ui.auth)
    port: int = 0
    log_level: str = "WARNING"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "docmind.db"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        data_dir = init_settings().get("data_dir") or env_settings().get("data_dir") or default_data_dir()
        path = Path(data_dir).expanduser() / CONFIG_FILE
        try:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise _unreadable(path, error) from error
        return init_settings, env_settings, toml


def load_settings(**overrides: Any) -> Settings:
    """Read settings fresh from the environment and the ``config.toml`` of the data dir they choose."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SettingsError(
            f"A setting in the DOCMIND_* environment or in {config_path(overrides.get('data_dir'))} "
            f"is not valid ({problems}). Correct it and start DocMind again."
        ) from error


def config_path(data_dir: str | Path | None = None) -> Path:
    """``config.toml`` in ``data_dir`` (default: the data dir of ``default_data_dir``)."""
    return Path(data_dir or default_data_dir()).expanduser() / CONFIG_FILE


def save_settings(data_dir: str | Path | None = None, **values: str | int | float | bool | None) -> Path:
    """Remember scalar settings in ``<data_dir>/config.toml`` (``None`` forgets one); ``DOCMIND_*`` env still wins.

    The file's other keys, comments and layout are kept; it is replaced atomically.
    """
    import tomlkit

    path = config_path(data_dir)
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    except (tomlkit.exceptions.ParseError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from error
    for key, value in values.items():
        if value is None:
            document.pop(key, None)
        elif isinstance(value, (str, int, float, bool)):
            document[key] = value
        else:
            raise TypeError(f"config.toml holds only text, numbers and true/false, not {key}={value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".toml.tmp")
    staging.write_text(tomlkit.dumps(document), encoding="utf-8")
    staging.replace(path)
    return path


def _unreadable(path: Path, error: Exception) -> SettingsError:
    return SettingsError(
        f"{path} is not a valid settings file ({error}). It was left untouched: "
        "correct it or delete it, then start DocMind again."
    )
