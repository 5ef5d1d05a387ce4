"""The bridge's pubsub sink: the real Pub/Sub client publishing over gRPC to a fake server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.types import PublishRequest, PublishResponse

from shared.bridge import Action, Bridge, RetryPolicy
from shared.models import PushEnvelope, QueueMessage
from shared.pubsub import PUBLISHED, UNAVAILABLE, PubSubSink, build_publisher
from shared.runtime import build_runtime
from tests.helpers import embedded_settings

TOPIC = "projects/city-hall/topics/eai-user-messages"


class FakePublisher:
    """Answers google.pubsub.v1.Publisher/Publish; fails with UNAVAILABLE while ``failing`` is set."""

    def __init__(self) -> None:
        self.requests: list[PublishRequest] = []
        self.failing = False
        self.lock = threading.Lock()

    def publish(self, request: PublishRequest, context: grpc.ServicerContext) -> PublishResponse:
        with self.lock:
            self.requests.append(request)
        if self.failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try later")
        return PublishResponse(message_ids=[str(len(self.requests)) for _ in request.messages])


@pytest.fixture
def fake() -> Iterator[tuple[FakePublisher, str]]:
    publisher = FakePublisher()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "Publish": grpc.unary_unary_rpc_method_handler(
                publisher.publish,
                request_deserializer=PublishRequest.deserialize,
                response_serializer=PublishResponse.serialize,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield publisher, f"127.0.0.1:{port}"
    server.stop(grace=None)


def sink_for(address: str, timeout_s: float = 10) -> PubSubSink:
    from google.auth.credentials import AnonymousCredentials

    transport = PublisherGrpcTransport(
        channel=grpc.insecure_channel(address), credentials=AnonymousCredentials()
    )
    return PubSubSink(TOPIC, timeout_s=timeout_s, client=build_publisher(transport=transport))


def envelope(message: QueueMessage, retry_count: int = 0) -> PushEnvelope:
    return PushEnvelope.wrap(
        message.to_body(),
        message_id="77",
        attributes={"retry_count": str(retry_count)},
        delivery_attempt=retry_count + 1,
        subscription="s",
    )


def test_publishes_the_go_body_with_attributes(fake: tuple[FakePublisher, str]) -> None:
    publisher, address = fake
    sink = sink_for(address)
    message = QueueMessage(id="a1", user_number="5521999999999", message="Olá", timestamp="t")
    try:
        assert sink.deliver(envelope(message, retry_count=2)) == PUBLISHED
    finally:
        sink.close()
    request: Any = publisher.requests[0]
    assert request.topic == TOPIC
    [published] = request.messages
    assert published.data == message.to_body()
    assert dict(published.attributes) == {"retry_count": "2", "user_number": "5521999999999"}


def test_an_unavailable_topic_is_a_transient_failure_the_bridge_retries(
    fake: tuple[FakePublisher, str],
) -> None:
    publisher, address = fake
    publisher.failing = True
    sink = sink_for(address, timeout_s=1)
    runtime = build_runtime(embedded_settings())
    bridge = Bridge(sink, runtime.store, RetryPolicy(max_attempts=3, initial_delay_s=1), subscription="s")
    message = QueueMessage(id="a2", user_number="5521999999999", message="Olá", timestamp="t")
    try:
        assert sink.deliver(envelope(message)) == UNAVAILABLE
        decision = bridge.handle(message.to_body(), retry_count=0, broker_message_id="1")
        assert decision.action is Action.RETRY
        publisher.failing = False
        assert sink.deliver(envelope(message)) == PUBLISHED
    finally:
        sink.close()
