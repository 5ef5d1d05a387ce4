"""One message is one trace: webhook -> queue -> bridge -> worker steps -> poll, in order."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.config import Settings
from shared.localstack import LocalStack
from shared.models import TaskStatus
from shared.observability import configure_logging
from shared.transcription import Transcript
from shared.voicenotes import VoiceNotes
from tests.conftest import start_stack
from tests.helpers import api, embedded_settings, real_settings, wait_for
from tests.integration.test_pipeline_features import LocalServer, serve

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = "/api/v1/message/webhook/user"
VOICE_NOTE = b"OggS" + b"\0" * 400


class FakeTranscriber:
    def transcribe(self, path: Any, content_type: str | None = None) -> Transcript:
        assert Path(path).read_bytes() == VOICE_NOTE
        return Transcript(text="olá do áudio", provider="fake")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter=exporter, service_name="eai-gateway-test")
    yield exporter
    tracing.shutdown()


@pytest.fixture(params=["embedded", "rabbitmq"])
def stack_settings(request: pytest.FixtureRequest, run_id: str) -> Settings:
    if request.param == "embedded":
        return embedded_settings(allow_private_network_urls=True, google_project_id="demo-project")
    return real_settings(run_id, allow_private_network_urls=True, google_project_id="demo-project")


def message_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.context is not None]
    return sorted((s for s in found if s.context.trace_id == trace_id), key=lambda s: s.start_time or 0)


def test_one_voice_note_is_one_trace_with_every_step_in_order(
    spans: InMemorySpanExporter, stack_settings: Settings
) -> None:
    logs = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(stack_settings.model_copy(update={"log_format": "json"}), logs)
    audio = LocalServer({"/media/note.ogg": serve(VOICE_NOTE)})
    stack: LocalStack = start_stack(stack_settings)
    try:
        voice = VoiceNotes.from_settings(stack.runtime.settings)
        stack.runtime.pipeline.voice = VoiceNotes(voice.policy, transcriber=FakeTranscriber())
        accepted = api.post(
            stack.base_url + WEBHOOK,
            json={"user_number": "5521912345678", "message": f"{audio.base}/media/note.ogg"},
            headers={"X-Request-ID": "req-trace-1"},
        )
        assert accepted.status_code == 202, accepted.text
        message_id = accepted.json()["message_id"]
        traceparent = accepted.headers["traceparent"]
        trace_id = int(traceparent.split("-")[1], 16)

        def final() -> bool:
            task = stack.runtime.store.read_task(message_id)
            return task is not None and task.status == TaskStatus.COMPLETED

        wait_for(final)
        names_done = {"bridge deliver", "POST /internal/worker"}
        wait_for(lambda: names_done <= {s.name for s in message_trace(spans, trace_id)})
        polled = api.get(stack.base_url + "/api/v1/message/response", params={"message_id": message_id})
        assert polled.status_code == 200
        assert polled.json()["transcript"] == "olá do áudio"
    finally:
        stack.stop()
        audio.close()
        root.handlers, root.level = saved

    trace = message_trace(spans, trace_id)
    queue = stack_settings.rabbitmq_queue
    expected = [
        "POST /api/v1/message/webhook/user",
        f"publish {queue}",
        "bridge deliver",
        "POST /internal/worker",
        "process_user_message",
        "audio_download",
        "audio_transcription",
        "agent_call",
        "response_formatting",
        "result_storage",
        "poll_result",
    ]
    names = [s.name for s in trace]
    assert [n for n in names if n in expected] == expected, names
    by_name = {s.name: s for s in trace}
    # The chain is causal, not just one trace id: each hop is the child of the one before.
    for child, parent in [
        (f"publish {queue}", "POST /api/v1/message/webhook/user"),
        ("bridge deliver", f"publish {queue}"),
        ("POST /internal/worker", "bridge deliver"),
        ("process_user_message", "POST /internal/worker"),
        ("audio_download", "process_user_message"),
        ("agent_call", "process_user_message"),
        ("result_storage", "process_user_message"),
    ]:
        parent_context, own = by_name[child].parent, by_name[parent].context
        assert parent_context is not None and own is not None
        assert parent_context.span_id == own.span_id, (child, parent)
    poll = by_name["poll_result"]
    assert poll.links, "the poll span links to the poll request's own span"
    assert (by_name["agent_call"].attributes or {}).get("agent.provider") == "mock"

    # Every log line of the message carries its ids; JSON lines carry Cloud Logging's trace field.
    entries = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    hex_trace = f"{trace_id:032x}"
    completed = next(e for e in entries if e["message"] == "message completed")
    assert completed["message_id"] == message_id
    assert completed["trace_id"] == hex_trace
    assert completed["request_id"] == "req-trace-1"
    assert completed["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{hex_trace}"
    assert len(completed["logging.googleapis.com/spanId"]) == 16
    downloaded = next(e for e in entries if e["message"] == "voice note downloaded")
    assert downloaded["message_id"] == message_id and downloaded["trace_id"] == hex_trace
    accepted_line = next(e for e in entries if e["message"] == "message accepted")
    assert accepted_line["request_id"] == "req-trace-1" and accepted_line["trace_id"] == hex_trace


def test_tracing_is_off_and_not_imported_unless_configured() -> None:
    """The webhook's and the poll's cold start import neither the OTel SDK nor tracing when it is off
    (not even through redis-py, which imports the metrics SDK when it is installed; see shared/__init__)."""
    code = (
        "import runpy, sys\n"
        "runpy.run_path('functions/webhook/main.py')\n"
        "runpy.run_path('functions/poll/main.py')\n"
        "from shared import tracing\n"
        "assert not tracing.enabled()\n"
        "heavy = tuple('opentelemetry.' + n for n in ('sdk', 'trace', 'exporter', 'propagat'))\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"AUTH_DISABLED": "true", "REDIS_URL": "", "RABBITMQ_URL": ""})
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_configured_by_environment() -> None:
    assert not tracing.configured_by_env({})
    assert tracing.configured_by_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert tracing.configured_by_env({"OTEL_ENABLED": "true"})
    assert not tracing.configured_by_env(
        {"OTEL_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    )
    assert not tracing.configured_by_env({"OTEL_SDK_DISABLED": "true", "OTEL_ENABLED": "true"})


def test_helpers_are_no_ops_while_off() -> None:
    assert not tracing.enabled()
    with tracing.span("nothing", {"a": 1}) as current:
        assert current is None
        assert tracing.inject({}) == {}
        assert tracing.current_ids() == ("", "", False)
