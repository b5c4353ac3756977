"""Reward-based RL (method "grpo") on TRL's GRPOTrainer: in the engine, GRPO raises the mean reward of a tiny
model on a verifiable task and a component that raises or hangs scores 0 while the run goes on; through the
hub, run_create refuses what GRPO cannot train (no verifiable task, unknown components, bad weights, groups
that do not fill a batch, Together) with field errors, and a run queued through run_create and trained by the
gpu actor reports the reward and its components, registers its adapter and shows them on its page.

The model is built here: a one-layer Llama over a word-level vocabulary of the digits (prompt words become
<unk>), with a wide initialisation (its logits can grow large enough for one answer to dominate, which a
LoRA adapter over the default 0.02 cannot reach): "What is a+b? Answer with the number." (a + b = 7 for
every task) is answered right about one time in fifty before training (p("7") ≈ 0.02), so a step's 32
sampled answers now and then hold a rewarded one to learn from."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

SUMS = [(3, 4), (5, 2), (6, 1), (1, 6), (2, 5), (4, 3), (0, 7), (7, 0)]
# 32 sampled answers per step (2 prompts × 16), one token each, a high learning rate: a handful of steps
FAST = {"max_steps": 6, "batch_size": 32, "num_generations": 16, "max_completion_length": 1,
        "learning_rate": 5e-2, "warmup_ratio": 0.0, "lr_scheduler": "constant", "beta": 0.04, "save_steps": 100,
        "max_seq_len": 64, "seed": 0, "eval_max_new_tokens": 2}


def task_example(a: int, b: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {a}+{b}? Answer with the number."}],
            "meta": {"answer": str(a + b)}}


def build_digits_model(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from workers.engine.tiny import CHATML_TEMPLATE, SPECIAL_TOKENS

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + ["<unk>"] + [str(d) for d in range(10)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=128)
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                         tie_word_embeddings=True, initializer_range=0.2, pad_token_id=fast.pad_token_id,
                         eos_token_id=fast.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def digits_model_dir(tmp_path_factory):
    return build_digits_model(tmp_path_factory.mktemp("digits"))


@pytest.fixture
def digits_base_model(db, digits_model_dir):
    from apps.registry.services import base_model_register

    return base_model_register(model_id="digits", path=str(digits_model_dir), name="Digits test model")


class Recorder:
    def __init__(self):
        self.events = []

    def report(self, step, metrics):
        self.events.append((step, dict(metrics)))

    def train(self):
        return [m for _, m in self.events if m.get("kind") == "train"]


def _mean(xs):
    return sum(xs) / len(xs)


def _train(model_dir, out, **hp):
    rec = Recorder()
    job = Job(method="grpo", output_dir=out, stages=[Stage(train=[task_example(a, b) for a, b in SUMS])],
              hp=hp_with_defaults({**FAST, "reward_weights": {"answer_match": 1.0}, **hp}),
              base_model_path=str(model_dir), evaluate=False)
    result = run_training(job, report=rec.report, should_stop=lambda: False)
    return result, rec.train()


# --- the engine ---------------------------------------------------------------------------------------------
def test_grpo_raises_the_mean_reward_on_a_verifiable_task(digits_model_dir, tmp_path):
    result, points = _train(digits_model_dir, tmp_path / "run")
    assert len(points) == 6 and not result["stopped"]
    rewards = [p["reward"] for p in points]
    # one component weighted 1: TRL's mean reward is that component's mean
    assert all(p["rewards/answer_match/mean"] == pytest.approx(p["reward"]) for p in points)
    assert rewards[0] < 0.15, rewards  # the untrained model: right about one time in fifty
    assert _mean(rewards[-3:]) > max(0.5, rewards[0] + 0.4), rewards  # it learned to answer 7
    for key in ("reward_std", "kl", "completions/mean_length", "reward_errors/answer_match", "tokens_per_s"):
        assert key in points[-1], key
    assert points[-1]["kl"] > 0  # beta > 0: it moved away from the reference, with a penalty
    assert result["rewards"]["reward"] == pytest.approx(rewards[-1])
    assert "reward_errors" not in result  # nothing failed
    final = Path(result["final_dir"])
    assert (final / "adapter_model.safetensors").exists() and not (final / "ref").exists()


def test_a_component_that_raises_or_hangs_scores_zero_and_the_run_goes_on(digits_model_dir, tmp_path,
                                                                          monkeypatch):
    import time

    from workers.engine import rewards

    def boom(completion, task):
        raise RuntimeError("the judge is down")

    def stall(completion, task):
        time.sleep(60)
        return 1.0

    # plugins: each runs in a child process, killed at its timeout
    monkeypatch.setitem(rewards.COMPONENTS, "boom", rewards.Component("boom", "Boom", "raises", "custom", boom,
                                                                      timeout_s=5.0))
    monkeypatch.setitem(rewards.COMPONENTS, "stall", rewards.Component("stall", "Stall", "hangs", "custom", stall,
                                                                       timeout_s=0.5))
    started = time.monotonic()
    result, points = _train(digits_model_dir, tmp_path / "run", max_steps=3, batch_size=8, num_generations=4,
                            reward_weights={"answer_match": 1.0, "boom": 0.5, "stall": 0.5})
    assert len(points) == 3 and not result["stopped"] and result["final_dir"]
    assert time.monotonic() - started < 45  # the hanging one was cut at its timeout every time
    for p in points:
        assert p["rewards/boom/mean"] == 0 and p["rewards/stall/mean"] == 0
        assert p["reward_errors/boom"] == 1 and p["reward_errors/stall"] == 1
        assert p["reward_errors/answer_match"] == 0
        # weights normalised to 0.5 / 0.25 / 0.25: the failures count 0 in the mean reward
        assert p["reward"] == pytest.approx(0.5 * p["rewards/answer_match/mean"])
    errors = result["reward_errors"]
    assert set(errors) == {"boom", "stall"} and errors["boom"]["count"] == 3 * 8
    assert "the judge is down" in errors["boom"]["last"] and "timed out" in errors["stall"]["last"]


# --- run_create: what GRPO refuses ----------------------------------------------------------------------------
def _tasks_version(owner, *, n=8, answers=True, name="sums"):
    from apps.datasets.models import Example
    from tests.factories import DatasetVersionFactory

    examples = [{"messages": task_example(*SUMS[i % len(SUMS)])["messages"]
                 + [{"role": "assistant", "content": "7"}]} for i in range(n)]
    v = DatasetVersionFactory(owner=owner, dataset__name=name, examples=examples)
    if answers:
        Example.objects.filter(version=v).update(meta={"kind": "chat", "answer": "7"})
    return v


def _api_errors(response) -> dict[str, str]:
    assert response.status_code == 422, response.content
    return {e["field"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.django_db
def test_tasks_without_a_verifier_are_refused_before_launch(api, member, digits_base_model):
    from apps.training.models import TrainingRun

    plain = _tasks_version(member, answers=False)
    body = {"dataset_version_id": plain.pk, "base_model": "digits", "method": "grpo"}
    message = _api_errors(api.post("/api/runs", body, content_type="application/json"))["dataset_version_id"]
    assert "none of the 8 examples" in message and "meta.answer" in message and "meta.tests" in message
    # the data has answers, but no weighted component verifies them
    tasks = _tasks_version(member, name="with answers")
    r = api.post("/api/runs", {**body, "dataset_version_id": tasks.pk,
                               "hyperparameters": {"reward_weights": {"length": 1}}}, content_type="application/json")
    assert "none of the weighted reward components (length)" in _api_errors(r)["dataset_version_id"]
    assert TrainingRun.objects.count() == 0
    # with the default preset (arithmetic: answer_match 0.9, length 0.1) it is accepted, the weights stored
    r = api.post("/api/runs/estimate", {**body, "dataset_version_id": tasks.pk,
                                        "hyperparameters": {"max_steps": 0, "batch_size": 8}},
                 content_type="application/json")
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["hyperparameters"]["reward_weights"] == {"answer_match": 0.9, "length": 0.1}
    assert out["estimate"]["steps"] == 8 * 4 // 8  # tasks × num_generations / (batch_size × grad_accum)


@pytest.mark.django_db
@pytest.mark.parametrize("weights,expected", [
    ({"answer_match": 1, "nonsense": 1}, "Unknown reward component 'nonsense'"),
    ({"answer_match": -1}, "answer_match: A weight cannot be negative."),
    ({"answer_match": "heavy"}, "answer_match: a weight is a number, not 'heavy'."),
    ({"answer_match": 0}, "Give at least one component a weight above 0."),
    ("answer_match", "An object of component name → weight"),
])
def test_bad_reward_weights_are_a_field_error(api, member, digits_base_model, weights, expected):
    tasks = _tasks_version(member)
    r = api.post("/api/runs", {"dataset_version_id": tasks.pk, "base_model": "digits", "method": "grpo",
                               "hyperparameters": {"reward_weights": weights}}, content_type="application/json")
    errors = _api_errors(r)
    assert expected in errors["hyperparameters.reward_weights"], errors


@pytest.mark.django_db
def test_groups_must_fill_the_batch_and_grpo_trains_locally(api, member, digits_base_model, settings):
    tasks = _tasks_version(member)
    r = api.post("/api/runs", {"dataset_version_id": tasks.pk, "base_model": "digits", "method": "grpo",
                               "hyperparameters": {"batch_size": 6, "num_generations": 4}},
                 content_type="application/json")
    assert "must be a multiple of num_generations (4)" in _api_errors(r)["hyperparameters.num_generations"]
    settings.TOGETHER_API_KEY = "test-key"
    r = api.post("/api/runs", {"dataset_version_id": tasks.pk, "base_model": "m", "method": "grpo",
                               "backend": "together"}, content_type="application/json")
    assert _api_errors(r)["backend"] == "GRPO runs train locally: choose the local backend."


# --- a run through the hub ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_grpo_run_reports_the_reward_registers_an_adapter_and_shows_its_components(member, digits_base_model,
                                                                                  client, monkeypatch):
    from apps.registry.models import ModelVersion
    from apps.training import services
    from apps.training.models import MetricPoint
    from workers.engine import rewards
    from workers.training import train_run

    def judge(completion, task):
        raise ValueError("no judge configured")

    # a component that fails in this process (a thread): it scores 0 and the page names its error
    monkeypatch.setitem(rewards.COMPONENTS, "judge", rewards.Component("judge", "Judge", "fails", "custom", judge,
                                                                       in_process=True))
    tasks = _tasks_version(member)
    run = services.run_create(user=member, dataset_version_id=tasks.pk, base_model="digits", method="grpo",
                              hyperparameters={**FAST, "reward_weights": "answer_match=0.9, judge=0.1"})
    assert run.hyperparameters["reward_weights"] == {"answer_match": 0.9, "judge": 0.1} and run.total_steps == 6
    train_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    points = [p.values for p in MetricPoint.objects.filter(run=run, kind="train").order_by("step")]
    assert len(points) == 6
    assert all(p["rewards/judge/mean"] == 0 and p["reward_errors/judge"] == 1 for p in points)
    matched = [p["rewards/answer_match/mean"] for p in points]
    assert matched[0] < 0.15 and _mean(matched[-3:]) > 0.5, matched
    assert run.summary["reward"] == pytest.approx(points[-1]["reward"])
    assert run.summary["reward_errors"]["judge"]["count"] == 6 * 32

    version = ModelVersion.objects.get(run=run)
    assert version.kind == "adapter" and version.base_model_id == "digits"
    assert version.metrics["reward"] == pytest.approx(points[-1]["reward"])
    assert version.metrics["rewards/answer_match/mean"] == pytest.approx(matched[-1])

    client.force_login(member)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    chart = page.split('id="grpo-reward-chart"')[1].split("</div>")[0]
    assert chart.count("<polyline") == 3  # the mean reward and both components, drawn on the server
    assert "js/run_rewards.js" in page and "ValueError: no judge configured" in page
    table = page.split('id="reward-components"')[1].split("</table>")[0]
    assert "answer_match" in table and "0.90" in table and "192 (scored 0)" in table
    assert json.loads(page.split('id="run-rewards" type="application/json">')[1].split("</script>")[0])[
        "components"]["answer_match"]["y"] == pytest.approx(matched)
    lora_page = client.get("/runs/new/?method=grpo").content.decode()
    assert 'value="grpo" selected' in lora_page
