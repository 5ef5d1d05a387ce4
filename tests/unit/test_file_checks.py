"""Downloaded audio: duration cap, scan command and clamd INSTREAM hook (fake scanners)."""

from __future__ import annotations

import socket
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from shared.errors import AudioTooLong, InfectedFile, ScanUnavailable
from shared.filecheck import FileChecks, audio_duration
from shared.localstack import LocalStack
from tests.conftest import start_stack
from tests.helpers import RecordingServer, api, embedded_settings, poll_until_final

EICAR_MARK = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"


def wav(folder: Path, seconds: float, *, extra: bytes = b"") -> Path:
    path = folder / f"tone-{seconds}.wav"
    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(str(path), (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")
    if extra:
        with path.open("ab") as handle:
            handle.write(extra)
    return path


def fake_scanner(folder: Path) -> tuple[str, Path]:
    """A scan command: records its argument, exits 1 when the file holds the EICAR mark."""
    log = folder / "scanned.txt"
    script = folder / "fake-scan.sh"
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"  # the file is the last argument
        f'echo "$last" >> {log}\n'
        f'grep -q {EICAR_MARK.decode()} "$last" && exit 1\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{script} --quiet", log


class FakeClamd:
    """A unix-socket server speaking clamd's zINSTREAM: FOUND when the stream holds the EICAR mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                command = b""
                while not command.endswith(b"\0"):
                    command += conn.recv(1)
                assert command == b"zINSTREAM\0"
                data = b""
                while True:
                    size = struct.unpack("!I", _exactly(conn, 4))[0]
                    if size == 0:
                        break
                    data += _exactly(conn, size)
                self.received.append(data)
                verdict = b"stream: Eicar-Test-Signature FOUND\0" if EICAR_MARK in data else b"stream: OK\0"
                conn.sendall(verdict)

    def close(self) -> None:
        self.server.close()


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        part = conn.recv(size - len(data))
        if not part:
            raise OSError("closed")
        data += part
    return data


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[FakeClamd]:
    server = FakeClamd(tmp_path / "clamd.sock")
    yield server
    server.close()


def test_duration_is_read_and_capped(tmp_path: Path) -> None:
    short, long = wav(tmp_path, 1.0), wav(tmp_path, 3.0)
    assert audio_duration(long) == pytest.approx(3.0, abs=0.01)
    checks = FileChecks(max_duration_s=2)
    checks.check(short)
    with pytest.raises(AudioTooLong) as caught:
        checks.check(long)
    assert caught.value.error_code == "AUDIO_TOO_LONG"
    FileChecks(max_duration_s=0).check(long)  # 0: no cap


def test_scan_command_gets_the_path_and_refuses_on_non_zero(tmp_path: Path) -> None:
    command, log = fake_scanner(tmp_path)
    clean, infected = wav(tmp_path, 0.5), wav(tmp_path, 0.6, extra=EICAR_MARK)
    checks = FileChecks(scan_command=command)
    checks.check(clean)
    with pytest.raises(InfectedFile) as caught:
        checks.check(infected)
    assert caught.value.error_code == "INFECTED_FILE"
    assert log.read_text().split() == [str(clean), str(infected)]


def test_scan_command_that_cannot_run_is_transient(tmp_path: Path) -> None:
    with pytest.raises(ScanUnavailable):
        FileChecks(scan_command=str(tmp_path / "missing-scanner")).check(wav(tmp_path, 0.2))
    slow = tmp_path / "slow-scan.sh"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(ScanUnavailable, match="did not finish"):
        FileChecks(scan_command=str(slow), scan_timeout_s=0.3).check(wav(tmp_path, 0.2))


def test_clamd_instream(tmp_path: Path, clamd: FakeClamd) -> None:
    clean, infected = wav(tmp_path, 0.5), wav(tmp_path, 0.6, extra=EICAR_MARK)
    checks = FileChecks(clamd_socket=str(clamd.path))
    checks.check(clean)
    assert clamd.received == [clean.read_bytes()]
    with pytest.raises(InfectedFile, match="Eicar-Test-Signature"):
        checks.check(infected)
    with pytest.raises(ScanUnavailable):
        FileChecks(clamd_socket=str(tmp_path / "no.sock")).check(clean)


def test_checks_are_off_by_default() -> None:
    settings = embedded_settings()
    checks = FileChecks.from_settings(settings)
    assert checks.scan_command == "" and checks.clamd_socket == ""
    assert checks.max_duration_s == 900


class AudioServer(RecordingServer):
    """Serves one file on GET."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        body = payload

        handler = self.server.RequestHandlerClass

        def do_get(self: Any) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        handler.do_GET = do_get  # type: ignore[attr-defined]


def _fails_with(tmp_path: Path, audio: Path, **overrides: Any) -> dict[str, Any]:
    server = AudioServer(audio.read_bytes())
    with server.running():
        stack: LocalStack = start_stack(embedded_settings(allow_private_network_urls=True, **overrides))
        try:
            url = f"{server.url}note.wav"
            accepted = api.post(
                stack.base_url + "/api/v1/message/webhook/user",
                json={"user_number": "5521912345678", "message": url},
            )
            assert accepted.status_code == 202, accepted.text
            return poll_until_final(stack.base_url, accepted.json()["message_id"])
        finally:
            stack.stop()


def test_worker_fails_long_audio_with_audio_too_long(tmp_path: Path) -> None:
    result = _fails_with(tmp_path, wav(tmp_path, 3.0), max_audio_duration_seconds=2)
    assert result["status"] == "failed"
    assert result["error_code"] == "AUDIO_TOO_LONG"


def test_worker_refuses_infected_audio(tmp_path: Path, clamd: FakeClamd) -> None:
    result = _fails_with(tmp_path, wav(tmp_path, 0.5, extra=EICAR_MARK), clamd_socket=str(clamd.path))
    assert result["status"] == "failed"
    assert result["error_code"] == "INFECTED_FILE"
    assert clamd.received
