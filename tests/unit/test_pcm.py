from __future__ import annotations

import itertools

import numpy as np
import pytest

from shared.transcription.pcm import resample, split_bounds


def _sine(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


@pytest.mark.parametrize("source_rate", [48_000, 44_100, 24_000, 8_000])
def test_resample_keeps_speech_band_tone(source_rate):
    out = resample(_sine(440, source_rate), source_rate, 16_000)
    assert out.dtype == np.float32
    assert out.size == 16_000
    expected = _sine(440, 16_000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 0.02


@pytest.mark.parametrize("source_rate", [48_000, 44_100])
def test_resample_removes_tones_above_new_nyquist(source_rate):
    out = resample(_sine(12_000, source_rate), source_rate, 16_000)  # would alias to 4 kHz
    assert np.abs(out[200:-200]).max() < 0.05


def test_split_bounds_cover_everything_within_limit_and_cut_in_pauses():
    rate = 1_000
    samples = np.full(130 * rate, 1000, dtype=np.int16)
    samples[50 * rate : 51 * rate] = 0  # a pause shortly before the first 55 s limit
    bounds = split_bounds(samples, rate, 55.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == samples.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(0 < end - start <= 55 * rate for start, end in bounds)
    assert 50 * rate <= bounds[0][1] <= 51 * rate


def test_split_bounds_short_audio_is_one_chunk():
    assert split_bounds(np.zeros(100, dtype=np.int16), 16_000, 55.0) == [(0, 100)]
