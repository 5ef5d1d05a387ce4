"""The audit stream: who, what, when, result for the audited events; never message text or secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared import audit
from tests.conftest import ADMIN_TOKEN, JWT_SECRET, READER_TOKEN, SENDER_TOKEN, make_settings

WEBHOOK = "/api/v1/message/webhook/user"
TEXT = "my secret diagnosis is XYZZY-4242"
NUMBER = "5521987654321"
SENDER = {"Authorization": f"Bearer {SENDER_TOKEN}"}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    audit.configure(buffer)
    yield buffer
    audit.configure()


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def only(buffer: io.StringIO, action: str) -> dict[str, Any]:
    found = [r for r in records(buffer) if r["what"]["action"] == action]
    assert len(found) == 1, records(buffer)
    return found[0]


def assert_clean(buffer: io.StringIO) -> None:
    text = buffer.getvalue()
    for secret in (TEXT, "XYZZY", NUMBER, ADMIN_TOKEN, SENDER_TOKEN, READER_TOKEN, JWT_SECRET, "wrong-token"):
        assert secret not in text


def test_accepted_webhook_is_audited(make_gateway: Any, stream: io.StringIO) -> None:
    client, _ = make_gateway()
    response = client.post(
        WEBHOOK,
        json={"user_number": NUMBER, "message": TEXT},
        headers={**SENDER, "X-Request-ID": "req-audit-1"},
        environ_base={"REMOTE_ADDR": "10.20.30.40"},
    )
    assert response.status_code == 202
    entry = only(stream, "message.accept")
    assert entry["logger"] == "audit"
    assert entry["result"] == "accepted"
    assert entry["status"] == 202
    assert entry["what"]["resource"] == f"message:{response.get_json()['message_id']}"
    assert entry["who"]["ip"] == "10.20.30.40"
    assert entry["who"]["client"].startswith("token:")
    assert entry["when"].endswith("Z")
    assert entry["request_id"] == "req-audit-1"
    assert_clean(stream)


def test_auth_failures_and_forbidden_roles_are_audited(make_gateway: Any, stream: io.StringIO) -> None:
    client, _ = make_gateway()
    body = {"user_number": NUMBER, "message": TEXT}
    wrong = client.post(WEBHOOK, json=body, headers={"Authorization": "Bearer wrong-token-" + "w" * 30})
    assert wrong.status_code == 401
    missing = client.post(WEBHOOK, json=body)
    assert missing.status_code == 401
    forbidden = client.post(WEBHOOK, json=body, headers={"Authorization": f"Bearer {READER_TOKEN}"})
    assert forbidden.status_code == 403
    failed = [r for r in records(stream) if r["what"]["action"] == "auth.failed"]
    assert len(failed) == 2
    assert all(r["result"] == "denied" and r["status"] == 401 for r in failed)
    assert failed[0]["what"]["resource"] == f"POST {WEBHOOK}"
    assert only(stream, "auth.forbidden")["who"]["client"].startswith("token:")
    assert not [r for r in records(stream) if r["what"]["action"] == "message.accept"]
    assert_clean(stream)


def test_rate_limit_refusals_are_audited(make_gateway: Any, stream: io.StringIO) -> None:
    client, _ = make_gateway(rate_limit_burst=1)
    for _ in range(2):
        last = client.get(
            "/api/v1/message/last-activity", query_string={"user_number": NUMBER}, headers=SENDER
        )
    assert last.status_code == 429
    entry = only(stream, "ratelimit.refused")
    assert entry["status"] == 429 and entry["details"] == {"group": "poll"}
    assert_clean(stream)


def test_per_number_limit_refusals_are_audited(make_gateway: Any, stream: io.StringIO) -> None:
    client, _ = make_gateway(rate_limit_per_user_number_per_minute=1)
    statuses = [
        client.post(WEBHOOK, json={"user_number": NUMBER, "message": TEXT}, headers=SENDER).status_code
        for _ in range(2)
    ]
    assert statuses == [202, 429]
    assert only(stream, "ratelimit.refused")["who"]["client"].startswith("token:")
    assert_clean(stream)


def test_admin_access_and_ip_refusals_are_audited(make_gateway: Any, stream: io.StringIO) -> None:
    client, _ = make_gateway(ip_allowlist="admin=127.0.0.0/8")
    path = "/api/v1/message/debug/task-status"
    query = {"message_id": "00000000-0000-4000-8000-000000000000"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.get(path, query_string=query, headers=admin, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    entry = only(stream, "admin.debug")
    assert entry["who"]["ip"] == "127.0.0.1" and entry["status"] in (200, 404)
    denied = client.get(path, query_string=query, headers=admin, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert denied.status_code == 403
    entry = only(stream, "ip.denied")
    assert entry["who"]["ip"] == "198.51.100.7" and entry["details"] == {"group": "admin"}
    assert_clean(stream)


def test_start_up_configuration_names_settings_never_values(stream: io.StringIO) -> None:
    settings = make_settings(
        redis_url=None, openai_api_key="sk-live-" + "o" * 30, callback_hmac_secret="hmac-" + "h" * 30
    )
    audit.configuration(settings, component="test")
    entry = only(stream, "config.loaded")
    named = entry["details"]["settings"]
    assert named["API_TOKEN"] is True and named["JWT_SECRET"] is True and named["OPENAI_API_KEY"] is True
    assert named["DATA_RELAY_API_KEY"] is False and named["IP_ALLOWLIST"] is False
    assert "REDIS_URL" in named
    text = stream.getvalue()
    for value in ("sk-live-", "hmac-", ADMIN_TOKEN, JWT_SECRET):
        assert value not in text
    assert_clean(stream)
