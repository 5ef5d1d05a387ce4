"""``python -m shared.chat`` against the local stack: one-shot mode, and the interactive mode in a pty."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from shared.chat import ChatClient
from shared.localstack import ROOT as ROOT_DIR
from shared.localstack import LocalStack
from tests.conftest import start_stack
from tests.helpers import TEST_TOKEN, api, embedded_settings

USER = "5521977776666"


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    stack = start_stack(embedded_settings(mock_agent_chunk_delay_ms=10))
    yield stack
    stack.stop()


def chat(stack: LocalStack, *args: str, token: str = TEST_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_URL": stack.base_url, "GATEWAY_TOKEN": token, "GATEWAY_USER_NUMBER": USER}
    return subprocess.run(
        [sys.executable, "-m", "shared.chat", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT_DIR,
        timeout=60,
        check=False,
    )


def test_one_shot_prints_the_final_content_and_succeeds(stack: LocalStack) -> None:
    done = chat(stack, "--message", "Olá **mundo**")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Você disse: Olá *mundo*\n"  # the formatted WhatsApp text, not raw chunks


def test_one_shot_json_and_polling_give_the_poll_body(stack: LocalStack) -> None:
    done = chat(stack, "--message", "Oi", "--json", "--no-stream")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    polled = api.get(stack.base_url + "/api/v1/message/response", params={"message_id": body["message_id"]})
    assert body == polled.json()
    assert body["content"] == "Você disse: Oi"


def test_one_shot_exits_non_zero_when_the_task_fails(stack: LocalStack) -> None:
    done = chat(stack, "--message", "FAIL_PERMANENT agora")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "AGENT_ERROR" in done.stderr


def test_one_shot_exits_2_when_the_gateway_refuses(stack: LocalStack) -> None:
    done = chat(stack, "--message", "Oi", token="wrong-token")
    assert done.returncode == 2
    assert "HTTP 401" in done.stderr


def test_previous_message_is_kept_between_messages(stack: LocalStack) -> None:
    client = ChatClient(stack.base_url, TEST_TOKEN, "5521966665555", timeout=20)
    seen: list[str] = []
    first = client.ask("um", lambda event: seen.append(event.event))
    assert first["content"] == "Você disse: um"
    assert "chunk" in seen  # the reply was streamed
    assert client.previous_message == "Você disse: um"
    client.ask("dois")
    store = stack.runtime.store
    record = json.loads(str(store.client.get(store.key("thread", "5521966665555"))))
    assert record["message_count"] == 3  # "um", then previous_message + "dois"
    client.clear()
    assert client.previous_message is None and client.history == []


class Terminal:
    """A child process on a pseudo-terminal."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT_DIR, close_fds=True
        )
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not seen; output so far:\n{self.output}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 4096).decode("utf-8", errors="replace")
                except OSError:  # the child closed the terminal
                    break
        found = self.output
        self.output = self.output[self.output.index(text) + len(text) :] if text in self.output else ""
        return found

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self.master)


def test_interactive_session_in_a_pseudo_terminal(stack: LocalStack) -> None:
    env = {**os.environ, "GATEWAY_TOKEN": TEST_TOKEN}
    terminal = Terminal(
        [sys.executable, "-m", "shared.chat", "--url", stack.base_url, "--user-number", USER], env
    )
    try:
        terminal.expect("you> ")
        terminal.send("/help")
        assert "/history" in terminal.expect("you> ")
        terminal.send("tudo bem?")
        answer = terminal.expect("you> ")
        assert "agent> Você disse: tudo bem?" in answer
        terminal.send("/history")
        history = terminal.expect("you> ")
        assert "you: tudo bem?" in history
        assert "agent [completed]: Você disse: tudo bem?" in history
        terminal.send("/status")
        status = terminal.expect("you> ")
        assert "health: HTTP 200" in status
        assert "completed" in status and "previous_message: set" in status
        terminal.send("/quit")
        assert terminal.process.wait(timeout=10) == 0
    finally:
        terminal.close()
