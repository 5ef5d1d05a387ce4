"""Google Cloud Speech-to-Text v2 transcriber (synchronous ``Recognize``, inline content).

Synchronous recognition accepts at most ~60 s and 10 MB of audio. Short files are sent as they are
(``auto_decoding_config`` recognises OGG/Opus, MP3, M4A, WAV, FLAC, WebM...). Longer ones are
decoded to 16 kHz mono, split into chunks of at most 55 s at quiet points, sent as FLAC one by one,
and the texts are joined, so nothing is cut off. All results of every response are kept (not only
``results[0]``).

``google.cloud.speech_v2`` and ``google.oauth2`` are imported on first use, not at import time.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, TranscriptionError, TranscriptionUnavailable
from shared.transcription import pcm
from shared.transcription.base import Transcript, transcript_from_segments

PROVIDER = "google"
INLINE_MAX_BYTES = 10 * 1024 * 1024
#: Chunk length for audio above the synchronous limit (Google's limit is 60 s).
CHUNK_SECONDS = 55.0
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def load_credentials(value: Any) -> Any:
    """Service-account credentials from JSON text, base64 JSON, a dict, or a Credentials object.

    ``None`` means Application Default Credentials (resolved by the client). Built in memory only:
    no credential file is written. Raises :class:`ConfigError` without echoing the secret.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        info: dict[str, Any] = dict(value)
    elif isinstance(value, str | bytes):
        info = _parse_service_account(value)
    else:
        return value  # already a google.auth credentials object
    from google.oauth2 import service_account

    from_info: Any = service_account.Credentials.from_service_account_info  # untyped upstream
    try:
        return from_info(info, scopes=list(_SCOPES))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"service-account credentials are incomplete: {type(exc).__name__}") from None


def _parse_service_account(value: str | bytes) -> dict[str, Any]:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.startswith("{"):
        try:
            padded = text + "=" * (-len(text) % 4)
            decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            text = decoded.decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ConfigError("service-account credentials are neither JSON nor base64 JSON") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("service-account credentials are not valid JSON") from None
    if not isinstance(info, dict):
        raise ConfigError("service-account credentials must be a JSON object")
    return info


def default_endpoint(location: str) -> str | None:
    """The regional endpoint for ``location`` (None = the library default for ``global``)."""
    return None if location == "global" else f"{location}-speech.googleapis.com"


class GoogleTranscriber:
    """Speech-to-Text v2 ``Recognize`` with the implicit recognizer ``_``.

    ``transport`` (a ``SpeechGrpcTransport``, e.g. over ``grpc.insecure_channel`` in tests)
    replaces endpoint and credentials. The client is created on first use and shared by threads.
    """

    provider = PROVIDER

    def __init__(
        self,
        project_id: str,
        location: str = "global",
        language_code: str = "pt-BR",
        model: str = "long",
        api_endpoint: str | None = None,
        credentials: Any = None,
        transport: Any = None,
        timeout_s: float = 60.0,
        chunk_seconds: float = CHUNK_SECONDS,
    ) -> None:
        if not project_id:
            raise ConfigError("Google transcription needs a project id")
        if not 0 < chunk_seconds <= 60:
            raise ConfigError("chunk_seconds must be in (0, 60]")
        self.project_id = project_id
        self.location = location
        self.language_code = language_code
        self.model = model
        self.api_endpoint = api_endpoint or default_endpoint(location)
        self.timeout_s = timeout_s
        self.chunk_seconds = chunk_seconds
        self._credentials = credentials
        self._transport = transport
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def recognizer(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/recognizers/_"

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import speech_v2

                if self._transport is not None:
                    self._client = speech_v2.SpeechClient(transport=self._transport)
                else:
                    from google.api_core.client_options import ClientOptions

                    options = ClientOptions(api_endpoint=self.api_endpoint) if self.api_endpoint else None
                    self._client = speech_v2.SpeechClient(
                        credentials=load_credentials(self._credentials), client_options=options
                    )
            return self._client

    def transcribe(self, path: Path, content_type: str | None) -> Transcript:
        segments: list[str] = []
        for payload in self._payloads(path):
            segments.extend(self._recognize(payload))
        return transcript_from_segments(segments, PROVIDER)

    def _payloads(self, path: Path) -> list[bytes]:
        """The file itself when short enough, else FLAC chunks of at most ``chunk_seconds``.

        The duration comes from the header when soundfile can read it, else from decoding (PyAV).
        A file no local decoder reads is sent as is when it fits the inline limit.
        """
        size = path.stat().st_size
        duration = pcm.probe_duration(path)
        fits_inline = size <= INLINE_MAX_BYTES
        if duration is not None and duration <= self.chunk_seconds and fits_inline:
            return [path.read_bytes()]
        try:
            samples = pcm.decode_pcm16(path)
        except TranscriptionError:
            if duration is None and fits_inline:
                return [path.read_bytes()]  # e.g. M4A without PyAV: let Google decode it
            raise
        if samples.size <= self.chunk_seconds * pcm.TARGET_RATE and fits_inline:
            return [path.read_bytes()]
        bounds = pcm.split_bounds(samples, pcm.TARGET_RATE, self.chunk_seconds)
        return [pcm.encode_flac(samples[start:end], pcm.TARGET_RATE) for start, end in bounds]

    def _recognize(self, content: bytes) -> list[str]:
        from google.cloud.speech_v2 import types

        request = types.RecognizeRequest(
            recognizer=self.recognizer,
            config=types.RecognitionConfig(
                auto_decoding_config=types.AutoDetectDecodingConfig(),
                language_codes=[self.language_code],
                model=self.model,
                features=types.RecognitionFeatures(enable_automatic_punctuation=True, max_alternatives=1),
            ),
            content=content,
        )
        client = self._get_client()
        try:
            response = client.recognize(request=request, timeout=self.timeout_s)
        except Exception as exc:
            mapped = _classify(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return [r.alternatives[0].transcript for r in response.results if r.alternatives]


def _classify(exc: Exception) -> Exception | None:
    """Map a Google client exception to the gateway's transient/permanent errors (None: a bug)."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    transient = (
        gexc.DeadlineExceeded,
        gexc.ServiceUnavailable,
        gexc.ResourceExhausted,
        gexc.InternalServerError,
        gexc.Aborted,
        gexc.RetryError,
        auth_exc.TransportError,
    )
    name = type(exc).__name__
    if isinstance(exc, transient):
        return TranscriptionUnavailable(f"speech service unavailable: {name}: {exc}")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return ConfigError(f"no Google credentials for speech: {exc}")
    if isinstance(exc, gexc.GoogleAPICallError | auth_exc.GoogleAuthError):
        return TranscriptionError(f"speech recognition failed: {name}: {exc}")
    return None
