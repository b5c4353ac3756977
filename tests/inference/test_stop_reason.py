"""Which stop sequence ended an answer: `choices[i].stop_reason` (vLLM's field) with finish_reason
"stop", streamed or not; the matched text is not part of the output."""
from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.inference.conftest import parse_sse, write_manifest
from workers.inference.server import create_app

MSGS = [{"role": "user", "content": "What is Python?"}]
# seeded sampling: the tiny model's greedy answer is a run of newlines, a seeded one varied text (the
# same with or without a stop string up to where it cuts)
SAMPLING = {"max_tokens": 24, "temperature": 1.0, "seed": 3}


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("art-stop")
    write_manifest(root, 1, base_model_path=str(tiny_model_dir))
    with TestClient(create_app(artifact_root=root)) as c:
        yield c


@pytest.fixture(scope="module")
def full_text(client):
    r = client.post("/v1/chat/completions", json={"model": "mv-1", "messages": MSGS, **SAMPLING})
    text = r.json()["choices"][0]["message"]["content"]
    if len(text) < 8:
        pytest.skip("the tiny model wrote too little text to pick stop strings from")
    return text


def _stream(client, body):
    events = parse_sse(client.post("/v1/chat/completions", json={**body, "stream": True}).text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    final = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert len(final) == 1
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks), final[0]


def test_stop_reason_names_the_stop_string_that_matched(client, full_text):
    stop = full_text[4:7]
    at = full_text.find(stop)
    body = {"model": "mv-1", "messages": MSGS, **SAMPLING, "stop": ["\u2603 never", stop]}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == stop
    assert choice["message"]["content"] == full_text[:at]
    text, final = _stream(client, body)
    assert text == full_text[:at]
    assert final["finish_reason"] == "stop" and final["stop_reason"] == stop and final["delta"] == {}


def test_the_earliest_match_wins(client, full_text):
    early = full_text[2:5]
    lates = [full_text[i:i + 3] for i in range(len(full_text) - 3, 2, -1)
             if full_text.find(full_text[i:i + 3]) > full_text.find(early) and early not in full_text[i:i + 3]]
    if not lates:
        pytest.skip("no distinct later stop string in this text")
    late = lates[0]
    body = {"model": "mv-1", "messages": MSGS, **SAMPLING, "stop": [late, early]}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["stop_reason"] == early
    assert _stream(client, body)[1]["stop_reason"] == early


def test_no_stop_string_no_stop_reason(client, full_text):
    body = {"model": "mv-1", "messages": MSGS, **SAMPLING, "stop": "\u2603 never"}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["stop_reason"] is None and choice["message"]["content"] == full_text
    assert _stream(client, body)[1]["stop_reason"] is None


def test_legacy_completions_report_stop_reason(client):
    base = {"model": "mv-1", "prompt": "def add", "max_tokens": 16, "temperature": 1.0, "seed": 3}
    full = client.post("/v1/completions", json=base).json()["choices"][0]["text"]
    if len(full) < 6:
        pytest.skip("the tiny model wrote too little text")
    stop = full[3:5]
    choice = client.post("/v1/completions", json={**base, "stop": stop}).json()["choices"][0]
    assert choice["stop_reason"] == stop and choice["finish_reason"] == "stop"
    assert choice["text"] == full[:full.find(stop)]
    events = parse_sse(client.post("/v1/completions", json={**base, "stop": stop, "stream": True}).text)
    finals = [e["choices"][0] for e in events[:-1] if e["choices"] and e["choices"][0]["finish_reason"]]
    assert [f["stop_reason"] for f in finals] == [stop]


def test_engine_reports_the_stop_string(client, full_text, tiny_model_dir, tmp_path):
    from workers.inference import engine

    write_manifest(tmp_path, 1, base_model_path=str(tiny_model_dir))
    loaded = engine.ModelStore(tmp_path).get("mv-1")
    ids = engine.chat_prompt_ids(loaded, MSGS)
    stop = full_text[5:8]
    res = engine.generate_all(loaded, ids, stop=[stop], **SAMPLING)
    assert (res.finish_reason, res.stop_reason) == ("stop", stop) and stop not in res.text
