"""AgentEngineProvider against a local fake of Vertex AI and of Google's token endpoint."""

from __future__ import annotations

import base64
import codecs
import json
import threading
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.errors import AgentRejected, AgentUnavailable, ConfigError
from shared.providers.agent_engine import AgentEngineProvider, parse_credentials_json
from shared.providers.base import AgentReply, AgentRequest, Chunk, HistoryMessage
from tests.fake_http import FakeServer, Recorded, Reply

PROJECT, LOCATION, ENGINE = "my-project", "us-central1", "1234567890"
QUERY_PATH = f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/reasoningEngines/{ENGINE}:query"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"

AI_OUTPUT = {
    "output": {
        "messages": [
            {"type": "human", "id": "h1", "content": "Oi"},
            {
                "type": "ai",
                "id": "run--a1",
                "content": "Ol\\u00e1! Como posso ajudar?",
                "response_metadata": {"model_name": "gemini-2.5-flash", "finish_reason": "STOP"},
            },
        ]
    }
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(rsa_key: rsa.RSAPrivateKey) -> Iterator[FakeServer]:
    with FakeServer() as fake:
        public = rsa_key.public_key()
        counter = {"n": 0}

        def token(request: Recorded) -> Reply:
            form = dict(pair.split("=", 1) for pair in request.body.decode().split("&"))
            assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
            claims = jwt.decode(
                form["assertion"],
                public,
                algorithms=["RS256"],
                audience="https://oauth2.googleapis.com/token",
            )
            assert claims["scope"] == SCOPE
            assert claims["iss"] == "gateway@my-project.iam.gserviceaccount.com"
            counter["n"] += 1
            return Reply(
                200,
                {
                    "access_token": f"tok-{counter['n']}",
                    "expires_in": fake.expires_in,  # type: ignore[attr-defined]
                    "token_type": "Bearer",
                },
            )

        fake.expires_in = 3600  # type: ignore[attr-defined]
        fake.route("POST", "/token", token)
        yield fake


def sa_json(server: FakeServer, key: rsa.RSAPrivateKey) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": "gateway@my-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": server.url + "/token",
        }
    )


@pytest.fixture
def provider(server: FakeServer, rsa_key: rsa.RSAPrivateKey) -> AgentEngineProvider:
    return AgentEngineProvider(
        PROJECT,
        LOCATION,
        ENGINE,
        credentials_json=sa_json(server, rsa_key),
        api_endpoint=server.url,
        lro_poll_interval_s=0.01,
        timeout_s=5,
    )


def send(provider: AgentEngineProvider, text: str = "Oi", engine: str | None = None):
    return provider.send(AgentRequest("5521999990000", text, "msg-1", engine))


def test_query_request_is_exactly_what_vertex_expects(server, provider):
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    reply = send(provider, "Qual o horário do CRAS?")
    [call] = server.calls("POST", QUERY_PATH)
    assert call.json() == {
        "classMethod": "async_query",
        "input": {
            "input": {"messages": [{"role": "human", "content": "Qual o horário do CRAS?"}]},
            "config": {"configurable": {"thread_id": "5521999990000"}},
        },
    }
    assert call.headers["authorization"] == "Bearer tok-1"
    assert call.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.provider == "google_agent_engine"
    assert [m["id"] for m in reply.messages] == ["h1", "run--a1"]
    assert reply.text == "Olá! Como posso ajudar?"  # \u00e3-style escapes undone (lesson 8)


def test_base64_credentials_and_token_reused_until_expiry(server, rsa_key):
    encoded = base64.b64encode(sa_json(server, rsa_key).encode()).decode()
    provider = AgentEngineProvider(
        PROJECT, LOCATION, ENGINE, credentials_json=encoded, api_endpoint=server.url
    )
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    send(provider)
    send(provider)
    assert len(server.calls("POST", "/token")) == 1
    assert [c.headers["authorization"] for c in server.calls("POST", QUERY_PATH)] == [
        "Bearer tok-1",
        "Bearer tok-1",
    ]


def test_expired_token_is_refreshed(server, provider):
    server.expires_in = 30  # inside google-auth's refresh threshold: stale at once
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    send(provider)
    send(provider)
    assert [c.headers["authorization"] for c in server.calls("POST", QUERY_PATH)] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_concurrent_calls_fetch_one_token(server, provider):
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    threads = [threading.Thread(target=send, args=(provider,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.calls("POST", QUERY_PATH)) == 8
    assert len(server.calls("POST", "/token")) == 1


def test_engine_override_and_history_body(server, provider):
    other = QUERY_PATH.replace(ENGINE, "999")
    server.route("POST", other, Reply(200, {"output": {"status_code": 200, "status": "history updated"}}))
    result = provider.add_history("5521999990000", [HistoryMessage("ai", "Mensagem anterior")], "999")
    assert result == {"output": {"status_code": 200, "status": "history updated"}}
    [call] = server.calls("POST", other)
    assert call.json() == {
        "classMethod": "async_query",
        "input": {
            "input": {"messages": [{"role": "ai", "content": "Mensagem anterior"}]},
            "config": {"configurable": {"thread_id": "5521999990000"}},
            "type": "history",
        },
    }
    server.route("POST", other, Reply(200, AI_OUTPUT))
    send(provider, engine="999")
    assert len(server.calls("POST", other)) == 2


def test_long_running_operation_is_polled_until_done(server, provider):
    op = f"projects/{PROJECT}/locations/{LOCATION}/operations/op-1"
    server.route("POST", QUERY_PATH, Reply(200, {"name": op, "done": False}))
    server.route(
        "GET",
        f"/v1beta1/{op}",
        Reply(200, {"name": op, "done": False}),
        Reply(200, {"name": op, "done": True, "response": AI_OUTPUT}),
    )
    reply = send(provider)
    assert len(server.calls("GET", f"/v1beta1/{op}")) == 2
    assert reply.text == "Olá! Como posso ajudar?"


def test_long_running_operation_nested_name_and_error(server, provider):
    op = "projects/p/locations/l/operations/op-2"
    server.route("POST", QUERY_PATH, Reply(200, {"operation": {"name": op}}))
    server.route(
        "GET",
        f"/v1beta1/{op}",
        Reply(200, {"name": op, "done": True, "error": {"code": 3, "message": "bad"}}),
    )
    with pytest.raises(AgentRejected, match="finished with error"):
        send(provider)
    server.route(
        "GET",
        f"/v1beta1/{op}",
        Reply(200, {"name": op, "done": True, "error": {"code": 14, "message": "down"}}),
    )
    with pytest.raises(AgentUnavailable):
        send(provider)


def test_long_running_operation_deadline_comes_from_config(server, rsa_key):
    provider = AgentEngineProvider(
        PROJECT,
        LOCATION,
        ENGINE,
        credentials_json=sa_json(server, rsa_key),
        api_endpoint=server.url,
        lro_poll_interval_s=0.01,
        timeout_s=0.2,
    )
    op = "projects/p/locations/l/operations/slow"
    server.route("POST", QUERY_PATH, Reply(200, {"name": op}))
    server.route("GET", f"/v1beta1/{op}", Reply(200, {"name": op, "done": False}))
    started = time.monotonic()
    with pytest.raises(AgentUnavailable) as info:
        send(provider)
    assert info.value.error_code == "AGENT_TIMEOUT"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "bom",
    [codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE],
)
def test_byte_order_marks_are_stripped(server, provider, bom):
    encoding = {
        codecs.BOM_UTF8: "utf-8",
        codecs.BOM_UTF16_LE: "utf-16-le",
        codecs.BOM_UTF16_BE: "utf-16-be",
        codecs.BOM_UTF32_LE: "utf-32-le",
        codecs.BOM_UTF32_BE: "utf-32-be",
    }[bom]
    body = bom + json.dumps(AI_OUTPUT, ensure_ascii=False).encode(encoding)
    server.route("POST", QUERY_PATH, Reply(200, body))
    assert send(provider).text == "Olá! Como posso ajudar?"


def test_plain_text_answer_becomes_one_ai_message(server, provider):
    server.route("POST", QUERY_PATH, Reply(200, "⏱️ A resposta está demorando".encode()))
    reply = send(provider)
    assert reply.messages == [
        {"type": "ai", "id": "agent-engine-msg-1", "content": "⏱️ A resposta está demorando"}
    ]
    server.route("POST", QUERY_PATH, Reply(200, {"output": "texto simples"}))
    assert send(provider).text == "texto simples"


def test_langchain_dumpd_messages_are_flattened(server, provider):
    server.route(
        "POST",
        QUERY_PATH,
        Reply(
            200,
            {
                "output": {
                    "messages": [
                        {
                            "lc": 1,
                            "type": "constructor",
                            "id": ["langchain", "schema", "messages", "AIMessage"],
                            "kwargs": {"content": "Oi", "id": "a9"},
                        },
                    ]
                }
            },
        ),
    )
    assert send(provider).messages == [{"content": "Oi", "id": "a9", "type": "ai"}]


def test_missing_output_is_rejected(server, provider):
    server.route("POST", QUERY_PATH, Reply(200, {"result": {"x": 1}}))
    with pytest.raises(AgentRejected, match="missing 'output'"):
        send(provider)


def test_output_without_messages(server, provider):
    server.route("POST", QUERY_PATH, Reply(200, {"output": {"status": "ok"}}))
    reply = send(provider)
    assert reply.messages == []
    assert reply.extra == {"output_has_messages": False}


def test_503_is_transient(server, provider):
    server.route("POST", QUERY_PATH, Reply(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}))
    with pytest.raises(AgentUnavailable) as info:
        send(provider)
    assert info.value.retry_after is None


def test_429_honours_retry_after(server, provider):
    server.route(
        "POST", QUERY_PATH, Reply(429, {"error": {"status": "RESOURCE_EXHAUSTED"}}, {"Retry-After": "7"})
    )
    with pytest.raises(AgentUnavailable) as info:
        send(provider)
    assert info.value.retry_after == 7


def test_400_invalid_argument_is_permanent(server, provider):
    server.route(
        "POST",
        QUERY_PATH,
        Reply(400, {"error": {"code": 400, "message": "bad input", "status": "INVALID_ARGUMENT"}}),
    )
    with pytest.raises(AgentRejected):
        send(provider)


@pytest.mark.parametrize("status", ["FAILED_PRECONDITION", "UNAVAILABLE"])
def test_400_with_transient_google_status_is_transient(server, provider, status):
    # Lesson 20: the Reasoning Engine wraps its own dropped connections in a 400.
    server.route(
        "POST",
        QUERY_PATH,
        Reply(
            400,
            {
                "error": {
                    "code": 400,
                    "status": status,
                    "message": "Reasoning Engine Execution failed: connection was closed",
                }
            },
        ),
    )
    with pytest.raises(AgentUnavailable):
        send(provider)


@pytest.mark.parametrize("code", [401, 403, 404])
def test_auth_and_not_found_are_permanent(server, provider, code):
    server.route("POST", QUERY_PATH, Reply(code, {"error": {"code": code, "status": "DENIED"}}))
    with pytest.raises(AgentRejected):
        send(provider)


def test_digits_500_in_an_error_text_never_make_it_transient(server, provider):
    # The Go gateway matched "500" in the text; a phone number flipped the classification.
    body = {
        "error": {
            "code": 404,
            "status": "NOT_FOUND",
            "message": "thread not found: key not found: thread:5521950031234 (500 502)",
        }
    }
    server.route("POST", QUERY_PATH, Reply(404, body))
    with pytest.raises(AgentRejected):
        send(provider, "meu número é 5521950031234, erro 500 503 429 timeout")


def test_network_failure_and_timeout_are_transient(server, rsa_key):
    dead = AgentEngineProvider(
        PROJECT,
        LOCATION,
        ENGINE,
        credentials_json=sa_json(server, rsa_key),
        api_endpoint="http://127.0.0.1:9",
    )
    with pytest.raises(AgentUnavailable):
        send(dead)

    def slow(_: Recorded) -> Reply:
        time.sleep(0.5)
        return Reply(200, AI_OUTPUT)

    server.route("POST", QUERY_PATH, slow)
    impatient = AgentEngineProvider(
        PROJECT,
        LOCATION,
        ENGINE,
        credentials_json=sa_json(server, rsa_key),
        api_endpoint=server.url,
        timeout_s=0.1,
    )
    with pytest.raises(AgentUnavailable) as info:
        send(impatient)
    assert info.value.error_code == "AGENT_TIMEOUT"


def test_refused_token_is_permanent_and_unreachable_token_endpoint_transient(server, rsa_key):
    server.route(
        "POST",
        "/token",
        Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    )
    provider = AgentEngineProvider(
        PROJECT, LOCATION, ENGINE, credentials_json=sa_json(server, rsa_key), api_endpoint=server.url
    )
    with pytest.raises(AgentRejected) as info:
        send(provider)
    assert info.value.error_code == "AGENT_AUTH_ERROR"
    info_json = json.loads(sa_json(server, rsa_key))
    info_json["token_uri"] = "http://127.0.0.1:9/token"
    unreachable = AgentEngineProvider(
        PROJECT, LOCATION, ENGINE, credentials_json=json.dumps(info_json), api_endpoint=server.url
    )
    with pytest.raises(AgentUnavailable):
        send(unreachable)


def test_adc_is_used_without_credentials_json(server, monkeypatch):
    import google.auth
    from google.oauth2 import credentials as oauth_credentials

    creds = oauth_credentials.Credentials(token="adc-token")
    monkeypatch.setattr(google.auth, "default", lambda scopes: (creds, "p"))
    provider = AgentEngineProvider(PROJECT, LOCATION, ENGINE, api_endpoint=server.url)
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    send(provider)
    assert server.calls("POST", QUERY_PATH)[0].headers["authorization"] == "Bearer adc-token"


def test_health_check_gets_the_engine_resource(server, provider):
    server.route("GET", QUERY_PATH.removesuffix(":query"), Reply(200, {"name": "x"}))
    assert provider.check_health() is True
    server.route("GET", QUERY_PATH.removesuffix(":query"), Reply(503, "down"))
    assert provider.check_health() is False


def test_default_endpoint_and_config_errors():
    provider = AgentEngineProvider(
        PROJECT, "europe-west1", ENGINE, credentials_json='{"a": 1}', http_client=httpx.Client()
    )
    assert provider.query_url("e2") == (
        "https://europe-west1-aiplatform.googleapis.com/v1beta1/projects/my-project/"
        "locations/europe-west1/reasoningEngines/e2:query"
    )
    with pytest.raises(ConfigError):
        AgentEngineProvider(PROJECT, LOCATION, "")
    with pytest.raises(ConfigError):
        parse_credentials_json("not json at all")
    assert parse_credentials_json(base64.b64encode(b'{"k": "v"}').decode()) == {"k": "v"}


# --- streaming through :streamQuery (AGENT_ENGINE_STREAM_CLASS_METHOD) ----------------------------

STREAM_PATH = QUERY_PATH.removesuffix(":query") + ":streamQuery"


def streaming(server: FakeServer, rsa_key: rsa.RSAPrivateKey, method: str | None = "stream_query"):
    return AgentEngineProvider(
        PROJECT,
        LOCATION,
        ENGINE,
        credentials_json=sa_json(server, rsa_key),
        api_endpoint=server.url,
        timeout_s=5,
        stream_class_method=method,
    )


def ndjson(*items: object) -> bytes:
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items).encode() + b"\n"


def stream(provider: AgentEngineProvider) -> tuple[list[Chunk], AgentReply]:
    chunks: list[Chunk] = []
    reply = provider.stream(AgentRequest("5521999990000", "Oi", "msg-1"), chunks.append)
    return chunks, reply


def test_stream_query_message_chunks_become_text_chunks(server, rsa_key):
    chunk = {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "AIMessageChunk"]}
    server.route(
        "POST",
        STREAM_PATH,
        Reply(
            200,
            ndjson(
                {**chunk, "kwargs": {"content": "Ol\\u00e1", "type": "AIMessageChunk"}},
                {"type": "AIMessageChunk", "content": [{"type": "text", "text": ", tudo bem?"}]},
            ),
        ),
    )
    chunks, reply = stream(streaming(server, rsa_key))
    [call] = server.calls("POST", STREAM_PATH)
    assert call.json()["classMethod"] == "stream_query"
    assert call.json()["input"]["config"] == {"configurable": {"thread_id": "5521999990000"}}
    assert call.headers["authorization"] == "Bearer tok-1"
    assert chunks == [Chunk("text", "Olá"), Chunk("text", ", tudo bem?")]
    assert reply.text == "Olá, tudo bem?"


def test_stream_query_langgraph_updates_and_final_output(server, rsa_key):
    tool_call = {"type": "ai", "id": "a0", "content": "", "tool_calls": [{"name": "search", "args": {}}]}
    server.route(
        "POST",
        STREAM_PATH,
        Reply(200, ndjson({"agent": {"messages": [tool_call]}}, {"tools": {"messages": []}}, AI_OUTPUT)),
    )
    chunks, reply = stream(streaming(server, rsa_key))
    assert chunks == []  # tool calls are not text; the final output has no streamed text either
    assert reply.text == "Olá! Como posso ajudar?"
    assert [m["type"] for m in reply.messages] == ["human", "ai"]


def test_stream_query_adk_events_with_thoughts_and_http_body_wrapping(server, rsa_key):
    def body(item: object) -> dict[str, str]:
        data = base64.b64encode(json.dumps(item).encode()).decode()
        return {"contentType": "application/json", "data": data}

    events = [
        {"partial": True, "content": {"parts": [{"text": "pensando", "thought": True}]}},
        {"partial": True, "content": {"parts": [{"text": "Bom "}]}},
        {"partial": True, "content": {"parts": [{"text": "dia"}]}},
        {"content": {"parts": [{"text": "Bom dia"}]}},  # the closing event repeats the text
    ]
    server.route("POST", STREAM_PATH, Reply(200, ndjson(*(body(e) for e in events))))
    chunks, reply = stream(streaming(server, rsa_key))
    assert chunks == [Chunk("reasoning", "pensando"), Chunk("text", "Bom "), Chunk("text", "dia")]
    assert reply.text == "Bom dia"


def test_stream_query_errors_are_classified(server, rsa_key):
    server.route("POST", STREAM_PATH, Reply(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}))
    with pytest.raises(AgentUnavailable):
        stream(streaming(server, rsa_key))
    server.route("POST", STREAM_PATH, Reply(403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}}))
    with pytest.raises(AgentRejected):
        stream(streaming(server, rsa_key))


def test_without_a_stream_method_the_query_answer_is_one_chunk(server, rsa_key):
    server.route("POST", QUERY_PATH, Reply(200, AI_OUTPUT))
    chunks, _ = stream(streaming(server, rsa_key, method=None))
    assert chunks == [Chunk("text", "Olá! Como posso ajudar?")]
    assert server.calls("POST", STREAM_PATH) == []
