"""Engine pieces without Django: assistant-only labels, per-turn weights, padding, tool-call parsing."""
from __future__ import annotations

import pytest

from workers.engine.data import IGNORE, PadCollator, encode_example, tokenize_examples
from workers.engine.evaluate import parse_tool_calls


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _trained_text(tok, enc):
    return tok.decode([i for i, l in zip(enc.input_ids, enc.labels) if l != IGNORE])


def test_loss_only_on_assistant_turns(tok):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Python?"},
            {"role": "assistant", "content": "A language."}, {"role": "user", "content": "And Rust?"},
            {"role": "assistant", "content": "Another one."}]
    enc = encode_example(tok, msgs, max_len=256)
    trained = _trained_text(tok, enc)
    assert "A language." in trained and "Another one." in trained
    assert "What is Python" not in trained and "Be brief" not in trained and "And Rust" not in trained
    assert trained.count("<|im_end|>") == 2  # the model learns to stop


def test_weight_zero_turn_is_context_only(tok):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bad answer", "weight": 0},
            {"role": "user", "content": "again"}, {"role": "assistant", "content": "good answer", "weight": 1}]
    trained = _trained_text(tok, encode_example(tok, msgs, max_len=256))
    assert "good answer" in trained and "bad answer" not in trained


def test_smollm2_template_with_default_system_prompt():
    """SmolLM2's template injects a system prompt and has no generation markers."""
    from transformers import AutoTokenizer

    from workers.engine.base_models import DEFAULT_BASE_MODEL_ID
    from django.conf import settings

    folder = settings.HUB_MODEL_CACHE / DEFAULT_BASE_MODEL_ID
    if not (folder / "tokenizer.json").exists():
        pytest.skip("SmolLM2 not prepared on this machine")
    tok = AutoTokenizer.from_pretrained(folder)
    enc = encode_example(tok, [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi there!"}],
                         max_len=256)
    trained = _trained_text(tok, enc)
    assert trained.startswith("Hi there!") and "SmolLM" not in trained and "Say hi" not in trained


def test_tool_calls_are_rendered_and_trained(tok):
    msgs = [{"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "content": "18C", "tool_call_id": "1"},
            {"role": "assistant", "content": "It is 18C."}]
    trained = _trained_text(tok, encode_example(tok, msgs, max_len=256))
    assert "get_weather" in trained and "18C." in trained
    assert parse_tool_calls(trained.split("<|im_end|>")[0]) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


def test_parse_tool_calls_rejects_malformed():
    assert parse_tool_calls('<tool_call>{"name": "x", "arguments": {}}</tool_call>') == [{"name": "x", "arguments": {}}]
    assert parse_tool_calls("<tool_call>{not json}</tool_call>") is None
    assert parse_tool_calls("just text") is None


def test_dynamic_padding_pads_to_longest_in_batch(tok):
    ds, stats = tokenize_examples(tok, [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"messages": [{"role": "user", "content": "a much longer question here"},
                      {"role": "assistant", "content": "and a longer answer too"}]},
        {"messages": [{"role": "user", "content": "no answer"}]},  # nothing to train: dropped
    ], max_len=256)
    assert stats["examples"] == 2 and stats["dropped"] == 1
    batch = PadCollator(tok.pad_token_id)([ds[0], ds[1]])
    assert batch["input_ids"].shape[1] == max(len(ds[0]["input_ids"]), len(ds[1]["input_ids"]))
    assert int(batch["attention_mask"].sum()) == len(ds[0]["input_ids"]) + len(ds[1]["input_ids"])
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_half_written_checkpoint_is_skipped_on_resume(tiny_model_dir, tmp_path):
    """A crash in the middle of a save leaves a checkpoint without trainer_state.json: resume from the one before."""
    import shutil

    from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

    examples = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
                for i in range(16)]
    job = lambda: Job(method="lora", output_dir=tmp_path / "out", stages=[Stage(train=examples)],  # noqa: E731
                      hp=hp_with_defaults({"max_steps": 8, "save_steps": 4, "save_total_limit": 3}),
                      base_model_path=str(tiny_model_dir), evaluate=False)
    run_training(job(), report=lambda s, m: None, should_stop=lambda: False)
    stage = tmp_path / "out" / "stage-0"
    (stage / "DONE").unlink()
    shutil.rmtree(stage / "final")
    (stage / "checkpoint-8" / "trainer_state.json").unlink()  # the crash hit while saving step 8
    seen = []
    run_training(job(), report=lambda s, m: seen.append((s, m.get("kind"))), should_stop=lambda: False)
    seen = [(s, k) for s, k in seen if k != "phase"]  # phases (loading, training, ...) come between
    assert seen[0] == (4, "resume")
    assert [s for s, k in seen if k == "train"] == [5, 6, 7, 8]
