"""Settings, read once at start-up (by ``app``/``cli``) and passed down; nothing imports a
global settings object.

Layers, lowest to highest priority:
defaults < ``personae.yaml`` < ``personae.<env>.yaml`` < ``.env`` < ``PERSONAE_*`` variables.

Nested fields take one underscore after the section name: ``PERSONAE_LLM_BASE_URL`` sets
``llm.base_url``, ``PERSONAE_LIMITS_MAX_MESSAGE_CHARS`` sets ``limits.max_message_chars``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)  # consecutive failures that open it
    reset_timeout_s: float = Field(default=30.0, ge=0)  # open this long, then one probe


class GuardSettings(BaseModel):
    """What the router enforces around a backend (docs/routing.md)."""

    first_token_timeout_s: float | None = Field(default=60.0, gt=0)  # None: unbounded
    total_timeout_s: float | None = Field(default=600.0, gt=0)  # None: unbounded
    max_concurrency: int | None = Field(default=None, ge=1)  # None: 1 for llamacpp, else any
    breaker: BreakerSettings = BreakerSettings()


class LLMSettings(GuardSettings):
    """The default backend. ``kind: auto`` means: an OpenAI-compatible server when
    ``base_url`` is set, else the packaged local model. Routes name it by its kind
    (``llamacpp`` or ``openai``)."""

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


class BackendSettings(GuardSettings):
    """One entry of ``backends:``. ``options`` are kind-specific (``model_path``, ``n_ctx``,
    ... for llamacpp); the key comes from ``api_key`` or the variable named by ``api_key_env``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1)
    base_url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)  # the client's read timeout (per gap)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    context_window: int | None = Field(default=None, ge=256)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_from_environment(self) -> Self:
        if self.api_key_env is None:
            return self
        if self.api_key is not None:
            raise ValueError("give either api_key or api_key_env, not both")
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(f"api_key_env names {self.api_key_env}, which is not set")
        self.api_key = SecretStr(value)
        return self


def _names(value: Any) -> Any:
    # From the environment a list may come as JSON or as plain comma-separated names.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [name.strip() for name in text.split(",") if name.strip()]
    return value


Names = Annotated[list[str], NoDecode, BeforeValidator(_names)]


class RouteRuleSettings(BaseModel):
    """An ordered rule: when all given conditions hold, ``chain`` serves (primary first)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    characters: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)  # message kind / intent labels
    min_prompt_tokens: int | None = Field(default=None, ge=1)
    variants: list[str] = Field(default_factory=list)  # experiment variants
    chain: list[str] = Field(min_length=1)


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retries: int = Field(default=1, ge=0, le=10)  # extra rounds over a chain that all failed
    budget_s: float = Field(default=8.0, ge=0)  # no round starts later than this in a turn
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=4.0, ge=0)


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # replies to temperature-0 requests, by prompt hash
    max_entries: int = Field(default=1024, ge=1)
    ttl_s: float = Field(default=600.0, gt=0)


class RoutesSettings(BaseModel):
    """Which backends serve a turn: ``rules`` in order, first match wins, else ``default``
    (empty: the ``llm`` backend)."""

    model_config = ConfigDict(extra="forbid")

    default: Names = Field(default_factory=list)
    rules: list[RouteRuleSettings] = Field(default_factory=list)
    retry: RetrySettings = RetrySettings()
    cache: CacheSettings = CacheSettings()


class GenerationSettings(BaseModel):
    max_tokens: int = Field(default=200, ge=1, le=8192)
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int | None = None


class LimitSettings(BaseModel):
    max_message_chars: int = Field(default=8000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # POST /api/characters: a card's PNG or CHARX, assets included (the card codec has its
    # own per-format limits below this).
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    history_messages: int = Field(default=200, ge=0)
    # In a group chat: character replies to one user message, at most (then a user speaks).
    group_max_replies: int = Field(default=3, ge=1, le=8)


class BlockedWordsSettings(BaseModel):
    """Whole words or phrases, case-insensitive, per action (docs/operations.md)."""

    model_config = ConfigDict(extra="forbid")

    block: list[str] = Field(default_factory=list)  # the turn is refused (content_blocked)
    mask: list[str] = Field(default_factory=list)  # replaced by asterisks, in and out
    flag: list[str] = Field(default_factory=list)  # let through and logged


class PiiSettings(BaseModel):
    """PII redacted to reversible tokens before a prompt leaves for a networked backend."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    patterns: dict[str, str] = Field(default_factory=dict)  # kind -> regular expression
    exempt_local: bool = True  # the in-process model (llamacpp) sees the originals
    store_originals: bool = True  # stored messages keep the originals (else their tokens)


class ModerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blocked_words: BlockedWordsSettings = BlockedWordsSettings()
    pii: PiiSettings = PiiSettings()


class RealtimeSettings(BaseModel):
    """Admission control and the WebSocket protocol's timings (see docs/protocol.md)."""

    max_concurrent_turns: int = Field(default=16, ge=1)
    max_queued_turns: int = Field(default=64, ge=0)
    enqueue_timeout_s: float = Field(default=5.0, gt=0)
    retry_after_s: float = Field(default=1.0, gt=0)
    heartbeat_interval_s: float = Field(default=30.0, gt=0)
    idle_timeout_s: float = Field(default=90.0, gt=0)
    send_timeout_s: float = Field(default=5.0, gt=0)
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    session_idle_expiry_s: float = Field(default=900.0, gt=0)
    # A message arriving while the conversation's reply is generated: queue it, or reject it.
    busy_policy: Literal["queue", "reject"] = "queue"


class MetricsSettings(BaseModel):
    """Prometheus ``/metrics`` (docs/operations.md). Several worker processes share one view
    when ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder before they start."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Multiprocess mode: how often each worker publishes its live state (gauges, breakers).
    publish_interval_s: float = Field(default=5.0, gt=0)


class TracingSettings(BaseModel):
    """OpenTelemetry traces (docs/operations.md, "Traces"): off unless enabled; the exporter
    is configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, ...)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False


class RetentionSettings(BaseModel):
    """Purge records older than so many days (None: keep them for ever)."""

    model_config = ConfigDict(extra="forbid")

    messages_days: float | None = Field(default=None, gt=0)  # messages and their event log
    memories_days: float | None = Field(default=None, gt=0)  # private memory items
    audit_days: float | None = Field(default=None, gt=0)  # audit log rows
    interval_s: float = Field(default=3600.0, gt=0)  # how often the purge runs


class MemorySettings(BaseModel):
    """Long-term memory (docs/memory.md): items written with each message, embedded by a
    background job, recalled into the prompt with the user's profile of facts."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # minilm: the packaged all-MiniLM-L6-v2 (the 'local' extra; without it, full text only);
    # openai: an OpenAI-compatible /v1/embeddings server; none: full-text recall only.
    embedder: Literal["minilm", "openai", "none"] = "minilm"
    embedder_base_url: str | None = None  # openai: the server's /v1 URL
    embedder_model: str | None = None  # openai: the model name
    embedder_api_key: SecretStr | None = None
    batch_size: int = Field(default=32, ge=1, le=1024)  # items per embedding batch
    idle_s: float = Field(default=1.0, gt=0)  # how often the job looks for pending items
    recall_items: int = Field(default=5, ge=0, le=50)  # hits recalled per turn at most
    recall_tokens: int = Field(default=300, ge=0)  # prompt tokens for recalled items
    profile_tokens: int = Field(default=150, ge=0)  # prompt tokens for the profile of facts
    embed_timeout_s: float = Field(default=0.5, gt=0)  # the wait for the query's vector


class JwtSettings(BaseModel):
    """Bearer JWTs from a front end that owns its login (docs/operations.md, "Security"). On
    when a key is given: ``secret``/``secret_file`` for HS256, ``public_key_file`` for RS256."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["HS256", "RS256"] = "HS256"
    secret: SecretStr | None = None
    secret_file: Path | None = None  # the HS256 secret, read from a file
    public_key_file: Path | None = None  # a PEM public key, for RS256
    issuer: str | None = None  # required ``iss`` when set
    audience: str | None = None  # required ``aud`` when set
    role_claim: str = "role"
    tenant_claim: str = "tenant"
    default_role: Literal["user", "service"] = "user"  # when the token names no role
    allowed_roles: list[Literal["admin", "user", "service"]] = ["user", "service"]
    leeway_s: float = Field(default=30.0, ge=0)  # clock skew tolerated on exp/nbf/iat

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.secret_file or self.public_key_file)

    @model_validator(mode="after")
    def _one_key_for_the_algorithm(self) -> Self:
        hmac_keys = (self.secret is not None) + (self.secret_file is not None)
        if self.algorithm == "HS256" and (hmac_keys > 1 or self.public_key_file is not None):
            raise ValueError("HS256 takes one of secret or secret_file, not public_key_file")
        if self.algorithm == "RS256" and (hmac_keys or not self.public_key_file):
            raise ValueError("RS256 takes public_key_file (and no secret)")
        return self


class RoleLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)  # None: unlimited
    tokens_per_minute: int | None = Field(default=None, ge=1)  # prompt + reply tokens


class RateLimitSettings(BaseModel):
    """Per role, counted per key and per end user over a sliding minute."""

    model_config = ConfigDict(extra="forbid")

    admin: RoleLimitSettings = RoleLimitSettings()
    user: RoleLimitSettings = RoleLimitSettings(requests_per_minute=60, tokens_per_minute=40_000)
    service: RoleLimitSettings = RoleLimitSettings(
        requests_per_minute=1200, tokens_per_minute=1_000_000
    )


class SecuritySettings(BaseModel):
    """Keys, roles, JWTs, rate limits and the audit log (docs/operations.md, "Security")."""

    model_config = ConfigDict(extra="forbid")

    jwt: JwtSettings = JwtSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    key_cache_s: float = Field(default=5.0, ge=0)  # how late another process's revoke is seen
    audit_model_calls: bool = True  # one audit row per model call


class ChannelReconnectSettings(BaseModel):
    """How a channel reconnects: backoff with full jitter, bounded attempts per window."""

    model_config = ConfigDict(extra="forbid")

    initial_s: float = Field(default=1.0, ge=0)
    max_s: float = Field(default=60.0, ge=0)
    max_attempts: int = Field(default=5, ge=3, le=10)  # per window
    window_s: float = Field(default=60.0, gt=0)


class ChannelOutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=20, ge=1)
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=300.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1)  # platform failures in a row: circuit opens
    breaker_reset_s: float = Field(default=30.0, ge=0)  # open this long, then one probe


class ChannelSettings(BaseModel):
    """One chat-platform channel (docs/channels.md). Tokens and secrets come only from the
    environment: ``token_env`` and ``secret_env`` name the variables."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1)  # telegram, mqtt, webhook, or a plugin's kind
    enabled: bool = True
    default_character: str | None = None
    chats: dict[str, str] = Field(default_factory=dict)  # chat id -> character id
    conversation_scope: Literal["chat", "shared"] | None = None  # None: the channels' default
    token_env: str | None = None
    secret_env: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # kind-specific (docs/channels.md)
    reconnect: ChannelReconnectSettings | None = None  # None: the channels' default


class ChannelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # chat: each chat has its own conversation per character; shared: a user's latest
    # conversation with the character, whichever channel (or the WebSocket) it is on.
    conversation_scope: Literal["chat", "shared"] = "chat"
    link_code_ttl_s: float = Field(default=600.0, gt=0)
    max_handlers: int = Field(default=32, ge=1)  # inbound messages answered at once, per channel
    reconnect: ChannelReconnectSettings = ChannelReconnectSettings()
    outbox: ChannelOutboxSettings = ChannelOutboxSettings()
    adapters: dict[str, ChannelSettings] = Field(default_factory=dict)  # by channel name


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
    # HTTPS and wss:// straight from uvicorn (PEM files); or put a TLS proxy in front.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    data_dir: Path = Path("data")
    characters_dir: Path = Path("characters")
    lorebooks_dir: Path = Path("lorebooks")  # standalone lorebooks (docs/lorebooks.md)
    watch_characters: bool = True  # hot reload: apply edits to the folder while running
    # After a reload, running conversations switch to the new version at their next turn,
    # or stay pinned to the version they have been using (docs/characters.md, "Hot reload").
    characters_reload: Literal["switch", "pin"] = "switch"
    user_name: str = "User"  # how the user is named in prompts
    log_level: str = "info"
    log_content: bool = False  # log message and reply texts (at debug level); off: never
    api_keys: list[SecretStr] = Field(default_factory=list)
    llm: LLMSettings = LLMSettings()
    backends: dict[str, BackendSettings] = Field(default_factory=dict)
    routes: RoutesSettings = RoutesSettings()
    generation: GenerationSettings = GenerationSettings()
    limits: LimitSettings = LimitSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    retention: RetentionSettings = RetentionSettings()
    memory: MemorySettings = MemorySettings()
    moderation: ModerationSettings = ModerationSettings()
    security: SecuritySettings = SecuritySettings()
    channels: ChannelsSettings = ChannelsSettings()

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both or neither")
        return self

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
