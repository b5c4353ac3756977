"""The inference server over llama.cpp: versions with a GGUF are served by a llama-server child (here the stand-in
tests/fakes/fake_llama_server.py, found through HUB_LLAMA_CPP_DIR as a real build would be), the prompt rendered by
the hub and sent as token ids, answers translated back (stop strings, length, tool calls, JSON schemas); everything
else — and everything llama.cpp cannot load — falls back to transformers with a notice saying why. The last test
runs the real llama.cpp when this machine has built it."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.inference.conftest import TOOLS, parse_sse, write_manifest

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_server.py"


@pytest.fixture
def fake_llama(tmp_path, monkeypatch):
    folder = tmp_path / "llama"
    folder.mkdir()
    exe = folder / "llama-server"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("HUB_LLAMA_CPP_DIR", str(folder))
    log = tmp_path / "llama-requests.jsonl"
    monkeypatch.setenv("FAKE_LLAMA_LOG", str(log))
    return log


@pytest.fixture
def llama_root(tmp_path, tool_model_dir):
    root = tmp_path / "art"
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF-fake")
    write_manifest(root, 1, kind="full", model_path=str(tool_model_dir), gguf_path=str(gguf))
    write_manifest(root, 2, kind="full", model_path=str(tool_model_dir))
    return root


def client_for(root: Path, tmp_path: Path, **kw):
    from starlette.testclient import TestClient

    from workers.inference.server import create_app

    return TestClient(create_app(artifact_root=root, model_cache=tmp_path / "cache", **kw))


def chat(c, model="mv-1", **body):
    body = {"model": model, "messages": [{"role": "user", "content": "Hi there"}], "temperature": 0, **body}
    return c.post("/v1/chat/completions", json=body)


def sent(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_models_say_which_engine_serves_each_version_and_why(fake_llama, llama_root, tmp_path):
    with client_for(llama_root, tmp_path) as c:
        data = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
    assert data["mv-1"]["engine"] == "llama.cpp" and data["mv-1"]["notice"] is None
    assert data["mv-2"]["engine"] == "transformers"
    assert "No GGUF export" in data["mv-2"]["notice"]


def test_a_chat_goes_to_llama_server_as_the_hubs_own_prompt_tokens(fake_llama, llama_root, tmp_path, tool_model_dir):
    from transformers import AutoTokenizer

    from workers.engine.chat_format import render_chat

    with client_for(llama_root, tmp_path) as c:
        r = chat(c, max_tokens=50)
    assert r.status_code == 200, r.text
    assert r.headers["x-hub-engine"] == "llama.cpp"
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Hello from llama"
    assert body["choices"][0]["finish_reason"] == "stop"
    tok = AutoTokenizer.from_pretrained(tool_model_dir)
    expected = tok(render_chat(tok, [{"role": "user", "content": "Hi there"}], None, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"]
    req = sent(fake_llama)[-1]
    assert req["prompt"] == list(expected)  # the exact layout the hub trains with, not llama.cpp's template
    assert req["temperature"] == 0 and req["top_k"] == 1 and req["n_predict"] == 50 and req["stream"] is True
    assert body["usage"] == {"prompt_tokens": len(expected), "completion_tokens": 3,
                             "total_tokens": len(expected) + 3}


def test_sampling_is_openais_not_llama_cpps_defaults(fake_llama, llama_root, tmp_path):
    with client_for(llama_root, tmp_path) as c:
        assert chat(c, temperature=0.7, top_p=0.9, seed=7).status_code == 200
    req = sent(fake_llama)[-1]
    assert (req["temperature"], req["top_p"], req["seed"]) == (0.7, 0.9, 7)
    assert req["top_k"] == 0 and req["min_p"] == 0.0 and req["repeat_penalty"] == 1.0  # llama.cpp's 40 / 0.05 off


def test_stream_stop_string_and_length(fake_llama, llama_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_REPLY", "one two STOP three four")
    with client_for(llama_root, tmp_path) as c:
        r = chat(c, stream=True, stop=["STOP"], stream_options={"include_usage": True})
        events = parse_sse(r.text)
        short = chat(c, max_tokens=2).json()
    assert r.headers["x-hub-engine"] == "llama.cpp"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e != "[DONE]" and e["choices"])
    assert text == "one two "
    final = [e for e in events if e != "[DONE]" and e["choices"] and e["choices"][0]["finish_reason"]][0]
    assert final["choices"][0]["finish_reason"] == "stop" and final["choices"][0]["stop_reason"] == "STOP"
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 2
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["choices"][0]["message"]["content"] == "one two "


def test_tool_calls_come_back_parsed(fake_llama, llama_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_REPLY", 'Checking. <tool_call>{"name": "get_weather", "arguments": '
                                           '{"city": "Paris", "days": 2}}</tool_call>')
    with client_for(llama_root, tmp_path) as c:
        r = chat(c, tools=TOOLS)
    msg = r.json()["choices"][0]
    assert r.headers["x-hub-engine"] == "llama.cpp"
    assert msg["finish_reason"] == "tool_calls"
    call = msg["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}


def test_json_schema_is_enforced_by_llama_cpp_and_forced_tools_by_transformers(fake_llama, llama_root, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_REPLY", '{"answer": "yes"}')
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    with client_for(llama_root, tmp_path) as c:
        r = chat(c, response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
        assert r.status_code == 200 and r.headers["x-hub-engine"] == "llama.cpp"
        assert sent(fake_llama)[-1]["json_schema"] == schema
        forced = chat(c, tools=TOOLS, tool_choice="required", max_tokens=60)
    assert forced.status_code == 200, forced.text
    assert forced.headers["x-hub-engine"] == "transformers"  # grammar-forced calls need the hub's own decoder
    assert forced.json()["choices"][0]["message"]["tool_calls"]


def test_a_gguf_llama_cpp_cannot_load_falls_back_to_transformers_with_the_loaders_message(
        fake_llama, llama_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_FAIL", "load")
    with client_for(llama_root, tmp_path) as c:
        r = chat(c, max_tokens=3)
        assert r.status_code == 200 and r.headers["x-hub-engine"] == "transformers"
        notice = {m["id"]: m for m in c.get("/v1/models").json()["data"]}["mv-1"]["notice"]
    assert "invalid magic characters" in notice and "served by transformers" in notice


def test_without_llama_cpp_versions_are_served_by_transformers_and_say_so(llama_root, tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_LLAMA_CPP_DIR", raising=False)
    with client_for(llama_root, tmp_path) as c:  # an empty model cache: nothing built
        m = {m["id"]: m for m in c.get("/v1/models").json()["data"]}["mv-1"]
        r = chat(c, max_tokens=3)
    assert m["engine"] == "transformers" and "llama.cpp is not built on this machine" in m["notice"]
    assert r.status_code == 200 and r.headers["x-hub-engine"] == "transformers"


def test_engine_transformers_turns_llama_cpp_off(fake_llama, llama_root, tmp_path):
    with client_for(llama_root, tmp_path, engine_mode="transformers") as c:
        r = chat(c, max_tokens=3)
    assert r.headers["x-hub-engine"] == "transformers" and not fake_llama.exists()


def test_the_llama_server_child_ends_with_the_app(fake_llama, llama_root, tmp_path):
    with client_for(llama_root, tmp_path) as c:
        chat(c)
        pool = c.app.state.llama
        server = pool._loaded["mv-1"].server
        assert server.alive()
    assert not server.alive()


# --- the real llama.cpp ------------------------------------------------------------------------------------------
def _real_toolchain():
    from workers.engine.llamacpp import toolchain

    cache = Path(os.environ.get("HUB_MODEL_CACHE") or Path("~/.cache/training-hub/models").expanduser())
    saved = os.environ.pop("HUB_LLAMA_CPP_DIR", None)
    try:
        return toolchain.find(model_cache=cache), cache
    finally:
        if saved is not None:
            os.environ["HUB_LLAMA_CPP_DIR"] = saved


def test_real_llama_cpp_answers_like_transformers_on_an_f16_gguf(tmp_path, monkeypatch):
    tc, cache = _real_toolchain()
    base = cache / "smollm2-135m-instruct"
    if tc is None or not (base / "config.json").is_file():
        pytest.skip("llama.cpp is not built on this machine (bench/bench_inference.py or an export builds it) "
                    "or the base model is not prepared")
    from workers.engine.llamacpp import convert

    monkeypatch.delenv("HUB_LLAMA_CPP_DIR", raising=False)
    gguf = tmp_path / "smol-f16.gguf"
    convert.hf_to_gguf(tc, base, gguf, quantization="f16")
    root = tmp_path / "art"
    write_manifest(root, 1, kind="full", model_path=str(base), gguf_path=str(gguf))
    write_manifest(root, 2, kind="full", model_path=str(base))
    from starlette.testclient import TestClient

    from workers.inference.server import create_app

    messages = [{"role": "user", "content": "Write a haiku about the sea."}]
    with TestClient(create_app(artifact_root=root, model_cache=cache, llama_ctx=1024)) as c:
        a = c.post("/v1/chat/completions", json={"model": "mv-1", "messages": messages, "temperature": 0,
                                                 "max_tokens": 24})
        b = c.post("/v1/chat/completions", json={"model": "mv-2", "messages": messages, "temperature": 0,
                                                 "max_tokens": 24})
    assert a.headers["x-hub-engine"] == "llama.cpp" and b.headers["x-hub-engine"] == "transformers"
    answer = a.json()["choices"][0]["message"]["content"]
    assert answer and answer == b.json()["choices"][0]["message"]["content"]
    assert a.json()["usage"] == b.json()["usage"]
    # the same file in a stock llama-server, with its own chat template, answers the same
    import httpx

    from workers.engine.llamacpp.runner import LlamaServer

    with LlamaServer(tc, gguf, ctx=1024, parallel=1) as stock:
        r = httpx.post(stock.url + "/v1/chat/completions", json={"messages": messages, "temperature": 0,
                                                                "max_tokens": 24}, timeout=60)
    assert r.json()["choices"][0]["message"]["content"] == answer
