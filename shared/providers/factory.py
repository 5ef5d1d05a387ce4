"""Build agent providers from settings: each backend wrapped in retries, a circuit breaker and an
optional shared rate limit, chained with the configured fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.config import Settings
from shared.errors import ConfigError, UnsupportedProvider
from shared.providers.base import AgentProvider
from shared.providers.registry import build_provider
from shared.providers.resilience import FallbackChain, RedisRateLimiter, ResilientProvider


def _agent_engine(settings: Settings) -> AgentProvider:
    from shared.providers.agent_engine import AgentEngineProvider

    if not (settings.google_project_id and settings.reasoning_engine_id):
        raise ConfigError("google_agent_engine needs GOOGLE_PROJECT_ID and REASONING_ENGINE_ID")
    return AgentEngineProvider(
        settings.google_project_id,
        settings.google_region,
        settings.reasoning_engine_id,
        credentials_json=settings.google_credentials_json or None,
        class_method=settings.agent_engine_class_method,
        timeout_s=settings.agent_timeout,
        api_endpoint=settings.agent_engine_api_endpoint or None,
        stream_class_method=settings.agent_engine_stream_class_method or None,
    )


def _eai(settings: Settings) -> AgentProvider:
    from shared.providers.eai import EAIProvider

    return EAIProvider(
        settings.eai_agent_service_url, settings.eai_agent_service_token, timeout_s=settings.agent_timeout
    )


def _openai(settings: Settings) -> AgentProvider:
    from shared.providers.openai_compat import OpenAICompatibleProvider

    return OpenAICompatibleProvider(
        settings.openai_base_url,
        settings.openai_api_key,
        settings.openai_model,
        settings.openai_system_prompt or None,
        timeout_s=settings.agent_timeout,
    )


def _mock(settings: Settings) -> AgentProvider:
    from shared.providers.mock import MockProvider

    return MockProvider(
        latency_ms=settings.mock_agent_latency_ms,
        chunk_delay_ms=settings.mock_agent_chunk_delay_ms,
        failure_rate=settings.mock_agent_failure_rate,
        call_log=settings.mock_agent_call_log or None,
    )


BACKENDS: dict[str, Callable[[Settings], AgentProvider]] = {
    "google_agent_engine": _agent_engine,
    "eai": _eai,
    "openai": _openai,
    "mock": _mock,
}


def build_resilient(name: str, settings: Settings, redis_client: Any) -> AgentProvider:
    """One backend with retries, breaker and (when configured) the shared rate limit."""
    factories = {key: (lambda make=make: make(settings)) for key, make in BACKENDS.items()}
    try:
        backend = build_provider(name, factories)
    except ConfigError as exc:
        # A message asked for a backend this deployment has no settings for: final for that message.
        raise UnsupportedProvider(f"provider {name!r} is not configured here: {exc}") from None
    limiter = None
    if settings.agent_rate_limit_per_minute:
        limiter = RedisRateLimiter(
            redis_client,
            f"{settings.redis_key_prefix}rate_limit:agent:{name}",
            settings.agent_rate_limit_per_minute,
        )
    return ResilientProvider(
        backend,
        max_attempts=settings.agent_max_attempts,
        breaker_fail_max=settings.agent_breaker_fail_max,
        breaker_reset_s=settings.agent_breaker_reset,
        rate_limiter=limiter,
    )


def build_agent(
    name: str, settings: Settings, redis_client: Any, backends: Callable[[str], AgentProvider]
) -> AgentProvider:
    """The provider for messages asking for ``name``: it, then the configured fallbacks in order."""
    chain = [name, *(fallback for fallback in settings.agent_fallback_providers if fallback != name)]
    if len(chain) == 1:
        return backends(name)
    return FallbackChain([backends(each) for each in chain])
