"""Real credentials and phone numbers fed through the app never reach the captured logs."""

from __future__ import annotations

import io
import json
import logging
import time

import jwt
import pytest

from shared.observability import SanitizingFilter, configure_logging, mask_phone
from tests.conftest import ADMIN_TOKEN, JWT_SECRET, SENDER_KEY, SENDER_TOKEN

PHONE = "5521987654321"


@pytest.fixture
def captured(make_gateway):
    stream = io.StringIO()
    client, runtime = make_gateway(log_level="DEBUG", rate_limit_per_user_number_per_minute=1)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(runtime.settings, stream)
    yield client, stream
    root.handlers, root.level = saved


def test_tokens_keys_jwts_and_numbers_never_logged(captured):
    client, stream = captured
    token = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60, "role": "admin"}, JWT_SECRET, algorithm="HS256"
    )
    expired = jwt.encode({"sub": "x", "exp": int(time.time()) - 600}, JWT_SECRET, algorithm="HS256")
    body = {"user_number": PHONE, "message": "oi"}
    webhook = "/api/v1/message/webhook/user"
    client.post(webhook, json=body, headers={"Authorization": f"Bearer {SENDER_TOKEN}"})
    client.post(webhook, json=body, headers={"X-API-Key": SENDER_KEY})  # per-number 429, logged at info
    client.post(webhook, json=body, headers={"Authorization": f"Bearer {expired}"})  # 401, logged
    client.post(webhook, json=body, headers={"Authorization": f"Bearer {SENDER_TOKEN}x"})
    client.get("/health", headers={"Authorization": f"Bearer {token}"})
    client.get("/metrics", headers={"X-API-Key": "wrong-" + SENDER_KEY})
    # What careless code could log: headers, URLs, exceptions carrying credentials.
    log = logging.getLogger("shared.careless")
    log.info("headers %s", {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-API-Key": SENDER_KEY})
    log.info("raw token %s then key %s", ADMIN_TOKEN, SENDER_KEY)
    log.warning("connecting", extra={"url": "redis://user:hunter2pass@redis:6379/0", "api_key": SENDER_KEY})
    log.info("jwt", extra={"context": {"token_seen": token, "nested": [f"Bearer {token}"]}})
    log.info("user %s wrote", PHONE, extra={"user_number": "+" + PHONE})
    try:
        raise RuntimeError(f"upstream refused Authorization: Bearer {ADMIN_TOKEN}")
    except RuntimeError:
        log.exception("failure")
    output = stream.getvalue()
    assert output.count("\n") >= 8
    for secret in (ADMIN_TOKEN, SENDER_TOKEN, SENDER_KEY, token, expired, JWT_SECRET, "hunter2pass"):
        assert secret not in output
    info_and_up = [
        json.loads(line) for line in output.splitlines() if json.loads(line)["severity"] != "DEBUG"
    ]
    assert all(PHONE not in json.dumps(entry) for entry in info_and_up)
    assert "*********4321" in output
    assert any(entry["message"] == "authentication failed" for entry in info_and_up)
    assert all(entry.get("request_id") for entry in info_and_up if entry["logger"].startswith("shared.http"))


def test_request_id_is_carried_into_logs(captured):
    client, stream = captured
    client.get("/health", headers={"X-API-Key": "bad", "X-Request-ID": "trace-77"})
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(e["message"] == "authentication failed" and e["request_id"] == "trace-77" for e in entries)


def test_debug_records_keep_numbers_but_not_secrets():
    record = logging.makeLogRecord(
        {"msg": "n=%s t=%s", "args": (PHONE, f"token={ADMIN_TOKEN}"), "levelno": logging.DEBUG}
    )
    SanitizingFilter().filter(record)
    assert PHONE in record.getMessage() and ADMIN_TOKEN not in record.getMessage()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("from 5521987654321.", "from *********4321."),
        ("+5521987654321", "**********4321"),
        ("id 3f0c9a1e-8b2d-4c6f-9e1a-123456789012", "id 3f0c9a1e-8b2d-4c6f-9e1a-123456789012"),
        ("took 1234 ms", "took 1234 ms"),
    ],
)
def test_mask_phone(text, masked):
    assert mask_phone(text) == masked
