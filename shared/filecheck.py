"""Checks of a downloaded audio file before it is transcribed: duration cap and malware scan.

Magic bytes and size are checked while downloading (:mod:`shared.audio`); after the download:

* ``MAX_AUDIO_DURATION_SECONDS`` (0: no cap): the duration per the file's header (soundfile),
  else per the container (PyAV), else by decoding it (:mod:`shared.transcription.pcm`); longer audio
  ends the task ``failed`` with ``AUDIO_TOO_LONG``.
* ``AUDIO_SCAN_COMMAND`` (off by default): a command run with the file's path as its last
  argument (e.g. ``clamdscan --no-summary --fdpass``); a non-zero exit refuses the file with
  ``INFECTED_FILE``. A command that cannot start or exceeds ``AUDIO_SCAN_TIMEOUT`` is a transient
  ``SCAN_UNAVAILABLE`` (retried; the file is never passed unscanned).
* ``CLAMD_SOCKET`` (off by default): the path of clamd's unix socket; the file is streamed with
  clamd's ``INSTREAM`` command; ``... FOUND`` refuses it with ``INFECTED_FILE``.
"""

from __future__ import annotations

import logging
import shlex
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.errors import AudioTooLong, InfectedFile, ScanUnavailable

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


def audio_duration(path: Path) -> float | None:
    """Seconds of audio in ``path``, or None when no decoder can tell."""
    from shared.transcription import pcm

    duration = pcm.probe_duration(path)
    if duration is not None:
        return duration
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration:
                return float(container.duration) / float(av.time_base)
    except Exception:  # noqa: S110 - any PyAV failure: fall through to a full decode
        pass
    try:
        samples = pcm.decode_pcm16(path)
    except Exception:
        return None
    return len(samples) / float(pcm.TARGET_RATE)


@dataclass(frozen=True)
class FileChecks:
    """What to check in a downloaded audio file; every check is off at its zero value."""

    max_duration_s: float = 0
    scan_command: str = ""
    clamd_socket: str = ""
    scan_timeout_s: float = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> FileChecks:
        return cls(
            max_duration_s=settings.max_audio_duration_seconds,
            scan_command=settings.audio_scan_command,
            clamd_socket=settings.clamd_socket,
            scan_timeout_s=settings.audio_scan_timeout,
        )

    def check(self, path: Path) -> None:
        """Raise :class:`InfectedFile`, :class:`AudioTooLong` or :class:`ScanUnavailable`."""
        if self.scan_command:
            scan_with_command(self.scan_command, path, timeout_s=self.scan_timeout_s)
        if self.clamd_socket:
            scan_with_clamd(self.clamd_socket, path, timeout_s=self.scan_timeout_s)
        if self.max_duration_s > 0:
            duration = audio_duration(path)
            if duration is not None and duration > self.max_duration_s:
                raise AudioTooLong(
                    f"audio lasts {duration:.1f} s, more than the {self.max_duration_s:g}-second limit"
                )


def scan_with_command(command: str, path: Path, *, timeout_s: float) -> None:
    argv = [*shlex.split(command), str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ScanUnavailable(f"scan command did not finish within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ScanUnavailable(f"scan command could not be run: {exc.__class__.__name__}") from exc
    if done.returncode != 0:
        log.warning("audio refused by the scan command", extra={"exit_code": done.returncode})
        raise InfectedFile(f"the malware scan refused the file (exit code {done.returncode})")


def scan_with_clamd(socket_path: str, path: Path, *, timeout_s: float) -> None:
    """Stream ``path`` to clamd (``zINSTREAM``: 4-byte big-endian length + chunk, then 0)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout_s)
            conn.connect(socket_path)
            conn.sendall(b"zINSTREAM\0")
            with path.open("rb") as source:
                while chunk := source.read(_CHUNK):
                    conn.sendall(struct.pack("!I", len(chunk)) + chunk)
            conn.sendall(struct.pack("!I", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                part = conn.recv(4096)
                if not part:
                    break
                reply += part
    except OSError as exc:
        raise ScanUnavailable(f"clamd could not be reached: {exc.__class__.__name__}") from exc
    answer = reply.rstrip(b"\0").decode(errors="replace").strip()
    if answer.endswith("FOUND"):
        signature = answer.removeprefix("stream:").removesuffix("FOUND").strip()
        log.warning("audio refused by clamd", extra={"signature": signature})
        raise InfectedFile(f"the malware scan found {signature or 'a threat'}")
    if not answer.endswith("OK"):
        raise ScanUnavailable(f"clamd answered {answer[:100]!r}")
