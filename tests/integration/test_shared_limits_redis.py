"""Rate limits and idempotency against the real Redis: shared by every instance, atomic under load."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from werkzeug.serving import make_server

from shared.ratelimit import RateLimiter, Window
from shared.runtime import Runtime, build_runtime
from tests.conftest import READER_TOKEN, SENDER_TOKEN, gateway_app, make_settings

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
WEBHOOK = "/api/v1/message/webhook/user"
SENDER = {"Authorization": f"Bearer {SENDER_TOKEN}"}


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("no Redis on 127.0.0.1:6379: start it (see README) — integration tests need it")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    value = f"test-auth-{uuid.uuid4().hex[:10]}:"
    yield value
    keys = list(redis_client.scan_iter(match=f"{value}*"))
    if keys:
        redis_client.delete(*keys)


def runtimes(prefix: str, count: int = 2, **overrides: object) -> list[Runtime]:
    settings = make_settings(redis_url=REDIS_URL, redis_key_prefix=prefix, **overrides)
    return [build_runtime(settings) for _ in range(count)]


def test_two_instances_share_one_budget(prefix: str) -> None:
    first, second = runtimes(prefix, rate_limit_burst=5, rate_limit_requests_per_minute=1000)
    apps = [gateway_app(first).test_client(), gateway_app(second).test_client()]
    path = f"/api/v1/message/response?message_id={uuid.uuid4()}"
    headers = {"Authorization": f"Bearer {READER_TOKEN}"}
    answers = [apps[i % 2].get(path, headers=headers) for i in range(6)]
    assert [a.status_code for a in answers] == [404] * 5 + [429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(a.headers["X-RateLimit-Limit"] == "5" for a in answers)
    refused = answers[-1]
    body = refused.get_json()
    assert body == {
        "error": "Rate limit exceeded",
        "message": body["message"],
        "retry_after": body["retry_after"],
        "limit": 5,
        "window": 10,
    }
    assert 1 <= body["retry_after"] <= 10
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert 1 <= int(refused.headers["X-RateLimit-Reset"]) <= 10
    # Another endpoint group and another client have their own budgets.
    assert apps[0].get("/metrics", headers=headers).status_code == 200
    assert (
        apps[1]
        .post(WEBHOOK, json={"user_number": "5521999999999", "message": "oi"}, headers=SENDER)
        .status_code
        == 202
    )
    for runtime in (first, second):
        runtime.close()


def test_window_slides_and_reset_is_accurate(prefix: str, redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, prefix=prefix)
    window = [Window(limit=2, seconds=1.5)]
    first = limiter.hit("g:c", window)
    assert first is not None and first.allowed and first.remaining == 1 and first.reset == 2
    assert limiter.hit("g:c", window).allowed  # type: ignore[union-attr]
    denied = limiter.hit("g:c", window)
    assert denied is not None and not denied.allowed and denied.retry_after == 2
    time.sleep(1.6)
    again = limiter.hit("g:c", window)
    assert again is not None and again.allowed
    ttl = redis_client.pttl(limiter.key("g:c", window[0]))
    assert 0 < ttl <= 1500


def test_limit_is_exact_under_concurrency(prefix: str) -> None:
    clients = [redis.Redis.from_url(REDIS_URL) for _ in range(4)]
    limiters = [RateLimiter(c, prefix=prefix) for c in clients]
    windows = [Window(limit=25, seconds=60), Window(limit=1000, seconds=10)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(lambda i: limiters[i % 4].hit("g:hot", windows), range(100)))
    assert sum(1 for d in decisions if d is not None and d.allowed) == 25
    for client in clients:
        client.close()


def test_redis_down_fails_open_for_reads_and_503_for_the_webhook() -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.2)
    runtime = build_runtime(settings)
    client = gateway_app(runtime).test_client()
    reader = {"Authorization": f"Bearer {READER_TOKEN}"}
    metrics = client.get("/metrics", headers=reader)
    assert metrics.status_code == 200
    assert "X-RateLimit-Limit" not in metrics.headers
    refused = client.post(WEBHOOK, json={"user_number": "5521999999999", "message": "oi"}, headers=SENDER)
    assert refused.status_code == 503
    assert refused.get_json()["error"] == "Service unavailable"
    assert refused.headers["Retry-After"]
    assert runtime.broker is not None and runtime.broker.depth() == 0
    runtime.close()


def test_fifty_concurrent_duplicates_queue_exactly_one(prefix: str) -> None:
    (runtime,) = runtimes(prefix, count=1)
    server = make_server("127.0.0.1", 0, gateway_app(runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{WEBHOOK}"
    body = {"user_number": "5521999999999", "message": "oi", "metadata": {"wamid": "wamid.DUPLICATE-1"}}
    barrier = threading.Barrier(50)

    def send(_: int) -> httpx.Response:
        barrier.wait()
        return httpx.post(url, json=body, headers=SENDER, timeout=30)

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(send, range(50)))
    finally:
        server.shutdown()
        thread.join(5)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 49 + [202]
    assert len({a.json()["message_id"] for a in answers}) == 1
    assert runtime.broker is not None and runtime.broker.depth() == 1
    runtime.close()
