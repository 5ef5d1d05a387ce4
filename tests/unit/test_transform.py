"""The Go transform of reference §5.6."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from shared.transform import build_result_data, rfc3339, to_gateway_messages

NOW = datetime(2026, 3, 10, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-3)))
STEP = re.compile(r"^step-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE_NULLS = ("date", "session_id", "time_since_last_message", "sender_id", "is_err")

# human -> ai(tool call, 30 reasoning tokens) -> tool -> ai(thinking + text): the §5.6 example.
EXAMPLE = [
    {"type": "human", "id": "h1", "content": "Que horas abre o CRAS?"},
    {
        "type": "ai",
        "id": "run--a1",
        "content": "",
        "tool_calls": [{"id": "call_1", "name": "google_search", "args": {"q": "CRAS horário"}}],
        "response_metadata": {
            "model_name": "gemini-2.5-flash",
            "finish_reason": "STOP",
            "usage_metadata": {
                "input_tokens": 100,
                "output_tokens": 0,
                "total_tokens": 130,
                "output_token_details": {"reasoning": 30},
            },
        },
    },
    {
        "type": "tool",
        "id": "t1",
        "name": "google_search",
        "tool_call_id": "call_1",
        "content": "O CRAS abre às 8h",
    },
    {
        "type": "ai",
        "id": "run--a2",
        "content": [
            {"type": "thinking", "thinking": "Pensando"},
            {"type": "text", "text": "O CRAS abre **8h**."},
        ],
        "response_metadata": {
            "model_name": "gemini-2.5-flash",
            "finish_reason": "STOP",
            "avg_logprobs": -0.25,
            "usage_metadata": {
                "input_tokens": 200,
                "output_tokens": 30,
                "total_tokens": 230,
                "input_token_details": {"cache_read": 50},
            },
        },
    },
]


def convert(messages=EXAMPLE):
    return to_gateway_messages(messages, user_number="5521999990000", now=NOW)


def test_worked_example_sequence():
    out = convert()
    assert [(m["message_type"], m.get("id")) for m in out] == [
        ("user_message", "h1"),
        ("reasoning_message", "reasoning-run--a1"),
        ("tool_call_message", "tool-call_1"),
        ("tool_return_message", "t1"),
        ("reasoning_message", "thinking-run--a2"),
        ("assistant_message", "run--a2"),
        ("usage_statistics", None),
    ]
    assert out[1]["reasoning"] == "Processando chamada para ferramenta google_search"
    assert out[4]["reasoning"] == "Pensando"
    assert out[5]["content"] == "O CRAS abre **8h**."  # formatting happens elsewhere, once


def test_worked_example_usage_statistics():
    usage = convert()[-1]
    assert usage == {
        "agent_id": "user_5521999990000",
        "completion_tokens": 60,
        "message_type": "usage_statistics",
        "model_names": ["gemini-2.5-flash"],
        "processed_at": "2026-03-10T14:30:05-03:00",
        "prompt_tokens": 300,
        "run_ids": None,
        "status": "done",
        "step_count": 4,
        "steps_messages": None,
        "thoughts_tokens": 30,
        "total_tokens": 360,
    }
    assert list(usage) == sorted(usage)


def test_base_fields_and_step_ids():
    out = convert()[:-1]
    for message in out:
        assert list(message) == sorted(message)  # Go encodes maps alphabetically
        for key in BASE_NULLS:
            assert key in message and message[key] is None
        assert STEP.match(message["step_id"])
    user = out[0]
    assert user == {
        "avg_logprobs": None,
        "content": "Que horas abre o CRAS?",
        "date": None,
        "finish_reason": None,
        "id": "h1",
        "is_err": None,
        "message_type": "user_message",
        "model_name": None,
        "name": None,
        "otid": "h1",
        "sender_id": None,
        "session_id": None,
        "step_id": user["step_id"],
        "time_since_last_message": None,
        "usage_metadata": None,
    }
    # One step id per source message, shared by everything it produced.
    assert out[1]["step_id"] == out[2]["step_id"]
    assert out[4]["step_id"] == out[5]["step_id"]
    assert len({m["step_id"] for m in out}) == 4
    assert out[5]["otid"] == "run--a2" and out[4]["otid"] == "run--a2"


def test_tool_messages():
    out = convert()
    call, ret = out[2], out[3]
    assert call["content"] is None
    assert call["tool_call"] == {
        "arguments": {"q": "CRAS horário"},
        "name": "google_search",
        "tool_call_id": "call_1",
    }
    assert ret["tool_return"] == "O CRAS abre às 8h" == ret["content"]
    assert ret["status"] == "success" and ret["tool_call_id"] == "call_1"
    assert ret["stdout"] is None and ret["stderr"] is None and ret["is_err"] is None
    assert ret["name"] == "google_search"
    nameless = convert([{"type": "tool", "id": "t9", "content": "x"}])[0]
    assert "tool_return" not in nameless and nameless["message_type"] == "tool_return_message"


def test_usage_metadata_mapping():
    out = convert()
    assert out[1]["usage_metadata"] == {
        "candidates_token_count": 0,
        "prompt_token_count": 100,
        "thoughts_token_count": 30,
        "total_token_count": 130,
    }
    assert out[5]["usage_metadata"] == {
        "cached_content_token_count": 50,
        "candidates_token_count": 30,
        "prompt_token_count": 200,
        "total_token_count": 230,
    }
    assert out[5]["avg_logprobs"] == -0.25 and out[5]["finish_reason"] == "STOP"


def test_total_falls_back_to_the_sum_and_model_names_are_distinct():
    messages = [
        {
            "type": "ai",
            "id": "a",
            "content": "x",
            "response_metadata": {
                "model_name": "m1",
                "usage_metadata": {
                    "input_tokens": 5,
                    "output_tokens": 3,
                    "output_token_details": {"reasoning": 2},
                },
            },
        },
        {
            "type": "ai",
            "id": "b",
            "content": "y",
            "response_metadata": {
                "model_name": "m2",
                "usage_metadata": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
            },
        },
        {"type": "ai", "id": "c", "content": "z", "response_metadata": {"model_name": "m1"}},
    ]
    usage = convert(messages)[-1]
    assert usage["total_tokens"] == 10 + 2
    assert usage["completion_tokens"] == 3 + 1 + 2
    assert usage["model_names"] == ["m1", "m2"]


def test_reasoning_summaries_without_thinking_text():
    def ai(content, tool_calls=None):
        return {
            "type": "ai",
            "id": "a",
            "content": content,
            "tool_calls": tool_calls or [],
            "response_metadata": {"usage_metadata": {"output_token_details": {"reasoning": 5}}},
        }

    assert convert([ai("Oi")])[0]["reasoning"] == "Processando resposta para o usuário"
    assert convert([ai("")])[0]["reasoning"] == "Processando..."
    nameless = convert([ai("", [{"id": "c"}])])
    assert nameless[0]["reasoning"] == "Processando chamada para ferramenta unknown"
    assert [m["message_type"] for m in convert([ai("")])] == ["reasoning_message", "usage_statistics"]


def test_ai_with_tool_calls_and_text_emits_both_and_unknown_types_are_user_messages():
    out = convert(
        [
            {
                "type": "ai",
                "id": "a",
                "content": ["Vou ", {"type": "text", "text": "buscar"}],
                "tool_calls": [
                    {"id": "c1", "name": "s", "args": {}},
                    {"id": "c2", "name": "t", "args": {"x": 1}},
                ],
            },
            {"type": "system", "id": "s", "content": "sys"},
            {"id": "n", "content": "no type"},
        ]
    )
    assert [(m["message_type"], m.get("id")) for m in out] == [
        ("tool_call_message", "tool-c1"),
        ("tool_call_message", "tool-c2"),
        ("assistant_message", "a"),
        ("user_message", "s"),
        ("user_message", "n"),
        ("usage_statistics", None),
    ]
    assert out[2]["content"] == "Vou buscar"
    assert out[-1]["step_count"] == 3 and out[-1]["model_names"] == []


def test_missing_messages_produce_nothing_and_empty_list_only_usage():
    assert convert(None) == []
    [usage] = convert([])
    assert usage["step_count"] == 0 and usage["total_tokens"] == 0


def test_build_result_data_and_json_roundtrip():
    data = build_result_data(EXAMPLE, user_number="5521999990000", message_id="3f0c-uuid", now=NOW)  # type: ignore[arg-type]
    assert data["agent_id"] == "user_5521999990000"
    assert data["processed_at"] == "3f0c-uuid"
    assert data["status"] == "done"
    assert len(data["messages"]) == 7
    json.dumps(data)


def test_rfc3339():
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert (
        rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))))
        == "2026-01-02T03:04:05+05:30"
    )
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", rfc3339(datetime(2026, 1, 2, 3, 4, 5))
    )
