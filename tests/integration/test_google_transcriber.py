"""GoogleTranscriber: the real google-cloud-speech v2 client, gRPC to a fake Speech servicer."""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from google.cloud.speech_v2.services.speech.transports import SpeechGrpcTransport
from google.cloud.speech_v2.types import cloud_speech

from shared.errors import (
    ConfigError,
    NoSpeechRecognised,
    TranscriptionError,
    TranscriptionUnavailable,
    TransientError,
)
from shared.transcription import build_transcriber
from shared.transcription.google import GoogleTranscriber, default_endpoint, load_credentials
from tests.helpers import needs_tools

Responder = Callable[[cloud_speech.RecognizeRequest, grpc.ServicerContext], cloud_speech.RecognizeResponse]


class FakeSpeech:
    def __init__(self) -> None:
        self.requests: list[cloud_speech.RecognizeRequest] = []
        self.responder: Responder = lambda req, ctx: _response(["olá"])
        self._lock = threading.Lock()

    def recognize(self, request, context):
        with self._lock:
            self.requests.append(request)
        return self.responder(request, context)


def _response(texts: list[str | None]) -> cloud_speech.RecognizeResponse:
    results = []
    for text in texts:
        if text is None:
            results.append(cloud_speech.SpeechRecognitionResult())
        else:
            alt = cloud_speech.SpeechRecognitionAlternative(transcript=text, confidence=0.9)
            results.append(cloud_speech.SpeechRecognitionResult(alternatives=[alt]))
    return cloud_speech.RecognizeResponse(results=results)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeSpeech, int]]:
    fake = FakeSpeech()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)],
    )
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.speech.v2.Speech",
        {
            "Recognize": grpc.unary_unary_rpc_method_handler(
                fake.recognize,
                request_deserializer=cloud_speech.RecognizeRequest.deserialize,
                response_serializer=cloud_speech.RecognizeResponse.serialize,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield fake, port
    finally:
        server.stop(grace=None)


@pytest.fixture
def fake(fake_server) -> FakeSpeech:
    fake, _ = fake_server
    fake.requests.clear()
    fake.responder = lambda req, ctx: _response(["olá"])
    return fake


@pytest.fixture
def transcriber(fake_server) -> Iterator[GoogleTranscriber]:
    _, port = fake_server
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 32 * 1024 * 1024)]
    )
    yield GoogleTranscriber(
        project_id="eai-test",
        language_code="pt-BR",
        model="long",
        transport=SpeechGrpcTransport(channel=channel),
        timeout_s=10,
    )
    channel.close()


def _tone_with_pauses(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 220 * t)
    signal[(t % 1.5) > 1.0] = 0.0  # 1 s "speech", 0.5 s pause
    return signal.astype(np.float32)


def _write(path: Path, samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> Path:
    soundfile.write(str(path), samples, rate, format=fmt, subtype=subtype)
    return path


def test_short_audio_sent_inline_with_exact_request(fake, transcriber, tmp_path):
    path = _write(tmp_path / "v.wav", _tone_with_pauses(3.0), 16_000, "WAV", "PCM_16")
    fake.responder = lambda req, ctx: _response(["Olá, tudo bem?"])

    transcript = transcriber.transcribe(path, "audio/wav")

    assert transcript.text == "Olá, tudo bem?"
    assert transcript.provider == "google"
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request.recognizer == "projects/eai-test/locations/global/recognizers/_"
    assert request.content == path.read_bytes()
    assert "auto_decoding_config" in request.config
    assert "explicit_decoding_config" not in request.config
    assert list(request.config.language_codes) == ["pt-BR"]
    assert request.config.model == "long"
    assert request.config.features.enable_automatic_punctuation is True
    assert request.config.features.max_alternatives == 1


def test_ogg_opus_voice_note_sent_as_is(fake, transcriber, tmp_path):
    path = _write(tmp_path / "v.ogg", _tone_with_pauses(4.0, 48_000), 48_000, "OGG", "OPUS")
    transcriber.transcribe(path, "audio/ogg")
    assert [r.content for r in fake.requests] == [path.read_bytes()]


def test_all_result_segments_are_joined(fake, transcriber, tmp_path):
    path = _write(tmp_path / "v.wav", _tone_with_pauses(3.0), 16_000, "WAV", "PCM_16")
    fake.responder = lambda req, ctx: _response(["Bom dia.", None, "  ", "Quero saber do IPTU.", "Obrigado."])

    transcript = transcriber.transcribe(path, None)

    assert transcript.text == "Bom dia. Quero saber do IPTU. Obrigado."
    assert transcript.segments == ["Bom dia.", "Quero saber do IPTU.", "Obrigado."]


def test_long_audio_is_chunked_not_cut(fake, transcriber, tmp_path):
    seconds = 130.0
    path = _write(tmp_path / "long.ogg", _tone_with_pauses(seconds, 48_000), 48_000, "OGG", "OPUS")
    counter = iter(range(100))
    fake.responder = lambda req, ctx: _response([f"parte {next(counter)}"])

    transcript = transcriber.transcribe(path, "audio/ogg")

    assert len(fake.requests) == 3
    assert transcript.text == "parte 0 parte 1 parte 2"
    durations = []
    for request in fake.requests:
        assert request.recognizer == "projects/eai-test/locations/global/recognizers/_"
        assert list(request.config.language_codes) == ["pt-BR"]
        assert request.content[:4] == b"fLaC"
        data, rate = soundfile.read(io.BytesIO(request.content))
        assert rate == 16_000
        durations.append(len(data) / rate)
    assert all(d <= 55.0 for d in durations)
    assert sum(durations) == pytest.approx(seconds, abs=0.1)  # nothing dropped


def test_empty_results_are_no_speech(fake, transcriber, tmp_path):
    path = _write(tmp_path / "v.wav", _tone_with_pauses(2.0), 16_000, "WAV", "PCM_16")
    fake.responder = lambda req, ctx: _response([])
    with pytest.raises(NoSpeechRecognised, match="no speech recognised") as info:
        transcriber.transcribe(path, None)
    assert isinstance(info.value, TranscriptionError)


@pytest.mark.parametrize(
    ("code", "expected", "transient"),
    [
        (grpc.StatusCode.UNAVAILABLE, TranscriptionUnavailable, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, TranscriptionUnavailable, True),
        (grpc.StatusCode.INTERNAL, TranscriptionUnavailable, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, TranscriptionUnavailable, True),
        (grpc.StatusCode.INVALID_ARGUMENT, TranscriptionError, False),
        (grpc.StatusCode.PERMISSION_DENIED, TranscriptionError, False),
        (grpc.StatusCode.NOT_FOUND, TranscriptionError, False),
    ],
)
def test_error_classification(fake, transcriber, tmp_path, code, expected, transient):
    path = _write(tmp_path / "v.wav", _tone_with_pauses(2.0), 16_000, "WAV", "PCM_16")

    def abort(req, ctx):
        ctx.abort(code, "fake failure")

    fake.responder = abort
    with pytest.raises(expected) as info:
        transcriber.transcribe(path, None)
    assert isinstance(info.value, TransientError) is transient
    if transient:
        assert info.value.error_code == "TRANSCRIPTION_UNAVAILABLE"
    else:
        assert info.value.error_code == "TRANSCRIPTION_ERROR"


def test_regional_location_uses_regional_recognizer_and_endpoint(fake_server, fake, tmp_path):
    _, port = fake_server
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    t = GoogleTranscriber(
        "eai-test", location="us-central1", model="chirp_2", transport=SpeechGrpcTransport(channel=channel)
    )
    assert t.api_endpoint == "us-central1-speech.googleapis.com"
    path = _write(tmp_path / "v.flac", _tone_with_pauses(2.0), 16_000, "FLAC", "PCM_16")
    t.transcribe(path, "audio/flac")
    assert fake.requests[0].recognizer == "projects/eai-test/locations/us-central1/recognizers/_"
    assert fake.requests[0].config.model == "chirp_2"
    channel.close()


def test_endpoints_and_factory():
    assert default_endpoint("global") is None
    assert default_endpoint("eu") == "eu-speech.googleapis.com"
    assert GoogleTranscriber("p", api_endpoint="custom:443").api_endpoint == "custom:443"
    assert isinstance(build_transcriber("google", project_id="p"), GoogleTranscriber)
    with pytest.raises(ConfigError):
        build_transcriber("whisper")
    with pytest.raises(ConfigError):
        GoogleTranscriber("")


@pytest.mark.parametrize("secret", ["not json nor base64 !!", "eyJub3QiOiAiY2xvc2VkIg", "[1, 2]"])
def test_bad_credentials_are_config_errors_without_echo(secret):
    with pytest.raises(ConfigError) as info:
        load_credentials(secret)
    assert secret not in str(info.value)


def test_credentials_raw_and_base64_json_parse(monkeypatch):
    import base64
    import json

    from google.oauth2 import service_account

    seen = []
    monkeypatch.setattr(
        service_account.Credentials,
        "from_service_account_info",
        classmethod(lambda cls, info, **kw: seen.append((info, kw)) or "creds"),  # type: ignore[func-returns-value]
    )
    info = {"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}
    raw = json.dumps(info)
    assert load_credentials(raw) == "creds"
    assert load_credentials(base64.b64encode(raw.encode()).decode()) == "creds"
    assert load_credentials(base64.urlsafe_b64encode(raw.encode()).rstrip(b"=")) == "creds"
    assert load_credentials(info) == "creds"
    assert [s[0] for s in seen] == [info] * 4
    assert load_credentials(None) is None
    sentinel = object()
    assert load_credentials(sentinel) is sentinel


needs_ffmpeg = needs_tools("ffmpeg", reason="needs ffmpeg (apt-get install -y ffmpeg)")


def _m4a(tmp_path: Path, seconds: float) -> Path:
    wav = _write(tmp_path / "src.wav", _tone_with_pauses(seconds, 44_100), 44_100, "WAV", "PCM_16")
    out = tmp_path / "a.m4a"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac", str(out)], check=True
    )
    return out


@needs_ffmpeg
def test_short_m4a_sent_as_is(fake, transcriber, tmp_path):
    path = _m4a(tmp_path, 5.0)
    transcriber.transcribe(path, "audio/mp4")
    assert [r.content for r in fake.requests] == [path.read_bytes()]


@needs_ffmpeg
def test_long_m4a_decoded_with_pyav_and_chunked(fake, transcriber, tmp_path):
    pytest.importorskip("av", reason="PyAV decodes containers libsndfile cannot read")
    path = _m4a(tmp_path, 70.0)
    transcriber.transcribe(path, "audio/mp4")
    assert len(fake.requests) == 2
    assert all(r.content[:4] == b"fLaC" for r in fake.requests)
    total = sum(len(soundfile.read(io.BytesIO(r.content))[0]) for r in fake.requests) / 16_000
    assert total == pytest.approx(70.0, abs=0.2)
