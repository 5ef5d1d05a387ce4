"""Audio messages: detect an audio URL in a user message and download it safely.

The download streams into a private temporary file (mode 0600, removed when the context exits,
also on error), enforces a byte cap (early by ``Content-Length``, then while streaming) and a
total time budget, checks every URL and redirect hop with :mod:`shared.urlguard`, and sniffs the
magic bytes so that an HTML error page served under an ``.ogg`` URL never reaches a transcriber.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from shared.errors import AudioTooLarge, DownloadError, InvalidAudio
from shared.models import AUDIO_EXTENSIONS, url_extension
from shared.models import detect_audio as detect_audio  # re-exported: detection lives with the models
from shared.urlguard import DEFAULT_MAX_REDIRECTS, Resolver, guarded_stream

_SNIFF_BYTES = 16
_CHUNK_BYTES = 64 * 1024


def sniff_audio_format(head: bytes) -> str | None:
    """Name the audio container/codec that ``head`` (the file's first bytes) starts with.

    Recognises OGG, RIFF/WAVE, MP3 (ID3 tag or MPEG frame sync), FLAC, MP4/M4A (``ftyp``), WebM
    and Matroska (EBML), ADTS AAC and AMR; returns None for anything else (HTML, JSON, images...).
    """
    if head.startswith(b"OggS"):
        return "ogg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3"):
        return "mp3"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"#!AMR"):
        return "amr"
    if len(head) >= 3 and head[0] == 0xFF:
        b1, b2 = head[1], head[2]
        if b1 & 0xF6 == 0xF0:  # 12-bit sync, layer 00: ADTS
            return "aac"
        layer = (b1 >> 1) & 0x03
        bitrate, rate = b2 >> 4, (b2 >> 2) & 0x03
        if b1 & 0xE0 == 0xE0 and layer != 0 and bitrate not in (0, 0x0F) and rate != 0x03:
            return "mp3"
    return None


@dataclass(frozen=True)
class DownloadedAudio:
    """An audio file downloaded to a private temporary path (valid inside the context only)."""

    path: Path
    content_type: str | None
    size: int
    audio_format: str | None = None


@contextlib.contextmanager
def download_audio(
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allowed_hosts: frozenset[str] = frozenset(),
    allow_private: bool = False,
    temp_dir: str | Path | None = None,
    resolver: Resolver | None = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    transport: httpx.BaseTransport | None = None,
) -> Iterator[DownloadedAudio]:
    """Download ``url`` to a private temp file and yield it; the file is removed on exit.

    Raises :class:`~shared.errors.UnsafeURL` for a URL or redirect hop the guard refuses,
    :class:`~shared.errors.AudioTooLarge` above ``max_bytes``, :class:`~shared.errors.InvalidAudio`
    when the content is not audio, and :class:`~shared.errors.DownloadError` for non-2xx
    answers, timeouts (``timeout_s`` per network operation and for the whole download) and
    connection errors.
    """
    ext = url_extension(url)
    suffix = f".{ext}" if ext in AUDIO_EXTENSIONS else ".audio"
    fd, name = tempfile.mkstemp(prefix="eai-audio-", suffix=suffix, dir=temp_dir)  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            content_type, size, head = _fetch_into(
                sink,
                url,
                max_bytes=max_bytes,
                timeout_s=timeout_s,
                allowed_hosts=allowed_hosts,
                allow_private=allow_private,
                resolver=resolver,
                max_redirects=max_redirects,
                transport=transport,
            )
        if size == 0:
            raise InvalidAudio("downloaded audio file is empty")
        audio_format = sniff_audio_format(head)
        if audio_format is None:
            raise InvalidAudio(f"downloaded file is not a known audio format (content-type {content_type!r})")
        yield DownloadedAudio(path=path, content_type=content_type, size=size, audio_format=audio_format)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fetch_into(
    sink: BinaryIO,
    url: str,
    *,
    max_bytes: int,
    timeout_s: float,
    allowed_hosts: frozenset[str],
    allow_private: bool,
    resolver: Resolver | None,
    max_redirects: int,
    transport: httpx.BaseTransport | None,
) -> tuple[str | None, int, bytes]:
    """Stream the body into ``sink``; return (content type, size, first bytes)."""
    deadline = time.monotonic() + timeout_s
    head = b""
    size = 0
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout_s), transport=transport) as client,
            guarded_stream(
                client,
                "GET",
                url,
                allowed_hosts=allowed_hosts,
                allow_private=allow_private,
                resolver=resolver,
                max_redirects=max_redirects,
            ) as response,
        ):
            if not response.is_success:
                raise DownloadError(f"audio download answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise AudioTooLarge(f"audio is {int(declared)} bytes, more than the {max_bytes}-byte limit")
            content_type = response.headers.get("content-type")
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise AudioTooLarge(f"audio is larger than the {max_bytes}-byte limit")
                if time.monotonic() > deadline:
                    raise DownloadError(
                        f"audio download took longer than {timeout_s:g} s",
                        error_code="DOWNLOAD_TIMEOUT",
                    )
                if len(head) < _SNIFF_BYTES:
                    head += chunk[: _SNIFF_BYTES - len(head)]
                    if len(head) >= _SNIFF_BYTES and sniff_audio_format(head) is None:
                        raise InvalidAudio(
                            f"downloaded file is not a known audio format (content-type {content_type!r})"
                        )
                sink.write(chunk)
    except httpx.TimeoutException as exc:
        raise DownloadError(f"audio download timed out: {exc!r}", error_code="DOWNLOAD_TIMEOUT") from exc
    except httpx.HTTPError as exc:
        raise DownloadError(f"audio download failed: {exc!r}") from exc
    return content_type, size, head
