"""Speech-to-text backends behind one port (:class:`Transcriber`).

Backends are imported by :func:`build_transcriber` only, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from shared.errors import ConfigError
from shared.transcription.base import Transcriber, Transcript

__all__ = ["Transcriber", "Transcript", "build_transcriber"]


def build_transcriber(provider: str, **kwargs: Any) -> Transcriber:
    """Build the transcriber named ``provider``: ``google`` or ``local`` (pocketsphinx).

    ``kwargs`` go to the backend's constructor (see :class:`~shared.transcription.google.
    GoogleTranscriber` and :class:`~shared.transcription.local.LocalTranscriber`).
    """
    name = provider.strip().lower()
    if name == "google":
        from shared.transcription.google import GoogleTranscriber

        return GoogleTranscriber(**kwargs)
    if name in {"local", "pocketsphinx"}:
        from shared.transcription.local import LocalTranscriber

        return LocalTranscriber(**kwargs)
    raise ConfigError(f"unknown transcription provider {provider!r}; use 'google' or 'local'")
