"""Offline transcriber: pocketsphinx with its bundled US-English model (no cloud, no network).

Meant for local runs and tests, not for Portuguese production traffic: the bundled model
recognises clearly spoken English words (digits very well), not free Portuguese speech. Any input
soundfile (or PyAV) can read, including WhatsApp OGG/Opus voice notes, is converted to 16 kHz mono
16-bit PCM first.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from shared.errors import TranscriptionError
from shared.transcription import pcm
from shared.transcription.base import Transcript, transcript_from_segments

PROVIDER = "pocketsphinx"


class LocalTranscriber:
    """pocketsphinx decoder; ``model_dir``/``lm``/``dictionary`` default to the bundled en-us."""

    provider = PROVIDER

    def __init__(
        self,
        model_dir: str | None = None,
        lm: str | None = None,
        dictionary: str | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.lm = lm
        self.dictionary = dictionary
        self._decoder: Any = None
        self._lock = threading.Lock()  # a pocketsphinx Decoder is not thread-safe

    def _get_decoder(self) -> Any:
        if self._decoder is None:
            import pocketsphinx

            options: dict[str, Any] = {"samprate": pcm.TARGET_RATE, "loglevel": "FATAL"}
            if self.model_dir:
                options["hmm"] = self.model_dir
            if self.lm:
                options["lm"] = self.lm
            if self.dictionary:
                options["dict"] = self.dictionary
            try:
                self._decoder = pocketsphinx.Decoder(**options)
            except (RuntimeError, ValueError) as exc:
                raise TranscriptionError(f"cannot load the pocketsphinx model: {exc}") from exc
        return self._decoder

    def transcribe(self, path: Path, content_type: str | None) -> Transcript:
        """Find speech regions with pocketsphinx's voice-activity segmenter, decode each one.

        Pure silence or noise yields no region and so :class:`NoSpeechRecognised` (the decoder
        alone would hallucinate words on silence).
        """
        import pocketsphinx

        samples = pcm.decode_pcm16(path)
        raw = samples.astype("<i2", copy=False).tobytes()
        segmenter = pocketsphinx.Segmenter(sample_rate=pcm.TARGET_RATE)
        regions = [segment.pcm for segment in segmenter.segment(io.BytesIO(raw))]
        if segmenter.speech_frames:  # audio ended in the middle of speech
            regions.append(b"".join(segmenter.speech_frames))
        texts: list[str] = []
        with self._lock:
            decoder = self._get_decoder()
            for region in regions:
                try:
                    decoder.start_utt()
                    decoder.process_raw(region, full_utt=True)
                    decoder.end_utt()
                except RuntimeError as exc:
                    raise TranscriptionError(f"pocketsphinx failed: {exc}") from exc
                hypothesis = decoder.hyp()
                if hypothesis is not None:
                    texts.append(hypothesis.hypstr)
        return transcript_from_segments(texts, PROVIDER)
