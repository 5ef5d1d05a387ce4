"""The gateway's error hierarchy.

Callers classify failures by type, never by parsing messages: a :class:`TransientError` is worth
retrying later, a :class:`PermanentError` is final and ends the task ``failed``. Every error carries a
stable ``error_code`` that reaches polling clients and callbacks.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(GatewayError):
    """A setting is missing or has a value that cannot be used."""

    error_code = "CONFIG_ERROR"


class PermanentError(GatewayError):
    """Retrying cannot help: the task ends ``failed`` with this error's code."""

    error_code = "PROCESSING_ERROR"


class TransientError(GatewayError):
    """A dependency is unavailable for now; the same work may succeed later."""

    error_code = "TEMPORARY_FAILURE"

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.retry_after = retry_after


class BusyError(TransientError):
    """The work cannot start now (e.g. the same user's previous message is still running)."""

    error_code = "BUSY"


class QueueUnavailable(TransientError):
    """The broker did not confirm a publish, or cannot be reached."""

    error_code = "QUEUE_UNAVAILABLE"


class StoreUnavailable(TransientError):
    """Redis cannot be reached or did not answer in time."""

    error_code = "STORE_UNAVAILABLE"


class InvalidMessage(PermanentError):
    """A queue message or push envelope cannot be decoded."""

    error_code = "INVALID_MESSAGE"


class UnsupportedProvider(PermanentError):
    """The message asks for an agent provider this deployment does not offer."""

    error_code = "UNSUPPORTED_PROVIDER"


class AgentUnavailable(TransientError):
    """The agent timed out, answered 5xx/429, or its circuit breaker is open."""

    error_code = "AGENT_UNAVAILABLE"


class AgentRejected(PermanentError):
    """The agent refused the request (4xx, malformed answer): retrying gives the same result."""

    error_code = "AGENT_ERROR"


class DownloadError(PermanentError):
    """An audio file could not be downloaded, or is not allowed to be."""

    error_code = "DOWNLOAD_ERROR"


class TranscriptionError(PermanentError):
    """An audio file could not be transcribed."""

    error_code = "TRANSCRIPTION_ERROR"


class UnsafeURL(PermanentError):
    """An outbound URL points to a place the gateway must not reach (SSRF guard)."""

    error_code = "UNSAFE_URL"


class InvalidAudio(DownloadError):
    """The downloaded file is not audio (e.g. an HTML error page served under an ``.ogg`` URL)."""

    error_code = "INVALID_AUDIO"


class AudioTooLarge(DownloadError):
    """The audio file is larger than the configured download cap."""

    error_code = "AUDIO_TOO_LARGE"


class NoSpeechRecognised(TranscriptionError):
    """The audio was decoded but no speech was recognised in it."""

    error_code = "NO_SPEECH"


class TranscriptionUnavailable(TransientError):
    """The speech service is unavailable or overloaded for now."""

    error_code = "TRANSCRIPTION_UNAVAILABLE"


class AudioTooLong(DownloadError):
    """The audio plays longer than the configured duration cap (``MAX_AUDIO_DURATION_SECONDS``)."""

    error_code = "AUDIO_TOO_LONG"


class InfectedFile(DownloadError):
    """The malware scan hook refused the downloaded file."""

    error_code = "INFECTED_FILE"


class ScanUnavailable(TransientError):
    """The malware scanner could not be run or reached: the file is neither passed nor refused yet."""

    error_code = "SCAN_UNAVAILABLE"
