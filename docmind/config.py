"""All DocMind settings in one place: ``DOCMIND_*`` env, then ``<data dir>/config.toml``, then defaults."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

APP_NAME = "DocMind"
DEFAULT_MODEL = "Qwen/Qwen3-4B-Thinking-2507"


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
    max_new_tokens: int | None = None  # cap on tokens generated per model call (None: the model layer's default)
    embed_model_path: Path | None = None
    max_file_size_mb: float = 200.0
    busy_timeout_ms: int = 5000
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "WARNING"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "docmind.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_data_dir() / "config.toml")
        return init_settings, env_settings, toml


def load_settings(**overrides: object) -> Settings:
    """Read settings fresh from the environment and the data dir's ``config.toml``."""
    return Settings(**overrides)


def save_settings(**values: str | int | float | bool | None) -> Path:
    """Remember scalar settings in ``<data dir>/config.toml`` (``None`` forgets one); ``DOCMIND_*`` env still wins."""
    path = default_data_dir() / "config.toml"
    current = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        elif isinstance(value, (str, int, float, bool)):
            current[key] = value
        else:
            raise TypeError(f"config.toml holds only text, numbers and true/false, not {key}={value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".toml.tmp")
    staging.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in current.items()), encoding="utf-8")
    staging.replace(path)
    return path
