"""Normalisation of the LangChain-like message dicts agents answer with."""

from __future__ import annotations

from typing import Any

from shared.providers._http import unescape_unicode
from shared.providers.base import AgentMessage

# ``langchain_core.load.dumpd`` class names -> the message ``type`` the transform expects.
_LC_CLASS_TYPES = {
    "HumanMessage": "human",
    "HumanMessageChunk": "human",
    "AIMessage": "ai",
    "AIMessageChunk": "ai",
    "ToolMessage": "tool",
    "ToolMessageChunk": "tool",
    "SystemMessage": "system",
    "ChatMessage": "chat",
}


def normalise_message(raw: Any) -> AgentMessage:
    """Return one message as a plain dict (``type``, ``id``, ``content``...), strings unescaped.

    Accepts the plain dicts the Agent Engine runtime emits and the ``dumpd`` constructor form
    (``{"lc": 1, "type": "constructor", "id": [..., "AIMessage"], "kwargs": {...}}``); a bare string
    becomes an ``ai`` message.
    """
    if isinstance(raw, str):
        return {"type": "ai", "content": unescape_unicode(raw)}
    if not isinstance(raw, dict):
        return {"type": "ai", "content": str(raw)}
    message: dict[str, Any] = raw
    if message.get("type") == "constructor" and isinstance(message.get("kwargs"), dict):
        path = message.get("id")
        class_name = path[-1] if isinstance(path, list) and path else ""
        flattened = dict(message["kwargs"])
        flattened.setdefault("type", _LC_CLASS_TYPES.get(str(class_name), "ai"))
        message = flattened
    result: AgentMessage = unescape_unicode(message)
    return result


def normalise_messages(raw: list[Any]) -> list[AgentMessage]:
    return [normalise_message(item) for item in raw]


def text_reply_message(text: str, message_id: str) -> AgentMessage:
    """One ``ai`` message carrying a plain-text answer."""
    return {"type": "ai", "id": message_id, "content": unescape_unicode(text)}
