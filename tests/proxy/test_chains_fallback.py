"""Fallback chains against the fault-injecting upstream (tests/proxy/fault_upstream.py), as the official
openai and anthropic SDKs see them: before the first byte every fault falls through to the next target;
with no target left the client gets a typed error in its dialect; after the first byte the stream ends with
the dialect's error event (never a silent cut, never a half-formed tool call); the x-hub-* headers say who
served."""
from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

MSGS = [{"role": "user", "content": "hi"}]
# (fault target, status word in the attempts): every way a target can fail before its first byte
BEFORE_FIRST_BYTE = [
    ({"provider": "refused", "model": "ok"}, "connect_error"),
    ({"provider": "faulty", "model": "stall"}, "timeout"),
    ({"provider": "faulty", "model": "stall-headers"}, "timeout"),
    ({"provider": "faulty", "model": "500"}, "upstream_error"),
    ({"provider": "faulty", "model": "429"}, "rate_limited"),
    ({"provider": "faulty", "model": "529"}, "overloaded"),
    ({"provider": "faulty", "model": "401"}, "auth_failed"),
    ({"provider": "faulty", "model": "malformed"}, "malformed"),
    ({"provider": "faulty", "model": "drop:60"}, "upstream_error"),  # dropped inside the role chunk
    ({"provider": "faulty", "model": "context"}, "context_overflow"),
]
IDS = [t["model"] if t["provider"] == "faulty" else "refused" for t, _ in BEFORE_FIRST_BYTE]


def _hub_headers(headers) -> dict:
    out = {k: headers.get(k) for k in ("x-hub-served-by", "x-hub-fallback", "x-hub-upstream-ms", "x-hub-overhead-ms")}
    assert out["x-hub-upstream-ms"] is not None and float(out["x-hub-upstream-ms"]) >= 0
    assert out["x-hub-overhead-ms"] is not None and float(out["x-hub-overhead-ms"]) >= 0
    return out


@pytest.mark.parametrize("fault,status", BEFORE_FIRST_BYTE, ids=IDS)
def test_each_fault_falls_back_to_the_next_target(chains, oai, fault, status):
    chains.set("fb", [fault, {"provider": "faulty", "model": "ok-b"}])
    raw = oai.chat.completions.with_raw_response.create(model="fb", messages=MSGS)
    h = _hub_headers(raw.headers)
    assert h["x-hub-served-by"] == "provider:faulty/ok-b" and h["x-hub-fallback"] == "true"
    c = raw.parse()
    assert c.choices[0].message.content == "from ok-b: hi" and c.model == "fb"

    raw = oai.chat.completions.with_raw_response.create(model="fb", messages=MSGS, stream=True)
    assert _hub_headers(raw.headers)["x-hub-served-by"] == "provider:faulty/ok-b"
    text = "".join(ch.choices[0].delta.content or "" for ch in raw.parse() if ch.choices)
    assert text == "from ok-b: hi"


@pytest.mark.parametrize("fault,status", BEFORE_FIRST_BYTE, ids=IDS)
def test_the_attempts_are_logged(chains, oai, fault, status, monkeypatch):
    from apps.proxy import services

    logged = []
    monkeypatch.setattr(services, "request_log_enqueue", logged.append)
    chains.set("fb", [fault, {"provider": "faulty", "model": "ok-b"}])
    oai.chat.completions.create(model="fb", messages=MSGS)
    row = logged[-1]
    label = f"provider:{fault['provider']}/{fault['model']}"
    assert [(a["target"], a["status"]) for a in row["attempts"]] == [(label, status),
                                                                    ("provider:faulty/ok-b", "ok")]
    assert row["served_by"] == "provider:faulty/ok-b" and row["fallback"] is True and row["alias"] == "fb"
    assert row["upstream_ms"] >= 0 and row["overhead_ms"] >= 0 and row["status_code"] == 200


def test_typed_errors_when_no_target_is_left(chains, oai):
    cases = [
        ({"provider": "refused", "model": "ok"}, openai.InternalServerError, 502, "upstream_unavailable"),
        ({"provider": "faulty", "model": "stall"}, openai.InternalServerError, 504, "upstream_timeout"),
        ({"provider": "faulty", "model": "500"}, openai.InternalServerError, 502, "upstream_error"),
        ({"provider": "faulty", "model": "429"}, openai.RateLimitError, 429, "rate_limit_exceeded"),
        ({"provider": "faulty", "model": "malformed"}, openai.InternalServerError, 502, "upstream_error"),
        ({"provider": "faulty", "model": "context"}, openai.BadRequestError, 400, "context_length_exceeded"),
    ]
    for target, error, status, code in cases:
        chains.set("alone", [target])
        for stream in (False, True):
            with pytest.raises(error) as info:
                r = oai.chat.completions.create(model="alone", messages=MSGS, stream=stream)
                list(r) if stream else None
            e = info.value
            assert e.status_code == status, (target, stream)
            assert e.body["code"] == code, (target, e.body)
            assert e.response.headers["x-hub-served-by"] == "none"
            assert e.response.headers["x-hub-fallback"] == "false"
            if status == 429:
                assert e.response.headers["retry-after"] == "7"  # the provider's own


def test_two_failing_targets_answer_the_last_real_failure(chains, oai):
    chains.set("both", [{"provider": "faulty", "model": "500"}, {"provider": "faulty", "model": "429"}])
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="both", messages=MSGS)
    # a context overflow says less about the chain than a real failure behind it
    chains.set("both", [{"provider": "faulty", "model": "context"}, {"provider": "faulty", "model": "500"}])
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="both", messages=MSGS)


def test_a_client_error_does_not_fall_through(chains, oai, hub_server, api_key):
    chains.set("fb", [{"provider": "faulty", "model": "ok"}, {"provider": "faulty", "model": "ok-b"}])
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="fb", messages=MSGS, temperature=5)
    assert chains.upstream.hits["ok"] == chains.upstream.hits["ok-b"] == 0


def test_after_the_first_byte_the_stream_ends_with_an_error_event(chains, oai):
    """Dropped after real content: no fallback (the client already has part of an answer), no quiet end:
    the SDK raises."""
    chains.set("late", [{"provider": "faulty", "model": "drop:400"}, {"provider": "faulty", "model": "ok-b"}])
    raw = oai.chat.completions.with_raw_response.create(model="late", messages=MSGS, stream=True)
    assert raw.headers["x-hub-served-by"] == "provider:faulty/drop:400" and raw.headers["x-hub-fallback"] == "false"
    got = []
    with pytest.raises(openai.APIError) as info:
        for ch in raw.parse():
            got.append(ch)
    assert "dropped" in str(info.value.message) or "closed" in str(info.value.message)
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices).startswith("from")
    assert chains.upstream.hits["ok-b"] == 0


def test_a_tool_call_is_never_emitted_half_formed(chains, oai):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chains.set("tools", [{"provider": "faulty", "model": "tool-drop"}])
    got = []
    with pytest.raises(openai.APIError):
        for ch in oai.chat.completions.create(model="tools", messages=MSGS, tools=tools, stream=True):
            got.append(ch)
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Checking."
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in got)
    # the same call completed: one whole tool call
    chains.set("tools", [{"provider": "faulty", "model": "tool"}])
    chunks = list(oai.chat.completions.create(model="tools", messages=MSGS, tools=tools, stream=True))
    frags = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(frags) == 1 and frags[0].function.name == "get_weather"
    assert frags[0].function.arguments == '{"city": "Paris"}'


def test_anthropic_sdk_native_provider_and_fallback(chains, claude_sdk):
    chains.set("cl", [{"provider": "claude", "model": "500"}, {"provider": "claude", "model": "ok"}])
    raw = claude_sdk.messages.with_raw_response.create(model="cl", max_tokens=50, messages=MSGS)
    h = _hub_headers(raw.headers)
    assert h["x-hub-served-by"] == "provider:claude/ok" and h["x-hub-fallback"] == "true"
    msg = raw.parse()
    assert msg.content[0].text == "from ok: hi" and msg.model == "cl"
    sent = chains.upstream.seen[-1]
    assert sent["path"] == "/v1/messages" and sent["headers"]["x-api-key"] == "sk-ant-test"
    assert sent["headers"]["anthropic-version"] and sent["body"]["model"] == "ok"  # the client's version
    with claude_sdk.messages.stream(model="cl", max_tokens=50, messages=MSGS) as s:
        assert "".join(s.text_stream) == "from ok: hi"
        assert s.get_final_message().model == "cl"


def test_anthropic_native_body_keeps_thinking_and_cache_control(chains, hub_server, api_key):
    chains.set("cl", [{"provider": "claude", "model": "ok"}])
    body = {"model": "cl", "max_tokens": 50, "thinking": {"type": "enabled", "budget_tokens": 20},
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                           {"type": "text", "text": "yes"}]},
                         {"role": "user", "content": "again"}]}
    r = httpx.post(hub_server.url + "/v1/messages", json=body, timeout=20,
                   headers={"x-api-key": api_key, "anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert r.status_code == 200, r.text
    sent = chains.upstream.seen[-1]
    assert sent["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["body"]["messages"][1]["content"][0]["type"] == "thinking"
    assert sent["body"]["thinking"] == {"type": "enabled", "budget_tokens": 20}
    assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"


@pytest.mark.parametrize("fault", ["refused", "stall", "529", "malformed", "drop:40"])
def test_anthropic_sdk_native_faults_fall_back(chains, claude_sdk, fault):
    first = {"provider": "refused", "model": "ok"} if fault == "refused" else {"provider": "claude", "model": fault}
    chains.set("cl", [first, {"provider": "claude", "model": "ok"}])
    with claude_sdk.messages.stream(model="cl", max_tokens=50, messages=MSGS) as s:
        assert "".join(s.text_stream) == "from ok: hi"


def test_anthropic_sdk_sees_an_error_event_after_the_first_byte(chains, claude_sdk):
    chains.set("cl", [{"provider": "claude", "model": "drop:700"}, {"provider": "claude", "model": "ok"}])
    with pytest.raises(anthropic.APIError):
        with claude_sdk.messages.stream(model="cl", max_tokens=50, messages=MSGS) as s:
            for _ in s.text_stream:
                pass
    assert chains.upstream.hits["ok"] == 0


def test_anthropic_sdk_falls_back_across_dialects(chains, claude_sdk):
    """An Anthropic request on a chain of OpenAI-compatible targets: translated, with the same fallback."""
    chains.set("mixed", [{"provider": "faulty", "model": "500"}, {"provider": "faulty", "model": "ok-b"}])
    raw = claude_sdk.messages.with_raw_response.create(model="mixed", max_tokens=50, messages=MSGS)
    assert raw.headers["x-hub-served-by"] == "provider:faulty/ok-b"
    assert raw.parse().content[0].text == "from ok-b: hi"


def test_anthropic_context_error_when_no_target_fits(chains, claude_sdk):
    chains.set("small", [{"provider": "faulty", "model": "context"}])
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_sdk.messages.create(model="small", max_tokens=50, messages=MSGS)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert info.value.body["error"]["message"] == "prompt is too long: 150 tokens > 100 maximum"


def test_openai_sdk_on_an_anthropic_provider_is_translated(chains, oai):
    chains.set("oa", [{"provider": "claude", "model": "500"}, {"provider": "claude", "model": "ok"}])
    raw = oai.chat.completions.with_raw_response.create(model="oa", messages=MSGS, max_tokens=30)
    assert raw.headers["x-hub-served-by"] == "provider:claude/ok" and raw.headers["x-hub-fallback"] == "true"
    c = raw.parse()
    assert c.choices[0].message.content == "from ok: hi" and c.model == "oa"
    assert c.usage.prompt_tokens == 5 and c.usage.completion_tokens == 3
    sent = chains.upstream.seen[-1]
    assert sent["path"] == "/v1/messages" and sent["body"]["max_tokens"] == 30
    assert sent["headers"]["x-api-key"] == "sk-ant-test" and "authorization" not in sent["headers"]
    chunks = list(oai.chat.completions.create(model="oa", messages=MSGS, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "from ok: hi"
    assert chunks[-1].usage.completion_tokens == 3


def test_openai_sdk_on_an_anthropic_provider_after_the_first_byte(chains, oai):
    chains.set("oa", [{"provider": "claude", "model": "drop:700"}, {"provider": "claude", "model": "ok"}])
    with pytest.raises(openai.APIError):
        list(oai.chat.completions.create(model="oa", messages=MSGS, stream=True))
    assert chains.upstream.hits["ok"] == 0


def test_a_feature_the_anthropic_target_lacks_falls_through(chains, oai):
    chains.set("oa", [{"provider": "claude", "model": "ok"}, {"provider": "faulty", "model": "ok-b"}])
    c = oai.chat.completions.create(model="oa", messages=MSGS, response_format={"type": "json_object"})
    assert c.choices[0].message.content == "from ok-b: hi"
