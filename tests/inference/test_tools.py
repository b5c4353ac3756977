"""Tools on the local inference server: the prompt layout (shared with training), parsing emitted
`<tool_call>` blocks into OpenAI tool_calls (streaming framing included), and tool_choice."""
from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.inference.conftest import TOOLS, parse_sse, write_manifest
from workers.engine.chat_format import render_chat, template_caps, tools_system_text
from workers.inference.tools import ToolCallParser, split_calls

CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</tool_call>'
USER = [{"role": "user", "content": "Weather in Paris?"}]


def _events(deltas):
    p = ToolCallParser()
    out = []
    for d in deltas:
        out += p.feed(d)
    return out + p.finish()


# --- the parser --------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_parser_yields_text_then_one_whole_call_however_the_deltas_split(step):
    text = "Let me check." + "\n" + CALL
    events = _events([text[i:i + step] for i in range(0, len(text), step)])
    assert "".join(v for k, v in events if k == "text") == "Let me check.\n"
    calls = [v for k, v in events if k == "call"]
    assert len(calls) == 1
    call = calls[0]
    assert call["id"].startswith("call_") and len(call["id"]) > 10 and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}
    assert not any(k == "text" and "<tool" in v for k, v in events)  # no piece of the tag leaks as text


def test_parser_keeps_malformed_and_unfinished_blocks_as_text():
    bad = '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>'
    content, calls = split_calls("a " + bad + " b")
    assert calls == [] and content == "a " + bad + " b"
    content, calls = split_calls('<tool_call>{"arguments": {}}</tool_call>')  # no name
    assert calls == [] and "<tool_call>" in content
    content, calls = split_calls('<tool_call>{"name": "x", "arguments": [1]}</tool_call>')  # args not an object
    assert calls == []
    content, calls = split_calls('ok <tool_call>{"name": "get_weather", "argum')  # cut off
    assert calls == [] and content == 'ok <tool_call>{"name": "get_weather", "argum'
    content, calls = split_calls("a < b <tool_")  # a partial tag at the end is text
    assert calls == [] and content == "a < b <tool_"


def test_parser_reads_several_calls_string_arguments_and_drops_whitespace_between():
    second = '<tool_call>\n{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}\n</tool_call>'
    content, calls = split_calls(CALL + "\n" + second + "\n")
    assert content == ""
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"tz": "UTC"}
    assert len({c["id"] for c in calls}) == 2


# --- the prompt layout (shared with training) ---------------------------------------------------
def test_template_without_tools_gets_the_hermes_layout(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert template_caps(tok) == (False, False)  # ChatML like SmolLM2's: ignores tools and tool_calls
    history = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "developer", "content": "Be brief."}]
    text = render_chat(tok, history, TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n" + tools_system_text(TOOLS) + "<|im_end|>")
    assert '"name": "get_weather"' in text and '"name": "get_time"' in text
    assert "<|im_start|>assistant\n" + CALL + "<|im_end|>" in text
    assert "<|im_start|>tool\n<tool_response>\nsunny\n</tool_response><|im_end|>" in text
    assert "<|im_start|>system\nBe brief.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    # an existing system prompt keeps its text, the tool block follows it
    text = render_chat(tok, [{"role": "system", "content": "You are terse."}] + USER, TOOLS,
                       add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are terse.\n\n# Tools\n")


def test_training_and_serving_share_the_layout(tiny_model_dir, tmp_path):
    """What training labels for a tool-calling turn is exactly what the server's parser reads back, and
    the server's prompt is the prefix training used."""
    from transformers import AutoTokenizer

    from workers.engine.data import assistant_spans
    from workers.inference import engine

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    conv = USER + [{"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}]
    full, spans = assistant_spans(tok, conv, TOOLS)
    prompt = render_chat(tok, USER, TOOLS, add_generation_prompt=True)
    assert full.startswith(prompt) and spans[0][0] == len(prompt)
    target = full[spans[0][0]:spans[0][1]].replace(tok.eos_token, "")
    content, calls = split_calls(target)
    assert content.strip() == "Let me check."
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris", "days": 2}

    write_manifest(tmp_path, 1, base_model_path=str(tiny_model_dir))
    loaded = engine.ModelStore(tmp_path).get("mv-1")
    assert engine.chat_prompt_ids(loaded, USER, TOOLS) == tok(prompt, add_special_tokens=False)["input_ids"]


def test_dataset_token_counts_follow_the_training_layout(tool_model_dir):
    """The datasets app counts a tool example's tokens as training lays it out (tool block included)."""
    from transformers import AutoTokenizer

    from apps.datasets.formats.base import make_example
    from apps.datasets.validation.tokens import TokenCounter
    from workers.engine.data import encode_example

    conv = USER + [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "12:00"}, {"role": "assistant", "content": "Noon."}]
    ex = make_example(conv, tools=TOOLS)
    counter = TokenCounter(tool_model_dir, context_length=2048)
    trained = len(encode_example(AutoTokenizer.from_pretrained(tool_model_dir), conv, TOOLS, max_len=4096).input_ids)
    assert counter.count([ex])[0][0] == counter.count_exact(ex) == trained


def test_template_that_knows_tools_renders_them_itself(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = (
        "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}<|im_end|>\n"
        "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    assert template_caps(tok) == (True, True)
    history = USER + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]}]
    text = render_chat(tok, history, TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nTOOLS: get_weather get_time<|im_end|>")
    assert 'CALL get_time {"tz": "UTC"}' in text  # arguments handed to the template as an object
    assert "# Tools" not in text and "<tool_call>" not in text


def test_smollm2_template_ignores_tools():
    """The default base model's template has no tool support: the hub's layout applies to it."""
    import os
    from pathlib import Path

    from transformers import AutoTokenizer

    from workers.engine import base_models

    folder = Path(os.environ.get("HUB_MODEL_CACHE") or Path("~/.cache/training-hub/models").expanduser()) \
        / base_models.DEFAULT_BASE_MODEL_ID
    if not base_models.is_prepared(folder):
        pytest.skip(f"SmolLM2 is not prepared at {folder} (make setup)")
    tok = AutoTokenizer.from_pretrained(folder)
    assert template_caps(tok) == (False, False)
    assert "<tools>" in render_chat(tok, USER, TOOLS, add_generation_prompt=True)


# --- the server, with scripted generation: parsing and stream framing ----------------------------
def _chat(client, **extra):
    body = {"model": "mv-1", "messages": USER, "tools": TOOLS, "max_tokens": 50, "temperature": 0, **extra}
    return client.post("/v1/chat/completions", json=body)


def test_non_streamed_tool_call(tool_client, scripted):
    scripted(["Let me check.\n", CALL[:20], CALL[20:]])
    r = _chat(tool_client)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "Let me check.\n"
    (call,) = msg["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "days": 2})}

    scripted([CALL, "\n", CALL.replace("Paris", "Rome")])
    msg = _chat(tool_client).json()["choices"][0]["message"]
    assert msg["content"] is None and len(msg["tool_calls"]) == 2


def test_streamed_tool_call_framing(tool_client, scripted):
    pieces = ["Let me", " check.", "\n<tool", "_call>", CALL[11:40], CALL[40:], "\n", CALL.replace("Paris", "Rome")]
    scripted(pieces)
    r = _chat(tool_client, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200
    events = parse_sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] for c in chunks[1:]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == "Let me check.\n"
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert [c["index"] for c in calls] == [0, 1]
    for c in calls:  # each call arrives whole, in one fragment: id, type, name, complete JSON arguments
        assert c["id"].startswith("call_") and c["type"] == "function"
        assert c["function"]["name"] == "get_weather"
        assert json.loads(c["function"]["arguments"])["days"] == 2
    first_call = next(i for i, d in enumerate(deltas) if d.get("tool_calls"))
    assert all("tool_calls" not in d for d in deltas[:first_call]) and "content" in deltas[0]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"] and chunks[-1]["choices"][0]["delta"] == {}
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == len(pieces)


def test_malformed_call_streams_as_text(tool_client, scripted):
    bad = '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa</tool_call>'
    scripted(["Sure: ", bad[:15], bad[15:], " done"])
    events = parse_sse(_chat(tool_client, stream=True).text)
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Sure: " + bad + " done"
    assert not any(d.get("tool_calls") for d in deltas)
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"][0]["finish_reason"]] == ["stop"]


def test_text_before_a_call_streams_before_the_call_is_complete(tool_root, scripted):
    """Real HTTP: the generation waits half-way through the call until the client has received the text
    that came before it — and no fragment of the call has reached the client by then."""
    from tests.proxy.fake_upstream import ServerThread
    from workers.inference.server import create_app

    seen_text = threading.Event()
    waited = {}

    def wait_for_client():
        waited["ok"] = seen_text.wait(20)

    scripted(["Checking the weather.", CALL[:30], CALL[30:]], pause=(2, wait_for_client))
    with ServerThread(create_app(artifact_root=tool_root)) as srv:
        body = {"model": "mv-1", "messages": USER, "tools": TOOLS, "stream": True}
        got = []
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"]
                got.append(delta)
                if delta.get("content") == "Checking the weather.":
                    assert not any(d.get("tool_calls") for d in got)
                    seen_text.set()
    assert waited.get("ok") is True
    assert sum(len(d.get("tool_calls") or []) for d in got) == 1


def test_tools_without_parsing_when_not_asked(tool_client, scripted):
    """No tools in the request: a `<tool_call>` block is just text."""
    scripted([CALL])
    r = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER, "max_tokens": 5})
    msg = r.json()["choices"][0]["message"]
    assert msg["content"] == CALL and "tool_calls" not in msg


# --- tool_choice --------------------------------------------------------------------------------
def test_tool_choice_none_sends_no_tools_and_parses_nothing(tool_client, scripted):
    scripted([CALL])
    plain = tool_client.post("/v1/chat/completions", json={"model": "mv-1", "messages": USER}).json()
    r = _chat(tool_client, tool_choice="none").json()
    assert r["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]
    assert r["choices"][0]["message"]["content"] == CALL and r["choices"][0]["finish_reason"] == "stop"
    auto = _chat(tool_client).json()
    assert auto["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 50  # the tool block is in the prompt


def test_tokenize_counts_tools(tool_client):
    plain = tool_client.post("/tokenize", json={"model": "mv-1", "messages": USER}).json()["count"]
    with_tools = tool_client.post("/tokenize", json={"model": "mv-1", "messages": USER, "tools": TOOLS}).json()["count"]
    assert with_tools > plain + 50


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_required_forces_valid_calls(tool_client, stream):
    """A random tiny model still answers with well-formed calls whose arguments fit the schemas:
    constrained decoding writes them."""
    import jsonschema_rs

    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for seed in range(3):
        r = _chat(tool_client, tool_choice="required", temperature=1.0, seed=seed, max_tokens=120, stream=stream,
                  parallel_tool_calls=False)  # one call: a random model may otherwise call on and on
        assert r.status_code == 200, r.text
        if stream:
            events = parse_sse(r.text)
            calls = [tc for e in events[:-1] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
            finish = [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"][0]["finish_reason"]][0]
        else:
            choice = r.json()["choices"][0]
            calls, finish = choice["message"].get("tool_calls") or [], choice["finish_reason"]
        assert finish == "tool_calls" and len(calls) == 1
        for c in calls:
            jsonschema_rs.validate(schemas[c["function"]["name"]], json.loads(c["function"]["arguments"]))


def test_named_tool_choice_calls_that_tool(tool_client):
    import jsonschema_rs

    r = _chat(tool_client, tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=60)
    choice = r.json()["choices"][0]
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time" and choice["finish_reason"] == "tool_calls"
    jsonschema_rs.validate(TOOLS[1]["function"]["parameters"], json.loads(call["function"]["arguments"]))


@pytest.mark.parametrize("extra, param", [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"tools": [], "tool_choice": "required"}, "tool_choice"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"tool_choice": "required", "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}}}]},
     "tools"),
])
def test_bad_tool_requests_are_400(tool_client, extra, param):
    r = _chat(tool_client, **extra)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"


# --- a model trained by the hub's layout emits calls the server returns --------------------------
@pytest.fixture(scope="module")
def trained_tool_model(tmp_path_factory):
    """A nano model trained (a few seconds, on one example, with the hub's own encode_example) to
    answer the weather question with text and a call."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.engine.data import encode_example
    from workers.engine.tiny import build_model

    out = tmp_path_factory.mktemp("tiny-trained-tools")
    build_model(out, size="nano", texts=[tools_system_text(TOOLS), "Weather in Paris? Let me check.", CALL] * 3,
                vocab_size=500, context_length=1024, seed=0)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    conv = USER + [{"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather",
                                                     "arguments": '{"city": "Paris", "days": 2}'}}]}]
    enc = encode_example(tok, conv, TOOLS, max_len=1024)
    ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(200):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.01:
            break
    model.eval()
    model.save_pretrained(out)
    return out


def test_trained_model_tool_call_comes_back_as_tool_calls(tmp_path, trained_tool_model):
    from starlette.testclient import TestClient

    from workers.inference.server import create_app

    write_manifest(tmp_path, 1, kind="full", model_path=str(trained_tool_model))
    with TestClient(create_app(artifact_root=tmp_path)) as client:
        choice = _chat(client, max_tokens=80).json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        assert choice["message"]["content"].strip() == "Let me check."
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}
        events = parse_sse(_chat(client, max_tokens=80, stream=True).text)
        deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
        assert "".join(d.get("content") or "" for d in deltas) == choice["message"]["content"]
        (scall,) = [tc for d in deltas for tc in d.get("tool_calls") or []]
        assert scall["function"] == call["function"]
