"""LocalTranscriber (pocketsphinx, bundled en-us) on synthetic speech: espeak-ng -> OGG/Opus."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from shared.audio import download_audio
from shared.errors import NoSpeechRecognised, TranscriptionError
from shared.transcription import build_transcriber
from shared.transcription.local import LocalTranscriber
from tests.helpers import DIGITS, needs_speech_tools, speak_digits

needs_tools = needs_speech_tools


@pytest.fixture(scope="module")
def transcriber() -> LocalTranscriber:
    return LocalTranscriber()


@pytest.fixture(scope="module")
def voice_note(tmp_path_factory) -> Path:
    return speak_digits(tmp_path_factory.mktemp("voice"))


@needs_tools
def test_ogg_opus_digits_recognised(transcriber, voice_note):
    assert soundfile.info(str(voice_note)).subtype == "OPUS"
    transcript = transcriber.transcribe(voice_note, "audio/ogg")
    words = transcript.text.split()
    assert set(DIGITS) <= set(words), transcript.text
    assert transcript.provider == "pocketsphinx"
    assert transcript.segments == [transcript.text]


@needs_tools
def test_voice_note_downloaded_then_transcribed(transcriber, voice_note, tmp_path):
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(voice_note.parent)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{voice_note.name}"
        with download_audio(
            url,
            max_bytes=1 << 20,
            timeout_s=5,
            allowed_hosts=frozenset({"127.0.0.1"}),
            allow_private=True,
            temp_dir=tmp_path,
        ) as audio:
            assert audio.audio_format == "ogg"
            transcript = transcriber.transcribe(audio.path, audio.content_type)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert set(DIGITS) <= set(transcript.text.split())
    assert list(tmp_path.iterdir()) == []


def test_silence_is_no_speech(transcriber, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros(16_000 * 2, dtype=np.int16), 16_000, subtype="PCM_16")
    with pytest.raises(NoSpeechRecognised):
        transcriber.transcribe(path, "audio/wav")


def test_undecodable_file_is_transcription_error(transcriber, tmp_path):
    path = tmp_path / "fake.ogg"
    path.write_bytes(b"OggS" + b"\x00" * 100)
    with pytest.raises(TranscriptionError) as info:
        transcriber.transcribe(path, "audio/ogg")
    assert info.value.error_code == "AUDIO_DECODE_ERROR"


def test_factory_builds_local():
    assert isinstance(build_transcriber("local"), LocalTranscriber)
    assert isinstance(build_transcriber("pocketsphinx"), LocalTranscriber)


@needs_tools
def test_pauses_split_segments(transcriber, voice_note, tmp_path):
    speech, rate = soundfile.read(str(voice_note), dtype="float32")
    pause = np.zeros(int(rate * 1.5), dtype=np.float32)
    path = tmp_path / "twice.flac"
    soundfile.write(str(path), np.concatenate([speech, pause, speech]), rate, format="FLAC")
    transcript = transcriber.transcribe(path, "audio/flac")
    assert len(transcript.segments) == 2
    for segment in transcript.segments:
        assert set(DIGITS) <= set(segment.split())
    assert transcript.text == " ".join(transcript.segments)


@needs_tools
def test_m4a_decoded_with_pyav(transcriber, voice_note, tmp_path):
    pytest.importorskip("av", reason="PyAV decodes M4A/AAC, which libsndfile cannot read")
    m4a = tmp_path / "digits.m4a"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(voice_note), "-c:a", "aac", str(m4a)], check=True
    )
    assert set(DIGITS) <= set(transcriber.transcribe(m4a, "audio/mp4").text.split())
