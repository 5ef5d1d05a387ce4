"""The gateway on a real Redis Cluster (three nodes on loopback ports, created by this module)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from shared.batch import Batch
from shared.config import Settings
from shared.localstack import LocalStack
from shared.providers.resilience import RedisRateLimiter
from shared.ratelimit import RateLimiter, Window
from shared.store import TaskStore, build_redis, cluster_url
from tests.cluster import redis_cluster
from tests.conftest import start_stack
from tests.helpers import api, poll_until_final, real_settings, wait_for

pytestmark = pytest.mark.integration

WEBHOOK = "/api/v1/message/webhook/user"


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as ports:
        yield ports


@pytest.fixture
def cluster(cluster_ports: list[int]) -> Iterator[RedisCluster]:
    client = build_redis(
        f"redis+cluster://127.0.0.1:{cluster_ports[0]}", connect_timeout=2, operation_timeout=3, pool_size=10
    )
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_cluster_urls() -> None:
    assert cluster_url("redis+cluster://10.0.0.5:6379") == "redis://10.0.0.5:6379"
    assert cluster_url("rediss+cluster://:pw@h:6380/0") == "rediss://:pw@h:6380/0"
    assert cluster_url("redis://h:6379") is None
    assert cluster_url("redis://h:6379", cluster=True) == "redis://h:6379"


def test_redis_cluster_setting_selects_the_cluster_client(cluster_ports: list[int]) -> None:
    client = build_redis(
        f"redis://127.0.0.1:{cluster_ports[1]}",
        connect_timeout=2,
        operation_timeout=3,
        pool_size=5,
        cluster=True,
    )
    try:
        assert isinstance(client, RedisCluster)
        assert len(client.get_nodes()) == 3
    finally:
        client.close()


def test_rate_limit_script_keeps_a_scope_in_one_slot(cluster: RedisCluster, run_id: str) -> None:
    limiter = RateLimiter(cluster, prefix=f"{run_id}:")  # type: ignore[arg-type]
    windows = (Window(3, 60), Window(2, 10))
    keys = [limiter.key("webhook:token:abc", w) for w in windows]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    first = limiter.hit("webhook:token:abc", windows)
    second = limiter.hit("webhook:token:abc", windows)
    third = limiter.hit("webhook:token:abc", windows)
    assert first is not None and first.allowed and first.remaining == 1
    assert second is not None and second.allowed and second.remaining == 0
    assert third is not None and not third.allowed and third.retry_after >= 1
    # Other scopes are limited independently, wherever their slot lives.
    scopes = [f"poll:ip:10.0.0.{n}" for n in range(12)]
    assert len({cluster.get_node_from_key(limiter.key(s, windows[0])).name for s in scopes}) > 1
    for scope in scopes:
        decision = limiter.hit(scope, windows)
        assert decision is not None and decision.allowed
    for key in keys:
        cluster.delete(key)


def test_agent_rate_limiter_runs_on_the_cluster(cluster: RedisCluster, run_id: str) -> None:
    limiter = RedisRateLimiter(cluster, f"{run_id}:ratelimit:agent", 2, max_wait_s=0)
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() == 0
    assert limiter.try_acquire() > 0
    cluster.delete(f"{run_id}:ratelimit:agent")


def test_store_pipelines_span_slots_on_the_cluster(cluster: RedisCluster, run_id: str) -> None:
    store = TaskStore(cluster, prefix=f"{run_id}:")  # type: ignore[arg-type]
    message_id = "3f1d2c4b-0000-4000-8000-000000000001"
    keys = [store.key(kind, message_id) for kind in ("task:status", "task:metadata", "task:summary")]
    assert len({key_slot(k.encode()) for k in keys}) > 1  # Go's names: no hash tags, several slots
    store.accept(message_id, user_number="5521999990000", provider="mock", callback_url=None, summary={})
    store.save_result(message_id, user_number="5521999990000", data={"ok": True}, summary={})
    view = store.read_task(message_id)
    assert view is not None and view.status == "completed" and view.data == {"ok": True}
    assert store.claim_idempotency("token:abc", "key-1", message_id, ttl=60) is None
    assert store.claim_idempotency("token:abc", "key-1", "other", ttl=60) is not None
    store.release_idempotency("token:abc", "key-1", message_id)
    assert store.claim_idempotency("token:abc", "key-1", "other", ttl=60) is None
    for key in cluster.scan_iter(match=f"{run_id}:*", target_nodes=RedisCluster.ALL_NODES):
        cluster.delete(key)


@pytest.fixture
def cluster_stack(cluster_ports: list[int], run_id: str) -> Iterator[LocalStack]:
    settings: Settings = real_settings(
        run_id,
        redis_url=f"redis+cluster://127.0.0.1:{cluster_ports[2]}",
        rate_limit_burst=3,
        rate_limit_burst_window=60,
    )
    stack = start_stack(settings)
    yield stack
    stack.stop()


def test_message_travels_end_to_end_on_the_cluster(cluster_stack: LocalStack, run_id: str) -> None:
    store = cluster_stack.runtime.store
    assert isinstance(store.client, RedisCluster)
    accepted = api.post(
        cluster_stack.base_url + WEBHOOK, json={"user_number": "5521988887777", "message": "Olá cluster"}
    )
    assert accepted.status_code == 202, accepted.text
    message_id = accepted.json()["message_id"]
    # The stack allows 3 requests per minute per group, polls included: wait in Redis, then poll once.
    wait_for(lambda: store.client.get(f"{run_id}:task:status:{message_id}") == "completed" or None)
    result = poll_until_final(cluster_stack.base_url, message_id)
    assert result["status"] == "completed"
    assert result["content"] == "Você disse: Olá cluster"
    # The Go-compatible key names are unchanged on the cluster.
    assert store.client.get(f"{run_id}:task:status:{message_id}") == "completed"
    assert store.client.get(f"{run_id}:thread:5521988887777")

    # The shared rate limit (a Lua script over hash-tagged keys) works through the stack too.
    statuses = []
    for _ in range(4):
        response = httpx.post(
            cluster_stack.base_url + WEBHOOK,
            json={"user_number": "5521988887777", "message": "again"},
            headers=api.headers,
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert statuses.count(202) == 2  # 3 per minute: the first message above took one slot


def test_concurrent_batches_on_a_cluster_each_read_their_own_replies(
    cluster: RedisCluster, run_id: str
) -> None:
    """Many threads' batches at once (the webhook under load): every command runs, each reads its own."""
    client = cast(redis.Redis, cluster)
    rounds, workers = 20, 12

    def count(key: str) -> list[Any]:
        batch = Batch(client)
        counted = batch.stage(lambda pipe: pipe.incr(key).get(key), list)
        batch.run()
        return counted.result()

    def work(worker: int) -> list[list[Any]]:
        return [count(f"{run_id}:{{w{worker}}}:count") for _ in range(rounds)]

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(work, range(workers)))
    for seen in results:
        assert seen == [[n, str(n)] for n in range(1, rounds + 1)]
