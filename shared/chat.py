"""A chat client for trying the gateway by hand: ``python -m shared.chat``.

Each line typed is sent to the webhook as the given user number; the reply is shown as it is
written (``GET /api/v1/message/stream``), or by polling when streaming is unavailable. The last
reply is sent back as ``previous_message`` with the next line. Commands: ``/help``, ``/history``,
``/clear``, ``/status``, ``/quit``.

One-shot mode for scripts: ``python -m shared.chat --message "Olá"`` prints the final (WhatsApp
formatted) content and exits 0, or prints the error and exits 1 when the task failed (2: usage or
connection problems). Settings come from flags or the environment: ``GATEWAY_URL``,
``GATEWAY_TOKEN``, ``GATEWAY_USER_NUMBER``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

WEBHOOK = "/api/v1/message/webhook/user"
RESPONSE = "/api/v1/message/response"
STREAM = "/api/v1/message/stream"
DEFAULT_URL = "http://localhost:8000"
DEFAULT_USER = "5521999999999"

HELP = """Type a message and press Enter to send it. Commands:
  /help     this text
  /history  the messages of this session
  /clear    forget the session (history and previous_message)
  /status   gateway health and the state of the last message
  /quit     leave (Ctrl-D works too)"""


class GatewayError(Exception):
    """The gateway could not be reached or refused a request."""


@dataclass
class StreamEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


def sse_events(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """Parse Server-Sent Events (comments and unknown fields skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {}
                yield StreamEvent(
                    fields.get("event", "message"),
                    payload if isinstance(payload, dict) else {},
                    fields.get("id"),
                )
            fields, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


@dataclass
class Exchange:
    user: str
    reply: str
    status: str
    message_id: str


@dataclass
class ChatClient:
    """Sends messages and waits for replies, streaming when the gateway allows it."""

    base_url: str
    token: str
    user_number: str
    timeout: float = 120.0
    stream: bool = True
    poll_interval: float = 0.5
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    history: list[Exchange] = field(default_factory=list)
    previous_message: str | None = None
    last_message_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def send(self, text: str) -> str:
        body: dict[str, Any] = {"user_number": self.user_number, "message": text}
        if self.previous_message:
            body["previous_message"] = self.previous_message
        try:
            response = self.http.post(self._url(WEBHOOK), json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise GatewayError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code not in (200, 201, 202):
            refused = f"HTTP {response.status_code} {response.text}"[:500]
            raise GatewayError(f"the gateway refused the message: {refused}")
        message_id = str(response.json()["message_id"])
        self.last_message_id = message_id
        return message_id

    def wait(self, message_id: str, on_event: Callable[[StreamEvent], None] | None = None) -> dict[str, Any]:
        """The final poll body of ``message_id``, streaming events to ``on_event`` when possible."""
        deadline = time.monotonic() + self.timeout
        if self.stream:
            final = self._follow(message_id, deadline, on_event or (lambda _: None))
            if final is not None:
                return final
        return self._poll(message_id, deadline)

    def _follow(
        self, message_id: str, deadline: float, on_event: Callable[[StreamEvent], None]
    ) -> dict[str, Any] | None:
        """Follow the SSE stream (reconnecting with Last-Event-ID); ``None``: fall back to polling."""
        last_id: str | None = None
        while time.monotonic() < deadline:
            headers = dict(self.headers)
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                with self.http.stream(
                    "GET",
                    self._url(STREAM),
                    params={"message_id": message_id},
                    headers=headers,
                    timeout=httpx.Timeout(30, read=max(5.0, deadline - time.monotonic())),
                ) as response:
                    if response.status_code != 200:
                        return None
                    for event in sse_events(response.iter_lines()):
                        if event.id:
                            last_id = event.id
                        if event.event in ("completed", "failed"):
                            return event.data
                        if event.event in ("timeout", "error"):
                            break  # reconnect and resume
                        on_event(event)
            except httpx.HTTPError:
                if last_id is None:
                    return None
                time.sleep(self.poll_interval)
        return None

    def _poll(self, message_id: str, deadline: float) -> dict[str, Any]:
        while True:
            try:
                response = self.http.get(
                    self._url(RESPONSE), params={"message_id": message_id}, headers=self.headers
                )
            except httpx.HTTPError as exc:
                raise GatewayError(f"cannot reach {self.base_url}: {exc}") from exc
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            if response.status_code != 202:
                raise GatewayError(f"polling failed: HTTP {response.status_code} {response.text}")
            if time.monotonic() >= deadline:
                raise GatewayError(f"no reply within {self.timeout:g} s (message {message_id})")
            time.sleep(self.poll_interval)

    def ask(self, text: str, on_event: Callable[[StreamEvent], None] | None = None) -> dict[str, Any]:
        """Send ``text`` and wait for the final body; remember the exchange."""
        message_id = self.send(text)
        final = self.wait(message_id, on_event)
        status = str(final.get("status"))
        reply = str(final.get("content") or "") if status == "completed" else ""
        self.history.append(Exchange(text, reply or str(final.get("error") or ""), status, message_id))
        if status == "completed" and reply:
            self.previous_message = reply
        return final

    def clear(self) -> None:
        self.history.clear()
        self.previous_message = None

    def status(self) -> list[str]:
        lines = [f"gateway: {self.base_url}  user: {self.user_number}"]
        try:
            health = self.http.get(self._url("/health"), headers=self.headers)
            lines.append(f"health: HTTP {health.status_code} {health.json().get('status', '')}")
        except (httpx.HTTPError, ValueError) as exc:
            lines.append(f"health: unavailable ({exc})")
        if self.last_message_id:
            try:
                last = self.http.get(
                    self._url(RESPONSE), params={"message_id": self.last_message_id}, headers=self.headers
                )
                state = last.json().get("status", last.status_code)
            except (httpx.HTTPError, ValueError) as exc:
                state = f"unknown ({exc})"
            lines.append(f"last message: {self.last_message_id} {state}")
        lines.append(f"previous_message: {'set' if self.previous_message else 'none'}")
        return lines


class Printer:
    """Shows streamed events: text as it comes, reasoning dimmed, a reset as a note."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.color = out.isatty()
        self.shown = ""
        self.mode = ""

    def __call__(self, event: StreamEvent) -> None:
        if event.event == "reset":
            self.out.write("\n[the agent is retrying; the text above is discarded]\n")
            self.shown, self.mode = "", ""
        elif event.event == "chunk":
            kind, text = event.data.get("type"), str(event.data.get("text", ""))
            if kind == "reasoning":
                if self.mode != "reasoning":
                    self.out.write("(thinking) ")
                self.out.write(f"\x1b[2m{text}\x1b[0m" if self.color else text)
            else:
                if self.mode == "reasoning":
                    self.out.write("\n")
                self.out.write(text)
                self.shown += text
            self.mode = str(kind)
        self.out.flush()


def interactive(client: ChatClient, stdin: TextIO, out: TextIO) -> int:
    out.write(f"EAí gateway chat — {client.base_url} as {client.user_number}. /help for commands.\n")
    while True:
        out.write("you> ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/quit", "/exit"):
                return 0
            if command == "/help":
                out.write(HELP + "\n")
            elif command == "/history":
                if not client.history:
                    out.write("(no messages yet)\n")
                for exchange in client.history:
                    out.write(f"you: {exchange.user}\nagent [{exchange.status}]: {exchange.reply}\n")
            elif command == "/clear":
                client.clear()
                out.write("session cleared\n")
            elif command == "/status":
                out.write("\n".join(client.status()) + "\n")
            else:
                out.write(f"unknown command {command}; /help lists them\n")
            continue
        out.write("agent> ")
        out.flush()
        printer = Printer(out)
        try:
            final = client.ask(text, printer)
        except GatewayError as exc:
            out.write(f"\nerror: {exc}\n")
            continue
        if final.get("status") == "completed":
            if not printer.shown:  # nothing streamed (polling): show the final text
                out.write(str(final.get("content") or ""))
            out.write("\n")
        else:
            out.write(f"\n[failed: {final.get('error_code')}] {final.get('error', '')}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("GATEWAY_URL", DEFAULT_URL), help="gateway base URL")
    parser.add_argument("--token", default=os.environ.get("GATEWAY_TOKEN", ""), help="API token (Bearer)")
    parser.add_argument(
        "--user-number", default=os.environ.get("GATEWAY_USER_NUMBER", DEFAULT_USER), help="sender's number"
    )
    parser.add_argument("--message", "-m", help="one-shot: send this, print the final content, exit")
    parser.add_argument("--previous-message", help="sent as previous_message with the first message")
    parser.add_argument("--no-stream", action="store_true", help="poll instead of streaming")
    parser.add_argument("--json", action="store_true", help="one-shot: print the whole final body as JSON")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a reply")
    return parser


def main(argv: list[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    client = ChatClient(
        args.url, args.token, args.user_number, timeout=args.timeout, stream=not args.no_stream
    )
    client.previous_message = args.previous_message
    if args.message is None:
        return interactive(client, stdin, out)
    try:
        final = client.ask(args.message)
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        out.write(json.dumps(final, ensure_ascii=False, indent=2) + "\n")
    elif final.get("status") == "completed":
        out.write(str(final.get("content") or "") + "\n")
    if final.get("status") != "completed":
        print(f"failed [{final.get('error_code')}]: {final.get('error', '')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
