from __future__ import annotations

import socket

import httpx
import pytest

from shared.errors import UnsafeURL
from shared.urlguard import check_url, guarded_stream, redirect_guard_hook

PUBLIC_IP = "93.184.216.34"
WHATSAPP = frozenset({"whatsapp.dados.rio"})


def fake_resolver(table: dict[str, list[str]]):
    def resolve(host: str) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


RESOLVER = fake_resolver(
    {
        "example.com": [PUBLIC_IP],
        "whatsapp.dados.rio": [PUBLIC_IP],
        "evil.example": [PUBLIC_IP],
        "whatsapp.dados.rio.evil.example": [PUBLIC_IP],
        "rebind.example": [PUBLIC_IP, "10.0.0.7"],
        "v6.example": ["2606:4700:4700::1111"],
        "internal.example": ["fd12:3456::1"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.ogg",
        "http://example.com:8080/a.ogg?x=1",
        f"http://{PUBLIC_IP}/a.ogg",
        "https://v6.example/a.ogg",
        "https://[2606:4700:4700::1111]/a.ogg",
    ],
)
def test_public_urls_pass(url):
    check_url(url, resolver=RESOLVER)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/a.ogg", "non-public"),
        ("http://127.9.9.9:8080/a.ogg", "non-public"),
        ("http://[::1]/a.ogg", "non-public"),
        ("http://10.1.2.3/a.ogg", "non-public"),
        ("http://172.16.5.4/a.ogg", "non-public"),
        ("http://172.31.255.255/a.ogg", "non-public"),
        ("http://192.168.1.10/a.ogg", "non-public"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
        ("http://[fd00::1]/a.ogg", "non-public"),
        ("http://[fe80::1]/a.ogg", "non-public"),
        ("http://[::ffff:127.0.0.1]/a.ogg", "non-public"),
        ("http://[::ffff:169.254.169.254]/a.ogg", "non-public"),
        ("http://[2002:7f00:1::1]/a.ogg", "non-public"),  # 6to4 wrapping 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/a.ogg", "non-public"),  # NAT64 of 169.254.169.254
        ("http://0.0.0.0/a.ogg", "non-public"),
        ("http://[::]/a.ogg", "non-public"),
        ("http://224.0.0.1/a.ogg", "non-public"),
        ("http://100.64.0.1/a.ogg", "non-public"),
        ("http://240.0.0.1/a.ogg", "non-public"),
        ("https://rebind.example/a.ogg", "non-public"),  # every address must be public
        ("https://internal.example/a.ogg", "non-public"),
        ("https://unknown.example/a.ogg", "cannot be resolved"),
        ("ftp://example.com/a.ogg", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/a.ogg", "scheme"),
        ("https:///a.ogg", "no host"),
        ("https://user:pw@example.com/a.ogg", "credentials"),
        ("http://example.com:99999/a.ogg", "malformed"),
    ],
)
def test_unsafe_urls_refused(url, reason):
    with pytest.raises(UnsafeURL, match=reason) as info:
        check_url(url, resolver=RESOLVER)
    assert info.value.error_code == "UNSAFE_URL"


@pytest.mark.parametrize("url", ["http://2130706433/a.ogg", "http://0x7f.1/a.ogg", "http://localhost/"])
def test_numeric_tricks_resolve_to_loopback_and_are_refused(url):
    # Real resolver: getaddrinfo turns these spellings into 127.0.0.1 without any network.
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_allow_private_skips_the_address_check():
    check_url("http://127.0.0.1:8080/a.ogg", allow_private=True)
    check_url("http://[::1]/a.ogg", allow_private=True)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://whatsapp.dados.rio/media/a.ogg", True),
        ("https://WhatsApp.Dados.Rio./media/a.ogg", True),
        ("https://evil.example/x?u=https://whatsapp.dados.rio/a.ogg", False),
        ("https://evil.example/whatsapp.dados.rio/a.ogg", False),
        ("https://whatsapp.dados.rio.evil.example/a.ogg", False),
        ("https://whatsapp.dados.rio@evil.example/a.ogg", False),
        ("https://sub.whatsapp.dados.rio/a.ogg", False),
    ],
)
def test_allowed_hosts_match_exactly(url, ok):
    if ok:
        check_url(url, allowed_hosts=WHATSAPP, resolver=RESOLVER)
    else:
        with pytest.raises(UnsafeURL):
            check_url(url, allowed_hosts=WHATSAPP, resolver=RESOLVER)


def test_allowed_host_still_needs_public_addresses():
    resolver = fake_resolver({"whatsapp.dados.rio": ["127.0.0.1"]})
    with pytest.raises(UnsafeURL, match="non-public"):
        check_url("https://whatsapp.dados.rio/a.ogg", allowed_hosts=WHATSAPP, resolver=resolver)


def _redirecting_transport(target: str, seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/start":
            return httpx.Response(302, headers={"Location": target})
        return httpx.Response(200, content=b"ok")

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1/admin", "file:///etc/passwd"],
)
def test_guarded_stream_checks_every_redirect_hop(target):
    seen: list[str] = []
    with (
        httpx.Client(transport=_redirecting_transport(target, seen)) as client,
        pytest.raises(UnsafeURL),
        guarded_stream(client, "GET", "https://example.com/start", resolver=RESOLVER),
    ):
        pass
    assert seen == ["https://example.com/start"]  # the unsafe hop was never requested


def test_guarded_stream_follows_safe_redirects():
    seen: list[str] = []
    transport = _redirecting_transport("/final", seen)
    with (
        httpx.Client(transport=transport) as client,
        guarded_stream(client, "GET", "https://example.com/start", resolver=RESOLVER) as response,
    ):
        assert response.read() == b"ok"
    assert seen == ["https://example.com/start", "https://example.com/final"]


def test_guarded_stream_limits_redirects():
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("n", "0"))
        return httpx.Response(302, headers={"Location": f"/loop?n={n + 1}"})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(UnsafeURL, match="more than 5 redirects"),
        guarded_stream(client, "GET", "https://example.com/loop", resolver=RESOLVER),
    ):
        pass


def test_redirect_guard_hook_runs_on_each_hop():
    seen: list[str] = []
    hook = redirect_guard_hook(resolver=RESOLVER)
    transport = _redirecting_transport("http://169.254.169.254/latest/meta-data/", seen)
    with (
        httpx.Client(transport=transport, event_hooks={"request": [hook]}, follow_redirects=True) as client,
        pytest.raises(UnsafeURL),
    ):
        client.get("https://example.com/start")
    assert seen == ["https://example.com/start"]
