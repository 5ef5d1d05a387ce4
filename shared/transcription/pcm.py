"""Decode audio files to 16 kHz mono 16-bit PCM, split long audio, encode chunks as FLAC.

soundfile (libsndfile >= 1.1 in the wheels) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3;
PyAV, when installed, is the fallback for containers libsndfile cannot read (M4A/AAC, WebM).
numpy and soundfile are imported inside the functions: they are not needed on the cold-start path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import TranscriptionError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]
    Int16Array = npt.NDArray[np.int16]

TARGET_RATE = 16_000


def probe_duration(path: Path) -> float | None:
    """The duration in seconds per the file's header, or None if soundfile cannot read it."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, ValueError):  # LibsndfileError is a RuntimeError
        return None
    if not info.samplerate or info.frames <= 0:
        return None
    return float(info.frames) / float(info.samplerate)


def decode_pcm16(path: Path, rate: int = TARGET_RATE) -> Int16Array:
    """Decode any supported audio file to mono 16-bit samples at ``rate`` Hz.

    Raises :class:`TranscriptionError` (error code ``AUDIO_DECODE_ERROR``) when no decoder can
    read the file.
    """
    import numpy as np

    mono, source_rate = _read_float_mono(path)
    resampled = resample(mono, source_rate, rate)
    return (np.clip(resampled, -1.0, 1.0) * 32767.0).astype(np.int16)


def _read_float_mono(path: Path) -> tuple[FloatArray, int]:
    import numpy as np
    import soundfile

    try:
        data, source_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return np.asarray(data.mean(axis=1), dtype=np.float32), int(source_rate)
    except (RuntimeError, OSError, ValueError) as sf_error:
        try:
            return _read_with_pyav(path)
        except ImportError:
            pass
        except Exception as av_error:
            raise TranscriptionError(
                f"cannot decode audio: {av_error}", error_code="AUDIO_DECODE_ERROR"
            ) from av_error
        raise TranscriptionError(
            f"cannot decode audio: {sf_error}", error_code="AUDIO_DECODE_ERROR"
        ) from sf_error


def _read_with_pyav(path: Path) -> tuple[FloatArray, int]:
    import av
    import numpy as np

    parts: list[FloatArray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
        for out in resampler.resample(None):
            parts.append(np.asarray(out.to_ndarray(), dtype=np.float32).reshape(-1))
    if not parts:
        raise ValueError("no audio frames")
    return np.concatenate(parts), TARGET_RATE


def resample(samples: FloatArray, source_rate: int, target_rate: int) -> FloatArray:
    """Resample with a windowed-sinc low-pass (when downsampling) and linear interpolation.

    Good enough for speech recognition, and free of a SciPy dependency.
    """
    import numpy as np

    if source_rate == target_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    x = samples.astype(np.float32)
    if target_rate < source_rate:
        cutoff = 0.45 * target_rate / source_rate  # cycles per input sample, below new Nyquist
        taps = 63
        n = np.arange(taps) - (taps - 1) / 2
        kernel = (2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)).astype(np.float32)
        kernel /= kernel.sum()
        if source_rate % target_rate == 0:
            # Integer ratio (48 kHz -> 16 kHz): filter only at the kept samples.
            step = source_rate // target_rate
            padded = np.pad(x, (taps // 2, taps // 2))
            windows = np.lib.stride_tricks.sliding_window_view(padded, taps)[::step]
            return np.asarray(windows @ kernel[::-1], dtype=np.float32)
        x = np.convolve(x, kernel, mode="same")
    n_out = round(x.size * target_rate / source_rate)
    positions = np.arange(n_out) * (source_rate / target_rate)
    return np.asarray(np.interp(positions, np.arange(x.size), x), dtype=np.float32)


def split_bounds(
    samples: Int16Array, rate: int, max_seconds: float, search_seconds: float = 8.0
) -> list[tuple[int, int]]:
    """Split into [start, end) ranges of at most ``max_seconds``, cutting in the quietest place.

    Each cut is placed at the lowest-energy 20 ms frame of the last ``search_seconds`` before the
    limit, so that words are rarely cut in half.
    """
    import numpy as np

    limit = int(max_seconds * rate)
    if limit <= 0:
        raise ValueError("max_seconds must be positive")
    search = min(int(search_seconds * rate), limit // 2)
    frame = max(1, rate // 50)
    bounds: list[tuple[int, int]] = []
    start = 0
    total = int(samples.size)
    while total - start > limit:
        window_start = start + limit - search
        window = samples[window_start : start + limit].astype(np.float64)
        frames = window.size // frame
        if frames >= 1:
            energy = (window[: frames * frame].reshape(frames, frame) ** 2).sum(axis=1)
            cut = window_start + int(np.argmin(energy)) * frame + frame // 2
        else:
            cut = start + limit
        cut = min(max(cut, start + 1), start + limit)
        bounds.append((start, cut))
        start = cut
    if start < total:
        bounds.append((start, total))
    return bounds


def encode_flac(samples: Int16Array, rate: int) -> bytes:
    """Encode mono 16-bit samples as a FLAC file in memory."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
