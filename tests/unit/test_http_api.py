"""Bad input, routing and the poll states, through the functions built by functions-framework."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest
from flask.testing import FlaskClient

from shared.openapi import render
from shared.runtime import Runtime, build_runtime, set_runtime
from tests.helpers import AUTH, embedded_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    built = build_runtime(embedded_settings(max_request_size=2048))
    set_runtime(built)
    yield built
    built.store.client.flushall()


def client(name: str) -> FlaskClient:
    app = functions_framework.create_app(name, str(ROOT / "functions" / name / "main.py"), "http")
    test_client: FlaskClient = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]
    return test_client


WEBHOOK = "/api/v1/message/webhook/user"


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"data": "not json", "content_type": "application/json"}, 400, "body"),
        ({"data": "", "content_type": "application/json"}, 400, "body"),
        ({"json": ["a list"]}, 400, "body"),
        ({"json": {"message": "oi"}}, 400, "user_number"),
        ({"json": {"user_number": "5521999999999"}}, 400, "message"),
        ({"json": {"user_number": "5521999999999", "message": 3}}, 400, "message"),
        (
            {"json": {"user_number": "5521999999999", "message": "oi", "message_type": "sticker"}},
            400,
            "message_type",
        ),
        ({"json": {"user_number": "5521999999999", "message": "x" * 4000}}, 413, "body"),
    ],
)
def test_bad_input_is_a_json_error_naming_the_field(
    runtime: Runtime, kwargs: dict[str, object], status: int, field: str
) -> None:
    response = client("webhook").post(WEBHOOK, **kwargs)
    assert response.status_code == status
    body = response.get_json()
    assert body["field"] == field
    assert body["error"] and body["message"]
    assert runtime.broker is not None
    assert runtime.broker.depth() == 0  # nothing invalid reaches the queue


def test_oversized_message_text_is_refused(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"max_message_bytes": 10})
    response = client("webhook").post(WEBHOOK, json={"user_number": "5521999999999", "message": "ç" * 6})
    assert response.status_code == 400
    assert response.get_json()["field"] == "message"


def test_accepted_message_is_queued_once(runtime: Runtime) -> None:
    response = client("webhook").post(WEBHOOK, json={"user_number": "5521999999999", "message": "oi"})
    assert response.status_code == 202
    assert runtime.broker is not None and runtime.broker.depth() == 1
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_201_for_old_clients(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhook_success_status": 201})
    assert (
        client("webhook").post(WEBHOOK, json={"user_number": "5521999999999", "message": "oi"}).status_code
        == 201
    )


def test_unknown_routes_and_methods(runtime: Runtime) -> None:
    webhook = client("webhook")
    missing = webhook.get("/nowhere")
    assert missing.status_code == 404
    assert missing.get_json()["path"] == "/nowhere"
    wrong = webhook.get(WEBHOOK)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_poll_states(runtime: Runtime) -> None:
    poll = client("poll")
    store = runtime.store
    unknown = poll.get("/api/v1/message/response?message_id=3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f70")
    assert unknown.status_code == 404
    assert unknown.get_json() == {
        "error": "Task not found",
        "message": "No task found with the provided message ID",
    }
    assert poll.get("/api/v1/message/response").get_json()["field"] == "message_id"
    assert poll.get("/api/v1/message/response?message_id=nope").status_code == 400

    failed_id = "3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f71"
    store.accept(
        failed_id, user_number="5521", provider="mock", callback_url=None, summary={"thread_id": "5521"}
    )
    store.mark_failed(failed_id, error="agent said no", error_code="AGENT_ERROR", retry_after=30)
    failed = poll.get(f"/api/v1/message/response?message_id={failed_id.upper()}")
    assert failed.status_code == 200
    assert failed.get_json() == {
        "status": "failed",
        "message_id": failed_id,
        "error": "agent said no",
        "error_code": "AGENT_ERROR",
        "retry_after": 30,
        "thread_id": "5521",
    }


def test_completed_result_is_read_from_the_go_double_encoding(runtime: Runtime) -> None:
    message_id = "3f0c9a1e-8b2d-4c6f-9e1a-2b3c4d5e6f72"
    store = runtime.store
    store.accept(message_id, user_number="5521", provider="mock", callback_url=None, summary={})
    data = {"messages": [], "agent_id": "user_5521", "processed_at": message_id, "status": "done"}
    store.save_result(
        message_id, user_number="5521", data=data, summary={"content": "Oi", "processing_time_ms": 5}
    )
    raw = store.client.get(store.key("task:result", message_id))
    assert isinstance(raw, str) and raw.startswith('"{')  # a JSON string literal, as Go stores it
    body = client("poll").get(f"/api/v1/message/response?message_id={message_id}").get_json()
    assert body["data"] == data
    assert body["content"] == "Oi"
    # When the result expires before the status (120 s vs 600 s), the Go answer has no data.
    store.client.delete(store.key("task:result", message_id))
    body = client("poll").get(f"/api/v1/message/response?message_id={message_id}").get_json()
    assert body["status"] == "completed" and "data" not in body and body["content"] == "Oi"


def test_worker_rejects_undecodable_envelopes(runtime: Runtime) -> None:
    worker = client("worker")
    assert worker.post("/", json={"message": {"data": "!!"}}).status_code == 400
    assert worker.post("/", json={"nothing": 1}).status_code == 400


def test_checked_in_openapi_document_is_current(runtime: Runtime) -> None:
    assert (ROOT / "openapi.json").read_text() == render(), "run `make openapi`"
    served = client("poll").get("/openapi.json")
    assert served.status_code == 200
    assert "/api/v1/message/webhook/user" in served.get_json()["paths"]
