from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.audio import detect_audio
from shared.errors import InvalidMessage
from shared.models import (
    MessageType,
    PushEnvelope,
    QueueMessage,
    WebhookRequest,
    go_json,
    go_timestamp,
    new_message_id,
    normalize_message_id,
)


def fields_in_error(body: dict[str, object]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        WebhookRequest.model_validate(body)
    return {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"user_number", "message"}),
        ({"user_number": "", "message": "oi"}, {"user_number"}),
        ({"user_number": "  ", "message": "oi"}, {"user_number"}),
        ({"user_number": "5521999999999", "message": "   "}, {"message"}),
        ({"user_number": 5521, "message": "oi"}, {"user_number"}),
        ({"user_number": "5521999999999", "message": ["oi"]}, {"message"}),
        ({"user_number": "55 21", "message": "oi"}, {"user_number"}),
        ({"user_number": "5521999999999", "message": "Olá", "message_type": "audio"}, {"message"}),
        ({"user_number": "5521999999999", "message": "oi", "message_type": "video"}, {"message_type"}),
        ({"user_number": "5521999999999", "message": "oi", "provider": "letta"}, {"provider"}),
        ({"user_number": "5521999999999", "message": "oi", "callback_url": "ftp://x/y"}, {"callback_url"}),
        ({"user_number": "5521999999999", "message": "oi", "callback_url": "https://"}, {"callback_url"}),
        ({"user_number": "5521999999999", "message": "oi", "metadata": "x"}, {"metadata"}),
        (
            {"user_number": "5521999999999", "message": "oi", "reasoning_engine_id": "a/b"},
            {"reasoning_engine_id"},
        ),
    ],
)
def test_invalid_webhook_bodies_name_the_field(body: dict[str, object], fields: set[str]) -> None:
    assert fields_in_error(body) == fields


def test_empty_optional_strings_count_as_absent() -> None:
    request = WebhookRequest.model_validate(
        {"user_number": " 5521999999999 ", "message": "oi", "callback_url": "", "previous_message": ""}
    )
    assert request.user_number == "5521999999999"
    assert request.callback_url is None
    assert request.previous_message is None


@pytest.mark.parametrize(
    ("message", "declared", "expected"),
    [
        ("Olá", None, MessageType.TEXT),
        ("https://whatsapp.dados.rio/a/voice.ogg", None, MessageType.AUDIO),
        ("https://whatsapp.dados.rio/a/voice.OPUS?sig=1&x=2", None, MessageType.AUDIO),
        ("see https://x.rio/a.ogg now", None, MessageType.TEXT),
        ("file.ogg", None, MessageType.TEXT),
        ("https://x.rio/a.ogg", "text", MessageType.TEXT),
    ],
)
def test_message_type_is_declared_or_detected(
    message: str, declared: str | None, expected: MessageType
) -> None:
    body = {"user_number": "5521999999999", "message": message, "message_type": declared}
    assert WebhookRequest.model_validate(body).resolved_type() is expected


def test_audio_detection_ignores_query_strings_but_needs_http() -> None:
    assert detect_audio("http://h/x.m4a?a=b")
    assert not detect_audio("ftp://h/x.m4a")


def test_queue_body_is_the_go_body_byte_for_byte() -> None:
    message = QueueMessage(
        id="3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f70",
        user_number="5521999999999",
        message="Olá <b>&",
        previous_message="Texto HSM",
        provider="google_agent_engine",
        timestamp="2026-05-12T13:45:01.123456789Z",
        metadata={"source": "webhook", "request_id": "r1"},
        reasoning_engine_id="123",
    )
    assert (
        message.to_body()
        == (
            '{"id":"3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f70","type":"user_message",'
            '"user_number":"5521999999999","message":"Olá \\u003cb\\u003e\\u0026",'
            '"previous_message":"Texto HSM","provider":"google_agent_engine",'
            '"timestamp":"2026-05-12T13:45:01.123456789Z",'
            '"metadata":{"request_id":"r1","source":"webhook"},"reasoning_engine_id":"123"}'
        ).encode()
    )


def test_queue_body_drops_empty_optional_fields() -> None:
    body = json.loads(QueueMessage(id="a", user_number="1", message="m", timestamp="t").to_body())
    assert list(body) == ["id", "type", "user_number", "message", "provider", "timestamp"]


def test_queue_message_decodes_go_bodies_and_rejects_garbage() -> None:
    go_body = b'{"id":"x","type":"user_message","user_number":"1","message":"m","provider":"p","extra":1}'
    assert QueueMessage.from_body(go_body).provider == "p"
    for garbage in (b"not json", b"[]", b'{"id":"x"}', b'{"id":"","user_number":"1","message":"m"}'):
        with pytest.raises(InvalidMessage):
            QueueMessage.from_body(garbage)


def test_go_timestamp_trims_trailing_zeros_and_reads_nanoseconds() -> None:
    moment = datetime(2026, 5, 12, 13, 45, 1, 120000, tzinfo=UTC)
    assert go_timestamp(moment) == "2026-05-12T13:45:01.12Z"
    assert go_timestamp(moment.replace(microsecond=0)) == "2026-05-12T13:45:01Z"
    parsed = QueueMessage(id="a", user_number="1", message="m", timestamp="2026-05-12T13:45:01.123456789Z")
    assert parsed.accepted_at() == datetime(2026, 5, 12, 13, 45, 1, 123456, tzinfo=UTC)


def test_go_json_escapes_like_go() -> None:
    assert go_json({"a": "<&>\u2028é"}) == '{"a":"\\u003c\\u0026\\u003e\\u2028é"}'.encode()


def test_push_envelope_round_trip() -> None:
    envelope = PushEnvelope.wrap(
        b'{"id":"x"}', message_id="42", attributes={"k": "v"}, delivery_attempt=3, subscription="s"
    )
    decoded = PushEnvelope.model_validate_json(envelope.to_json())
    assert decoded.payload() == b'{"id":"x"}'
    assert decoded.delivery_attempt == 3
    wire = json.loads(envelope.to_json())
    assert set(wire) == {"message", "subscription", "deliveryAttempt"}
    assert set(wire["message"]) == {"data", "attributes", "messageId", "publishTime"}


def test_push_envelope_rejects_bad_base64() -> None:
    envelope = PushEnvelope.model_validate({"message": {"data": "!!!"}})
    with pytest.raises(InvalidMessage):
        envelope.payload()


def test_message_ids_are_lowercase_uuid4() -> None:
    message_id = new_message_id()
    assert message_id == message_id.lower()
    assert message_id[14] == "4"
    assert normalize_message_id(message_id.upper()) == message_id
    with pytest.raises(ValueError, match="UUID"):
        normalize_message_id("123")
