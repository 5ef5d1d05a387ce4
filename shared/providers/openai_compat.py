"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM...).

``POST {base_url}/chat/completions`` with ``[system?, user]``; the first choice becomes one ``ai``
message whose ``response_metadata`` carries the model name, finish reason and token usage in the
shape the transform reads. No conversation memory: ``add_history`` is rejected.

``stream`` asks for ``stream: true`` (with ``stream_options.include_usage``) and reads the
Server-Sent Events: ``delta.content`` becomes ``text`` chunks and ``delta.reasoning_content`` (vLLM,
DeepSeek) or ``delta.reasoning`` (Ollama, OpenRouter) ``reasoning`` chunks; the reply is the same as
``send`` would build from the assembled text.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx

from shared.errors import AgentRejected, AgentUnavailable, ConfigError
from shared.providers import _http
from shared.providers._messages import text_reply_message
from shared.providers.base import (
    AgentMessage,
    AgentReply,
    AgentRequest,
    Chunk,
    ChunkSink,
    HistoryMessage,
    emit_whole,
)

_PROVIDER = "openai"


class OpenAICompatibleProvider:
    """An :class:`~shared.providers.base.AgentProvider` for chat-completions APIs."""

    name = _PROVIDER

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        system_prompt: str | None = None,
        *,
        timeout_s: float,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not base_url or not model:
            raise ConfigError(
                f"OpenAICompatibleProvider needs base_url and model; found "
                f"base_url={base_url!r}, model={model!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.system_prompt = system_prompt
        self.timeout_s = timeout_s
        self._api_key = api_key
        self._client = http_client or httpx.Client(timeout=timeout_s)

    def request_body(self, text: str) -> dict[str, Any]:
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": text})
        return {"model": self.model, "messages": messages}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def send(self, request: AgentRequest) -> AgentReply:
        headers = self._headers()
        text = _http.call(
            _PROVIDER,
            self._client,
            "POST",
            f"{self.base_url}/chat/completions",
            headers=headers,
            json_body=self.request_body(request.text),
            timeout=self.timeout_s,
        )
        return self._completion(request, text)

    def _completion(self, request: AgentRequest, text: str) -> AgentReply:
        """The reply of a whole (non-streamed) chat-completions answer."""
        _, body = _http.parse_json(text.strip())
        try:
            choice = body["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise AgentRejected(
                f"{_PROVIDER}: unexpected answer, expected choices[0].message: {_http.excerpt(text)}"
            ) from exc
        content = message.get("content") if isinstance(message, dict) else None
        reasoning = message.get("reasoning_content") if isinstance(message, dict) else None
        return self._reply(
            request,
            body,
            content if isinstance(content, str) else "",
            reasoning if isinstance(reasoning, str) else "",
            choice.get("finish_reason"),
        )

    def stream(self, request: AgentRequest, on_chunk: ChunkSink) -> AgentReply:
        body = {**self.request_body(request.text), "stream": True, "stream_options": {"include_usage": True}}
        headers = {**self._headers(), "Accept": "text/event-stream"}
        content: list[str] = []
        reasoning: list[str] = []
        last: dict[str, Any] = {}
        finish_reason: Any = None
        usage: Any = None
        try:
            with self._client.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=body,
                headers=headers,
                timeout=self.timeout_s,
            ) as response:
                if not response.is_success:
                    text = _http.decode_body(response.read())
                    raise _http.error_for_status(_PROVIDER, response, text)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignores ``stream: true`` answers one JSON document: one chunk.
                    reply = self._completion(request, _http.decode_body(response.read()))
                    emit_whole(reply, on_chunk)
                    return reply
                for event in _sse_data(response.iter_lines()):
                    if isinstance(event.get("error"), dict | str):
                        raise AgentUnavailable(
                            f"{_PROVIDER}: error in the stream: {_http.excerpt(json.dumps(event['error']))}"
                        )
                    last = event
                    usage = event.get("usage") or usage
                    choices = event.get("choices")
                    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                        continue
                    choice = choices[0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    delta = choice.get("delta")
                    if not isinstance(delta, dict):
                        continue
                    thought = delta.get("reasoning_content") or delta.get("reasoning")
                    if isinstance(thought, str) and thought:
                        reasoning.append(thought)
                        on_chunk(Chunk("reasoning", thought))
                    piece = delta.get("content")
                    if isinstance(piece, str) and piece:
                        content.append(piece)
                        on_chunk(Chunk("text", piece))
        except httpx.HTTPError as exc:
            raise _http.error_for_transport(_PROVIDER, exc) from exc
        if not last:
            raise AgentRejected(f"{_PROVIDER}: the stream ended without any event")
        summary = {"id": last.get("id"), "model": last.get("model"), "usage": usage}
        return self._reply(request, summary, "".join(content), "".join(reasoning), finish_reason)

    def _reply(
        self, request: AgentRequest, body: dict[str, Any], content: str, reasoning: str, finish_reason: Any
    ) -> AgentReply:
        ai = text_reply_message(content, str(body.get("id") or f"openai-ai-{request.message_id}"))
        if reasoning:
            ai["content"] = [
                {"type": "thinking", "thinking": reasoning},
                {"type": "text", "text": ai["content"]},
            ]
        ai["response_metadata"] = {
            "model_name": body.get("model") or self.model,
            "finish_reason": finish_reason,
            "usage_metadata": _usage(body.get("usage")),
        }
        human: AgentMessage = {
            "type": "human",
            "id": f"openai-human-{request.message_id}",
            "content": request.text,
        }
        return AgentReply([human, ai], self.name)

    def add_history(
        self, thread_id: str, messages: list[HistoryMessage], reasoning_engine_id: str | None
    ) -> dict[str, Any]:
        raise AgentRejected("history not supported by openai provider", error_code="UNSUPPORTED_OPERATION")


def _sse_data(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON ``data`` of each Server-Sent Event until ``[DONE]`` (multi-line data joined)."""
    buffer: list[str] = []
    for line in itertools.chain(lines, [""]):  # lazily: each event is handled as it arrives
        if line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
            continue
        if line.strip() or not buffer:
            continue  # other fields (event:, id:), comments, or a blank line without data
        data = "\n".join(buffer)
        buffer = []
        if data.strip() == "[DONE]":
            return
        ok, value = _http.parse_json(data)
        if ok and isinstance(value, dict):
            yield value


def _usage(usage: Any) -> dict[str, Any] | None:
    """OpenAI usage -> LangChain ``usage_metadata`` (reasoning tokens split out of the output)."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    result: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
    details = usage.get("completion_tokens_details")
    if isinstance(details, dict) and details.get("reasoning_tokens"):
        reasoning = int(details["reasoning_tokens"])
        result["output_tokens"] = max(0, completion - reasoning)
        result["output_token_details"] = {"reasoning": reasoning}
    cached = usage.get("prompt_tokens_details")
    if isinstance(cached, dict) and cached.get("cached_tokens"):
        result["input_token_details"] = {"cache_read": int(cached["cached_tokens"])}
    return result
