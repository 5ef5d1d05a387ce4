"""``python -m shared.localstack --check``: settings validated, dependencies reached, exit codes."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared import configcheck
from shared.localstack import ROOT
from tests.helpers import RABBITMQ_URL, REDIS_URL, TEST_TOKEN

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3t-pw-" + "p" * 20


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment: no setting of the gateway leaks in from the machine."""
    from shared.config import Settings, env_name

    for field in Settings.model_fields:
        for name in Settings.model_fields[field].validation_alias.choices:  # type: ignore[union-attr]
            monkeypatch.delenv(str(name), raising=False)
        monkeypatch.delenv(env_name(Settings, field), raising=False)
    monkeypatch.setenv("API_TOKEN", TEST_TOKEN)
    yield monkeypatch


def run() -> tuple[int, list[str]]:
    out = io.StringIO()
    code = configcheck.main(out, timeout=2.0)
    return code, out.getvalue().splitlines()


def line(lines: list[str], name: str) -> str:
    found = [text for text in lines if text.split(" ", 1)[1].startswith(name)]
    assert found, lines
    return found[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_good_configuration_passes(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", REDIS_URL)
    env.setenv("RABBITMQ_URL", RABBITMQ_URL)
    with _http_server(200) as url:
        env.setenv("EAI_AGENT_SERVICE_URL", url)
        code, lines = run()
    assert code == 0, lines
    assert line(lines, "settings").startswith("✅")
    assert line(lines, "credentials").startswith("✅")
    assert line(lines, "Redis").startswith("✅ Redis: PONG from 127.0.0.1:6379")
    assert line(lines, "RabbitMQ").startswith("✅ RabbitMQ: connected to 127.0.0.1:5672")
    assert line(lines, "agent provider eai").startswith("✅")
    assert lines[-1] == "✅ configuration OK"


def test_embedded_configuration_only_warns(env: pytest.MonkeyPatch) -> None:
    code, lines = run()
    assert code == 0, lines
    assert line(lines, "Redis").startswith("⚠️")
    assert line(lines, "RabbitMQ").startswith("⚠️")
    assert line(lines, "agent provider mock").startswith("⚠️")


def test_invalid_settings_are_named(env: pytest.MonkeyPatch) -> None:
    env.setenv("RATE_LIMIT_BURST", "0")
    env.setenv("IP_ALLOWLIST", "everywhere=10.0.0.0/8")
    env.setenv("JWT_SECRET", "")
    code, lines = run()
    assert code == 1
    assert line(lines, "setting RATE_LIMIT_BURST").startswith("❌")
    assert "unknown route group" in line(lines, "setting IP_ALLOWLIST")
    assert lines[-1].startswith("❌ 2 critical")


def test_unreachable_dependencies_fail_without_leaking_secrets(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0")
    env.setenv("RABBITMQ_URL", f"amqp://guest:{PASSWORD}@127.0.0.1:{closed_port()}/%2F")
    env.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    env.setenv("OPENAI_API_KEY", PASSWORD)
    env.setenv("TRANSCRIBE_PROVIDER", "google")
    code, lines = run()
    assert code == 1
    assert line(lines, "Redis").startswith("❌ Redis: cannot reach 127.0.0.1:")
    assert line(lines, "RabbitMQ").startswith("❌ RabbitMQ: cannot connect")
    assert line(lines, "agent provider openai").startswith("❌")
    assert line(lines, "Speech-to-Text").startswith("⚠️")  # voice notes only: not critical
    assert PASSWORD not in "\n".join(lines)


def test_missing_credentials_and_refused_api_keys_fail(env: pytest.MonkeyPatch) -> None:
    env.delenv("API_TOKEN")
    with _http_server(401) as url:
        env.setenv("OPENAI_BASE_URL", url)
        env.setenv("OPENAI_API_KEY", PASSWORD)
        code, lines = run()
    assert code == 1
    assert line(lines, "credentials").startswith("❌")
    assert "refused the credentials" in line(lines, "agent provider openai")


def test_command_line_check() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "RABBITMQ", "API_"))}
    good = subprocess.run(
        [sys.executable, "-m", "shared.localstack", "--check"],
        env={**environ, "API_TOKEN": TEST_TOKEN, "REDIS_URL": REDIS_URL, "RABBITMQ_URL": RABBITMQ_URL},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "✅ Redis" in good.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "shared.localstack", "--check"],
        env={**environ, "API_TOKEN": TEST_TOKEN, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "❌ Redis" in bad.stdout


class _Server:
    def __init__(self, status: int) -> None:
        code = status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextmanager
def _http_server(status: int) -> Iterator[str]:
    server = _Server(status)
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.httpd.server_port}"
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
