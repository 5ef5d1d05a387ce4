"""Settings: every knob of the gateway, read in one place.

Precedence is the usual pydantic-settings one: explicit keyword arguments, then environment
variables, then defaults. Variable names follow the seed README; the Go gateway's names are accepted
as aliases where they differ (``REDIS_DSN`` for ``REDIS_URL``, ``PROJECT_ID`` for
``GOOGLE_PROJECT_ID``...), so one environment can drive both systems during the migration.

Durations accept bare seconds (``600``, as the Python predecessor) or Go duration strings
(``600s``, ``10m``, ``1h30m``, ``500ms``, as the Go gateway).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError
from shared.providers.registry import KNOWN_PROVIDERS

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: Any) -> float:
    """Return seconds from a number, a numeric string or a Go duration string."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"expected seconds (e.g. 600) or a Go duration (e.g. 10m, 1h30m, 500ms), got {text!r}"
        )
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _host_list(value: Any) -> Any:
    """Host names from a comma list of hosts or URLs (the Go setting lists URLs)."""
    items = _split_list(value)
    if not isinstance(items, list):
        return items
    hosts = []
    for item in items:
        host = urlsplit(item).hostname if "://" in item else item.split("/", 1)[0]
        if host:
            hosts.append(host.lower())
    return hosts


_ROLE_NAMES = ("read_only", "message_sender", "admin")


def _role_limits(value: Any) -> Any:
    """``read_only=3000/300,admin=10000/500`` -> {"read_only": (3000, 300), ...}."""
    if not isinstance(value, str):
        return value
    limits: dict[str, tuple[int, int]] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        role, _, numbers = item.partition("=")
        per_minute, _, burst = numbers.partition("/")
        role = role.strip().lower()
        if role not in _ROLE_NAMES or not per_minute.strip().isdigit() or not burst.strip().isdigit():
            raise ValueError(
                f"expected role=per_minute/burst with a role among {', '.join(_ROLE_NAMES)}, got {item!r}"
            )
        limits[role] = (int(per_minute), int(burst))
    return limits


Seconds = Annotated[float, BeforeValidator(parse_duration)]
RoleLimits = Annotated[dict[str, tuple[int, int]], NoDecode, BeforeValidator(_role_limits)]
HostList = Annotated[list[str], NoDecode, BeforeValidator(_host_list)]
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """All settings of the gateway. See the README's configuration table."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # --- HTTP -------------------------------------------------------------------------------
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("PORT", "SERVER_PORT"))
    host: str = Field("0.0.0.0", validation_alias=_env("HOST", "SERVER_HOST"))
    public_base_url: str = Field("", validation_alias=_env("PUBLIC_BASE_URL"))
    max_request_size: int = Field(10_485_760, ge=1024, validation_alias=_env("MAX_REQUEST_SIZE"))
    max_message_bytes: int = Field(
        32_000, ge=1, validation_alias=_env("MAX_MESSAGE_BYTES", "GOOGLE_AGENT_ENGINE_MAX_MESSAGE_LENGTH")
    )
    default_priority_text: Literal["high", "normal"] = Field(
        "normal", validation_alias=_env("DEFAULT_PRIORITY_TEXT")
    )
    default_priority_audio: Literal["high", "normal"] = Field(
        "normal", validation_alias=_env("DEFAULT_PRIORITY_AUDIO")
    )
    webhook_success_status: int = Field(202, validation_alias=_env("WEBHOOK_SUCCESS_STATUS"))

    # --- Redis ------------------------------------------------------------------------------
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "REDIS_DSN"))
    redis_cluster: bool = Field(
        False,
        validation_alias=_env("REDIS_CLUSTER"),
        description="REDIS_URL names a node of a Redis Cluster (also implied by redis+cluster://)",
    )
    redis_key_prefix: str = Field("", validation_alias=_env("REDIS_KEY_PREFIX"))
    redis_connect_timeout: Seconds = Field(2.0, gt=0, validation_alias=_env("REDIS_DIAL_TIMEOUT"))
    redis_operation_timeout: Seconds = Field(3.0, gt=0, validation_alias=_env("REDIS_READ_TIMEOUT"))
    redis_pool_size: int = Field(50, ge=1, validation_alias=_env("REDIS_POOL_SIZE"))
    task_status_ttl: Seconds = Field(600, gt=0, validation_alias=_env("REDIS_TASK_STATUS_TTL"))
    task_result_ttl: Seconds = Field(120, gt=0, validation_alias=_env("REDIS_TASK_RESULT_TTL"))
    thread_ttl: Seconds = Field(86_400, gt=0, validation_alias=_env("THREAD_TTL", "AGENT_ID_CACHE_TTL"))
    user_activity_ttl: Seconds = Field(
        86_400, gt=0, validation_alias=_env("USER_ACTIVITY_TTL", "POSTGRES_USER_ACTIVITY_TTL")
    )

    # --- RabbitMQ ---------------------------------------------------------------------------
    rabbitmq_url: str | None = Field(None, validation_alias=_env("RABBITMQ_URL"))
    rabbitmq_exchange: str = Field("eai_gateway", min_length=1, validation_alias=_env("RABBITMQ_EXCHANGE"))
    rabbitmq_dlx_exchange: str = Field(
        "eai_gateway_dlx", min_length=1, validation_alias=_env("RABBITMQ_DLX_EXCHANGE")
    )
    rabbitmq_queue: str = Field(
        "user_messages",
        min_length=1,
        validation_alias=_env("RABBITMQ_USER_MESSAGES_QUEUE", "RABBITMQ_USER_QUEUE"),
    )
    rabbitmq_dlq: str = Field("user_messages_dlq", min_length=1, validation_alias=_env("RABBITMQ_DLQ"))
    rabbitmq_message_ttl_ms: int = Field(300_000, ge=1, validation_alias=_env("RABBITMQ_MESSAGE_TTL_MS"))
    rabbitmq_publish_timeout: Seconds = Field(5.0, gt=0, validation_alias=_env("RABBITMQ_PUBLISH_TIMEOUT"))

    # --- Bridge (RabbitMQ -> worker) --------------------------------------------------------
    max_parallel: int = Field(8, ge=1, le=1024, validation_alias=_env("MAX_PARALLEL"))
    bridge_sink: Literal["http", "pubsub"] = Field("http", validation_alias=_env("BRIDGE_SINK"))
    worker_url: str = Field("", validation_alias=_env("WORKER_URL"))
    worker_audience: str = Field("", validation_alias=_env("WORKER_AUDIENCE"))
    worker_timeout: Seconds = Field(
        2000, gt=0, validation_alias=_env("WORKER_TIMEOUT", "RABBITMQ_MESSAGE_TIMEOUT")
    )
    bridge_max_attempts: int = Field(5, ge=1, le=100, validation_alias=_env("BRIDGE_MAX_ATTEMPTS"))
    bridge_retry_initial_delay: Seconds = Field(
        2.0, gt=0, validation_alias=_env("BRIDGE_RETRY_INITIAL_DELAY")
    )
    bridge_retry_max_delay: Seconds = Field(300, gt=0, validation_alias=_env("BRIDGE_RETRY_MAX_DELAY"))
    bridge_busy_delay: Seconds = Field(1.0, gt=0, validation_alias=_env("BRIDGE_BUSY_DELAY"))
    bridge_reconnect_max_delay: Seconds = Field(30, gt=0, validation_alias=_env("BRIDGE_RECONNECT_MAX_DELAY"))
    bridge_shutdown_grace: Seconds = Field(
        30,
        ge=0,
        validation_alias=_env("BRIDGE_SHUTDOWN_GRACE"),
        description="On SIGTERM: how long in-flight deliveries may finish before they are handed back",
    )
    bridge_dependency_wait: Seconds = Field(
        30,
        gt=0,
        validation_alias=_env("BRIDGE_DEPENDENCY_WAIT"),
        description="How long a delivery waits for Redis to come back before it is put back unattempted",
    )
    pubsub_topic: str = Field("", validation_alias=_env("PUBSUB_TOPIC"))

    # --- Delivery guarantees (shared.delivery) ---------------------------------------------
    delivery_lease: Seconds = Field(
        60,
        gt=0,
        validation_alias=_env("DELIVERY_LEASE"),
        description="Expiry of a user's processing lease (renewed every third of it while running)",
    )
    order_skip_after: Seconds = Field(
        600,
        gt=0,
        validation_alias=_env("ORDER_SKIP_AFTER"),
        description="How long later messages wait for a user's missing message before skipping it",
    )
    debounce_seconds: Seconds = Field(
        0,
        ge=0,
        le=60,
        validation_alias=_env("DEBOUNCE_SECONDS"),
        description="Answer a user's messages accepted within this many seconds as one turn (0: off)",
    )

    # --- Agents -----------------------------------------------------------------------------
    agent_provider: str = Field(
        "",
        validation_alias=_env("AGENT_PROVIDER", "DEFAULT_PROVIDER"),
        description="Default provider; empty = google_agent_engine when REASONING_ENGINE_ID is set, "
        "else eai when EAI_AGENT_SERVICE_URL is set, else openai when OPENAI_BASE_URL is set, else mock",
    )
    agent_fallback_providers: CommaList = Field(
        default_factory=list, validation_alias=_env("AGENT_FALLBACK_PROVIDERS")
    )
    agent_timeout: Seconds = Field(
        1800, gt=0, validation_alias=_env("AGENT_TIMEOUT", "GOOGLE_AGENT_ENGINE_REQUEST_TIMEOUT")
    )
    agent_max_attempts: int = Field(3, ge=1, le=10, validation_alias=_env("AGENT_MAX_ATTEMPTS"))
    agent_breaker_fail_max: int = Field(5, ge=1, validation_alias=_env("AGENT_BREAKER_FAIL_MAX"))
    agent_breaker_reset: Seconds = Field(30, gt=0, validation_alias=_env("AGENT_BREAKER_RESET"))
    agent_rate_limit_per_minute: int = Field(
        0, ge=0, validation_alias=_env("AGENT_RATE_LIMIT_PER_MINUTE", "GOOGLE_API_MAX_REQUESTS_PER_MINUTE")
    )
    google_project_id: str = Field("", validation_alias=_env("GOOGLE_PROJECT_ID", "PROJECT_ID"))
    google_region: str = Field("us-central1", validation_alias=_env("GOOGLE_REGION", "LOCATION"))
    google_credentials_json: str = Field(
        "", validation_alias=_env("GOOGLE_CREDENTIALS_JSON", "SERVICE_ACCOUNT"), repr=False
    )
    reasoning_engine_id: str = Field("", validation_alias=_env("REASONING_ENGINE_ID"))
    agent_engine_class_method: str = Field("async_query", validation_alias=_env("AGENT_ENGINE_CLASS_METHOD"))
    agent_engine_api_endpoint: str = Field("", validation_alias=_env("AGENT_ENGINE_API_ENDPOINT"))
    agent_engine_stream_class_method: str = Field(
        "",
        validation_alias=_env("AGENT_ENGINE_STREAM_CLASS_METHOD"),
        description="e.g. stream_query: stream replies through :streamQuery; empty = one chunk per reply",
    )
    eai_agent_service_url: str = Field("", validation_alias=_env("EAI_AGENT_SERVICE_URL", "EAI_AGENT_URL"))
    eai_agent_service_token: str = Field(
        "", validation_alias=_env("EAI_AGENT_SERVICE_TOKEN", "EAI_AGENT_TOKEN"), repr=False
    )
    openai_base_url: str = Field("", validation_alias=_env("OPENAI_BASE_URL"))
    openai_api_key: str = Field("", validation_alias=_env("OPENAI_API_KEY"), repr=False)
    openai_model: str = Field("gpt-4o-mini", validation_alias=_env("OPENAI_MODEL"))
    openai_system_prompt: str = Field("", validation_alias=_env("OPENAI_SYSTEM_PROMPT"))
    mock_agent_latency_ms: float = Field(0, ge=0, validation_alias=_env("MOCK_AGENT_LATENCY_MS"))
    mock_agent_failure_rate: float = Field(0, ge=0, le=1, validation_alias=_env("MOCK_AGENT_FAILURE_RATE"))
    mock_agent_call_log: str = Field("", validation_alias=_env("MOCK_AGENT_CALL_LOG"))
    mock_agent_chunk_delay_ms: float = Field(0, ge=0, validation_alias=_env("MOCK_AGENT_CHUNK_DELAY_MS"))

    # --- Streaming (docs/streaming.md) --------------------------------------------------------
    stream_enabled: bool = Field(True, validation_alias=_env("STREAM_ENABLED"))
    stream_maxlen: int = Field(2000, ge=10, validation_alias=_env("STREAM_MAXLEN"))
    stream_heartbeat: Seconds = Field(15, gt=0, le=300, validation_alias=_env("STREAM_HEARTBEAT"))
    stream_max_duration: Seconds = Field(300, gt=0, validation_alias=_env("STREAM_MAX_DURATION"))

    # --- Voice notes --------------------------------------------------------------------------
    transcribe_provider: str = Field(
        "",
        validation_alias=_env("TRANSCRIBE_PROVIDER"),
        description="google or local; empty = google when GOOGLE_PROJECT_ID is set, else local",
    )
    transcribe_language_code: str = Field("pt-BR", validation_alias=_env("TRANSCRIBE_LANGUAGE_CODE"))
    transcribe_model: str = Field("long", validation_alias=_env("TRANSCRIBE_MODEL"))
    transcribe_location: str = Field("global", validation_alias=_env("TRANSCRIBE_LOCATION"))
    transcribe_timeout: Seconds = Field(60, gt=0, validation_alias=_env("TRANSCRIBE_REQUEST_TIMEOUT"))
    audio_download_timeout: Seconds = Field(
        30, gt=0, validation_alias=_env("AUDIO_DOWNLOAD_TIMEOUT", "TRANSCRIBE_DOWNLOAD_TIMEOUT")
    )
    max_audio_size_mb: float = Field(
        25, gt=0, validation_alias=_env("MAX_AUDIO_SIZE_MB", "TRANSCRIBE_MAX_FILE_SIZE_MB")
    )
    audio_allowed_hosts: HostList = Field(
        default_factory=list, validation_alias=_env("AUDIO_ALLOWED_HOSTS", "TRANSCRIBE_ALLOWED_URLS")
    )
    max_audio_duration_seconds: Seconds = Field(
        900, ge=0, validation_alias=_env("MAX_AUDIO_DURATION_SECONDS"), description="0: no cap"
    )
    audio_scan_command: str = Field(
        "",
        validation_alias=_env("AUDIO_SCAN_COMMAND"),
        description="run with the file path; non-zero = refuse",
    )
    clamd_socket: str = Field("", validation_alias=_env("CLAMD_SOCKET"), description="clamd unix socket")
    audio_scan_timeout: Seconds = Field(60, gt=0, validation_alias=_env("AUDIO_SCAN_TIMEOUT"))
    allow_private_network_urls: bool = Field(False, validation_alias=_env("ALLOW_PRIVATE_NETWORK_URLS"))
    audio_temp_dir: str = Field("", validation_alias=_env("AUDIO_TEMP_DIR", "TRANSCRIBE_TEMP_DIR"))
    failure_retry_after: Seconds = Field(30, ge=0, validation_alias=_env("FAILURE_RETRY_AFTER"))

    # --- Callbacks ----------------------------------------------------------------------------
    callback_enabled: bool = Field(True, validation_alias=_env("CALLBACK_ENABLED"))
    callback_timeout: Seconds = Field(10, gt=0, validation_alias=_env("CALLBACK_TIMEOUT"))
    callback_max_retries: int = Field(3, ge=0, le=10, validation_alias=_env("CALLBACK_MAX_RETRIES"))
    callback_hmac_secret: str = Field("", validation_alias=_env("CALLBACK_HMAC_SECRET"), repr=False)
    callback_auth_token: str = Field("", validation_alias=_env("CALLBACK_AUTH_TOKEN"), repr=False)
    data_relay_base_url: str = Field("", validation_alias=_env("DATA_RELAY_BASE_URL"))
    data_relay_api_key: str = Field("", validation_alias=_env("DATA_RELAY_API_KEY"), repr=False)

    # --- Security: authentication (see docs/security.md) ----------------------------------
    api_token: SecretStr = Field(SecretStr(""), validation_alias=_env("API_TOKEN"))
    api_tokens: CommaList = Field(default_factory=list, repr=False, validation_alias=_env("API_TOKENS"))
    api_keys: CommaList = Field(default_factory=list, repr=False, validation_alias=_env("API_KEYS"))
    jwt_secret: SecretStr = Field(SecretStr(""), validation_alias=_env("JWT_SECRET"))
    jwt_public_key_file: str = Field("", validation_alias=_env("JWT_PUBLIC_KEY_FILE"))
    jwt_audience: str = Field("", validation_alias=_env("JWT_AUDIENCE"))
    jwt_issuer: str = Field("", validation_alias=_env("JWT_ISSUER"))
    jwt_role_claim: str = Field("role", min_length=1, validation_alias=_env("JWT_ROLE_CLAIM"))
    jwt_leeway: Seconds = Field(30, ge=0, le=600, validation_alias=_env("JWT_LEEWAY"))
    auth_disabled: bool = Field(False, validation_alias=_env("AUTH_DISABLED"))
    health_public: bool = Field(False, validation_alias=_env("HEALTH_PUBLIC"))
    metrics_public: bool = Field(False, validation_alias=_env("METRICS_PUBLIC"))
    trusted_proxy_hops: int = Field(0, ge=0, le=10, validation_alias=_env("TRUSTED_PROXY_HOPS"))
    trusted_proxies: CommaList = Field(
        default_factory=list,
        validation_alias=_env("TRUSTED_PROXIES"),
        description="CIDRs of proxies whose X-Forwarded-For is believed (overrides TRUSTED_PROXY_HOPS)",
    )
    ip_allowlist: str = Field(
        "",
        validation_alias=_env("IP_ALLOWLIST"),
        description="CIDRs per route group: webhooks=10.0.0.0/8,2001:db8::/32;polling=...;admin=...",
    )

    # --- Security: rate limits, idempotency, input, CORS -------------------------------------
    rate_limit_enabled: bool = Field(True, validation_alias=_env("RATE_LIMIT_ENABLED"))
    rate_limit_requests_per_minute: int = Field(
        1000, ge=1, validation_alias=_env("RATE_LIMIT_REQUESTS_PER_MINUTE", "RATE_LIMIT_REQUESTS")
    )
    rate_limit_burst: int = Field(100, ge=1, validation_alias=_env("RATE_LIMIT_BURST"))
    rate_limit_burst_window: Seconds = Field(
        10, gt=0, le=60, validation_alias=_env("RATE_LIMIT_BURST_WINDOW")
    )
    rate_limit_by_role: RoleLimits = Field(
        default_factory=dict,
        validation_alias=_env("RATE_LIMIT_BY_ROLE"),
        description="per-role override of the per-minute limit and burst: read_only=3000/300,admin=10000/500",
    )
    rate_limit_per_user_number_per_minute: int = Field(
        30, ge=0, validation_alias=_env("RATE_LIMIT_PER_USER_NUMBER_PER_MINUTE")
    )
    idempotency_ttl: Seconds = Field(86_400, gt=0, validation_alias=_env("IDEMPOTENCY_TTL"))
    max_message_chars: int = Field(4096, ge=1, validation_alias=_env("MAX_MESSAGE_CHARS"))
    max_json_depth: int = Field(32, ge=2, le=500, validation_alias=_env("MAX_JSON_DEPTH"))
    cors_origins: CommaList = Field(default_factory=list, validation_alias=_env("CORS_ORIGINS"))

    # --- Observability ----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL")
    )
    log_format: Literal["json", "text"] = Field("json", validation_alias=_env("LOG_FORMAT"))

    @field_validator("webhook_success_status")
    @classmethod
    def _accepted_status(cls, value: int) -> int:
        if value not in (201, 202):
            raise ValueError("must be 202 (default) or 201 (for clients of the Go gateway)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url", "rabbitmq_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _choose_defaults(self) -> Settings:
        # Frozen model: defaults that depend on other settings are filled in once, here.
        if not self.agent_provider:
            object.__setattr__(self, "agent_provider", self._implied_provider())
        if not self.transcribe_provider:
            object.__setattr__(self, "transcribe_provider", "google" if self.google_project_id else "local")
        known = set(KNOWN_PROVIDERS)
        for name in [self.agent_provider, *self.agent_fallback_providers]:
            if name not in known:
                raise ValueError(f"unknown agent provider {name!r}; known: {', '.join(KNOWN_PROVIDERS)}")
        if self.transcribe_provider not in ("google", "local"):
            raise ValueError("TRANSCRIBE_PROVIDER must be 'google' or 'local'")
        return self

    def _implied_provider(self) -> str:
        if self.reasoning_engine_id:
            return "google_agent_engine"
        if self.eai_agent_service_url:
            return "eai"
        if self.openai_base_url:
            return "openai"
        return "mock"

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        from shared.ipfilter import parse_networks

        return [str(network) for network in parse_networks(value)]

    @field_validator("ip_allowlist")
    @classmethod
    def _allowlist(cls, value: str) -> str:
        from shared.ipfilter import parse_allowlist

        parse_allowlist(value)
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _no_trailing_slash(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]

    @property
    def embedded(self) -> bool:
        """True when neither Redis nor RabbitMQ is configured: run on in-process backends."""
        return self.redis_url is None and self.rabbitmq_url is None


_SECRET_NAME = re.compile(r"URL|DSN|TOKEN|KEY|SECRET|PASSWORD|ACCOUNT", re.IGNORECASE)


def env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    """The environment variable a field is read from (its first alias)."""
    alias = settings_cls.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field_name.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            name = env_name(Settings, field) if field in Settings.model_fields else field
            if not error["loc"] or _SECRET_NAME.search(name):
                problems.append(f"{name}: {error['msg']}")  # the input may hold secrets
            else:
                problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def settings_table() -> str:
    """Every setting as a Markdown table (``python -m shared.config`` writes docs/configuration.md)."""
    rows = ["| variable | also read as | default | notes |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else []
        names = names or [name.upper()]
        default = field.get_default(call_default_factory=True)
        shown = "—" if default in ("", None, [], {}) else f"`{default}`"
        if isinstance(default, SecretStr):
            shown = "—"
        notes = (field.description or "").replace("|", "\\|")
        aliases = ", ".join(f"`{n}`" for n in names[1:])
        rows.append(f"| `{names[0]}` | {aliases} | {shown} | {notes} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(
        "# Configuration reference\n\nGenerated from `shared/config.py` by `python -m shared.config`; "
        "durations take seconds or Go durations (`10m`).\n\n" + settings_table(),
        end="",
    )
