"""Choosing a provider by name (the composition root supplies the factories)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shared.errors import UnsupportedProvider
from shared.providers.base import AgentProvider

KNOWN_PROVIDERS = ("google_agent_engine", "eai", "openai", "mock")


def build_provider(name: str, factories: Mapping[str, Callable[[], AgentProvider]]) -> AgentProvider:
    """Build the provider registered as ``name``.

    Raises :class:`UnsupportedProvider` naming the providers this deployment offers.
    """
    factory = factories.get(name)
    if factory is None:
        known = ", ".join(sorted(factories)) or "none"
        raise UnsupportedProvider(f"unsupported provider {name!r}; this deployment offers: {known}")
    return factory()
