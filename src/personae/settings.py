"""Settings, read once at start-up (by ``app``/``cli``) and passed down; nothing imports a
global settings object.

Layers, lowest to highest priority:
defaults < ``personae.yaml`` < ``personae.<env>.yaml`` < ``.env`` < ``PERSONAE_*`` variables.

Nested fields take one underscore after the section name: ``PERSONAE_LLM_BASE_URL`` sets
``llm.base_url``, ``PERSONAE_LIMITS_MAX_MESSAGE_CHARS`` sets ``limits.max_message_chars``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class LLMSettings(BaseModel):
    """The default backend. ``kind: auto`` means: an OpenAI-compatible server when
    ``base_url`` is set, else the packaged local model."""

    kind: str = "auto"
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    model_path: Path | None = None  # a GGUF file; default: the packaged Gemma 3 270M
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int | None = Field(default=None, ge=1)
    prompt_format: str = "transcript"  # or "chat_template" (the GGUF's own template)
    context_tokens: int = Field(default=8192, ge=256)  # when the backend cannot tell


class GenerationSettings(BaseModel):
    max_tokens: int = Field(default=200, ge=1, le=8192)
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int | None = None


class LimitSettings(BaseModel):
    max_message_chars: int = Field(default=8000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    history_messages: int = Field(default=200, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERSONAE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    env: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    characters_dir: Path = Path("characters")
    user_name: str = "User"  # how the user is named in prompts
    log_level: str = "info"
    api_keys: list[SecretStr] = Field(default_factory=list)
    llm: LLMSettings = LLMSettings()
    generation: GenerationSettings = GenerationSettings()
    limits: LimitSettings = LimitSettings()

    @property
    def database_path(self) -> Path:
        return self.data_dir / "personae.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = settings_cls.model_config.get("yaml_file") or []
        assert isinstance(files, list)
        yaml_sources = [YamlConfigSettingsSource(settings_cls, yaml_file=f) for f in files]
        # First wins: later YAML files (the environment's) override earlier ones.
        return (init_settings, env_settings, dotenv_settings, *reversed(yaml_sources))


def load_settings(config_dir: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``config_dir`` (default: ``PERSONAE_CONFIG_DIR`` or the working
    directory) and the environment; ``overrides`` (e.g. from CLI flags) win over all."""
    folder = config_dir or Path(os.environ.get("PERSONAE_CONFIG_DIR", "."))
    environment = os.environ.get("PERSONAE_ENV")
    files = [folder / "personae.yaml"]
    if environment:
        files.append(folder / f"personae.{environment}.yaml")

    class _Configured(Settings):
        model_config = SettingsConfigDict(
            yaml_file=[str(f) for f in files], env_file=str(folder / ".env")
        )

    return _Configured(**overrides)
