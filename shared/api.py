"""Route tables of the three functions (each function receives every path of its URL), with the
policy of each route: the role it requires and its rate-limit group (see docs/security.md).

The worker's routes are not covered by API tokens: in GCP the worker only accepts calls authorised by
IAM (the bridge's or Pub/Sub's OIDC identity token, checked by Cloud Run before the code runs);
locally the worker is open on the loopback stack.

Each factory imports the handler modules of its own function only: a cold start of the webhook must
not pay for the worker's pipeline (Markdown parser, agent clients) or the poll's streaming code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import flask

from shared import health
from shared.auth import Role
from shared.http import Policy, Router
from shared.runtime import Runtime, get_runtime

SEND = Policy(role=Role.MESSAGE_SENDER, group="webhook", fail_open=False, access="webhooks")
READ = Policy(role=Role.READ_ONLY, group="poll", access="polling")
ADMIN = Policy(role=Role.ADMIN, group="debug", access="admin", audit="admin.debug")
HEALTH = Policy(role=Role.READ_ONLY, group="ops", public_setting="health_public")
METRICS = Policy(role=Role.READ_ONLY, group="ops", public_setting="metrics_public", access="admin")
DOCS = Policy(group="docs")


def webhook_router(runtime: Callable[[], Runtime] = get_runtime) -> Router:
    from shared import intake

    router = Router(context=runtime)
    router.add(
        "POST",
        "/api/v1/message/webhook/user",
        lambda r: intake.accept_user_message(r, runtime()),
        replace(SEND, audit="message.accept"),
    )
    router.add(
        "POST",
        "/api/v1/message/webhook/update_history",
        lambda r: intake.update_history(r, runtime()),
        replace(SEND, audit="history.update"),
    )
    _probes(router, runtime)
    return router


def worker_router(runtime: Callable[[], Runtime] = get_runtime) -> Router:
    from shared import worker

    router = Router(context=runtime)
    # Pub/Sub push subscriptions and the bridge POST to the function's root URL.
    router.add("POST", "/", lambda r: worker.handle_push(r, runtime()))
    router.add("POST", "/internal/worker", lambda r: worker.handle_push(r, runtime()))
    _probes(router, runtime)
    return router


def poll_router(runtime: Callable[[], Runtime] = get_runtime) -> Router:
    from shared import demo, polling, sse

    router = Router(context=runtime)
    router.add("GET", "/api/v1/message/response", lambda r: polling.get_response(r, runtime()), READ)
    router.add("GET", "/api/v1/message/stream", lambda r: sse.stream_task(r, runtime()), READ)
    router.add(
        "GET", "/api/v1/message/debug/task-status", lambda r: polling.get_task_status(r, runtime()), ADMIN
    )
    router.add(
        "GET", "/api/v1/message/last-activity", lambda r: polling.get_last_activity(r, runtime()), READ
    )
    router.add("GET", "/health", lambda r: health.health(r, runtime()), HEALTH)
    router.add_prefix("GET", "/health/", lambda r: health.dependency(r, runtime()), HEALTH)
    router.add("GET", "/metrics", lambda r: _metrics(r, runtime()), METRICS)
    router.add("GET", "/openapi.json", _openapi, DOCS)
    router.add("GET", "/demo", demo.page, DOCS)  # public: the page asks for a token itself
    router.add_prefix("GET", "/demo/", demo.asset, DOCS)
    _probes(router, runtime)
    return router


def _probes(router: Router, runtime: Callable[[], Runtime]) -> None:
    router.add("GET", "/ready", lambda r: health.ready(r, runtime()))
    router.add("GET", "/live", health.live)


def _metrics(_request: flask.Request, runtime: Runtime) -> flask.Response:
    from shared import metrics

    body, content_type = metrics.render(health.queue_depth_collector(runtime))
    return flask.Response(body, content_type=content_type)


def _openapi(_request: flask.Request) -> flask.Response:
    from shared.openapi import render

    return flask.Response(render(), mimetype="application/json")
