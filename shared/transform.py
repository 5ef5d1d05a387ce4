"""Agent Engine messages -> the Go gateway's result format (reference §5.6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.providers.base import content_text


def _step_id() -> str:
    return "step-" + str(uuid.uuid4())


def _base(message: dict[str, Any], step_id: str) -> dict[str, Any]:
    metadata = message.get("response_metadata") or {}
    usage = metadata.get("usage_metadata")
    return {
        "id": message.get("id"),
        "date": None,
        "session_id": None,
        "time_since_last_message": None,
        "name": message.get("name"),
        "otid": message.get("id"),
        "sender_id": None,
        "step_id": step_id,
        "is_err": None,
        "model_name": metadata.get("model_name"),
        "finish_reason": metadata.get("finish_reason"),
        "avg_logprobs": metadata.get("avg_logprobs"),
        "usage_metadata": _usage(usage) if isinstance(usage, dict) else None,
    }


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    mapped = {
        "prompt_token_count": usage.get("input_tokens"),
        "candidates_token_count": usage.get("output_tokens"),
        "total_token_count": usage.get("total_tokens"),
    }
    return mapped


def to_gateway_messages(
    agent_messages: list[dict[str, Any]], *, user_number: str, now: datetime
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prompt = completion = total = 0
    models: list[str] = []
    for message in agent_messages:
        step = _step_id()
        base = _base(message, step)
        kind = message.get("type")
        usage = (message.get("response_metadata") or {}).get("usage_metadata") or {}
        prompt += int(usage.get("input_tokens") or 0)
        completion += int(usage.get("output_tokens") or 0)
        total += int(usage.get("total_tokens") or 0)
        if base["model_name"] and base["model_name"] not in models:
            models.append(base["model_name"])
        if kind == "ai":
            text = content_text(message.get("content"))
            for call in message.get("tool_calls") or []:
                out.append(
                    {
                        **base,
                        "id": f"tool-{call.get('id')}",
                        "message_type": "tool_call_message",
                        "content": None,
                        "tool_call": {
                            "name": call.get("name"),
                            "arguments": call.get("args"),
                            "tool_call_id": call.get("id"),
                        },
                    }
                )
            if text:
                out.append({**base, "message_type": "assistant_message", "content": text})
        elif kind == "tool":
            out.append({**base, "message_type": "tool_return_message", "content": message.get("content")})
        else:
            out.append({**base, "message_type": "user_message", "content": message.get("content")})
    out.append(
        {
            "message_type": "usage_statistics",
            "completion_tokens": completion,
            "thoughts_tokens": 0,
            "prompt_tokens": prompt,
            "total_tokens": total,
            "step_count": len(agent_messages),
            "steps_messages": None,
            "run_ids": None,
            "agent_id": f"user_{user_number}",
            "processed_at": now.isoformat(),
            "status": "done",
            "model_names": models,
        }
    )
    return [dict(sorted(m.items())) for m in out]


def build_result_data(
    agent_messages: list[dict[str, Any]], *, user_number: str, message_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "messages": to_gateway_messages(agent_messages, user_number=user_number, now=now),
        "agent_id": f"user_{user_number}",
        "processed_at": message_id,
        "status": "done",
    }
