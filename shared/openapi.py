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


def build_document() -> dict[str, Any]:
    errors = {
        "400": _answer("Invalid input; `field` names the offending field"),
        "503": _answer("A dependency (Redis, RabbitMQ) is unavailable; retry after `Retry-After`"),
    }
    health = {"200": _answer("Healthy", "HealthReport"), "503": _answer("A dependency fails", "HealthReport")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "EAí Agent Gateway API", "version": VERSION},
        "paths": {
            "/api/v1/message/webhook/user": {
                "post": {
                    "summary": "Accept a user message and queue it",
                    "requestBody": {"required": True, "content": _json("WebhookRequest")},
                    "responses": {
                        "202": _answer("Queued (201 when WEBHOOK_SUCCESS_STATUS=201)", "WebhookAccepted"),
                        "413": _answer("Body larger than MAX_REQUEST_SIZE"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/webhook/update_history": {
                "post": {
                    "summary": "Append messages to a user's agent thread (synchronous)",
                    "requestBody": {"required": True, "content": _json("HistoryUpdateRequest")},
                    "responses": {"200": {"description": "The agent backend's answer"}, **errors},
                }
            },
            "/api/v1/message/response": {
                "get": {
                    "summary": "Poll the result of a message",
                    "parameters": [_message_id_param()],
                    "responses": {
                        "200": _answer("Completed or failed", "PollResponse"),
                        "202": _answer("Still processing", "PollResponse"),
                        "404": _answer("Unknown or expired message id"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/debug/task-status": {
                "get": {
                    "summary": "Debug view of a task's stored state",
                    "parameters": [_message_id_param()],
                    "responses": {
                        "200": {"description": "Task state"},
                        "404": _answer("Unknown id"),
                        **errors,
                    },
                }
            },
            "/api/v1/message/last-activity": {
                "get": {
                    "summary": "When the user's last message was answered",
                    "parameters": [
                        {"name": "user_number", "in": "query", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "Timestamp"},
                        "404": _answer("No activity"),
                        **errors,
                    },
                }
            },
            "/health": {"get": {"summary": "Dependency health", "responses": health}},
            "/health/{dependency}": {
                "get": {
                    "summary": "Health of one dependency (redis, rabbitmq)",
                    "parameters": [
                        {"name": "dependency", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": health,
                }
            },
            "/ready": {"get": {"summary": "Readiness", "responses": health}},
            "/live": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
            "/metrics": {
                "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text"}}}
            },
        },
        "components": {"schemas": _schemas()},
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
