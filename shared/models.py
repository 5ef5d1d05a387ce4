"""Wire models: webhook requests and answers, the queue message, the push envelope, poll bodies.

The queue message and the Redis values keep the Go gateway's exact shapes so that both systems can
share one broker and one Redis during the migration (see ``reference/go-gateway.md`` §3.4 and §4).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.errors import InvalidMessage

MAX_CALLBACK_URL_LENGTH = 2048
MAX_AUDIO_URL_LENGTH = 2048
DEFAULT_MAX_MESSAGE_CHARS = 4096
_E164 = re.compile(r"^\+?[0-9]{8,15}$")
_ENGINE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aac", "webm"})


def url_extension(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    name = parts.path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    return name.rsplit(".", 1)[1].lower()


def detect_audio(message: str) -> bool:
    """True when the whole message is one http(s) URL whose path ends with an audio extension.

    The extension is matched case-insensitively on the URL *path*, so query strings and fragments
    (``…/a.ogg?sig=…``) do not defeat detection; text around the URL makes it a text message.
    """
    text = message.strip()
    if not text or any(ch.isspace() for ch in text):
        return False
    return url_extension(text) in AUDIO_EXTENSIONS


class MessageType(StrEnum):
    TEXT = "text"
    AUDIO = "audio"


class TaskStatus(StrEnum):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class WebhookRequest(BaseModel):
    """Body of ``POST /api/v1/message/webhook/user`` (the Go fields plus the seed's ``message_type``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    user_number: str = Field(
        description=(
            "The user's phone number, E.164 digits with an optional leading `+` (8-15 digits); stored "
            "exactly as sent (trimmed): it is also the agent thread id."
        ),
        examples=["5521999999999"],
        pattern=r"^\s*\+?[0-9]{8,15}\s*$",
    )
    message_type: MessageType | None = Field(
        None, description="`text` or `audio`; when absent, audio is detected from the URL."
    )
    message: str = Field(
        description=(
            "The user's text (at most MAX_MESSAGE_CHARS characters, default 4096), or the http(s) URL "
            "of a voice note."
        ),
        min_length=1,
    )
    previous_message: str | None = Field(
        None, description="Text the system sent the user before (injected as an `ai` history message)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form, forwarded to the queue.")
    provider: Literal["google_agent_engine", "eai", "openai", "mock"] | None = Field(
        None, description="Agent provider; the deployment's default when absent."
    )
    priority: Literal["high", "normal"] | None = Field(
        None,
        description="`high` messages overtake `normal` ones waiting in the queue (never a user's earlier "
        "messages); the default depends on the message type (DEFAULT_PRIORITY_TEXT / _AUDIO).",
    )
    callback_url: str | None = Field(None, description="URL that receives the result by POST.")
    reasoning_engine_id: str | None = Field(
        None, description="Overrides the default Vertex AI reasoning engine for this message."
    )

    @field_validator("user_number", mode="before")
    @classmethod
    def _check_user_number(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if not _E164.match(value):
            raise ValueError(
                "must be a phone number in E.164 form: 8 to 15 digits with an optional leading '+', "
                "e.g. 5521999999999"
            )
        return value

    @field_validator("message")
    @classmethod
    def _check_message(cls, value: str, info: ValidationInfo) -> str:
        """Text: at most ``max_message_chars`` (validation context) characters; audio: an http(s) URL."""
        if not value.strip():
            raise ValueError("must not be empty")
        declared = info.data.get("message_type")
        audio = declared == MessageType.AUDIO if declared is not None else detect_audio(value)
        if audio:
            text = value.strip()
            parts = urlsplit(text)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
                raise ValueError("must be an http or https URL when message_type is audio")
            if len(text) > MAX_AUDIO_URL_LENGTH:
                raise ValueError(f"an audio URL must be at most {MAX_AUDIO_URL_LENGTH} characters")
            return value
        context = info.context if isinstance(info.context, dict) else {}
        limit = int(context.get("max_message_chars", DEFAULT_MAX_MESSAGE_CHARS))
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value

    @field_validator("previous_message", "reasoning_engine_id", "callback_url", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("reasoning_engine_id")
    @classmethod
    def _check_engine_id(cls, value: str | None) -> str | None:
        if value is not None and not _ENGINE_ID.match(value):
            raise ValueError("must be 1-128 letters, digits, '-' or '_'")
        return value

    @field_validator("callback_url")
    @classmethod
    def _check_callback_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > MAX_CALLBACK_URL_LENGTH:
            raise ValueError(f"must be at most {MAX_CALLBACK_URL_LENGTH} characters")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        return value

    def resolved_type(self) -> MessageType:
        """The declared message type, or the one detected from the message."""
        if self.message_type is not None:
            return self.message_type
        return MessageType.AUDIO if detect_audio(self.message) else MessageType.TEXT


class WebhookAccepted(BaseModel):
    """Answer of the webhook once the broker confirmed the message."""

    message_id: str
    status: Literal["processing"] = "processing"
    polling_endpoint: str
    estimated_wait_time: int = Field(description="Seconds until the answer is likely ready.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx the gateway answers on purpose has this shape."""

    error: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_json(document: Any) -> bytes:
    """Compact JSON byte-identical to Go's ``json.Marshal`` (which escapes ``<``, ``>`` and ``&``)."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    # str.translate with a dict looks up every character; skip it when nothing needs escaping.
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = text.translate(_GO_ESCAPES)
    return text.encode()


def go_timestamp(moment: datetime) -> str:
    """RFC 3339 with up to nanosecond digits and trailing zeros trimmed, as Go's RFC3339Nano."""
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


class QueueMessage(BaseModel):
    """The message the webhook publishes to ``user_messages``, field for field the Go body."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str = "user_message"
    user_number: str
    message: str
    previous_message: str | None = None
    provider: str = "google_agent_engine"
    timestamp: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    reasoning_engine_id: str | None = None

    def to_body(self) -> bytes:
        """JSON in Go's field order, empty optional fields dropped, HTML characters unescaped."""
        document: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "user_number": self.user_number,
            "message": self.message,
        }
        if self.previous_message:
            document["previous_message"] = self.previous_message
        document["provider"] = self.provider
        document["timestamp"] = self.timestamp
        if self.metadata:
            document["metadata"] = dict(sorted(self.metadata.items()))
        if self.reasoning_engine_id:
            document["reasoning_engine_id"] = self.reasoning_engine_id
        return go_json(document)

    @classmethod
    def from_body(cls, body: bytes) -> QueueMessage:
        """Decode a queue body; raise :class:`InvalidMessage` when it is not a user message."""
        try:
            message = cls.model_validate_json(body)
        except ValueError as exc:
            raise InvalidMessage(f"queue message is not a valid user message: {exc}") from None
        if not message.id or not message.user_number:
            raise InvalidMessage("queue message lacks id or user_number")
        return message

    @property
    def message_type(self) -> MessageType:
        declared = self.metadata.get("message_type")
        if declared in (MessageType.TEXT, MessageType.AUDIO):
            return MessageType(declared)
        return MessageType.AUDIO if detect_audio(self.message) else MessageType.TEXT

    def accepted_at(self) -> datetime | None:
        """When the webhook accepted the message (from the Go ``timestamp`` field)."""
        text = self.timestamp
        if not text:
            return None
        # Python parses at most microseconds: cut Go's nanoseconds.
        match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
        if not match:
            return None
        head, fraction, zone = match.groups()
        fraction = (fraction or "")[:7]
        try:
            return datetime.fromisoformat(head + fraction + ("+00:00" if zone == "Z" else zone))
        except ValueError:
            return None


class PushEnvelope(BaseModel):
    """A Pub/Sub push request body, as the bridge or a Pub/Sub push subscription sends it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message: PushMessage
    subscription: str = ""
    delivery_attempt: int = Field(1, alias="deliveryAttempt", ge=1)

    @classmethod
    def wrap(
        cls,
        body: bytes,
        *,
        message_id: str,
        attributes: dict[str, str],
        delivery_attempt: int,
        subscription: str,
    ) -> PushEnvelope:
        return cls(
            message=PushMessage(
                data=base64.b64encode(body).decode(),
                attributes=attributes,
                messageId=message_id,
                publishTime=go_timestamp(datetime.now(UTC)),
            ),
            subscription=subscription,
            deliveryAttempt=delivery_attempt,
        )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def payload(self) -> bytes:
        """The original queue body carried in ``message.data``."""
        try:
            return base64.b64decode(self.message.data, validate=True)
        except ValueError:
            raise InvalidMessage("push envelope message.data is not base64") from None


class PushMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data: str
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str = Field("", alias="messageId")
    publish_time: str = Field("", alias="publishTime")


PushEnvelope.model_rebuild()


def new_message_id() -> str:
    """A lowercase canonical UUIDv4, as the Go gateway creates."""
    return str(uuid.uuid4())


def normalize_message_id(raw: str) -> str:
    """Return the canonical lowercase form of a UUID or raise ``ValueError``."""
    text = raw.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text):
        raise ValueError("must be a UUID such as 3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f70")
    return text.lower()
