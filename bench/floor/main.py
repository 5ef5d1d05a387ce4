"""The least a webhook must do, as a second baseline: how close can *any* accept path get to bare?

Issue 2's accept path, stripped to its mandated core with the same libraries and server: validate
the body with pydantic, write ``task:status:<id>`` with a TTL in Redis (redis-py), publish the
persistent message with a broker confirm (pika, one connection per server thread), answer 202.
No auth, no rate limits, no ordering, no logs, no metrics. The bench measures it beside the bare
function and the webhook: bare -> floor is what the mandated work costs; floor -> webhook is what
the gateway's own features cost.
"""

import json
import os
import threading
import uuid
from typing import Any

import flask
import functions_framework
import pika
import redis
from pydantic import BaseModel, Field, ValidationError

_PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")
_QUEUE = os.environ["RABBITMQ_USER_MESSAGES_QUEUE"] + ".floor"
_redis = redis.Redis.from_url(os.environ["REDIS_URL"])
_threads = threading.local()


class Accept(BaseModel):
    user_number: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


def _channel() -> Any:
    channel = getattr(_threads, "channel", None)
    if channel is None or not channel.is_open:
        connection = pika.BlockingConnection(pika.URLParameters(os.environ["RABBITMQ_URL"]))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(_QUEUE, durable=True)
        _threads.channel = channel
    return channel


def _json(body: dict[str, Any], status: int) -> flask.Response:
    return flask.Response(json.dumps(body), status=status, mimetype="application/json")


@functions_framework.http
def floor(request: flask.Request) -> flask.Response:
    if request.path == "/live":
        return _json({"status": "alive"}, 200)
    try:
        accepted = Accept.model_validate_json(request.get_data())
    except ValidationError as exc:
        return _json({"error": str(exc.errors()[0]["loc"])}, 400)
    message_id = str(uuid.uuid4())
    _redis.set(f"{_PREFIX}task:status:{message_id}", "processing", ex=600)
    body = json.dumps({"id": message_id, **accepted.model_dump()}).encode()
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    _channel().basic_publish("", _QUEUE, body, properties=properties, mandatory=True)
    return _json({"message_id": message_id, "status": "processing"}, 202)
