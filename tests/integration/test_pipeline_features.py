"""The worker's real job through the whole local stack: voice notes, formatting, providers, callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.localstack import LocalStack
from tests.conftest import start_stack
from tests.helpers import (
    DIGITS,
    api,
    embedded_settings,
    needs_speech_tools,
    poll_until_final,
    speak_digits,
    wait_for,
)

WEBHOOK = "/api/v1/message/webhook/user"

Route = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]]


class LocalServer:
    """A loopback HTTP server with per-path handlers; records every request."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                path = self.path.split("?", 1)[0]
                server.requests.append((path, dict(self.headers), body))
                route = server.routes.get(path)
                status, headers, payload = route(self, body) if route else (404, {}, b"missing")
                self.send_response(status)
                for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve  # noqa: N815 - names the standard library dispatches to

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stack_with(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalStack]]:
    started: list[LocalStack] = []

    def start(**overrides: Any) -> LocalStack:
        values = {"allow_private_network_urls": True, "callback_max_retries": 2, **overrides}
        settings = embedded_settings(**values)
        stack = start_stack(settings)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def send(stack: LocalStack, **body: Any) -> dict[str, Any]:
    response = api.post(stack.base_url + WEBHOOK, json={"user_number": "5521912345678", **body})
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="module")
def voice_note(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak_digits(tmp_path_factory.mktemp("voice")).read_bytes()


def serve(payload: bytes, content_type: str = "audio/ogg", status: int = 200) -> Route:
    return lambda _handler, _body: (status, {"Content-Type": content_type}, payload)


@needs_speech_tools
def test_voice_note_is_transcribed_and_the_agent_gets_the_transcript(
    stack_with: Callable[..., LocalStack], voice_note: bytes
) -> None:
    audio = LocalServer({"/media/note.ogg": serve(voice_note)})
    try:
        stack = stack_with()
        accepted = send(stack, message=f"{audio.base}/media/note.ogg?token=abc")
        result = poll_until_final(stack.base_url, accepted["message_id"], timeout=60)
    finally:
        audio.close()
    assert result["status"] == "completed", result
    assert result["message_type"] == "audio"
    for digit in DIGITS:
        assert digit in result["transcript"]
        assert digit in result["content"]  # the mock agent echoes what it received
    assert result["content"].startswith("Você disse: ")


@pytest.mark.parametrize(
    ("routes", "path", "error_code"),
    [
        ({"/a.ogg": serve(b"<html>not audio</html>", "text/html")}, "/a.ogg", "INVALID_AUDIO"),
        ({"/a.ogg": serve(b"gone", status=404)}, "/a.ogg", "DOWNLOAD_ERROR"),
        ({"/a.ogg": serve(b"OggS" + b"\0" * 3000)}, "/a.ogg", "AUDIO_TOO_LARGE"),
    ],
)
def test_bad_voice_notes_end_failed_with_a_reason(
    stack_with: Callable[..., LocalStack], routes: dict[str, Route], path: str, error_code: str
) -> None:
    audio = LocalServer(routes)
    try:
        stack = stack_with(max_audio_size_mb=0.001)
        result = poll_until_final(stack.base_url, send(stack, message=audio.base + path)["message_id"])
    finally:
        audio.close()
    assert result["status"] == "failed"
    assert result["error_code"] == error_code
    assert result["retry_after"] == 30
    assert result["message_type"] == "audio"


def test_unreachable_audio_host_fails(stack_with: Callable[..., LocalStack]) -> None:
    stack = stack_with(audio_download_timeout=2)
    result = poll_until_final(stack.base_url, send(stack, message="http://127.0.0.1:9/a.ogg")["message_id"])
    assert (result["status"], result["error_code"]) == ("failed", "DOWNLOAD_ERROR")


@pytest.mark.parametrize("target", ["/a.ogg", "http://169.254.169.254/latest/meta-data.ogg"])
def test_internal_audio_addresses_are_refused(stack_with: Callable[..., LocalStack], target: str) -> None:
    """Loopback, private and metadata addresses are refused, directly or after a redirect.

    (Redirect hops from a public host are covered with an injected resolver in test_audio_download.)
    """
    audio = LocalServer({"/a.ogg": serve(b"OggS" + b"\0" * 100)})
    try:
        stack = stack_with(allow_private_network_urls=False)
        url = audio.base + target if target.startswith("/") else target
        result = poll_until_final(stack.base_url, send(stack, message=url)["message_id"])
    finally:
        audio.close()
    assert (result["status"], result["error_code"]) == ("failed", "UNSAFE_URL")
    assert audio.requests == []


def test_assistant_markdown_is_formatted_once_for_whatsapp(stack_with: Callable[..., LocalStack]) -> None:
    stack = stack_with()
    result = poll_until_final(stack.base_url, send(stack, message="**negrito** e ~~riscado~~")["message_id"])
    assert result["content"] == "Você disse: *negrito* e ~riscado~"
    assistant = [m for m in result["data"]["messages"] if m["message_type"] == "assistant_message"]
    assert assistant[0]["content"] == result["content"]
    user = [m for m in result["data"]["messages"] if m["message_type"] == "user_message"]
    assert user[0]["content"] == "**negrito** e ~~riscado~~"  # only assistant text is formatted
    assert result["content_parts"] == [result["content"]]


def test_openai_compatible_provider_answers(stack_with: Callable[..., LocalStack]) -> None:
    def completion(_handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = json.loads(body)
        reply = {
            "model": request["model"],
            "choices": [
                {"message": {"role": "assistant", "content": "Olá do **modelo**"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()

    model = LocalServer({"/v1/chat/completions": completion})
    try:
        stack = stack_with(
            agent_provider="openai",
            openai_base_url=model.base + "/v1",
            openai_api_key="sk-test",
            openai_model="tiny",
        )
        result = poll_until_final(stack.base_url, send(stack, message="oi")["message_id"])
    finally:
        model.close()
    assert result["provider"] == "openai"
    assert result["content"] == "Olá do *modelo*"
    _, headers, body = model.requests[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert json.loads(body)["messages"][-1] == {"role": "user", "content": "oi"}


def test_fallback_provider_answers_when_the_first_is_down(stack_with: Callable[..., LocalStack]) -> None:
    stack = stack_with(
        agent_provider="openai",
        openai_base_url="http://127.0.0.1:9/v1",
        agent_fallback_providers="mock",
        agent_max_attempts=1,
    )
    result = poll_until_final(stack.base_url, send(stack, message="oi")["message_id"])
    assert result["status"] == "completed"
    assert result["provider"] == "mock"
    assert result["fallback_from"] == ["openai"]


def test_callbacks_are_signed_retried_and_recorded(stack_with: Callable[..., LocalStack]) -> None:
    answers = iter([503, 200])
    hook = LocalServer({"/hook": lambda _h, _b: (next(answers), {}, b"")})
    try:
        stack = stack_with(callback_hmac_secret="s3cret", callback_auth_token="cb-token")
        accepted = send(stack, message="oi", callback_url=hook.base + "/hook")
        poll_until_final(stack.base_url, accepted["message_id"])
        wait_for(lambda: stack.runtime.store.callback_state(accepted["message_id"]).get("state"))
    finally:
        hook.close()
    assert len(hook.requests) == 2
    _, headers, body = hook.requests[-1]
    assert headers["X-Signature-SHA256"] == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["Authorization"] == "Bearer cb-token"
    payload = json.loads(body)
    assert payload["message_id"] == accepted["message_id"]
    assert payload["status"] == "completed"
    assert payload["content"] == "Você disse: oi"
    assert payload["processed_at"] == accepted["message_id"]
    state = stack.runtime.store.callback_state(accepted["message_id"])
    assert state == {"state": "delivered", "attempts": 2, "http_status": 200}


def test_failures_are_called_back_too(stack_with: Callable[..., LocalStack]) -> None:
    hook = LocalServer({"/hook": lambda _h, _b: (204, {}, b"")})
    try:
        stack = stack_with()
        accepted = send(stack, message="FAIL_PERMANENT now", callback_url=hook.base + "/hook")
        wait_for(lambda: hook.requests)
    finally:
        hook.close()
    payload = json.loads(hook.requests[0][2])
    assert payload["status"] == "failed"
    assert payload["error_code"] == "AGENT_ERROR"
    assert payload["message_id"] == accepted["message_id"]


def test_a_4xx_callback_is_not_retried(stack_with: Callable[..., LocalStack]) -> None:
    hook = LocalServer({"/hook": lambda _h, _b: (410, {}, b"")})
    try:
        stack = stack_with()
        accepted = send(stack, message="oi", callback_url=hook.base + "/hook")
        state = wait_for(lambda: stack.runtime.store.callback_state(accepted["message_id"]).get("state"))
    finally:
        hook.close()
    assert state == "failed"
    assert len(hook.requests) == 1
