"""The EAI agent service over HTTP (bearer token).

Wire format (defined by this gateway):

* ``POST {base_url}{run_path}`` (default ``/api/v1/agent/run``) with
  ``{"thread_id": ..., "message": ..., "message_id": ...}`` (plus ``reasoning_engine_id`` when the
  request names one); the answer is ``{"messages": [...LangChain-like dicts...]}`` (also accepted
  under ``output.messages``) or a plain text as ``{"output": "..."}`` / ``{"content": "..."}``.
* ``POST {base_url}{history_path}`` (default ``/api/v1/agent/history``) with
  ``{"thread_id": ..., "messages": [{"role", "content"}], "reasoning_engine_id"?}``; any JSON object
  is returned as is.

Errors: network failures, timeouts, 429 and 5xx -> AgentUnavailable; other 4xx and answers of
another shape -> AgentRejected.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import AgentRejected, ConfigError
from shared.providers import _http
from shared.providers._messages import normalise_messages, text_reply_message
from shared.providers.base import AgentReply, AgentRequest, HistoryMessage

_PROVIDER = "eai"


class EAIProvider:
    """An :class:`~shared.providers.base.AgentProvider` for the EAI agent service."""

    name = _PROVIDER

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float,
        http_client: httpx.Client | None = None,
        run_path: str = "/api/v1/agent/run",
        history_path: str = "/api/v1/agent/history",
    ) -> None:
        if not base_url:
            raise ConfigError("EAIProvider needs base_url; found an empty value")
        self.base_url = base_url.rstrip("/")
        self.run_path = run_path
        self.history_path = history_path
        self.timeout_s = timeout_s
        self._token = token
        self._client = http_client or httpx.Client(timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> tuple[bool, Any, str]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        text = _http.call(
            _PROVIDER,
            self._client,
            "POST",
            f"{self.base_url}{path}",
            headers=headers,
            json_body=body,
            timeout=self.timeout_s,
        )
        ok, value = _http.parse_json(text.strip())
        return ok, value, text

    def send(self, request: AgentRequest) -> AgentReply:
        body: dict[str, Any] = {
            "thread_id": request.thread_id,
            "message": request.text,
            "message_id": request.message_id,
        }
        if request.reasoning_engine_id:
            body["reasoning_engine_id"] = request.reasoning_engine_id
        ok, value, text = self._post(self.run_path, body)
        fallback_id = f"eai-{request.message_id}"
        if not ok:
            return AgentReply([text_reply_message(text.strip(), fallback_id)], self.name)
        if isinstance(value, str):
            return AgentReply([text_reply_message(value, fallback_id)], self.name)
        if isinstance(value, dict):
            messages = value.get("messages")
            output = value.get("output")
            if messages is None and isinstance(output, dict):
                messages = output.get("messages")
            if isinstance(messages, list):
                return AgentReply(normalise_messages(messages), self.name)
            for key in ("output", "content"):
                if isinstance(value.get(key), str):
                    return AgentReply([text_reply_message(value[key], fallback_id)], self.name)
        raise AgentRejected(
            f"{_PROVIDER}: unexpected answer, expected 'messages', 'output' or 'content': "
            f"{_http.excerpt(text)}"
        )

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "thread_id": thread_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if reasoning_engine_id:
            body["reasoning_engine_id"] = reasoning_engine_id
        ok, value, text = self._post(self.history_path, body)
        if ok and isinstance(value, dict):
            return value
        return {"output": value if ok else text}
