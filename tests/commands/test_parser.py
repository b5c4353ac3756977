"""The command bar's deterministic parser on a table of phrasings: the first seed's examples verbatim (its usage
examples, its status examples, its action triggers and option phrasings), the issue's, and their neighbours.
Each row: the text, the action, and the parameters it must yield (a subset: other keys may be present)."""
from __future__ import annotations

import pytest

from apps.commands.parser import EXAMPLES, number, parse

LR = {"hyperparameters": {"learning_rate": 1e-5}}

TABLE = [
    # the first seed (000_*.txt), verbatim
    ("Generate training data for ElizaOS", "generate", {"source": "ElizaOS"}),
    ("Train a model using the generated training data", "train", {"dataset_generated": True}),
    ("Configure auto-coder to use my trained model", "configure",
     {"alias_hint": "auto-coder", "use": {"latest": True}}),
    ("Generate training data for ElizaOS with max 1000 scenarios", "generate",
     {"source": "ElizaOS", "max_examples": 1000}),
    ("Train model with learning rate 0.00001 and 3 epochs", "train",
     {"hyperparameters": {"learning_rate": 1e-5, "epochs": 3}}),
    ("Check training status for job ft-abc123", "status", {"remote_job_id": "ft-abc123"}),
    ("Setup auto-coder with temperature 0.1", "configure", {"alias_hint": "auto-coder", "temperature": 0.1}),
    ("Generate training data with workspace ./custom-workspace output ./custom-output include tests include config "
     "max scenarios 500", "generate", {"max_examples": 500, "include_tests": True, "include_config": True}),
    ("Fine-tune model meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo with suffix my-elizaos-model learning rate 0.0001 "
     "epochs 5 batch size 2", "train",
     {"base_model": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
      "hyperparameters": {"suffix": "my-elizaos-model", "learning_rate": 0.0001, "epochs": 5, "batch_size": 2}}),
    ("Check training status", "status", {}),
    ("Check status for job ft-abc123", "status", {"remote_job_id": "ft-abc123"}),
    ("What is the progress of my training?", "status", {}),
    # the seed's action triggers
    ("generate training data", "generate", {}), ("create training dataset", "generate", {}),
    ("build training scenarios", "generate", {}), ("train model", "train", {}), ("fine-tune model", "train", {}),
    ("start training", "train", {}), ("check training status", "status", {}), ("training progress", "status", {}),
    ("status", "status", {}), ("configure auto-coder", "configure", {"alias_hint": "auto-coder"}),
    ("setup reasoning", "configure", {"alias_hint": "auto-coder"}), ("config proxy", "configure", {}),
    # the seed's option phrasings
    ("Generate training data with exclude complex", "generate", {"exclude_complex": True}),
    ("Generate training data simple only", "generate", {"exclude_complex": True}),
    ("Train model with model meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo", "train",
     {"base_model": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"}),
    ("Train model with batch size 1", "train", {"hyperparameters": {"batch_size": 1}}),
    ("Train model with epochs 3", "train", {"hyperparameters": {"epochs": 3}}),
    # the phrasings
    ("Generate training data with max 500 scenarios", "generate", {"max_examples": 500}),
    ("train demo with lr 1e-5 and 3 epochs", "train", {"dataset": "demo", **LR}),
    ("train with lr 1e-5 and 3 epochs on demo", "train", {"dataset": "demo", **LR}),
    # learning rates in any notation
    ("train demo with lr=1E-05", "train", LR), ("train demo lr 1x10^-5", "train", LR),
    ("train demo with a learning rate of 10^-5", "train", LR), ("train demo, lr 1 × 10^-5", "train", LR),
    ("train demo with learning_rate: 0.00001", "train", LR), ("train demo with lr .00001", "train", LR),
    # more training options
    ("train on demo v2 using full fine-tuning, batch size of 8, two epochs, max seq len 1024", "train",
     {"dataset": "demo", "dataset_version": 2, "method": "full",
      "hyperparameters": {"batch_size": 8, "epochs": 2, "max_seq_len": 1024}}),
    ("fine-tune demo with dpo, beta 0.2", "train", {"dataset": "demo", "method": "dpo",
                                                      "hyperparameters": {"beta": 0.2}}),
    ("train prefs with kto and batch size 4", "train", {"dataset": "prefs", "method": "kto"}),
    ("train KTO on prefs", "train", {"dataset": "prefs", "method": "kto"}),
    ("train math-tasks with grpo", "train", {"dataset": "math-tasks", "method": "grpo"}),
    ("fine-tune demo using GRPO for 20 steps", "train", {"dataset": "demo", "method": "grpo",
                                                          "hyperparameters": {"max_steps": 20}}),
    ("train demo with grow", "train", {"dataset": "demo", "method": "grow"}),
    ("train demo, method grow, continue from version 4", "train", {"dataset": "demo", "method": "grow",
                                                                    "parent_version_id": 4}),
    ("train grow-logs for 3 epochs", "train", {"dataset": "grow-logs", "hyperparameters": {"epochs": 3}}),
    ("train a lora on dataset support-chats with rank 16 and alpha 32 named first-try", "train",
     {"dataset": "support-chats", "method": "lora", "name": "first-try",
      "hyperparameters": {"lora_r": 16, "lora_alpha": 32}}),
    ("please train demo for 20 steps", "train", {"dataset": "demo", "hyperparameters": {"max_steps": 20}}),
    ("train demo on together with base model meta-llama/Llama-3.2-3B", "train",
     {"dataset": "demo", "backend": "together", "base_model": "meta-llama/Llama-3.2-3B"}),
    ("continue training from version 4 on demo", "train", {"dataset": "demo", "parent_version_id": 4}),
    # generate
    ("generate from my-repo with categories docstring and fim, include tests", "generate",
     {"source": "my-repo", "generators": ["docstring", "fim"], "include_tests": True}),
    ("generate 200 scenarios from repository hub-core without tests, seed 7", "generate",
     {"source": "hub-core", "max_examples": 200, "include_tests": False, "seed": 7}),
    ("generate training data from https://github.com/elizaOS/eliza", "generate",
     {"source_url": "https://github.com/elizaOS/eliza"}),
    # status
    ("status of run 12", "status", {"run_id": 12}), ("how is #7 doing", "status", {"run_id": 7}),
    ("status of the latest run", "status", {"latest": True}), ("check job 5", "status", {"job_id": 5}),
    ("status of generation 3", "status", {"generation_id": 3}), ("status of my-run", "status", {"run_name": "my-run"}),
    # deploy and roll back
    ("deploy version 3 to production", "deploy", {"version_id": 3, "alias": "production"}),
    ("deploy mv-3 to staging", "deploy", {"version_id": 3, "alias": "staging"}),
    ("deploy run 12 to production because it wins the arena", "deploy",
     {"run_id": 12, "alias": "production", "reason": "it wins the arena"}),
    ("deploy the latest model to staging as a 10% canary", "deploy",
     {"latest": True, "alias": "staging", "canary_percent": 10}),
    ("promote demo-lora to production", "deploy", {"version_name": "demo-lora", "alias": "production"}),
    ("roll back production", "rollback", {"alias": "production"}),
    ("rollback staging to version 3", "rollback", {"alias": "staging", "to_version_id": 3}),
    ("roll production back to deployment 9", "rollback", {"alias": "production", "to_deployment_id": 9}),
    # configure the proxy
    ("configure production with max tokens 4000 and fallback model gemini-pro", "configure",
     {"alias": "production", "max_tokens": 4000, "fallback": "gemini-pro"}),
    ("set the timeout to 30000 and fallback to gpt-4o on openrouter for coder", "configure",
     {"alias": "coder", "timeout_s": 30.0, "fallback": "gpt-4o", "fallback_provider": "openrouter"}),
    ("set temperature to 0.3 for production", "configure", {"alias": "production", "temperature": 0.3}),
    ("configure production with max tokens 4000, timeout 30s and fallback model gemini-pro", "configure",
     {"alias": "production", "max_tokens": 4000, "timeout_s": 30, "fallback": "gemini-pro"}),
    ("use mv-4 for coder, timeout 2 min", "configure", {"alias": "coder", "use": {"version_id": 4}, "timeout_s": 120}),
    ("configure the proxy for production with fallback openrouter/gemini-pro", "configure",
     {"alias": "production", "fallback": "openrouter/gemini-pro"}),
    # review and cancel
    ("start a review of demo", "review", {"dataset": "demo"}),
    ("review demo v2 with alice and bob, overlap 2", "review",
     {"dataset": "demo", "dataset_version": 2, "assignees": ["alice", "bob"], "overlap": 2}),
    ("create a review of dataset support-chats with rating", "review", {"dataset": "support-chats", "rating": True}),
    ("cancel run 12", "cancel", {"run_id": 12}), ("stop the latest run", "cancel", {"latest": True}),
    # not commands
    ("hello world", "unknown", {}), ("make me a sandwich", "unknown", {}),
]


def _subset(expected: dict, actual: dict, path="") -> list[str]:
    out = []
    for key, value in expected.items():
        if key not in actual:
            out.append(f"{path}{key} missing")
        elif isinstance(value, dict) and isinstance(actual[key], dict):
            out += _subset(value, actual[key], f"{path}{key}.")
        elif isinstance(value, float) and isinstance(actual[key], (int, float)):
            if abs(actual[key] - value) > 1e-12 * max(1.0, abs(value)):
                out.append(f"{path}{key}: {actual[key]!r} != {value!r}")
        elif actual[key] != value:
            out.append(f"{path}{key}: {actual[key]!r} != {value!r}")
    return out


@pytest.mark.parametrize("text, action, params", TABLE, ids=[row[0][:60] for row in TABLE])
def test_phrasing(text, action, params):
    parsed = parse(text)
    assert parsed.action == action, parsed
    assert _subset(params, parsed.params) == [], parsed.params


def test_the_seeds_options_that_do_not_apply_are_noted_not_dropped_silently():
    parsed = parse("Generate training data with workspace ./custom-workspace output ./custom-output include tests "
                   "include config max scenarios 500")
    assert [n.split(":")[0] for n in parsed.notes] == ["workspace", "output"]
    assert "temperature" in parse("Generate training data with temperature 0.7").notes[0]
    assert "clean up" in parse("generate training data and clean up").notes[0]


def test_nothing_is_invented():
    """No dataset, base model or alias where the text names none; integers stay integers."""
    p = parse("Train model with learning rate 0.00001 and 3 epochs").params
    assert set(p) == {"hyperparameters"} and p["hyperparameters"] == {"learning_rate": 1e-5, "epochs": 3}
    assert isinstance(p["hyperparameters"]["epochs"], int)
    assert "alias" not in parse("deploy version 3").params  # never a silent `production`
    assert parse("roll back").params == {}


@pytest.mark.parametrize("raw, value", [("1e-5", 1e-5), ("1E-05", 1e-5), ("0.00001", 1e-5), ("1x10^-5", 1e-5),
                                        ("10^-5", 1e-5), ("5*10**-5", 5e-5), ("2 × 10^-4", 2e-4), ("3", 3.0),
                                        ("1e999", None), ("abc", None)])
def test_numbers(raw, value):
    got = number(raw)
    assert (got is None and value is None) or abs(got - value) < 1e-15


def test_every_example_parses_to_an_action():
    assert all(parse(e).action != "unknown" for e in EXAMPLES)


@pytest.mark.parametrize("text", ["train grow-logs for 3 epochs", "train demo so the scores grow",
                                  "train growth-data with lr 1e-5"])
def test_grow_as_a_word_is_not_the_grow_method(text):
    assert "method" not in parse(text).params, parse(text).params


def test_grpo_grow_and_kto_are_methods():
    assert [parse(t).params.get("method") for t in ("train demo with GRPO", "train demo using grow",
                                                    "train demo via kto")] == ["grpo", "grow", "kto"]
