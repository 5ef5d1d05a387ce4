"""Route tables of the three functions (each function receives every path of its URL)."""

from __future__ import annotations

import flask
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import health, intake, polling, worker
from shared.http import Router
from shared.runtime import get_runtime


def webhook_router() -> Router:
    router = Router()
    router.add("POST", "/api/v1/message/webhook/user", lambda r: intake.accept_user_message(r, get_runtime()))
    router.add(
        "POST", "/api/v1/message/webhook/update_history", lambda r: intake.update_history(r, get_runtime())
    )
    _probes(router)
    return router


def worker_router() -> Router:
    router = Router()
    # Pub/Sub push subscriptions and the bridge POST to the function's root URL.
    router.add("POST", "/", lambda r: worker.handle_push(r, get_runtime()))
    router.add("POST", "/internal/worker", lambda r: worker.handle_push(r, get_runtime()))
    _probes(router)
    return router


def poll_router() -> Router:
    router = Router()
    router.add("GET", "/api/v1/message/response", lambda r: polling.get_response(r, get_runtime()))
    router.add(
        "GET", "/api/v1/message/debug/task-status", lambda r: polling.get_task_status(r, get_runtime())
    )
    router.add("GET", "/api/v1/message/last-activity", lambda r: polling.get_last_activity(r, get_runtime()))
    router.add("GET", "/health", lambda r: health.health(r, get_runtime()))
    router.add_prefix("GET", "/health/", lambda r: health.dependency(r, get_runtime()))
    router.add("GET", "/metrics", _metrics)
    router.add("GET", "/openapi.json", _openapi)
    _probes(router)
    return router


def _probes(router: Router) -> None:
    router.add("GET", "/ready", lambda r: health.ready(r, get_runtime()))
    router.add("GET", "/live", health.live)


def _metrics(_request: flask.Request) -> flask.Response:
    return flask.Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def _openapi(_request: flask.Request) -> flask.Response:
    from shared.openapi import render

    return flask.Response(render(), mimetype="application/json")
