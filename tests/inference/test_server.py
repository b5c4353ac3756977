"""The inference server against a tiny model: manifests, chat/completions, streaming, LoRA adapters."""
from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.inference.conftest import parse_sse as _sse, write_manifest as _manifest
from workers.inference.server import create_app


@pytest.fixture
def root(tmp_path, tiny_model_dir):
    root = tmp_path / "art"
    _manifest(root, 1, kind="adapter", base_model_path=str(tiny_model_dir))
    _manifest(root, 2, kind="full", model_path=str(tiny_model_dir))
    _manifest(root, 3, kind="remote", remote_model_id="together/x")
    return root


@pytest.fixture
def client(root):
    with TestClient(create_app(artifact_root=root, max_loaded=1)) as c:
        yield c


def test_models_lists_local_versions_only(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["mv-1", "mv-2"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])
    assert client.get("/health").json()["status"] == "ok"


def test_chat_completion_non_stream(client):
    r = client.post("/v1/chat/completions", json={
        "model": "mv-1", "messages": [{"role": "user", "content": "What is Python?"}],
        "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "mv-1"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    u = body["usage"]
    assert u["prompt_tokens"] > 3 and 1 <= u["completion_tokens"] <= 5
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_greedy_is_deterministic_and_seed_reproducible(client):
    req = {"model": "mv-2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    a = client.post("/v1/chat/completions", json={**req, "temperature": 0}).json()
    b = client.post("/v1/chat/completions", json={**req, "temperature": 0}).json()
    assert a["choices"][0]["message"] == b["choices"][0]["message"]
    s1 = client.post("/v1/chat/completions", json={**req, "temperature": 1.5, "seed": 7}).json()
    s2 = client.post("/v1/chat/completions", json={**req, "temperature": 1.5, "seed": 7}).json()
    assert s1["choices"][0]["message"] == s2["choices"][0]["message"]


def test_stream_chunks_follow_the_contract(client):
    r = client.post("/v1/chat/completions", json={
        "model": "mv-1", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6,
        "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert all("usage" in c for c in chunks)


def test_legacy_completions(client):
    r = client.post("/v1/completions", json={"model": "mv-2", "prompt": "def add", "max_tokens": 4})
    body = r.json()
    assert body["object"] == "text_completion"
    assert isinstance(body["choices"][0]["text"], str) and body["usage"]["completion_tokens"] <= 4


def test_errors_are_openai_shaped(client):
    r = client.post("/v1/chat/completions", json={"model": "mv-99", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = client.post("/v1/chat/completions", json={"model": "mv-3", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404  # remote versions are not served here
    r = client.post("/v1/chat/completions", json={"model": "mv-1", "messages": []})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = client.post("/v1/chat/completions", json={"model": "mv-1", "messages": [{"role": "user", "content": "x"}],
                                                  "temperature": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    r = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    long = "word " * 400
    r = client.post("/v1/chat/completions", json={"model": "mv-1", "messages": [{"role": "user", "content": long}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_lru_cap_evicts(client):
    for name in ("mv-1", "mv-2"):
        client.post("/v1/completions", json={"model": name, "prompt": "a", "max_tokens": 1})
    assert client.get("/health").json()["loaded"] == ["mv-2"]


def test_stop_strings_are_not_emitted(root, tiny_model_dir):
    from workers.inference import engine

    store = engine.ModelStore(root)
    loaded = store.get("mv-1")
    ids = engine.text_prompt_ids(loaded, "def add")
    full = engine.generate_all(loaded, ids, max_tokens=12, temperature=0)
    if len(full.text) < 3:
        pytest.skip("tiny model produced too little text to pick a stop string")
    stop = full.text[2:4]
    cut = engine.generate_all(loaded, ids, max_tokens=12, temperature=0, stop=[stop])
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and full.text.startswith(cut.text)


def test_an_end_of_sequence_token_is_counted_as_generated(root, tiny_model_dir):
    """A model whose first sampled token ends the answer still generated a token: completion_tokens is 1 (as
    vLLM and llama.cpp's server count it), the text empty, the finish "stop"; tokens before an EOS count too."""
    import dataclasses

    import torch

    from workers.inference import engine

    loaded = engine.ModelStore(root).get("mv-1")
    ids = engine.text_prompt_ids(loaded, "def add")

    def greedy_next(prefix):
        with torch.inference_mode():
            return int(loaded.model(input_ids=torch.tensor([prefix])).logits[0, -1].float().argmax())

    first = greedy_next(ids)
    second = greedy_next(ids + [first])
    res = engine.generate_all(dataclasses.replace(loaded, eos_ids={first}), ids, max_tokens=3, temperature=0)
    assert (res.text, res.finish_reason, res.completion_tokens) == ("", "stop", 1)
    if second != first:
        res = engine.generate_all(dataclasses.replace(loaded, eos_ids={second}), ids, max_tokens=3, temperature=0)
        assert res.finish_reason == "stop" and res.completion_tokens == 2
        assert res.text == loaded.tokenizer.decode([first], skip_special_tokens=True)


def test_lora_adapter_is_applied(tmp_path, tiny_model_dir):
    """A LoRA adapter with non-zero weights changes the logits; the server serves base + adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workers.inference import engine

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)

    root = tmp_path / "art"
    _manifest(root, 1, base_model_path=str(tiny_model_dir))
    _manifest(root, 2, base_model_path=str(tiny_model_dir), adapter_path=str(adapter_dir))
    store = engine.ModelStore(root)
    plain, adapted = store.get("mv-1"), store.get("mv-2")
    ids = torch.tensor([engine.text_prompt_ids(plain, "What is Python?")])
    with torch.no_grad():
        diff = (plain.model(ids).logits - adapted.model(ids).logits).abs().max().item()
    assert diff > 1e-3
    with TestClient(create_app(artifact_root=root)) as c:
        r = c.post("/v1/chat/completions", json={"model": "mv-2", "messages": [{"role": "user", "content": "hi"}],
                                                 "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
