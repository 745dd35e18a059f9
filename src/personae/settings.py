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
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
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
    # Documents attached to characters (docs/memory.md, "Knowledge"): <dir>/<character id>/
    # for one character, <dir>/_all/ for every one; watched and re-indexed as files change.
    knowledge_dir: Path | None = None
    knowledge_chunk_words: int = Field(default=150, ge=10, le=2000)  # words per chunk
    knowledge_overlap_words: int = Field(default=25, ge=0)  # shared by neighbouring chunks
    # Mid-term memory, written by the configured LLM off the turn's path (docs/memory.md):
    summary_tokens: int = Field(default=200, ge=0)  # the rolling summary's note (0: none)
    summary_min_messages: int = Field(default=6, ge=1)  # out of the window before summarising
    extract_every_turns: int = Field(default=5, ge=0)  # LLM fact extraction (0: rules only)
    midterm_backend: str | None = None  # the backend that writes them (None: the default)


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


class ReplaySettings(BaseModel):
    """Turn records and replays (docs/replay.md)."""

    model_config = ConfigDict(extra="forbid")

    # The share of conversations whose turns are recorded (whole conversations, by a hash of
    # their id). A record holds the whole prompt (a few KB, up to ~30 KB at 8k tokens of
    # context): 10 % gives a steady supply of traces and replayable conversations while
    # keeping the extra writes and the disk they take to a tenth. 1.0 records everything.
    record_rate: float = Field(default=0.1, ge=0, le=1)
    # Records are purged by the retention job after this many days; they always go with
    # the messages they explain (retention.messages_days, erasing a user). None: only then.
    records_days: float | None = Field(default=None, gt=0)
    reports_dir: Path | None = None  # replay reports (HTML); None: <data_dir>/replays
    max_turns: int = Field(default=200, ge=1)  # user messages one replay runs, at most


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # sqlite: one file in data_dir, nothing to install. postgres: conversations and memory in
    # PostgreSQL with pgvector, shared by every node (docs/scale-out.md).
    backend: Literal["sqlite", "postgres"] = "sqlite"
    # WAL's fsync policy (docs/operations.md, "Durability"): an acknowledged message survives
    # kill -9 in both; "full" also survives a power loss, at an fsync (ms) on every commit.
    synchronous: Literal["normal", "full"] = "normal"
    readers: int = Field(default=2, ge=1, le=64)  # read-only connections to the database
    postgres_url: SecretStr | None = None  # postgresql://user:password@host:5432/db
    postgres_pool_min: int = Field(default=1, ge=1)
    postgres_pool_max: int = Field(default=10, ge=1)
    # How long a call waits for a free connection (all busy, or the server away) before it
    # fails with StorageError: a user hears back within this, not after a minute.
    postgres_wait_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _postgres_needs_a_url(self) -> StorageSettings:
        if self.backend == "postgres" and self.postgres_url is None:
            raise ValueError("storage: postgres needs storage.postgres_url")
        return self


class CoordinationSettings(BaseModel):
    """Locks, the event bus and rate limits: in this process, or shared over Redis so that
    several processes and machines serve one set of conversations (docs/scale-out.md)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "redis"] = "local"
    redis_url: SecretStr | None = None  # redis://host:6379/0
    prefix: str = Field(default="personae", min_length=1)  # every key starts with it
    lock_ttl_s: float = Field(default=10.0, gt=0)  # a dead holder's lease ends after this
    # A turn whose node stopped renewing its lease this long is ended with an error event.
    visibility_timeout_s: float = Field(default=15.0, gt=0)
    stream_max_events: int = Field(default=2000, ge=100)  # kept per conversation for resume
    node: str | None = None  # this process's name among the nodes; default: host and pid

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> CoordinationSettings:
        if self.backend == "redis" and self.redis_url is None:
            raise ValueError("coordination: redis needs coordination.redis_url")
        return self


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


class McpServerSettings(BaseModel):
    """One MCP server whose tools become skills (docs/mcp.md): a stdio ``command`` (with
    ``args``, ``env``, ``cwd``) or a streamable HTTP ``url`` (with ``headers``; a secret
    header's value comes from the variable ``headers_env`` names)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header name -> variable name
    enabled: bool = True
    tools: list[str] | None = None  # only these tools (None: all); registered even while down
    connect_timeout_s: float = Field(default=15.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)  # one tool call (the skill runner bounds it too)

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server has either a command (stdio) or a url (HTTP)")
        return self


class McpSettings(BaseModel):
    """MCP both ways (docs/mcp.md): servers whose tools characters may use, and Personae's
    own MCP endpoint at ``/mcp``."""

    model_config = ConfigDict(extra="forbid")

    servers: dict[str, McpServerSettings] = Field(default_factory=dict)  # by server name
    serve_http: bool = True  # Personae's own tools at /mcp of the HTTP server
    reconnect_initial_s: float = Field(default=1.0, ge=0)  # after a failed connect, then x2
    reconnect_max_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _server_names(self) -> Self:
        for name in self.servers:
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", name):
                raise ValueError(
                    f"MCP server name {name!r}: use a-z, 0-9 and '-', at most 31 characters"
                )
        return self


class ReminderSettings(BaseModel):
    """The reminders skill (docs/skills.md, "Reminders")."""

    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)  # longest a due one waits
    max_pending_per_user: int = Field(default=20, ge=1, le=10_000)
    max_ahead_days: int = Field(default=366, ge=1, le=3660)
    # Clock times ("at 18:30") are read in the user's zone, else the character's
    # (skill_options), else this one.
    default_timezone: str = "UTC"
    lease_s: float = Field(default=120.0, gt=0)  # a claim older than this is taken again
    max_attempts: int = Field(default=5, ge=1, le=100)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from exc
        return value


class ExperimentSettings(BaseModel):
    """Experiments (docs/experiments.md)."""

    model_config = ConfigDict(extra="forbid")

    dir: Path = Path("experiments")  # YAML files, one experiment each, read at start-up
    # How often a server re-reads the stored experiments, so changes another process made
    # (``personae release`` without --url) reach it; its own API's changes hold at once.
    refresh_s: float = Field(default=5.0, gt=0, le=3600)


class SkillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=5.0, gt=0, le=300)  # each skill run, at most
    max_concurrency: int = Field(default=8, ge=1, le=1000)  # skill runs at once, per process
    reminders: ReminderSettings = ReminderSettings()
    # Rounds of tool calls the model may make in one reply (docs/skills.md, "The model calls
    # skills"); then it must answer. 0: skills are never offered as tools.
    tool_rounds: int = Field(default=3, ge=0, le=10)


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
    skills: SkillSettings = SkillSettings()  # the model's tool calls
    mcp: McpSettings = McpSettings()  # MCP servers' tools as skills; Personae as one
    storage: StorageSettings = StorageSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    replay: ReplaySettings = ReplaySettings()  # turn records, trace and replay
    experiments: ExperimentSettings = ExperimentSettings()  # A/B tests and gray releases

    @field_validator("storage", "coordination", mode="before")
    @classmethod
    def _backend_by_name(cls, value: Any) -> Any:
        """``storage: postgres`` and ``coordination: redis`` name just the backend."""
        return {"backend": value} if isinstance(value, str) else value

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
