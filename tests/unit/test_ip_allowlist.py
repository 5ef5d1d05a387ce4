"""IP_ALLOWLIST per route group and X-Forwarded-For from TRUSTED_PROXIES only: IPv4 and IPv6."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ConfigError
from shared.ipfilter import admitted, forwarded_client, parse_allowlist
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALLOWLIST = "webhooks=10.0.0.0/8,2001:db8::/32;polling=192.168.1.0/24,fd00::/8;admin=127.0.0.1/32,::1/128"
PROXIES = ["172.16.0.0/12", "2001:db8:ffff::/48"]
WEBHOOK = ("POST", "/api/v1/message/webhook/user")
POLL = ("GET", "/api/v1/message/response?message_id=00000000-0000-4000-8000-000000000000")
DEBUG = ("GET", "/api/v1/message/debug/task-status?message_id=00000000-0000-4000-8000-000000000000")

# (route, remote address, X-Forwarded-For, admitted)
CASES = [
    (WEBHOOK, "10.1.2.3", None, True),
    (WEBHOOK, "11.1.2.3", None, False),
    (WEBHOOK, "2001:db8:1::5", None, True),
    (WEBHOOK, "2001:db9::5", None, False),
    (WEBHOOK, "::ffff:10.9.9.9", None, True),  # IPv4-mapped IPv6 is its IPv4 address
    (WEBHOOK, "192.168.1.7", None, False),  # a polling address is not a webhook address
    # X-Forwarded-For from an untrusted peer is ignored, whatever it claims.
    (WEBHOOK, "11.1.2.3", "10.1.2.3", False),
    (WEBHOOK, "2001:db9::5", "2001:db8::1", False),
    # ... and believed from a trusted proxy (rightmost untrusted hop is the client).
    (WEBHOOK, "172.16.0.9", "10.1.2.3", True),
    (WEBHOOK, "172.16.0.9", "11.1.2.3", False),
    (WEBHOOK, "172.16.0.9", "10.0.0.1, 11.1.2.3", False),  # a forged left hop does not help
    (WEBHOOK, "172.16.0.9", "11.1.2.3, 10.0.0.1, 172.20.0.1", True),  # two proxies
    (WEBHOOK, "2001:db8:ffff::1", "2001:db8:1::9", True),
    (WEBHOOK, "2001:db8:ffff::1", "2001:db9::9", False),
    (WEBHOOK, "172.16.0.9", "not-an-ip", False),
    (POLL, "192.168.1.50", None, True),
    (POLL, "192.168.2.50", None, False),
    (POLL, "fd12::1", None, True),
    (POLL, "fe80::1", None, False),
    (DEBUG, "127.0.0.1", None, True),
    (DEBUG, "::1", None, True),
    (DEBUG, "10.1.2.3", None, False),
]


@pytest.mark.parametrize(("route", "remote", "forwarded", "ok"), CASES)
def test_allowlist_per_route_group(
    make_gateway: Any, route: Any, remote: str, forwarded: Any, ok: bool
) -> None:
    client, _ = make_gateway(ip_allowlist=ALLOWLIST, trusted_proxies=",".join(PROXIES))
    method, path = route
    headers = dict(ADMIN)
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    kwargs: dict[str, Any] = {"headers": headers, "environ_base": {"REMOTE_ADDR": remote}}
    if method == "POST":
        kwargs["json"] = {"user_number": "5521999999999", "message": "oi"}
    response = client.open(path, method=method, **kwargs)
    if ok:
        assert response.status_code != 403, response.get_json()
    else:
        assert response.status_code == 403
        assert response.is_json
        assert response.get_json()["error"] == "Forbidden"


def test_unlisted_groups_and_an_empty_allowlist_admit_everyone(make_gateway: Any) -> None:
    client, _ = make_gateway(ip_allowlist="admin=127.0.0.1/32")
    response = client.post(
        "/api/v1/message/webhook/user",
        json={"user_number": "5521999999999", "message": "oi"},
        headers=ADMIN,
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 202
    assert admitted("", "webhooks", "203.0.113.9")


def test_health_probes_are_not_filtered(make_gateway: Any) -> None:
    client, _ = make_gateway(ip_allowlist=ALLOWLIST)
    assert client.get("/live", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200


@pytest.mark.parametrize(
    ("remote", "header", "expected"),
    [
        ("10.0.0.1", "1.2.3.4", "10.0.0.1"),  # not a proxy
        ("172.16.0.1", "1.2.3.4", "1.2.3.4"),
        ("172.16.0.1", "1.2.3.4, 172.16.5.5", "1.2.3.4"),
        ("172.16.0.1", "", "172.16.0.1"),
        ("172.16.0.1", "172.17.0.1", "172.17.0.1"),  # only proxies: the leftmost
        ("2001:db8:ffff::2", "[2001:db8::7]:443", "2001:db8::7"),
        ("172.16.0.1", "1.2.3.4:5678", "1.2.3.4"),
    ],
)
def test_forwarded_client(remote: str, header: str, expected: str) -> None:
    assert forwarded_client(remote, header, PROXIES) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "webhooks",
        "web=10.0.0.0/8",
        "webhooks=10.0.0.0/33",
        "webhooks=",
        "admin=::1;admin=::2",
        "polling=1.2.3",
    ],
)
def test_malformed_allowlists_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_allowlist(bad)
    from tests.conftest import make_settings

    with pytest.raises(ConfigError, match="IP_ALLOWLIST"):
        make_settings(ip_allowlist=bad)


def test_bad_trusted_proxy_is_refused() -> None:
    from tests.conftest import make_settings

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        make_settings(trusted_proxies="10.0.0.0/8,nonsense")
