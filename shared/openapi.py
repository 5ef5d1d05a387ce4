"""The OpenAPI 3.1 document of the gateway, generated from the pydantic models.

``python -m shared.openapi`` prints it; the checked-in ``openapi.json`` must equal its output (a test
enforces it), and the poll function serves it at ``/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.intake import HistoryUpdateRequest
from shared.models import ErrorBody, WebhookAccepted, WebhookRequest

VERSION = "0.1.0"


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        WebhookRequest,
        WebhookAccepted,
        HistoryUpdateRequest,
        ErrorBody,
    ]
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    schemas["PollResponse"] = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["processing", "completed", "failed"]},
            "message_id": {"type": "string", "format": "uuid"},
            "data": {"type": "object", "description": "Go gateway result: messages, agent_id, processed_at"},
            "content": {"type": "string", "description": "Final WhatsApp-formatted answer"},
            "thread_id": {"type": "string"},
            "processing_time_ms": {"type": "integer"},
            "message_type": {"type": "string", "enum": ["text", "audio"]},
            "provider": {"type": "string"},
            "error": {"type": "string"},
            "error_code": {"type": "string"},
            "retry_after": {"type": "integer"},
        },
    }
    schemas["RateLimitError"] = {
        "type": "object",
        "required": ["error", "retry_after", "limit", "window"],
        "properties": {
            "error": {"type": "string", "const": "Rate limit exceeded"},
            "message": {"type": "string"},
            "retry_after": {"type": "integer", "description": "Seconds"},
            "limit": {"type": "integer"},
            "window": {"type": "integer", "description": "Seconds"},
        },
    }
    schemas["Duplicate"] = {
        "type": "object",
        "required": ["message_id", "status", "polling_endpoint", "duplicate"],
        "properties": {
            "message_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["processing", "completed", "failed", "expired"]},
            "polling_endpoint": {"type": "string"},
            "duplicate": {"type": "boolean", "const": True},
        },
    }
    schemas["HealthReport"] = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "checks": {"type": "object"},
            "failing": {"type": "array", "items": {"type": "string"}},
        },
    }
    return schemas


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _answer(description: str, ref: str = "ErrorBody") -> dict[str, Any]:
    return {"description": description, "content": _json(ref)}


def _message_id_param() -> dict[str, Any]:
    return {
        "name": "message_id",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


_RATE_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests allowed in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the window", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {
        "description": "Seconds until the oldest counted request leaves the window",
        "schema": {"type": "integer"},
    },
}


def _guarded(role: str) -> dict[str, Any]:
    """Security requirement and the 401/403/429 answers of a route that needs ``role``."""
    return {
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "description": f"Requires the role `{role}` or higher (read_only < message_sender < admin).",
        "x-required-role": role,
    }


def _guard_answers() -> dict[str, Any]:
    return {
        "401": {
            "description": "Missing or invalid credentials",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": _json("ErrorBody"),
        },
        "403": _answer("Valid credentials without the required role"),
        "429": {
            "description": "Rate limit exceeded; retry after `Retry-After` seconds",
            "headers": {**_RATE_HEADERS, "Retry-After": {"schema": {"type": "integer"}}},
            "content": _json("RateLimitError"),
        },
    }


def _rate_limited(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "headers": _RATE_HEADERS}


def build_document() -> dict[str, Any]:
    errors = {
        "400": _answer("Invalid input; `field` names the offending field"),
        "503": _answer("A dependency (Redis, RabbitMQ) is unavailable; retry after `Retry-After`"),
    }
    guard = _guard_answers()
    health = {"200": _answer("Healthy", "HealthReport"), "503": _answer("A dependency fails", "HealthReport")}
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Same key (per client) within 24 h: the first answer again with 200, nothing queued twice. "
            "Without it, `metadata.message_id` or `metadata.wamid` is used."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "EAí Agent Gateway API", "version": VERSION},
        "paths": {
            "/api/v1/message/webhook/user": {
                "post": {
                    "summary": "Accept a user message and queue it",
                    **_guarded("message_sender"),
                    "parameters": [idempotency],
                    "requestBody": {"required": True, "content": _json("WebhookRequest")},
                    "responses": {
                        "202": _rate_limited(
                            _answer("Queued (201 when WEBHOOK_SUCCESS_STATUS=201)", "WebhookAccepted")
                        ),
                        "200": _rate_limited(_answer("Duplicate: the first request's answer", "Duplicate")),
                        "413": _answer("Body larger than MAX_REQUEST_SIZE"),
                        "415": _answer("Content-Type is not JSON"),
                        **guard,
                        **errors,
                    },
                }
            },
            "/api/v1/message/webhook/update_history": {
                "post": {
                    "summary": "Append messages to a user's agent thread (synchronous)",
                    **_guarded("message_sender"),
                    "requestBody": {"required": True, "content": _json("HistoryUpdateRequest")},
                    "responses": {
                        "200": {"description": "The agent backend's answer"},
                        "415": _answer("Content-Type is not JSON"),
                        **guard,
                        **errors,
                    },
                }
            },
            "/api/v1/message/response": {
                "get": {
                    "summary": "Poll the result of a message",
                    **_guarded("read_only"),
                    "parameters": [_message_id_param()],
                    "responses": {
                        **guard,
                        "200": _answer("Completed or failed", "PollResponse"),
                        "202": _answer("Still processing", "PollResponse"),
                        "404": _answer("Unknown or expired message id"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/stream": {
                "get": {
                    "summary": "Follow a message as Server-Sent Events (docs/streaming.md)",
                    **_guarded("read_only"),
                    "parameters": [
                        _message_id_param(),
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "description": "resume after this event id",
                            "schema": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
                        },
                    ],
                    "responses": {
                        **guard,
                        "200": {
                            "description": "status, chunk, reset events, then completed or failed "
                            "(the poll body), or timeout",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "404": _answer("Unknown or expired message id"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/debug/task-status": {
                "get": {
                    "summary": "Debug view of a task's stored state",
                    **_guarded("admin"),
                    "parameters": [_message_id_param()],
                    "responses": {
                        **guard,
                        "200": {"description": "Task state"},
                        "404": _answer("Unknown id"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/last-activity": {
                "get": {
                    "summary": "When the user's last message was answered",
                    **_guarded("read_only"),
                    "parameters": [
                        {"name": "user_number", "in": "query", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        **guard,
                        "200": {"description": "Timestamp"},
                        "404": _answer("No activity"),
                        **errors,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Dependency health (open when HEALTH_PUBLIC=true)",
                    **_guarded("read_only"),
                    "responses": {**health, **guard},
                }
            },
            "/health/{dependency}": {
                "get": {
                    "summary": "Health of one dependency (redis, rabbitmq)",
                    **_guarded("read_only"),
                    "parameters": [
                        {"name": "dependency", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {**health, **guard},
                }
            },
            "/ready": {"get": {"summary": "Readiness", "security": [], "responses": health}},
            "/live": {
                "get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Alive"}}}
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (open when METRICS_PUBLIC=true)",
                    **_guarded("read_only"),
                    "responses": {"200": {"description": "Text"}, **guard},
                }
            },
        },
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from API_TOKEN/API_TOKENS, or a JWT (HS256/RS256)",
                },
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
