"""Anthropic Messages on /v1 (as Claude Code uses it) and the request log written by the actor."""
from __future__ import annotations

import time

import anthropic
import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def claude(hub_server, api_key):
    with anthropic.Anthropic(base_url=hub_server.url, api_key=api_key, max_retries=0, timeout=20) as c:
        yield c


def test_messages_non_stream(claude, versions, wired):
    msg = claude.messages.create(model="production", max_tokens=50, system="be brief",
                                 messages=[{"role": "user", "content": [{"type": "text", "text": "hi you"}]}])
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hi you"
    assert msg.stop_reason == "end_turn" and msg.usage.input_tokens == 7 and msg.usage.output_tokens == 3
    sent = wired.seen[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 50 and sent["model"] == f"mv-{versions['local'].pk}"


def test_haiku_class_names_map_through_aliases(claude, versions, wired):
    claude.messages.create(model="claude-3-5-haiku-20241022", max_tokens=5,
                           messages=[{"role": "user", "content": "x"}])
    assert wired.seen[-1]["body"]["model"] == f"mv-{versions['local'].pk}"  # via alias `haiku`
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert wired.seen[-1]["body"]["model"] == f"mv-{versions['local'].pk}"  # falls back to `production`


def test_messages_stream_named_events(claude, versions):
    with claude.messages.stream(model="production", max_tokens=50,
                                messages=[{"role": "user", "content": "one two"}]) as stream:
        kinds = [ev.type for ev in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop" and "message_delta" in kinds
    assert kinds.count("content_block_start") == 1 and kinds.count("content_block_stop") == 1
    assert final.content[0].text == "echo: one two" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


def test_tool_use_round_trip(claude, versions, wired):
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    msg = claude.messages.create(model="production", max_tokens=50, tools=tools,
                                 messages=[{"role": "user", "content": "TOOL"}])
    assert msg.stop_reason == "tool_use"
    block = msg.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert wired.seen[-1]["body"]["tools"][0]["function"]["name"] == "get_weather"
    with claude.messages.stream(model="production", max_tokens=50, tools=tools,
                                messages=[{"role": "user", "content": "TOOL"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}
    # a tool result goes back as an OpenAI tool message
    claude.messages.create(model="production", max_tokens=5, tools=tools, messages=[
        {"role": "user", "content": "TOOL"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}])
    sent = wired.seen[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "toolu_1"
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}


def test_anthropic_errors(claude, hub_server, versions):
    with pytest.raises(anthropic.NotFoundError) as ei:
        claude.messages.create(model="gpt-nothing", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ei.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(hub_server.url + "/v1/messages", json={"model": "production", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="production", max_tokens=0, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.APIError):
        with claude.messages.stream(model="production", max_tokens=5,
                                    messages=[{"role": "user", "content": "FAIL_MID"}]) as stream:
            for _ in stream:
                pass


def test_count_tokens(claude, versions):
    r = claude.messages.count_tokens(model="production", messages=[{"role": "user", "content": "hello"}],
                                     system="sys")
    assert r.input_tokens == 10  # the fake /tokenize: 5 per message (system + user)
    r = claude.messages.count_tokens(model="cloud", messages=[{"role": "user", "content": "hello"}])
    assert r.input_tokens >= 1  # remote: an estimate


def _drain_logs(timeout=5.0):
    import dramatiq

    from workers import proxy  # noqa: F401 - this test plays the worker process, which imports the actors

    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        deadline = time.time() + timeout
        from apps.proxy.models import RequestLog

        last, stable = -1, 0
        while time.time() < deadline:  # sends are queued from the server's executor: wait for them to settle
            broker.join("default", timeout=int(timeout * 1000))
            n = RequestLog.objects.count()
            stable = stable + 1 if n == last else 0
            last = n
            if stable >= 3:
                break
            time.sleep(0.05)
    finally:
        worker.stop()


def test_requests_are_logged_by_the_actor(oai, versions, member):
    import dramatiq

    from apps.proxy.models import RequestLog

    dramatiq.get_broker().flush_all()
    oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "log me"}],
                                extra_headers={"Idempotency-Key": "idem-1"})
    list(oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "stream me"}],
                                     stream=True))
    with pytest.raises(Exception):
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert RequestLog.objects.count() == 0  # nothing written on the request path
    _drain_logs()
    rows = {r.model_requested + ("/s" if r.stream else ""): r for r in RequestLog.objects.all()}
    assert set(rows) == {"production", "production/s", "nope"}
    plain = rows["production"]
    assert plain.status_code == 200 and plain.user_id == member.pk and plain.idempotency_key == "idem-1"
    assert plain.prompt_tokens == 7 and plain.completion_tokens == 3 and plain.latency_ms > 0
    assert plain.model_version_id == versions["local"].pk and plain.model_served == f"mv-{versions['local'].pk}"
    assert plain.request["messages"][0]["content"] == "log me"
    assert plain.response["choices"][0]["message"]["content"] == "echo: log me"
    streamed = rows["production/s"]
    assert streamed.ttft_ms is not None and streamed.completion_tokens == 3
    assert streamed.response["content"] == "echo: stream me"
    assert rows["nope"].status_code == 404 and "does not exist" in rows["nope"].error


def test_idempotency_key_deduplicates(versions, member):
    from apps.proxy.models import RequestLog
    from apps.proxy.services import request_log_record

    base = {"user_id": member.pk, "endpoint": "chat.completions", "model_requested": "production",
            "status_code": 502, "started_at": time.time(), "idempotency_key": "k1"}
    request_log_record(payload={**base, "request_id": "a"})
    request_log_record(payload={**base, "request_id": "b", "status_code": 200})  # the SDK's retry
    request_log_record(payload={**base, "request_id": "b", "status_code": 200})  # a redelivered message
    assert RequestLog.objects.count() == 1
    assert RequestLog.objects.get().status_code == 200
    request_log_record(payload={**base, "request_id": "c", "idempotency_key": ""})
    assert RequestLog.objects.count() == 2
