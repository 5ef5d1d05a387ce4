"""Input validation, idempotency, per-number limits, CORS and HSTS on the webhook (embedded backends)."""

from __future__ import annotations

import json

import pytest

from shared.errors import QueueUnavailable
from tests.conftest import SENDER_KEY, SENDER_TOKEN

URL = "/api/v1/message/webhook/user"
AUTH = {"Authorization": f"Bearer {SENDER_TOKEN}"}


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


def post(client, body, headers=None, **kwargs):
    return client.post(URL, json=body, headers={**AUTH, **(headers or {})}, **kwargs)


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("5521999999999", True),
        ("+5521999999999", True),
        ("  5521999999999 ", True),
        ("12345678", True),
        ("123456789012345", True),
        ("1234567", False),
        ("1234567890123456", False),
        ("55 21 99999-9999", False),
        ("++5521999999999", False),
        ("5521999999999@c.us", False),
        ("abc", False),
        ("", False),
    ],
)
def test_user_number_is_e164(gateway, number, ok):
    client, runtime = gateway
    response = post(client, {"user_number": number, "message": "oi"})
    if ok:
        assert response.status_code == 202, response.json
        assert json.loads(runtime.broker.get(0).body)["user_number"] == number.strip()
    else:
        assert response.status_code == 400
        assert response.json["field"] == "user_number"


def test_ordinary_text_that_looks_like_code_is_accepted(gateway):
    client, runtime = gateway
    for text in ("conta=1", "<script>alert(1)</script>", "'; DROP TABLE users; --", "1 OR 1=1"):
        response = post(client, {"user_number": "5521999999999", "message": text})
        assert response.status_code == 202
        assert json.loads(runtime.broker.get(0).body)["message"] == text


def test_message_length_is_limited_by_setting(make_gateway):
    client, _ = make_gateway(max_message_chars=10)
    assert post(client, {"user_number": "5521999999999", "message": "é" * 10}).status_code == 202
    response = post(client, {"user_number": "5521999999999", "message": "é" * 11})
    assert response.status_code == 400 and response.json["field"] == "message"


@pytest.mark.parametrize(
    ("message", "ok"),
    [
        ("https://cdn.example.com/voice.ogg", True),
        ("http://cdn.example.com/v?id=1", True),
        ("ftp://cdn.example.com/voice.ogg", False),
        ("file:///etc/passwd", False),
        ("just some text", False),
    ],
)
def test_audio_must_be_an_http_url(gateway, message, ok):
    client, _ = gateway
    response = post(client, {"user_number": "5521999999999", "message": message, "message_type": "audio"})
    assert response.status_code == (202 if ok else 400)
    if not ok:
        assert response.json["field"] == "message"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("Application/JSON", 202),
        ("application/vnd.eai+json", 202),
        (None, 202),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
    ],
)
def test_content_type(gateway, content_type, status):
    client, _ = gateway
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(
        URL, data=json.dumps({"user_number": "5521999999999", "message": "oi"}), headers=headers
    )
    assert response.status_code == status
    assert response.is_json


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"user_number": "5521999999999", "message": "x", "metadata": {"a": ' + "[" * 40 + "]" * 40 + "}}",
        '{"user_number": "5521999999999", "message": "x", "metadata": {"n": NaN}}',
        '{"user_number": "5521999999999", "message": "\\ud800"}',
    ],
    ids=["deep-array", "deep-metadata", "nan", "lone-surrogate"],
)
def test_hostile_json_is_a_400(gateway, raw):
    client, runtime = gateway
    response = client.post(URL, data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.data[:200]
    assert response.json["field"] == "body"
    assert runtime.broker.depth() == 0


# --- idempotency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "metadata"),
    [
        ({"Idempotency-Key": "order-42"}, {}),
        ({}, {"message_id": "wamid.HBgMNTUyMTk5OTk5OTk5FQIAEhgg"}),
        ({}, {"wamid": "wamid.HBgMNTUyMTk5OTk5OTk5FQIAEhgg"}),
        ({"Idempotency-Key": "ü with spaces and a very long tail " * 3}, {}),
    ],
    ids=["header", "metadata.message_id", "metadata.wamid", "header-unsafe-chars"],
)
def test_duplicates_return_the_first_answer_and_queue_once(gateway, headers, metadata):
    client, runtime = gateway
    if not headers.get("Idempotency-Key", "x").isascii():
        headers = {"Idempotency-Key": "with spaces and a very long tail / " * 3}
    body = {"user_number": "5521999999999", "message": "oi", "metadata": metadata}
    first = post(client, body, headers)
    second = post(client, body, headers)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json["message_id"] == first.json["message_id"]
    assert second.json["status"] == "processing"
    assert second.json["polling_endpoint"] == first.json["polling_endpoint"]
    assert runtime.broker.depth() == 1


def test_idempotency_keys_are_per_client(gateway):
    client, runtime = gateway
    body = {"user_number": "5521999999999", "message": "oi"}
    a = post(client, body, {"Idempotency-Key": "k1"})
    b = client.post(URL, json=body, headers={"X-API-Key": SENDER_KEY, "Idempotency-Key": "k1"})
    assert a.status_code == b.status_code == 202
    assert a.json["message_id"] != b.json["message_id"]
    assert runtime.broker.depth() == 2


def test_bad_idempotency_key_is_a_400(gateway):
    client, _ = gateway
    response = post(client, {"user_number": "5521999999999", "message": "oi"}, {"Idempotency-Key": "x" * 300})
    assert response.status_code == 400 and response.json["field"] == "Idempotency-Key"


def test_failed_publish_releases_the_key(gateway, monkeypatch):
    client, runtime = gateway
    body = {"user_number": "5521999999999", "message": "oi"}

    def refuse(_body: bytes, **_options: object) -> None:
        raise QueueUnavailable("broker down")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.publisher, "publish", refuse)
        assert post(client, body, {"Idempotency-Key": "retry-me"}).status_code == 503
    retried = post(client, body, {"Idempotency-Key": "retry-me"})
    assert retried.status_code == 202
    assert runtime.broker.depth() == 1


# --- per-number limit -------------------------------------------------------------------------


def test_per_number_limit(make_gateway):
    client, runtime = make_gateway(rate_limit_per_user_number_per_minute=3)
    for _ in range(3):
        assert post(client, {"user_number": "5521988887777", "message": "oi"}).status_code == 202
    refused = post(client, {"user_number": "+5521988887777", "message": "oi"})
    assert refused.status_code == 429
    assert refused.json["error"] == "Rate limit exceeded"
    assert refused.json["limit"] == 3 and refused.json["window"] == 60
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # another user is not starved
    assert post(client, {"user_number": "5521911112222", "message": "oi"}).status_code == 202
    assert runtime.broker.depth() == 4


def test_number_limit_refusal_leaves_no_record_and_no_gap_in_the_order(make_gateway):
    """The refused message was recorded in the same round trip as the limit check: it is withdrawn."""
    client, runtime = make_gateway(rate_limit_per_user_number_per_minute=1)
    assert post(client, {"user_number": "5521988887777", "message": "oi"}).status_code == 202
    assert post(client, {"user_number": "5521988887777", "message": "de novo"}).status_code == 429
    redis_client, store = runtime.store.client, runtime.store
    assert len(list(redis_client.scan_iter(match=store.key("task:status", "*")))) == 1
    assert len(list(redis_client.scan_iter(match=store.key("task:summary", "*")))) == 1
    assert len(list(redis_client.scan_iter(match=store.key("task:stream", "*")))) == 1
    # Sequence 2 went to the refused message; it is settled so that message 3 will not wait for it.
    assert redis_client.smembers(store.key("user:order:done", "{5521988887777}")) == {"2"}
    assert runtime.broker.depth() == 1


def test_duplicate_does_not_consume_the_number_budget(make_gateway):
    client, _ = make_gateway(rate_limit_per_user_number_per_minute=1)
    body = {"user_number": "5521988887777", "message": "oi"}
    assert post(client, body, {"Idempotency-Key": "a"}).status_code == 202
    assert post(client, body, {"Idempotency-Key": "a"}).status_code == 200


# --- headers ----------------------------------------------------------------------------------


def test_hsts_only_over_https(gateway):
    client, _ = gateway
    assert "Strict-Transport-Security" not in client.get("/live").headers
    over_tls = client.get("/live", headers={"X-Forwarded-Proto": "https"})
    assert over_tls.headers["Strict-Transport-Security"].startswith("max-age=")


def test_cors_exact_origins_and_preflight(make_gateway):
    client, _ = make_gateway(cors_origins=" https://app.example.com/ , https://admin.example.com")
    preflight = client.open(
        URL,
        method="OPTIONS",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    for origin in ("https://app.example.com.evil.net", "https://evil.net", "null", "*"):
        other = client.open(URL, method="OPTIONS", headers={"Origin": origin})
        assert other.status_code == 204
        assert "Access-Control-Allow-Origin" not in other.headers
        assert "Access-Control-Allow-Methods" not in other.headers
    simple = client.get("/live", headers={"Origin": "https://admin.example.com"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://admin.example.com"
    assert "X-RateLimit-Remaining" in simple.headers["Access-Control-Expose-Headers"]


def test_request_id_is_echoed_and_queued(gateway):
    client, runtime = gateway
    response = post(client, {"user_number": "5521999999999", "message": "oi"}, {"X-Request-ID": "req-123"})
    assert response.headers["X-Request-ID"] == "req-123"
    assert json.loads(runtime.broker.get(0).body)["metadata"]["request_id"] == "req-123"


def test_rate_limit_headers_on_limited_routes(make_gateway):
    client, _ = make_gateway(rate_limit_burst=2)
    first = post(client, {"user_number": "5521999999999", "message": "oi"})
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert 1 <= int(first.headers["X-RateLimit-Reset"]) <= 10
    post(client, {"user_number": "5521999999999", "message": "oi"})
    third = post(client, {"user_number": "5521999999999", "message": "oi"})
    assert third.status_code == 429
    assert third.json["limit"] == 2 and third.json["window"] == 10
    assert 1 <= third.json["retry_after"] <= 10
    assert third.headers["Retry-After"] == str(third.json["retry_after"])
    assert "X-RateLimit-Limit" not in client.get("/live").headers
