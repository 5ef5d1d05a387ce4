"""Vertex AI Agent Engine (Reasoning Engines) over its REST surface.

Plain ``httpx`` + ``google-auth``: the Vertex SDK costs seconds of import time on a cold start
(reference gcp.md §0.10); google-auth costs about 0.3 s and is imported only when the first
token is needed.

Behaviour follows the Go gateway (reference §5.5): ``POST …/reasoningEngines/{id}:query`` with
``classMethod`` + LangGraph input, long-running operations polled until done, byte-order marks
stripped, unicode escapes left in strings (``\\u00e3``) unescaped, a plain-text answer wrapped as
one ``ai`` message.
Unlike Go, failures are raised (classified) instead of being turned into apology texts here.

Streaming (opt-in, ``AGENT_ENGINE_STREAM_CLASS_METHOD``, e.g. ``stream_query``): ``POST
…:streamQuery`` answers newline-delimited JSON, one object per line (possibly wrapped as a
``google.api.HttpBody`` with base64 ``data``). Text is taken from what common agent templates emit:
LangChain message chunks (``content``), LangGraph updates (``{"messages": [...]}`` or
``{"<node>": {"messages": [...]}}``) and ADK events (``content.parts[].text``, ``thought`` parts as
reasoning). The reply is built from an ``output`` object when one arrives, else from the messages
collected, else from the text streamed. Without the setting the reply is sent as one chunk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from shared.errors import AgentRejected, AgentUnavailable, ConfigError
from shared.providers import _http
from shared.providers._messages import normalise_message, normalise_messages, text_reply_message
from shared.providers.base import (
    AgentMessage,
    AgentReply,
    AgentRequest,
    Chunk,
    ChunkSink,
    HistoryMessage,
    content_text,
    emit_whole,
    reasoning_text,
)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_PROVIDER = "google_agent_engine"


def parse_credentials_json(value: str) -> dict[str, Any]:
    """Parse credentials given as raw JSON or as base64 of the JSON.

    Raises :class:`ConfigError` naming what was expected when neither form decodes to an object.
    """
    text = value.strip()
    candidates = [text]
    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
        padded = text + "=" * (-len(text) % 4)
        candidates.append(base64.b64decode(padded, validate=False).decode("utf-8"))
    for candidate in candidates:
        ok, info = _http.parse_json(candidate)
        if ok and isinstance(info, dict):
            return info
    raise ConfigError(
        "credentials_json must be a service-account JSON object, raw or base64-encoded; found neither"
    )


class _HttpxAuthRequest:
    """google-auth transport (``google.auth.transport.Request``) backed by an httpx client.

    Avoids pulling ``requests`` in just to refresh tokens.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        from google.auth import exceptions as auth_exceptions

        try:
            response = self._client.request(
                method,
                url,
                content=body,
                headers=dict(headers or {}),
                timeout=timeout if timeout is not None else 30.0,
            )
        except httpx.HTTPError as exc:
            raise auth_exceptions.TransportError(exc) from exc  # type: ignore[no-untyped-call]
        return _HttpxAuthResponse(response)


class _HttpxAuthResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = dict(response.headers)
        self.data = response.content


class _TokenSource:
    """Thread-safe OAuth2 access tokens from in-memory credentials or ADC."""

    def __init__(self, credentials_info: dict[str, Any] | None, client: httpx.Client) -> None:
        self._info = credentials_info
        self._client = client
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        import google.auth
        from google.auth import exceptions as auth_exceptions

        if self._info is None:
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            return credentials
        kind = self._info.get("type")
        # Type-specific loaders only: a generic loader would accept any credential configuration.
        if kind == "service_account":
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                self._info, scopes=[CLOUD_PLATFORM_SCOPE]
            )
        if kind == "authorized_user":
            from google.oauth2 import credentials as user_credentials

            return user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                self._info, scopes=[CLOUD_PLATFORM_SCOPE]
            )
        raise auth_exceptions.DefaultCredentialsError(  # type: ignore[no-untyped-call]
            f"credentials_json type must be 'service_account' or 'authorized_user'; found {kind!r}"
        )

    def token(self) -> str:
        from google.auth import exceptions as auth_exceptions

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials = self._load()
                if not self._credentials.valid:  # missing or (about to be) expired
                    self._credentials.refresh(_HttpxAuthRequest(self._client))
            except auth_exceptions.TransportError as exc:
                raise AgentUnavailable(
                    f"{_PROVIDER}: token endpoint unreachable ({exc})",
                    error_code="AGENT_AUTH_UNAVAILABLE",
                ) from exc
            except auth_exceptions.RefreshError as exc:
                if getattr(exc, "retryable", False):
                    raise AgentUnavailable(
                        f"{_PROVIDER}: token refresh failed, retryable ({exc})",
                        error_code="AGENT_AUTH_UNAVAILABLE",
                    ) from exc
                raise AgentRejected(
                    f"{_PROVIDER}: token refresh refused ({exc})", error_code="AGENT_AUTH_ERROR"
                ) from exc
            except auth_exceptions.GoogleAuthError as exc:
                raise AgentRejected(
                    f"{_PROVIDER}: no usable Google credentials ({exc})",
                    error_code="AGENT_AUTH_ERROR",
                ) from exc
            return str(self._credentials.token)


class AgentEngineProvider:
    """An :class:`~shared.providers.base.AgentProvider` for a deployed Agent Engine."""

    name = _PROVIDER

    def __init__(
        self,
        project_id: str,
        location: str,
        reasoning_engine_id: str,
        *,
        credentials_json: str | None = None,
        class_method: str = "async_query",
        timeout_s: float = 1800,
        lro_poll_interval_s: float = 2,
        api_endpoint: str | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stream_class_method: str | None = None,
    ) -> None:
        missing = [
            label
            for label, value in (
                ("project_id", project_id),
                ("location", location),
                ("reasoning_engine_id", reasoning_engine_id),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"AgentEngineProvider needs {', '.join(missing)}; found empty values")
        self.project_id = project_id
        self.location = location
        self.reasoning_engine_id = reasoning_engine_id
        self.class_method = class_method
        self.stream_class_method = stream_class_method
        self.timeout_s = timeout_s
        self.lro_poll_interval_s = lro_poll_interval_s
        self.base_url = (api_endpoint or f"https://{location}-aiplatform.googleapis.com").rstrip("/")
        self._client = http_client or httpx.Client(timeout=timeout_s)
        info = parse_credentials_json(credentials_json) if credentials_json else None
        self._tokens = _TokenSource(info, self._client)
        self._sleep = sleep

    # -- URLs and bodies -------------------------------------------------------------------------

    def engine_resource(self, reasoning_engine_id: str | None = None) -> str:
        engine = reasoning_engine_id or self.reasoning_engine_id
        return f"projects/{self.project_id}/locations/{self.location}/reasoningEngines/{engine}"

    def query_url(self, reasoning_engine_id: str | None = None) -> str:
        return f"{self.base_url}/v1beta1/{self.engine_resource(reasoning_engine_id)}:query"

    def query_body(self, thread_id: str, text: str) -> dict[str, Any]:
        return {
            "classMethod": self.class_method,
            "input": {
                "input": {"messages": [{"role": "human", "content": text}]},
                "config": {"configurable": {"thread_id": thread_id}},
            },
        }

    def history_body(self, thread_id: str, messages: list[HistoryMessage]) -> dict[str, Any]:
        return {
            "classMethod": self.class_method,
            "input": {
                "input": {"messages": [{"role": m.role, "content": m.content} for m in messages]},
                "config": {"configurable": {"thread_id": thread_id}},
                "type": "history",
            },
        }

    # -- calls -----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token()}"}

    def _request(self, method: str, url: str, body: Any = None) -> tuple[bool, Any, str]:
        text = _http.call(
            _PROVIDER,
            self._client,
            method,
            url,
            headers=self._headers(),
            json_body=body,
            timeout=self.timeout_s,
        )
        ok, value = _http.parse_json(text.strip())
        return ok, value, text

    def _resolve_operation(self, value: Any) -> tuple[bool, Any, str]:
        """Poll a long-running operation until ``done`` and return its ``response``."""
        name = _operation_name(value)
        if isinstance(value, dict) and isinstance(value.get("operation"), dict):
            value = value["operation"]
        deadline = time.monotonic() + self.timeout_s
        while True:
            if isinstance(value, dict) and value.get("done") is True:
                error = value.get("error")
                if isinstance(error, dict):
                    code = error.get("code")
                    detail = _http.excerpt(json.dumps(error, ensure_ascii=False))
                    message = f"{_PROVIDER}: operation {name} finished with error: {detail}"
                    if code in _http.TRANSIENT_GOOGLE_CODES:
                        raise AgentUnavailable(message)
                    raise AgentRejected(message)
                response = value.get("response")
                return True, response, json.dumps(response, ensure_ascii=False)
            if time.monotonic() >= deadline:
                raise AgentUnavailable(
                    f"{_PROVIDER}: operation {name} not done after {self.timeout_s:g} s",
                    error_code="AGENT_TIMEOUT",
                )
            self._sleep(self.lro_poll_interval_s)
            ok, value, text = self._request("GET", f"{self.base_url}/v1beta1/{name}")
            if not ok:
                raise AgentRejected(f"{_PROVIDER}: operation {name} answered non-JSON: {_http.excerpt(text)}")

    def _query(self, url: str, body: dict[str, Any]) -> tuple[bool, Any, str]:
        ok, value, text = self._request("POST", url, body)
        if ok and _operation_name(value):
            return self._resolve_operation(value)
        if ok and isinstance(value, dict) and "response" in value:
            value = value["response"]
        return ok, value, text

    def send(self, request: AgentRequest) -> AgentReply:
        """Run one turn. Raises AgentUnavailable (retry) or AgentRejected (final)."""
        url = self.query_url(request.reasoning_engine_id)
        ok, value, text = self._query(url, self.query_body(request.thread_id, request.text))
        return self._reply(ok, value, text, request.message_id)

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        """Run one turn through ``:streamQuery`` when configured, else ``send`` as one chunk."""
        if not self.stream_class_method:
            reply = self.send(request)
            emit_whole(reply, on_chunk)
            return reply
        url = self.query_url(request.reasoning_engine_id).removesuffix(":query") + ":streamQuery"
        body = {**self.query_body(request.thread_id, request.text), "classMethod": self.stream_class_method}
        collected = _Collected()
        try:
            with self._client.stream(
                "POST", url, json=body, headers=self._headers(), timeout=self.timeout_s
            ) as response:
                if not response.is_success:
                    raise _http.error_for_status(_PROVIDER, response, _http.decode_body(response.read()))
                for line in response.iter_lines():
                    for item in _stream_items(line):
                        collected.add(item, on_chunk)
        except httpx.HTTPError as exc:
            raise _http.error_for_transport(_PROVIDER, exc) from exc
        if collected.output is not None:
            return self._reply(True, collected.output, json.dumps(collected.output), request.message_id)
        if collected.messages:
            return AgentReply(collected.messages, self.name, {"output_has_messages": True, "streamed": True})
        if not collected.seen:
            raise AgentRejected(f"{_PROVIDER}: the stream ended without any event")
        text = "".join(collected.text)
        return AgentReply(
            [text_reply_message(text, f"agent-engine-{request.message_id}")], self.name, {"streamed": True}
        )

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        """Inject messages into the thread (``type: history``); return the engine's JSON answer.

        As in Go, an engine-side ``status_code: 500`` inside a 2xx answer is returned, not raised.
        """
        url = self.query_url(reasoning_engine_id)
        ok, value, text = self._query(url, self.history_body(thread_id, messages))
        if not ok:
            return {"output": text}
        return value if isinstance(value, dict) else {"output": value}

    def check_health(self, timeout_s: float = 3) -> bool:
        """Cheap readiness probe (lesson 11): ``GET`` the engine resource, never a full query."""
        try:
            _http.call(
                _PROVIDER,
                self._client,
                "GET",
                f"{self.base_url}/v1beta1/{self.engine_resource()}",
                headers=self._headers(),
                timeout=timeout_s,
            )
        except (AgentUnavailable, AgentRejected):
            return False
        return True

    def _reply(self, ok: bool, value: Any, text: str, message_id: str) -> AgentReply:
        fallback_id = f"agent-engine-{message_id}"
        if not ok or isinstance(value, str):
            # Lesson 7: an engine answering plain text is an answer, not a broken response.
            content = text.strip() if not ok else value
            return AgentReply(
                [text_reply_message(content, fallback_id)], self.name, {"output_has_messages": True}
            )
        if not isinstance(value, dict) or "output" not in value:
            raise AgentRejected(
                f"{_PROVIDER}: invalid response format - missing 'output' field: {_http.excerpt(text)}"
            )
        output = value["output"]
        if isinstance(output, str):
            return AgentReply(
                [text_reply_message(output, fallback_id)], self.name, {"output_has_messages": True}
            )
        if not isinstance(output, dict):
            raise AgentRejected(f"{_PROVIDER}: invalid response format - 'output' is not an object")
        raw_messages = output.get("messages")
        if raw_messages is not None and not isinstance(raw_messages, list):
            raise AgentRejected(f"{_PROVIDER}: invalid response format - 'messages' is not a list")
        return AgentReply(
            normalise_messages(raw_messages or []),
            self.name,
            {"output_has_messages": "messages" in output},
        )


def _operation_name(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("name"), str) and value["name"]:
        return str(value["name"])
    operation = value.get("operation")
    if isinstance(operation, dict) and isinstance(operation.get("name"), str):
        return str(operation["name"]) or None
    return None


def _stream_items(line: str) -> list[Any]:
    """The JSON objects of one line of a ``:streamQuery`` answer (HttpBody wrappers unwrapped)."""
    text = line.strip().removeprefix("data:").strip()
    if not text or text in ("[", "]", ","):
        return []
    ok, value = _http.parse_json(text.strip(","))
    if not ok:
        return []
    if isinstance(value, dict) and isinstance(value.get("data"), str) and "contentType" in value:
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            inner = base64.b64decode(value["data"]).decode("utf-8")
            return [item for part in inner.splitlines() for item in _stream_items(part)]
    return [value]


_AI_TYPES = frozenset({"ai", "AIMessage", "AIMessageChunk"})


class _Collected:
    """What a streamed answer has produced so far."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.messages: list[AgentMessage] = []
        self.output: Any = None
        self.seen = False
        self._partial = False

    def add(self, item: Any, on_chunk: ChunkSink) -> None:
        self.seen = True
        if not isinstance(item, dict):
            if isinstance(item, str) and item:
                self._text(item, on_chunk)
            return
        if "output" in item:
            self.output = item
            return
        nested = item.get("messages")
        if nested is None:  # LangGraph "updates": {"<node>": {"messages": [...]}}
            for value in item.values():
                if isinstance(value, dict) and isinstance(value.get("messages"), list):
                    nested = value["messages"]
        if isinstance(nested, list):
            for message in normalise_messages(nested):
                self.messages.append(message)
                if message.get("type") == "ai" and not message.get("tool_calls"):
                    self._emit_message(message, on_chunk)
            return
        content = item.get("content")
        if isinstance(content, dict) and isinstance(content.get("parts"), list):  # ADK event
            partial = bool(item.get("partial"))
            if self._partial and not partial:
                self._partial = False
                return  # the closing event repeats the partial ones
            self._partial = partial
            for part in content["parts"]:
                if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                    if part.get("thought"):
                        on_chunk(Chunk("reasoning", part["text"]))
                    else:
                        self._text(part["text"], on_chunk)
            return
        message = normalise_message(item)
        if message.get("type") in _AI_TYPES and not message.get("tool_calls"):  # a message chunk
            self._emit_message(message, on_chunk)

    def _emit_message(self, message: AgentMessage, on_chunk: ChunkSink) -> None:
        reasoning = reasoning_text(message.get("content"))
        if reasoning:
            on_chunk(Chunk("reasoning", reasoning))
        self._text(content_text(message.get("content")), on_chunk)

    def _text(self, text: str, on_chunk: ChunkSink) -> None:
        if text:
            self.text.append(text)
            on_chunk(Chunk("text", text))
