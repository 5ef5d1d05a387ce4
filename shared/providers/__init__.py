"""Agent providers: one interface (:class:`~shared.providers.base.AgentProvider`), many backends."""
