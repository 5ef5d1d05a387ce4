"""The port every speech-to-text backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.errors import NoSpeechRecognised


@dataclass(frozen=True)
class Transcript:
    """What was said in one audio file: the full text and the recogniser's segments."""

    text: str
    segments: list[str] = field(default_factory=list)
    provider: str = ""


class Transcriber(Protocol):
    """Turns an audio file into text.

    Implementations raise :class:`~shared.errors.TranscriptionError` (permanent: bad audio, no
    speech, rejected request) or :class:`~shared.errors.TransientError` (service unavailable).
    An empty transcript is never returned: it is :class:`~shared.errors.NoSpeechRecognised`.
    """

    def transcribe(self, path: Path, content_type: str | None) -> Transcript: ...


def transcript_from_segments(segments: list[str], provider: str) -> Transcript:
    """Join non-blank segments with single spaces; raise when nothing was recognised."""
    kept = [s.strip() for s in segments if s and s.strip()]
    if not kept:
        raise NoSpeechRecognised("no speech recognised")
    return Transcript(text=" ".join(kept), segments=kept, provider=provider)
