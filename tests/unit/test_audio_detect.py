from __future__ import annotations

import pytest

from shared.audio import detect_audio, sniff_audio_format


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("https://whatsapp.dados.rio/media/voice.ogg", True),
        ("https://whatsapp.dados.rio/media/voice.OGA", True),
        ("http://x.example/a.opus?sig=abc&exp=1", True),
        ("https://x.example/a.mp3#t=1", True),
        *[
            (f"https://x.example/a.{ext}", True)
            for ext in ["mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aac", "webm"]
        ],
        ("  https://x.example/a.m4a\n", True),
        ("https://x.example/a.wma", False),
        ("https://x.example/a.ogg.html", False),
        ("https://x.example/page?file=a.ogg", False),
        ("https://x.example/", False),
        ("ftp://x.example/a.ogg", False),
        ("file:///tmp/a.ogg", False),
        ("a.ogg", False),
        ("ouça https://x.example/a.ogg", False),
        ("meu arquivo.mp3", False),
        ("", False),
        ("https://[::1/a.ogg", False),
    ],
)
def test_detect_audio(message, expected):
    assert detect_audio(message) is expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"OggS\x00\x02" + b"\x00" * 10, "ogg"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"ID3\x04\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64\x00\x00", "mp3"),  # MPEG-1 layer III frame header
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "aac"),  # ADTS
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "webm"),
        (b"#!AMR\n", "amr"),
        (b"<!DOCTYPE html><html>", None),
        (b"<html><body>404</body></html>", None),
        (b'{"error": "not found"}', None),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"\xff\xd8\xff\xe0", None),  # JPEG
        (b"", None),
    ],
)
def test_sniff_audio_format(head, expected):
    assert sniff_audio_format(head) == expected
