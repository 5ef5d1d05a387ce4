"""Queue behaviour against the real RabbitMQ: topology, the Go body, refusals, retries, reconnects."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pika
import pytest
from prometheus_client import REGISTRY

from shared.bridge import Bridge, HttpSink, RabbitConsumer, RetryPolicy
from shared.config import Settings
from shared.errors import QueueUnavailable
from shared.localstack import LocalStack
from shared.models import QueueMessage
from shared.runtime import build_runtime, topology_from
from tests.conftest import start_stack
from tests.helpers import RABBITMQ_URL, RecordingServer, api, poll_until_final, wait_for

pytestmark = pytest.mark.integration

WEBHOOK = "/api/v1/message/webhook/user"


def rabbit_channel() -> tuple[pika.BlockingConnection, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    return connection, connection.channel()


def queue_arguments(name: str) -> dict[str, Any]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "arguments", "durable", "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for queue in json.loads(listed):
        if queue["name"] == name:
            # rabbitmqctl lists arguments as [name, type, value] triples.
            queue["arguments"] = {argument[0]: argument[2] for argument in queue["arguments"]}
            return dict(queue)
    raise AssertionError(f"queue {name} not declared")


def test_topology_has_the_go_arguments(real: Settings) -> None:
    runtime = build_runtime(real)
    runtime.publisher.publish(b"{}")  # the first publish declares the topology
    runtime.close()

    work = queue_arguments(real.rabbitmq_queue)
    assert work["durable"] is True
    assert work["arguments"] == {
        "x-dead-letter-exchange": real.rabbitmq_dlx_exchange,
        "x-dead-letter-routing-key": real.rabbitmq_dlq,
        "x-message-ttl": 300000,
    }
    dlq = queue_arguments(real.rabbitmq_dlq)
    assert dlq["durable"] is True
    assert dlq["arguments"] == {}
    # A Go process redeclaring the same queue with its arguments must succeed.
    connection, channel = rabbit_channel()
    channel.queue_declare(real.rabbitmq_queue, durable=True, arguments=topology_from(real).queue_arguments())
    connection.close()


def test_webhook_publishes_the_go_body(real: Settings) -> None:
    stack = start_stack(real)
    stack.consumer.stop()  # leave the message in the queue to inspect it
    try:
        accepted = api.post(
            stack.base_url + WEBHOOK,
            json={
                "user_number": "5521988887777",
                "message": "Quero <b>ajuda</b> & info",
                "previous_message": "Texto HSM",
                "reasoning_engine_id": "123",
                "metadata": {"campaign": "x", "source": "ignored"},
            },
            headers={"X-Request-ID": "req-1"},
        ).json()
        connection, channel = rabbit_channel()
        _method, properties, body = wait_for(lambda: _get_one(channel, real.rabbitmq_queue))
        connection.close()
    finally:
        stack.stop()
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.message_id.isdigit()
    document = json.loads(body)
    assert list(document) == [
        "id",
        "type",
        "user_number",
        "message",
        "previous_message",
        "provider",
        "timestamp",
        "metadata",
        "reasoning_engine_id",
    ]
    assert document["id"] == accepted["message_id"]
    assert document["type"] == "user_message"
    assert document["provider"] == "mock"
    # The only additions to the Go body: the user's order (shared.delivery), inside metadata.
    epoch = document["metadata"].pop("order_epoch")
    assert isinstance(epoch, str) and epoch
    assert document["metadata"] == {
        "campaign": "x",
        "message_type": "text",
        "order_seq": 1,
        "priority": "normal",
        "request_id": "req-1",
        "source": "webhook",
    }
    # Go's encoder escapes HTML characters; the bytes must match for a side-by-side migration.
    assert b'"Quero \\u003cb\\u003eajuda\\u003c/b\\u003e \\u0026 info"' in body


def _dead_letters(reason: str) -> float:
    value = REGISTRY.get_sample_value("message_dead_letters_total", {"reason": reason})
    return value or 0.0


def _queue_depth(queue: str) -> int:
    connection, channel = rabbit_channel()
    try:
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def _queue_unacked(queue: str) -> int:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listed.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return 0


def _get_one(channel: Any, queue: str) -> tuple[Any, Any, bytes] | None:
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    return (method, properties, body) if method else None


def test_broker_refusal_answers_503_and_fails_the_task(real: Settings) -> None:
    stack = start_stack(real)
    stack.consumer.stop()
    connection, channel = rabbit_channel()
    try:
        # A bound queue that rejects every publish makes the broker nack the message.
        rejecting = f"{real.rabbitmq_queue}.rejecting"
        channel.queue_declare(
            rejecting, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}, auto_delete=True
        )
        runtime = stack.runtime
        runtime.publisher.publish(b"{}")  # declare the topology first
        channel.queue_bind(rejecting, real.rabbitmq_exchange, routing_key=real.rabbitmq_queue)

        response = api.post(stack.base_url + WEBHOOK, json={"user_number": "5521977776666", "message": "oi"})

        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json()["error"] == "Service unavailable"
        failed = runtime.store.client.keys(runtime.store.key("task:status", "*"))
        statuses = {runtime.store.client.get(key) for key in failed}
        assert statuses == {"failed"}
        summary = runtime.store.read_summary(str(failed[0]).rsplit(":", 1)[-1])
        assert summary["error_code"] == "QUEUE_UNAVAILABLE"
    finally:
        connection.close()
        stack.stop()


def test_unroutable_publish_is_an_error_not_a_silent_loss(real: Settings) -> None:
    runtime = build_runtime(real)
    publisher = runtime.publisher
    publisher.publish(b"{}")  # declares the topology on this thread's connection
    connection, channel = rabbit_channel()
    channel.queue_unbind(real.rabbitmq_queue, real.rabbitmq_exchange, routing_key=real.rabbitmq_queue)
    connection.close()
    with pytest.raises(QueueUnavailable, match="could not route"):
        publisher.publish(b"{}")
    runtime.close()


def test_failing_worker_is_retried_then_dead_lettered(real: Settings) -> None:
    settings = real.model_copy(
        update={"bridge_max_attempts": 3, "bridge_retry_initial_delay": 0.05, "bridge_retry_max_delay": 0.2}
    )
    runtime = build_runtime(settings)
    dead_before = _dead_letters("rejected")
    message = QueueMessage(id="5b3c2f1e-1111-4222-8333-444455556666", user_number="5521", message="oi")
    runtime.store.accept(message.id, user_number="5521", provider="mock", callback_url=None, summary={})
    with RecordingServer(status=500).running() as worker:
        consumer = _consumer(settings, runtime, worker.url)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        runtime.publisher.publish(message.to_body())
        wait_for(lambda: runtime.store.read_task(message.id).status == "failed")  # type: ignore[union-attr]
        # The bridge's dead-letter consumer takes the message from the DLQ (keeping the task's reason).
        wait_for(lambda: _dead_letters("rejected") > dead_before)
        wait_for(lambda: _queue_depth(settings.rabbitmq_dlq) + _queue_unacked(settings.rabbitmq_dlq) == 0)
        consumer.stop()
        thread.join(timeout=10)
    assert [body["deliveryAttempt"] for body in worker.bodies] == [1, 2, 3]
    task = runtime.store.read_task(message.id)
    assert task is not None
    assert task.summary["error_code"] == "DELIVERY_FAILED"
    assert "gave up after 3 attempts" in (task.error or "")
    runtime.close()


def test_busy_worker_is_retried_without_counting_an_attempt(real: Settings) -> None:
    settings = real.model_copy(update={"bridge_max_attempts": 2, "bridge_busy_delay": 0.05})
    runtime = build_runtime(settings)
    answers = iter([429, 429, 429, 200])
    message = QueueMessage(id="6b3c2f1e-1111-4222-8333-444455556666", user_number="5521", message="oi")
    with RecordingServer(status=lambda _body: next(answers)).running() as worker:
        consumer = _consumer(settings, runtime, worker.url)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        runtime.publisher.publish(message.to_body())
        wait_for(lambda: len(worker.bodies) == 4)
        consumer.stop()
        thread.join(timeout=10)
    assert [body["deliveryAttempt"] for body in worker.bodies] == [1, 1, 1, 1]
    runtime.close()


def _consumer(settings: Settings, runtime: Any, url: str) -> RabbitConsumer:
    policy = RetryPolicy(
        max_attempts=settings.bridge_max_attempts,
        initial_delay_s=settings.bridge_retry_initial_delay,
        max_delay_s=settings.bridge_retry_max_delay,
        busy_delay_s=settings.bridge_busy_delay,
    )
    bridge = Bridge(HttpSink(url, timeout=5), runtime.store, policy, subscription="test")
    assert settings.rabbitmq_url
    return RabbitConsumer(
        bridge, settings.rabbitmq_url, runtime.topology, max_parallel=4, reconnect_max_delay_s=0.5
    )


def test_bridge_survives_a_dropped_connection(real: Settings) -> None:
    stack: LocalStack = start_stack(real)
    try:
        first = api.post(stack.base_url + WEBHOOK, json={"user_number": "5521966665555", "message": "um"})
        assert poll_until_final(stack.base_url, first.json()["message_id"])["status"] == "completed"
        consumer = stack.consumer
        assert isinstance(consumer, RabbitConsumer)
        opened = consumer.connections_opened

        _close_connections_named(consumer.connection_name)
        wait_for(lambda: consumer.connections_opened > opened, timeout=30)

        second = api.post(stack.base_url + WEBHOOK, json={"user_number": "5521966665555", "message": "dois"})
        result = poll_until_final(stack.base_url, second.json()["message_id"], timeout=30)
        assert result["status"] == "completed"
        assert result["content"] == "Você disse: dois"
    finally:
        stack.stop()


def _close_connections_named(name: str) -> None:
    """Have the broker close the bridge's connections, as a broker restart would."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listed.splitlines() if name in line]
    assert pids, "no bridge connection found"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: simulated broker drop"],
            check=True,
            capture_output=True,
        )
