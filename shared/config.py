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

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigError

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


Seconds = Annotated[float, BeforeValidator(parse_duration)]
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
    webhook_success_status: Literal[201, 202] = Field(202, validation_alias=_env("WEBHOOK_SUCCESS_STATUS"))

    # --- Redis ------------------------------------------------------------------------------
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "REDIS_DSN"))
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
    pubsub_topic: str = Field("", validation_alias=_env("PUBSUB_TOPIC"))

    # --- Agents -----------------------------------------------------------------------------
    agent_provider: str = Field(
        "google_agent_engine", validation_alias=_env("AGENT_PROVIDER", "DEFAULT_PROVIDER")
    )
    agent_fallback_providers: CommaList = Field(
        default_factory=list, validation_alias=_env("AGENT_FALLBACK_PROVIDERS")
    )
    agent_timeout: Seconds = Field(
        1800, gt=0, validation_alias=_env("AGENT_TIMEOUT", "GOOGLE_AGENT_ENGINE_REQUEST_TIMEOUT")
    )
    mock_agent_latency_ms: float = Field(0, ge=0, validation_alias=_env("MOCK_AGENT_LATENCY_MS"))

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

    # --- Security: rate limits, idempotency, input, CORS -------------------------------------
    rate_limit_enabled: bool = Field(True, validation_alias=_env("RATE_LIMIT_ENABLED"))
    rate_limit_requests_per_minute: int = Field(
        1000, ge=1, validation_alias=_env("RATE_LIMIT_REQUESTS_PER_MINUTE", "RATE_LIMIT_REQUESTS")
    )
    rate_limit_burst: int = Field(100, ge=1, validation_alias=_env("RATE_LIMIT_BURST"))
    rate_limit_burst_window: Seconds = Field(
        10, gt=0, le=60, validation_alias=_env("RATE_LIMIT_BURST_WINDOW")
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url", "rabbitmq_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins")
    @classmethod
    def _no_trailing_slash(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]

    @property
    def embedded(self) -> bool:
        """True when neither Redis nor RabbitMQ is configured: run on in-process backends."""
        return self.redis_url is None and self.rabbitmq_url is None


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
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = env_name(Settings, field) if field in Settings.model_fields else field
            problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
