"""Shared fixtures: settings, an in-process gateway (the three routers behind one Flask app)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
import werkzeug.routing

from shared.api import poll_router, webhook_router, worker_router
from shared.config import Settings, load_settings
from shared.localstack import WEBHOOK_PREFIX, WORKER_PATH, LocalStack
from shared.runtime import Runtime, build_runtime, set_runtime
from tests.helpers import cleanup_run, embedded_settings, new_run_id, real_settings

ADMIN_TOKEN = "adm-" + "a" * 40
SENDER_TOKEN = "snd-" + "s" * 40
READER_TOKEN = "rdr-" + "r" * 40
SENDER_KEY = "key-" + "k" * 40
READER_KEY = "kro-" + "q" * 40
JWT_SECRET = "jwt-secret-" + "j" * 40


def make_settings(**overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "api_token": ADMIN_TOKEN,
        "api_tokens": [f"{SENDER_TOKEN}:message_sender", f"{READER_TOKEN}:read_only:dashboard"],
        "api_keys": [f"{SENDER_KEY}:message_sender:whatsapp", f"{READER_KEY}:read_only"],
        "jwt_secret": JWT_SECRET,
        "agent_provider": "mock",
        "redis_key_prefix": f"test-{uuid.uuid4().hex[:8]}:",
    }
    defaults.update(overrides)
    return load_settings(**defaults)


def gateway_app(runtime: Runtime) -> flask.Flask:
    """One Flask app that routes like the local stack: webhook, worker and poll routers."""
    routers = {
        "webhook": webhook_router(lambda: runtime),
        "worker": worker_router(lambda: runtime),
        "poll": poll_router(lambda: runtime),
    }
    app = flask.Flask("gateway-test")

    def _all(path: str) -> flask.Response:
        request = flask.request
        if request.path.startswith(WEBHOOK_PREFIX):
            return routers["webhook"].dispatch(request)
        if request.path == WORKER_PATH:
            return routers["worker"].dispatch(request)
        return routers["poll"].dispatch(request)

    # Every method reaches the function, as functions-framework mounts it.
    app.url_map.add(werkzeug.routing.Rule("/", defaults={"path": ""}, endpoint="run"))
    app.url_map.add(werkzeug.routing.Rule("/<path:path>", endpoint="run"))
    app.view_functions["run"] = _all
    return app


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., tuple[flask.testing.FlaskClient, Runtime]]]:
    built: list[Runtime] = []

    def factory(**overrides: Any) -> tuple[flask.testing.FlaskClient, Runtime]:
        runtime = build_runtime(make_settings(**overrides))
        built.append(runtime)
        return gateway_app(runtime).test_client(), runtime

    yield factory
    for runtime in built:
        runtime.close()


@pytest.fixture(autouse=True)
def _forget_runtime() -> Iterator[None]:
    yield
    set_runtime(None)


@pytest.fixture
def run_id() -> Iterator[str]:
    run = new_run_id()
    yield run
    cleanup_run(run)


@pytest.fixture
def real(run_id: str) -> Settings:
    """Settings on the real Redis and RabbitMQ, isolated for this test."""
    return real_settings(run_id)


def start_stack(settings: Settings) -> LocalStack:
    return LocalStack(settings, port=0, host="127.0.0.1").start()


@pytest.fixture
def embedded_stack() -> Iterator[LocalStack]:
    stack = start_stack(embedded_settings())
    yield stack
    stack.stop()


@pytest.fixture
def real_stack(real: Settings) -> Iterator[LocalStack]:
    stack = start_stack(real)
    yield stack
    stack.stop()
