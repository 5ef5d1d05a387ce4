"""download_audio against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import socket
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.audio import download_audio
from shared.errors import AudioTooLarge, DownloadError, InvalidAudio, UnsafeURL

OGG = b"OggS\x00\x02" + bytes(range(256)) * 8
HTML = b"<!DOCTYPE html><html><body>Not found, but 200</body></html>" * 4


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "audio/ogg", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]
        path = self.path.split("?", 1)[0]
        if path == "/voice.ogg":
            self._send(200, OGG)
        elif path == "/declared-big.ogg":
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", "100000000")
            self.end_headers()
            self.wfile.write(OGG)
        elif path == "/chunked.ogg":
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(50):
                piece = OGG
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/page.ogg":
            self._send(200, HTML, ctype="audio/ogg")
        elif path == "/missing.ogg":
            self._send(404, b"not here", ctype="text/plain")
        elif path == "/error.ogg":
            self._send(503, b"busy", ctype="text/plain")
        elif path == "/slow.ogg":
            self.send_response(200)
            self.send_header("Content-Type", "audio/ogg")
            self.send_header("Content-Length", str(len(OGG)))
            self.end_headers()
            time.sleep(3)
            self.wfile.write(OGG)
        elif path == "/redir-relative":
            self._redirect("/voice.ogg")
        elif path == "/redir-loopback":
            self._redirect(f"http://127.0.0.1:{port}/voice.ogg")
        elif path == "/redir-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/redir-loop":
            self._redirect("/redir-loop")
        else:
            self._send(404, b"", ctype="text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _public_localhost(host: str) -> list[str]:
    """Test resolver: claims 'localhost' is a public address for the first hop.

    The guard then allows http://localhost:<port>/..., httpx still connects to the loopback test
    server, and any redirect to a literal private address is judged on its own.
    """
    if host == "localhost":
        return ["93.184.216.34"]
    raise socket.gaierror(socket.EAI_NONAME, "unknown")


def _dl(url: str, tmp_path: Path, **kwargs):
    options: dict[str, Any] = {
        "max_bytes": 64 * 1024,
        "timeout_s": 5.0,
        "allow_private": True,
        "temp_dir": tmp_path,
    }
    options.update(kwargs)
    return download_audio(url, **options)


def test_happy_path_private_temp_file_removed(server, tmp_path):
    with _dl(f"http://{server}/voice.ogg?sig=1", tmp_path) as audio:
        assert audio.path.read_bytes() == OGG
        assert audio.size == len(OGG)
        assert audio.content_type == "audio/ogg"
        assert audio.audio_format == "ogg"
        assert audio.path.parent == tmp_path
        assert audio.path.suffix == ".ogg"
        assert stat.S_IMODE(audio.path.stat().st_mode) == 0o600
        path = audio.path
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_relative_redirect_followed(server, tmp_path):
    with _dl(f"http://{server}/redir-relative", tmp_path) as audio:
        assert audio.path.read_bytes() == OGG


@pytest.mark.parametrize("path", ["/declared-big.ogg", "/chunked.ogg"])
def test_too_big_refused(server, tmp_path, path):
    with pytest.raises(AudioTooLarge) as info, _dl(f"http://{server}{path}", tmp_path, max_bytes=4096):
        pytest.fail("must not yield")
    assert isinstance(info.value, DownloadError)
    assert info.value.error_code == "AUDIO_TOO_LARGE"
    assert list(tmp_path.iterdir()) == []


def test_chunked_within_cap_is_fine(server, tmp_path):
    with _dl(f"http://{server}/chunked.ogg", tmp_path, max_bytes=len(OGG) * 50) as audio:
        assert audio.size == len(OGG) * 50


def test_html_served_as_ogg_is_invalid_audio(server, tmp_path):
    with pytest.raises(DownloadError) as info, _dl(f"http://{server}/page.ogg", tmp_path):
        pytest.fail("must not yield")
    assert isinstance(info.value, InvalidAudio)
    assert info.value.error_code == "INVALID_AUDIO"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/missing.ogg", "/error.ogg"])
def test_non_2xx_is_download_error(server, tmp_path, path):
    with pytest.raises(DownloadError, match="HTTP"), _dl(f"http://{server}{path}", tmp_path):
        pytest.fail("must not yield")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_download_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as info, _dl(f"http://127.0.0.1:{port}/a.ogg", tmp_path):
        pytest.fail("must not yield")
    assert not isinstance(info.value, UnsafeURL)
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_download_error(server, tmp_path):
    with pytest.raises(DownloadError) as info, _dl(f"http://{server}/slow.ogg", tmp_path, timeout_s=0.5):
        pytest.fail("must not yield")
    assert info.value.error_code == "DOWNLOAD_TIMEOUT"
    assert list(tmp_path.iterdir()) == []


def test_loopback_refused_without_allow_private(server, tmp_path):
    with pytest.raises(UnsafeURL), _dl(f"http://{server}/voice.ogg", tmp_path, allow_private=False):
        pytest.fail("must not yield")
    assert list(tmp_path.iterdir()) == []


def test_resolver_seam_allows_first_hop(server, tmp_path):
    port = server.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/voice.ogg"
    with _dl(url, tmp_path, allow_private=False, resolver=_public_localhost) as audio:
        assert audio.path.read_bytes() == OGG


@pytest.mark.parametrize("path", ["/redir-loopback", "/redir-metadata"])
def test_redirect_to_private_address_refused(server, tmp_path, path):
    port = server.rsplit(":", 1)[1]
    url = f"http://localhost:{port}{path}"
    with (
        pytest.raises(UnsafeURL, match="non-public"),
        _dl(url, tmp_path, allow_private=False, resolver=_public_localhost),
    ):
        pytest.fail("must not yield")
    assert list(tmp_path.iterdir()) == []


def test_redirect_loop_refused(server, tmp_path):
    with pytest.raises(UnsafeURL, match="redirects"), _dl(f"http://{server}/redir-loop", tmp_path):
        pytest.fail("must not yield")


def test_allowed_hosts_enforced(server, tmp_path):
    allowed = frozenset({"whatsapp.dados.rio"})
    with (
        pytest.raises(UnsafeURL, match="allowed"),
        _dl(f"http://{server}/voice.ogg", tmp_path, allowed_hosts=allowed),
    ):
        pytest.fail("must not yield")


def test_temp_file_removed_when_caller_raises(server, tmp_path):
    with pytest.raises(RuntimeError), _dl(f"http://{server}/voice.ogg", tmp_path) as audio:
        assert audio.path.exists()
        raise RuntimeError("transcriber blew up")
    assert list(tmp_path.iterdir()) == []
