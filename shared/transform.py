"""Agent messages (LangChain-like dicts) -> the Go gateway's result messages (reference §5.6).

Reproduces the Go transform field for field, including the null Letta-era fields, the random
``step_id`` per source message and the trailing ``usage_statistics`` entry. Keys are emitted sorted,
as Go's map encoding does. The WhatsApp formatter is *not* applied here: it runs once, elsewhere.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from shared.providers.base import content_text

GatewayMessage = dict[str, Any]


def new_step_id() -> str:
    """``step-`` + 32 random hex digits grouped 8-4-4-4-12 (not a versioned UUID, like Go)."""
    h = secrets.token_hex(16)
    return f"step-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rfc3339(now: datetime) -> str:
    """Go's ``time.RFC3339`` rendering: seconds precision, ``Z`` for UTC, else ``±hh:mm``."""
    aware = now if now.tzinfo is not None else now.astimezone()
    offset = aware.utcoffset()
    stamp = aware.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return stamp + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{stamp}{sign}{hours:02d}:{mins:02d}"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _thinking_text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(
        str(part.get("thinking", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") == "thinking"
    )


class _Usage:
    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self.reasoning = 0
        self.total = 0

    def add(self, usage: dict[str, Any]) -> None:
        input_tokens = _int(usage.get("input_tokens"))
        output_tokens = _int(usage.get("output_tokens"))
        reasoning = _int(_as_dict(usage.get("output_token_details")).get("reasoning"))
        total = _int(usage.get("total_tokens"))
        self.input += input_tokens
        self.output += output_tokens
        self.reasoning += reasoning
        self.total += total or (input_tokens + output_tokens + reasoning)


def _usage_metadata(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    mapped: dict[str, Any] = {
        "prompt_token_count": _int(usage.get("input_tokens")),
        "candidates_token_count": _int(usage.get("output_tokens")),
        "total_token_count": _int(usage.get("total_tokens")),
    }
    output_details = _as_dict(usage.get("output_token_details"))
    if "reasoning" in output_details:
        mapped["thoughts_token_count"] = _int(output_details["reasoning"])
    input_details = _as_dict(usage.get("input_token_details"))
    if "cache_read" in input_details:
        mapped["cached_content_token_count"] = _int(input_details["cache_read"])
    return _sorted(mapped)


def _sorted(entry: dict[str, Any]) -> GatewayMessage:
    return dict(sorted(entry.items()))


def _convert(message: dict[str, Any], step_id: str, out: list[GatewayMessage]) -> None:
    metadata = _as_dict(message.get("response_metadata"))
    raw_usage = metadata.get("usage_metadata")
    usage = raw_usage if isinstance(raw_usage, dict) else None
    original_id = message.get("id")
    base: dict[str, Any] = {
        "id": original_id,
        "date": None,
        "session_id": None,
        "time_since_last_message": None,
        "name": message.get("name") or None,
        "otid": original_id,
        "sender_id": None,
        "step_id": step_id,
        "is_err": None,
        "model_name": metadata.get("model_name"),
        "finish_reason": metadata.get("finish_reason"),
        "avg_logprobs": metadata.get("avg_logprobs"),
        "usage_metadata": _usage_metadata(usage),
    }
    kind = message.get("type")
    content = message.get("content")

    if kind == "tool":
        entry = {**base, "message_type": "tool_return_message", "content": content}
        if message.get("name"):
            entry.update(
                tool_return=content,
                status="success",
                tool_call_id=message.get("tool_call_id"),
                stdout=None,
                stderr=None,
            )
        out.append(_sorted(entry))
        return
    if kind != "ai":
        out.append(_sorted({**base, "message_type": "user_message", "content": content}))
        return

    tool_calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    text = content_text(content)
    thinking = _thinking_text(content)
    reasoning_tokens = _int(_as_dict(_as_dict(usage).get("output_token_details")).get("reasoning"))
    if thinking:
        out.append(
            _sorted(
                {
                    **base,
                    "message_type": "reasoning_message",
                    "id": f"thinking-{original_id}",
                    "source": "reasoner_model",
                    "reasoning": thinking,
                    "signature": None,
                }
            )
        )
    elif reasoning_tokens > 0:
        if tool_calls:
            tool_name = tool_calls[0].get("name") or "unknown"
            summary = f"Processando chamada para ferramenta {tool_name}"
        elif text:
            summary = "Processando resposta para o usuário"
        else:
            summary = "Processando..."
        out.append(
            _sorted(
                {
                    **base,
                    "message_type": "reasoning_message",
                    "id": f"reasoning-{original_id}",
                    "source": "reasoner_model",
                    "reasoning": summary,
                    "signature": None,
                }
            )
        )
    for call in tool_calls:
        out.append(
            _sorted(
                {
                    **base,
                    "message_type": "tool_call_message",
                    "id": f"tool-{call.get('id')}",
                    "content": None,
                    "tool_call": {
                        "name": call.get("name"),
                        "arguments": call.get("args"),
                        "tool_call_id": call.get("id"),
                    },
                }
            )
        )
    if text:
        out.append(_sorted({**base, "message_type": "assistant_message", "content": text}))


def to_gateway_messages(
    agent_messages: list[dict[str, Any]] | None, *, user_number: str, now: datetime
) -> list[GatewayMessage]:
    """Convert one turn's agent messages, appending the ``usage_statistics`` entry.

    ``None`` stands for an agent answer without ``output.messages``: Go then emits no messages and
    no usage entry, so this returns ``[]``.
    """
    if agent_messages is None:
        return []
    out: list[GatewayMessage] = []
    totals = _Usage()
    model_names: list[str] = []
    for message in agent_messages:
        if not isinstance(message, dict):
            message = {"content": message}
        _convert(message, new_step_id(), out)
        metadata = _as_dict(message.get("response_metadata"))
        usage = metadata.get("usage_metadata")
        if isinstance(usage, dict):
            totals.add(usage)
        model = metadata.get("model_name")
        if isinstance(model, str) and model and model not in model_names:
            model_names.append(model)
    out.append(
        _sorted(
            {
                "message_type": "usage_statistics",
                "completion_tokens": totals.output + totals.reasoning,
                "thoughts_tokens": totals.reasoning,
                "prompt_tokens": totals.input,
                "total_tokens": totals.total,
                "step_count": len(agent_messages),
                "steps_messages": None,
                "run_ids": None,
                "agent_id": f"user_{user_number}",
                "processed_at": rfc3339(now),
                "status": "done",
                "model_names": model_names,
            }
        )
    )
    return out


def build_result_data(
    agent_messages: list[dict[str, Any]] | None,
    *,
    user_number: str,
    message_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The ``data`` stored for polling and sent to callbacks (``processed_at`` is the message id)."""
    return {
        "messages": to_gateway_messages(agent_messages, user_number=user_number, now=now),
        "agent_id": f"user_{user_number}",
        "processed_at": message_id,
        "status": "done",
    }
