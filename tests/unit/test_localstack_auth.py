"""The local stack: a generated token when none is set, and the whole path works with it."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from shared import localstack
from shared.localstack import LocalStack, _banner, _prepare_environment
from tests.conftest import make_settings


@pytest.fixture
def clean_env(monkeypatch):
    names = (*localstack.CREDENTIAL_VARIABLES, "AUTH_DISABLED", "REDIS_URL", "REDIS_DSN", "RABBITMQ_URL")
    for name in (*names, "WORKER_URL", "AGENT_PROVIDER", "PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_make_run_generates_a_token_when_none_is_set(clean_env):
    import os

    token = _prepare_environment()
    assert token and len(token) >= 40 and os.environ["API_TOKEN"] == token


def test_no_token_generated_when_credentials_or_disabled(clean_env):
    clean_env.setenv("API_KEYS", "k:read_only")
    assert _prepare_environment() is None
    clean_env.delenv("API_KEYS")
    clean_env.setenv("AUTH_DISABLED", "true")
    assert _prepare_environment() is None


def test_local_stack_end_to_end_with_the_banner_token():
    token = "local-" + "t" * 40
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        api_token=token,
        api_tokens=[],
        api_keys=[],
        jwt_secret="",
        worker_url=f"http://127.0.0.1:{port}/internal/worker",
    )
    stack = LocalStack(settings, port=port, host="127.0.0.1").start()
    try:
        banner = _banner(stack, token)
        assert f'-H "Authorization: Bearer {token}"' in banner
        headers = {"Authorization": f"Bearer {token}"}
        accepted = httpx.post(
            f"{stack.base_url}/api/v1/message/webhook/user",
            json={"user_number": "5521999999999", "message": "Olá!"},
            headers=headers,
        )
        assert accepted.status_code == 202
        poll = f"{stack.base_url}{accepted.json()['polling_endpoint']}"
        deadline = time.monotonic() + 20
        while True:
            answer = httpx.get(poll, headers=headers)
            if answer.status_code != 202 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer.status_code == 200 and answer.json()["status"] == "completed"
        assert httpx.get(poll).status_code == 401
    finally:
        stack.stop()
