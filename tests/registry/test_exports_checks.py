"""The round-trip comparison itself (apps/registry/exports/checks.py): which prompts are used, tool-call validity
against the tool registry, thresholds per quantization, reasons in words and the one-line summary."""
from __future__ import annotations

import json

import pytest

from tests.factories import DatasetVersionFactory, ModelVersionFactory, qa_example

pytestmark = pytest.mark.django_db


def _side(answers, ppl, tokens=None):
    return {"answers": answers, "answer_tokens": tokens or [list(a.encode()) for a in answers],
            "perplexity": {"ppl": ppl, "chunks": 4}}


def _call(name, args) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def test_prompts_come_from_the_validation_split_then_the_dataset_then_a_fixed_set(member):
    from apps.registry.exports.checks import FIXED_PROMPTS, validation_prompts

    with_split = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(3)],
                                       examples__validation=[qa_example(50), qa_example(51)])
    picked = validation_prompts(ModelVersionFactory(dataset_version=with_split))
    assert picked["origin"] == "validation split" and len(picked["prompts"]) == 2
    assert picked["prompts"][0]["messages"] == [{"role": "user", "content": "What is 50 plus 50?"}]  # no answer
    assert picked["texts"][0] == "What is 50 plus 50?\n50 plus 50 is 100."
    no_split = DatasetVersionFactory(owner=member, examples=[qa_example(i) for i in range(40)])
    picked = validation_prompts(ModelVersionFactory(dataset_version=no_split), limit=16)
    assert picked["origin"] == "dataset examples" and len(picked["prompts"]) == 16
    picked = validation_prompts(ModelVersionFactory(dataset_version=None))
    assert picked["origin"] == "fixed prompts" and len(picked["prompts"]) == len(FIXED_PROMPTS)


def test_tool_calls_are_valid_when_they_parse_name_a_known_tool_and_fit_its_schema():
    from apps.registry.exports.checks import ToolJudge

    judge = ToolJudge({"get_weather"})
    assert judge.count(_call("roll", {"dice": "d20+5"})) == (1, 1)
    assert judge.count(_call("roll", {"dice": "a lot"})) == (1, 0)  # breaks the registry's schema
    assert judge.count(_call("teleport", {"to": "moon"})) == (1, 0)  # no such tool
    assert judge.count(_call("get_weather", {"city": "Paris"})) == (1, 1)  # a tool the prompt offered
    assert judge.count("<tool_call>{not json</tool_call>") == (1, 0)
    assert judge.count("I attack! [roll: d20+5] then [Note: be careful]") == (1, 1)  # bracket form, prose ignored
    assert judge.count("no calls here") == (0, 0)


def test_evaluate_passes_identical_answers_and_explains_each_threshold_it_breaks():
    from apps.registry.exports.checks import evaluate, summary

    prompts = [{"messages": [{"role": "user", "content": f"q{i}"}], "tools": None} for i in range(4)]
    same = ["a b c", "d e f", _call("roll", {"dice": "2d6"}), "g"]
    checks = evaluate(_side(same, 10.0), _side(same, 10.0), prompts=prompts, fmt="merged")
    assert checks["passed"] and checks["greedy_agreement"] == 1.0 and checks["perplexity"]["delta_pct"] == 0.0
    assert checks["tool_calls"] == {"total": 1, "valid": 1, "validity": 1.0, "source_total": 1, "source_valid": 1}
    assert summary(checks) == "perplexity ±0.0 % · greedy agreement 4/4 · tool calls 1/1 valid"

    worse = ["a b x", "zzz", _call("roll", {"dice": "many"}), "g"]
    tokens_src = [[1, 2, 3, 4], [5, 6], [7, 8], [9]]
    tokens_exp = [[1, 2, 0, 0], [0, 0], [7, 0], [9]]
    checks = evaluate(_side(same, 10.0, tokens_src), _side(worse, 10.5, tokens_exp), prompts=prompts,
                      fmt="gguf", quantization="q8_0")
    assert not checks["passed"] and checks["greedy_agreement"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)
    assert checks["perplexity"]["delta_pct"] == pytest.approx(5.0)
    reasons = " ".join(checks["reasons"])
    assert "Perplexity changed by +5.0 % (10.000 → 10.500)" in reasons and "±3 %" in reasons
    assert "Only 0/1 tool calls are valid (the source: 1/1)" in reasons
    assert "greedy agreement 1/4 (50 % of tokens)" in summary(checks)
    loose = evaluate(_side(same, 10.0, tokens_src), _side(worse, 10.5, tokens_exp), prompts=prompts,
                     fmt="gguf", quantization="q4_k_m")
    assert [r for r in loose["reasons"] if "tool calls" not in r] == []  # within the 4-bit bounds
