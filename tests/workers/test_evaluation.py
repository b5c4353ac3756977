"""Evaluation: tool-call accuracy scoring, and a real run on a scenario dataset with tool calls."""
from __future__ import annotations

import json

import pytest

from workers.engine import evaluate


def _scenario(i, tool="get_weather"):
    return {"messages": [
        {"role": "user", "content": f"weather in city {i}?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": tool, "arguments": json.dumps({"city": f"c{i}"})}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "1"},
        {"role": "assistant", "content": "It is sunny."}],
        "tools": [{"type": "function", "function": {"name": tool, "parameters": {"type": "object"}}}]}


def test_tool_call_accuracy_scores_right_tool_and_form(monkeypatch):
    answers = iter(['<tool_call>{"name": "get_weather", "arguments": {"city": "c1"}}</tool_call>',
                    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
                    "<tool_call>{broken</tool_call>",
                    "I cannot call tools."])
    monkeypatch.setattr(evaluate, "_generate", lambda *a, **kw: next(answers))
    res = evaluate.tool_call_accuracy(None, None, [_scenario(i) for i in range(4)])
    assert res["scenarios"] == 4
    assert res["right_tool"] == 0.25 and res["well_formed"] == 0.5
    assert [r["right_tool"] for r in res["rows"]] == [True, False, False, False]


def test_no_tool_scenarios_no_score():
    assert evaluate.tool_call_accuracy(None, None, [{"messages": [{"role": "user", "content": "hi"}]}]) is None


@pytest.fixture
def roomy_base_model(db, tmp_path):
    """A tiny base model whose context holds the tool definitions that training writes into the
    system prompt (the Hermes layout of workers/engine/chat_format.py; 256 tokens do not)."""
    from apps.registry.services import base_model_register
    from workers.engine.tiny import build_model

    build_model(tmp_path / "roomy", size="nano", texts=[json.dumps(_scenario(0))] * 5, vocab_size=400,
                context_length=1024)
    return base_model_register(model_id="tiny-roomy", path=str(tmp_path / "roomy"), name="Tiny, 1k context")


@pytest.mark.django_db(transaction=True)
def test_run_on_tool_dataset_reports_tool_call_accuracy(member, roomy_base_model):
    from apps.training import services
    from tests.training.conftest import make_version
    from workers.training import train_run

    version = make_version(member, [_scenario(i) for i in range(16)], validation=[_scenario(i) for i in range(16, 19)])
    run = services.run_create(user=member, dataset_version_id=version.pk, base_model="tiny-roomy",
                              hyperparameters={"max_steps": 6, "learning_rate": 3e-3, "eval_max_new_tokens": 8,
                                               "max_seq_len": 1024})
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    tools = run.summary["evaluation"]["tool_calls"]
    assert tools["scenarios"] == 3 and 0 <= tools["right_tool"] <= 1 and 0 <= tools["well_formed"] <= 1
    assert "base_right_tool" in tools
    assert run.model_version.metrics["tool_call_right"] == tools["right_tool"]
