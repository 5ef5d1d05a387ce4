"""Voice notes: download the audio safely, then transcribe it with the configured recogniser."""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass

from shared import metrics, tracing
from shared.audio import download_audio
from shared.config import Settings
from shared.filecheck import FileChecks
from shared.transcription import Transcriber, Transcript, build_transcriber

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits for fetching a voice note."""

    max_bytes: int
    timeout_s: float
    allowed_hosts: frozenset[str]
    allow_private: bool
    temp_dir: str | None


class VoiceNotes:
    """Turns a voice-note URL into text; raises the download/transcription errors unchanged."""

    def __init__(
        self,
        policy: DownloadPolicy,
        *,
        settings: Settings | None = None,
        transcriber: Transcriber | None = None,
        checks: FileChecks | None = None,
    ) -> None:
        self.policy = policy
        self.checks = checks or FileChecks()
        self._settings = settings
        self._transcriber = transcriber
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceNotes:
        policy = DownloadPolicy(
            max_bytes=int(settings.max_audio_size_mb * 1024 * 1024),
            timeout_s=settings.audio_download_timeout,
            allowed_hosts=frozenset(settings.audio_allowed_hosts),
            allow_private=settings.allow_private_network_urls,
            temp_dir=settings.audio_temp_dir or None,
        )
        return cls(policy, settings=settings, checks=FileChecks.from_settings(settings))

    def transcriber(self) -> Transcriber:
        """The recogniser, built on first use (its libraries are heavy to import)."""
        with self._lock:
            if self._transcriber is None:
                assert self._settings is not None
                self._transcriber = _build(self._settings)
            return self._transcriber

    def transcribe_url(self, url: str) -> Transcript:
        with ExitStack() as cleanup:  # the downloaded file lives until the transcription is done
            with tracing.span("audio_download", kind="client"), metrics.external_call("audio_download"):
                audio = cleanup.enter_context(
                    download_audio(
                        url.strip(),
                        max_bytes=self.policy.max_bytes,
                        timeout_s=self.policy.timeout_s,
                        allowed_hosts=self.policy.allowed_hosts,
                        allow_private=self.policy.allow_private,
                        temp_dir=self.policy.temp_dir,
                    )
                )
                tracing.set_attributes({"audio.bytes": audio.size, "audio.format": audio.audio_format})
            log.info("voice note downloaded", extra={"bytes": audio.size, "format": audio.audio_format})
            self.checks.check(audio.path)
            transcriber = self.transcriber()
            with (
                tracing.span("audio_transcription", kind="client"),
                metrics.external_call("speech"),
            ):
                return transcriber.transcribe(audio.path, audio.content_type)


def _build(settings: Settings) -> Transcriber:
    if settings.transcribe_provider == "google":
        return build_transcriber(
            "google",
            project_id=settings.google_project_id,
            location=settings.transcribe_location,
            language_code=settings.transcribe_language_code,
            model=settings.transcribe_model,
            credentials=settings.google_credentials_json or None,
            timeout_s=settings.transcribe_timeout,
        )
    return build_transcriber("local")
