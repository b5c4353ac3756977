"""DPO in the engine (Django-free): a tiny model built in the test trained on preference pairs through the one
training loop with TRL's DPOTrainer. The preference margin rises and the loss falls; the reference is the
starting model (the base with the adapter disabled, or the parent adapter); a cancel stops at a step and
keeps its checkpoint, and the run resumes from it; pairs are tokenized with the hub's chat layout."""
from __future__ import annotations

import math

import pytest

from workers.engine.dpo import encode_pair, split_pair, tokenize_pairs
from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

HP = {"max_steps": 12, "batch_size": 4, "learning_rate": 5e-3, "save_steps": 6, "warmup_ratio": 0.0,
      "eval_max_new_tokens": 4, "save_total_limit": 3}


def pair(i: int) -> dict:
    """A learnable preference: answering the sum is preferred to declining."""
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
            "rejected": [{"role": "assistant", "content": "I do not know."}]}


def _job(tiny_model_dir, out, *, adapter=None, evaluate=False, **hp):
    stage = Stage(train=[pair(i) for i in range(24)], validation=[pair(i) for i in range(24, 28)])
    return Job(method="dpo", output_dir=out, stages=[stage], hp=hp_with_defaults({**HP, **hp}),
               base_model_path=str(tiny_model_dir), adapter_path=adapter, evaluate=evaluate)


class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.events, self.stop_at, self.checkpoints, self.asked = [], stop_at, [], 0

    def report(self, step, metrics):
        self.events.append((step, dict(metrics)))

    def should_stop(self):  # asked once after every optimizer step
        self.asked += 1
        return self.stop_at is not None and self.asked >= self.stop_at

    def on_checkpoint(self, step, path, metrics):
        self.checkpoints.append(step)

    def train(self):
        return [(s, m) for s, m in self.events if m.get("kind") == "train"]

    def evals(self):
        return [(s, m) for s, m in self.events if m.get("kind") == "eval"]


def _mean(xs):
    return sum(xs) / len(xs)


def test_dpo_raises_the_margin_and_lowers_the_loss(tiny_model_dir, tmp_path):
    rec = Recorder()
    result = run_training(_job(tiny_model_dir, tmp_path / "run", evaluate=True), report=rec.report,
                          should_stop=rec.should_stop, on_checkpoint=rec.on_checkpoint)
    assert not result["stopped"]
    train = rec.train()
    assert [s for s, _ in train] == list(range(1, 13))
    first = train[0][1]
    # step 1: the policy is the reference (a fresh adapter is zero), so the loss is log 2 and the margin 0
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert first["rewards/margins"] == pytest.approx(0.0, abs=1e-3)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "tokens_per_s"):
        assert key in first
    losses = [m["loss"] for _, m in train]
    margins = [m["rewards/margins"] for _, m in train]
    assert _mean(losses[-4:]) < _mean(losses[:4]) - 0.1
    assert _mean(margins[-4:]) > _mean(margins[:4]) + 0.2
    # held-out pairs: the margin rose there too, and the chosen answer wins
    final_eval = rec.evals()[-1][1]
    assert final_eval["rewards/margins"] > 0.2 and final_eval["rewards/accuracies"] >= 0.75
    assert "perplexity" not in final_eval  # a DPO loss is not a language-model loss
    assert result["preference"]["rewards/margins"] == pytest.approx(margins[-1])
    assert result["eval_preference"]["rewards/margins"] > 0.2
    assert result["final_loss"] == pytest.approx(losses[-1]) and "perplexity" not in result
    final = tmp_path / "run" / "stage-0" / "final"
    assert (final / "adapter_model.safetensors").exists() and not (final / "ref").exists()
    assert rec.checkpoints == [6, 12]
    phases = [m["phase"] for _, m in rec.events if m.get("kind") == "phase"]
    assert phases[0] == "loading" and "training" in phases and phases[-1] == "evaluating"
    assert result["evaluation"]["side_by_side"]  # base (adapter disabled) vs trained, as for LoRA runs


def test_continuing_an_adapter_uses_it_as_the_reference(tiny_model_dir, tmp_path):
    first = Recorder()
    run_training(_job(tiny_model_dir, tmp_path / "a", max_steps=8), report=first.report,
                 should_stop=first.should_stop)
    parent = tmp_path / "a" / "stage-0" / "final"
    rec = Recorder()
    run_training(_job(tiny_model_dir, tmp_path / "b", adapter=str(parent), max_steps=6), report=rec.report,
                 should_stop=rec.should_stop)
    start = rec.train()[0][1]
    # the parent already prefers the chosen answers over the base; measured against itself it starts at 0
    assert first.train()[-1][1]["rewards/margins"] > 0.2
    assert start["rewards/margins"] == pytest.approx(0.0, abs=1e-3)
    assert start["loss"] == pytest.approx(math.log(2), abs=1e-3)
    final = tmp_path / "b" / "stage-0" / "final"
    assert (final / "adapter_model.safetensors").exists()
    assert not (final / "ref").exists() and not (tmp_path / "b" / "stage-0" / "checkpoint-6" / "ref").exists()


def test_cancel_stops_keeps_the_checkpoint_and_the_run_resumes_from_it(tiny_model_dir, tmp_path):
    rec = Recorder(stop_at=3)
    result = run_training(_job(tiny_model_dir, tmp_path / "run", save_steps=100), report=rec.report,
                          should_stop=rec.should_stop, on_checkpoint=rec.on_checkpoint)
    assert result["stopped"] is True and result["stopped_at"] == 3
    assert [s for s, _ in rec.train()] == [1, 2, 3]
    assert rec.checkpoints == [3]  # a stop saves where it stopped
    assert (tmp_path / "run" / "stage-0" / "checkpoint-3").is_dir()
    assert not (tmp_path / "run" / "stage-0" / "final").exists()

    again = Recorder()
    result = run_training(_job(tiny_model_dir, tmp_path / "run", save_steps=100), report=again.report,
                          should_stop=again.should_stop)
    assert not result["stopped"]
    resume = [s for s, m in again.events if m.get("kind") == "resume"]
    assert resume == [3]
    assert [s for s, _ in again.train()] == list(range(4, 13))
    assert (tmp_path / "run" / "stage-0" / "final" / "adapter_model.safetensors").exists()


def test_pairs_share_the_prompt_ids_and_differ_in_the_answer(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    multi = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Sum 2 and 2"},
                          {"role": "assistant", "content": "4."}],
             "rejected": [{"role": "assistant", "content": "No idea."}]}
    prompt, chosen, rejected = split_pair(multi)
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert chosen == [{"role": "assistant", "content": "4."}] and rejected[0]["content"] == "No idea."
    enc = encode_pair(tok, multi)
    prompt_text = tok.decode(enc["prompt_ids"])
    assert prompt_text.endswith("<|im_start|>assistant\n") and "Hello." in prompt_text
    assert tok.decode(enc["chosen_ids"]) == "4.<|im_end|>\n"
    assert tok.decode(enc["rejected_ids"]) == "No idea.<|im_end|>\n"
    # nothing to prefer: identical answers, or no rejected answer at all
    same = {**multi, "rejected": [{"role": "assistant", "content": "4."}]}
    assert encode_pair(tok, same) is None and encode_pair(tok, {**multi, "rejected": []}) is None
    ds, stats = tokenize_pairs(tok, [multi, same, pair(1)], max_len=256)
    assert len(ds) == 2 and stats["dropped"] == 1 and stats["examples"] == 2
    assert set(ds.column_names) == {"prompt_ids", "chosen_ids", "rejected_ids", "length"}
    # a prompt that fills max_len leaves nothing of the answers: dropped; a long answer: truncated
    ds, stats = tokenize_pairs(tok, [multi], max_len=len(enc["prompt_ids"]))
    assert len(ds) == 0 and stats["dropped"] == 1
    ds, stats = tokenize_pairs(tok, [multi], max_len=len(enc["prompt_ids"]) + 2)
    assert len(ds) == 1 and stats["truncated"] == 1
