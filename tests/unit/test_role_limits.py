"""RATE_LIMIT_BY_ROLE gives each role its own budget (a dashboard may poll more than a sender sends)."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.runtime import build_runtime
from tests.conftest import ADMIN_TOKEN, READER_TOKEN, gateway_app, make_settings

PATH = "/api/v1/message/last-activity?user_number=5521999999999"


def answers(token: str, settings_overrides: dict[str, object], count: int) -> list[int]:
    runtime = build_runtime(make_settings(**settings_overrides))
    client = gateway_app(runtime).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    return [client.get(PATH, headers=headers).status_code for _ in range(count)]


def test_a_role_override_replaces_the_default_burst() -> None:
    overrides = {"rate_limit_burst": 2, "rate_limit_by_role": "read_only=100/4"}
    assert answers(READER_TOKEN, overrides, 5) == [404, 404, 404, 404, 429]
    assert answers(ADMIN_TOKEN, overrides, 3) == [404, 404, 429]  # admin keeps the default burst


def test_unknown_roles_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="RATE_LIMIT_BY_ROLE"):
        make_settings(rate_limit_by_role="superuser=1/1")
