from __future__ import annotations

import pytest

from shared.config import load_settings, parse_duration
from shared.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(600, 600.0), ("120", 120.0), ("120s", 120.0), ("10m", 600.0), ("1h30m", 5400.0), ("500ms", 0.5)],
)
def test_durations_accept_python_and_go_forms(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["abc", "10x", "m10", ""])
def test_bad_durations_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="Go duration"):
        parse_duration(raw)


def test_defaults_match_the_go_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.port == 8000
    assert settings.task_status_ttl == 600
    assert settings.task_result_ttl == 120
    assert settings.rabbitmq_exchange == "eai_gateway"
    assert settings.rabbitmq_queue == "user_messages"
    assert settings.rabbitmq_dlq == "user_messages_dlq"
    assert settings.rabbitmq_message_ttl_ms == 300_000
    assert settings.embedded


def test_go_variable_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_DSN", "redis://cache:6379/1")
    monkeypatch.setenv("REDIS_TASK_STATUS_TTL", "15m")
    monkeypatch.setenv("RABBITMQ_USER_QUEUE", "legacy_queue")
    monkeypatch.setenv("GOOGLE_AGENT_ENGINE_REQUEST_TIMEOUT", "1800s")
    settings = load_settings()
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.task_status_ttl == 900
    assert settings.rabbitmq_queue == "legacy_queue"
    assert settings.agent_timeout == 1800
    assert not settings.embedded


def test_bad_values_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("REDIS_TASK_RESULT_TTL", "2 minutes")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "PORT:" in str(caught.value)
    assert "REDIS_TASK_RESULT_TTL:" in str(caught.value)


def test_webhook_status_is_202_or_201(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SUCCESS_STATUS", "201")
    assert load_settings().webhook_success_status == 201
    monkeypatch.setenv("WEBHOOK_SUCCESS_STATUS", "200")
    with pytest.raises(ConfigError, match="WEBHOOK_SUCCESS_STATUS"):
        load_settings()


def test_configuration_reference_is_current() -> None:
    from pathlib import Path

    from shared.config import settings_table

    document = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert document.endswith(settings_table()), (
        "regenerate with: python -m shared.config > docs/configuration.md"
    )
    assert "| `REDIS_URL` | `REDIS_DSN` |" in document
