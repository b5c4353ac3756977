"""Fixtures of the inference-server tests: artifact roots with manifests, tiny models with room for
tool definitions, scripted generation, and an SSE reader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8},
                                                        "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                       "required": ["city", "days"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"],
                       "additionalProperties": False}}},
]


def write_manifest(root: Path, vid: int, **fields) -> Path:
    folder = root / "models" / f"mv-{vid}"
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": f"mv-{vid}", "kind": "adapter", "base_model_path": None, "adapter_path": None,
            "model_path": None, "remote_model_id": None}
    data.update(fields)
    (folder / "hub_model.json").write_text(json.dumps(data))
    return folder


def parse_sse(text: str) -> list:
    events = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[6:]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


@pytest.fixture(scope="session")
def tool_model_dir(tmp_path_factory):
    """A tiny random model whose context (2048) holds the Hermes tool block of the system prompt."""
    from workers.engine.chat_format import tools_system_text
    from workers.engine.tiny import build_model

    out = tmp_path_factory.mktemp("tiny-tools")
    texts = [tools_system_text(TOOLS), "What is the weather in Paris? Let me check.",
             '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</tool_call>',
             '{"answer": "yes", "score": 3, "ok": true}'] * 3
    build_model(out, size="nano", texts=texts, vocab_size=500, context_length=2048)
    return out


@pytest.fixture
def tool_root(tmp_path, tool_model_dir):
    root = tmp_path / "art"
    write_manifest(root, 1, kind="full", model_path=str(tool_model_dir))
    return root


@pytest.fixture
def tool_client(tool_root):
    from starlette.testclient import TestClient

    from workers.inference.server import create_app

    with TestClient(create_app(artifact_root=tool_root)) as c:
        yield c


@pytest.fixture
def scripted(monkeypatch):
    """Replace the model's generation by scripted text deltas: `scripted(["Let me", " check."])`.
    The last item carries finish_reason (default "stop") and stop_reason (default None). Each call
    records the keyword arguments it was given in `.calls`."""
    from workers.inference import engine

    class Script:
        calls: list = []

        def __call__(self, deltas, *, finish="stop", stop_reason=None, pause=None):
            def fake(loaded, prompt_ids, **kw):
                self.calls.append({"prompt_ids": prompt_ids, **kw})
                for i, d in enumerate(deltas):
                    if pause is not None and i == pause[0]:
                        pause[1]()
                    yield d, None, i + 1, None
                yield "", finish, len(deltas), stop_reason

            monkeypatch.setattr(engine, "generate", fake)
            return self

    return Script()
