"""response_format on the local inference server: a random tiny model can only answer with JSON
that parses and fits the schema because constrained decoding (llguidance) writes it."""
from __future__ import annotations

import json

import jsonschema_rs
import pytest

from tests.inference.conftest import TOOLS, parse_sse

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 12},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["red", "green"]}, "maxItems": 3},
        "level": {"type": "integer", "minimum": -5, "maximum": 5},
        "size": {"anyOf": [{"const": "S"}, {"const": "M"}, {"type": "null"}]},
    },
    "required": ["answer", "score", "ok", "tags", "level", "size"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "Rate this."}]


def _fmt(schema=SCHEMA):
    return {"type": "json_schema", "json_schema": {"name": "rating", "schema": schema, "strict": True}}


def _content(r, stream):
    assert r.status_code == 200, r.text
    if not stream:
        choice = r.json()["choices"][0]
        return choice["message"]["content"], choice["finish_reason"]
    events = parse_sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return text, [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]][0]


def test_unconstrained_random_model_does_not_write_json(tool_client):
    """The control: without response_format the same model's answers are not JSON."""
    for seed in range(3):
        r = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER, "max_tokens": 40,
                                                            "temperature": 1.0, "seed": seed})
        text = r.json()["choices"][0]["message"]["content"]
        with pytest.raises(ValueError):
            json.loads(text)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_json_schema_output_parses_and_validates(tool_client, stream, seed):
    body = {"model": "mv-1", "messages": USER, "response_format": _fmt(), "max_tokens": 200, "stream": stream}
    body.update({"temperature": 0} if seed is None else {"temperature": 1.0, "seed": seed})
    text, finish = _content(tool_client.post("/v1/chat/completions", json=body), stream)
    assert finish == "stop"
    jsonschema_rs.validate(SCHEMA, json.loads(text))


def test_json_object_output_is_an_object(tool_client):
    """json_object bounds nothing but the shape, so a random model may ramble to max_tokens; every answer
    that finished is a JSON object, and some do finish."""
    finished = 0
    for seed in range(4):
        r = tool_client.post("/v1/chat/completions", json={
            "model": "mv-1", "messages": USER, "response_format": {"type": "json_object"}, "max_tokens": 120,
            "temperature": 1.0, "seed": seed})
        text, finish = _content(r, False)
        assert text.startswith("{")
        if finish == "stop":
            assert isinstance(json.loads(text), dict)
            finished += 1
    assert finished >= 1


def test_text_format_is_unconstrained(tool_client):
    r = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER, "max_tokens": 10,
                                                        "temperature": 0, "response_format": {"type": "text"}})
    plain = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER, "max_tokens": 10,
                                                            "temperature": 0})
    assert r.json()["choices"][0]["message"] == plain.json()["choices"][0]["message"]


def test_response_format_with_tools_answers_json_or_calls(tool_client):
    """tools on "auto" plus a schema: the answer is the JSON or tool calls, nothing else."""
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    kinds = set()
    for seed in range(3):
        r = tool_client.post("/v1/chat/completions", json={
            "model": "mv-1", "messages": USER, "tools": TOOLS, "response_format": _fmt(), "max_tokens": 200,
            "temperature": 1.0, "seed": seed, "parallel_tool_calls": False})
        choice = r.json()["choices"][0]
        if choice["finish_reason"] == "tool_calls":
            kinds.add("calls")
            for c in choice["message"]["tool_calls"]:
                jsonschema_rs.validate(schemas[c["function"]["name"]], json.loads(c["function"]["arguments"]))
        else:
            assert choice["finish_reason"] == "stop"
            kinds.add("json")
            jsonschema_rs.validate(SCHEMA, json.loads(choice["message"]["content"]))
    assert kinds  # (which of the two depends on the random model)


def test_legacy_completions_honour_response_format(tool_client):
    r = tool_client.post("/v1/completions", json={"model": "mv-1", "prompt": "JSON:", "max_tokens": 200,
                                                   "temperature": 0, "response_format": _fmt()})
    jsonschema_rs.validate(SCHEMA, json.loads(r.json()["choices"][0]["text"]))


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
    {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)y"}}},
    {"$ref": "https://example.com/remote.json"},
])
def test_unenforceable_schema_is_400_unsupported_value(tool_client, schema):
    r = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER,
                                                        "response_format": _fmt(schema)})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_value" and err["param"] == "response_format"
    assert err["type"] == "invalid_request_error" and "schema" in err["message"]


@pytest.mark.parametrize("rf", [
    "json", {"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": 3}},
])
def test_bad_response_format_shapes_are_400(tool_client, rf):
    r = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER, "response_format": rf})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
