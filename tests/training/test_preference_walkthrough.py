"""The issue's "Done when", end to end on a tiny model, through the hub's own paths: a user takes review edits, runs
DPO, evaluates the result with reward components, and sees it beat its parent, with the numbers.

The story: a dataset whose answers add by multiplying ("3 plus 7 is 21.") trained v1 (a LoRA SFT run); a reviewer
corrects every answer in a review task ("3 plus 7 is 10."); the edits become preference pairs
(POST /api/reviews/{id}/preference-export), DPO continues v1 on them (POST /api/reviews/{id}/dpo, run by the real
train job function), and an evaluation (POST /api/evaluations, compare_to_version_id = v1, the job run in-process)
scores both versions on the pairs' prompts with the arithmetic preset (answer_match 0.9, length 0.1); the
evaluation's page shows both means, the difference and the per-component scores.

The tiny base model is built here and given a habit first (plain torch, one thread, ~3 s): it saw each question
answered twice with the product and once with the sum, so it multiplies but the sum is within reach — a random
tiny model learns neither the format nor the numbers in a test's few steps. Seeds are fixed (the base, the runs'
seed 42, greedy generation); across base seeds 0-4 the DPO version scored 0.775-1.0 against its parent's 0.1
(seed 0, used here: 1.0), and the DPO run's mean margin over its last three steps was 0.4-0.6."""
from __future__ import annotations

import json
import re

import pytest

from tests.factories import ApiKeyFactory, DatasetVersionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PAIRS = [(a, 10 - a) for a in range(1, 9)]  # 1 plus 9 ... 8 plus 2: every sum is 10


def _chat(a: int, b: int, answer: int) -> list[dict]:
    return [{"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a} plus {b} is {answer}."}]


@pytest.fixture(scope="module")
def habit_model_dir(tmp_path_factory):
    """A tiny base model that answers these questions with the product twice as often as with the sum."""
    import torch
    from jinja2 import Template
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.engine.tiny import CHATML_TEMPLATE, build_model

    out = tmp_path_factory.mktemp("walkthrough-base")
    wrong = [Template(CHATML_TEMPLATE).render(messages=_chat(a, b, a * b)) for a, b in PAIRS]
    right = [Template(CHATML_TEMPLATE).render(messages=_chat(a, b, a + b)) for a, b in PAIRS]
    build_model(out, size="nano", texts=wrong + right, vocab_size=300, context_length=128, seed=0)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    batch = tok(wrong * 2 + right, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~10x faster than two threads on a shared two-core machine; the same numbers
    try:
        torch.manual_seed(0)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(100):
            model(**batch, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(out)
    return out


def _post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def _mean_of(page: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}">([^<]+)<', page)
    assert m, f"#{element_id} is not on the page"
    return m.group(1)


def test_review_edits_to_dpo_to_an_evaluation_that_beats_the_parent(client, habit_model_dir):
    from apps.datasets.models import Example
    from apps.evaluations.run import evaluation_process
    from apps.registry.models import ModelVersion
    from apps.registry.services import base_model_register
    from apps.review import services as review
    from apps.training import services as training
    from apps.training.models import MetricPoint, TrainingRun
    from workers.training import train_run

    base_model_register(model_id="habits", path=str(habit_model_dir), name="Tiny model that multiplies")
    owner = UserFactory(username="owner", role="member")
    reviewer = UserFactory(username="rev", role="reviewer")
    data = DatasetVersionFactory(owner=owner, dataset__name="sums", examples=[
        {"messages": _chat(a, b, a * b)} for a, b in PAIRS])

    # v1: trained on the data as it is (the parent of everything below)
    sft = training.run_create(user=owner, dataset_version_id=data.pk, base_model="habits", hyperparameters={
        "max_steps": 6, "learning_rate": 2e-3, "warmup_ratio": 0.0, "save_steps": 1000, "batch_size": 4})
    train_run.fn(sft.pk)
    sft.refresh_from_db()
    assert sft.status == "succeeded", sft.error
    parent = ModelVersion.objects.get(run=sft)

    # 1. review edits: the reviewer corrects every answer and accepts the example
    task = review.task_create(user=owner, version_id=data.pk, name="Check the sums", overlap=1, assignees=["rev"])
    while (item := review.queue_next(user=reviewer, task_id=task.pk)) is not None:
        msgs = [dict(m) for m in item.example.messages]
        a, b = (int(w) for w in re.findall(r"\d+", msgs[0]["content"]))
        msgs[1]["content"] = f"{a} plus {b} is {a + b}."
        review.item_decide(user=reviewer, task_id=task.pk, item_id=item.pk, decision="accept", messages=msgs)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=owner).plaintext}"
    r = _post(client, f"/api/reviews/{task.pk}/preference-export", {"name": "sums, corrected"})
    assert r.status_code == 201, r.content
    export = r.json()
    assert export["pairs"] == len(PAIRS) and not any(export["skipped"].values())
    pair = Example.objects.filter(version_id=export["dataset_version_id"]).order_by("source_line").first()
    assert pair.messages[-1]["content"] == "1 plus 9 is 10." and pair.meta["review"]["reviewer"] == "rev"
    assert pair.meta["non_preferred_output"] == [{"role": "assistant", "content": "1 plus 9 is 9."}]

    # 2. DPO on the pairs, continuing v1
    r = _post(client, f"/api/reviews/{task.pk}/dpo", {"parent_version_id": parent.pk, "hyperparameters": {
        "max_steps": 12, "learning_rate": 3e-3, "beta": 0.1, "warmup_ratio": 0.0, "save_steps": 1000,
        "batch_size": 4, "eval_max_new_tokens": 4}})
    assert r.status_code == 201, r.content
    assert r.json()["method"] == "dpo" and r.json()["dataset_version_id"] == export["dataset_version_id"]
    run_id = r.json()["run_id"]
    train_run.fn(run_id)
    dpo = TrainingRun.objects.get(pk=run_id)
    assert dpo.status == "succeeded", dpo.error
    points = [p.values for p in MetricPoint.objects.filter(run_id=run_id, kind="train").order_by("step")]
    assert len(points) == 12
    margins = [p["rewards/margins"] for p in points]
    assert margins[0] == pytest.approx(0.0, abs=1e-3)  # the reference is v1 itself
    assert sum(margins[-3:]) / 3 > 0.2 and sum(p["rewards/accuracies"] for p in points[-3:]) / 3 > 0.5
    child = ModelVersion.objects.get(run_id=run_id)
    assert child.parent_id == parent.pk and child.dataset_version_id == export["dataset_version_id"]

    # 3. evaluate it with reward components on the pairs' prompts, against its parent
    tasks = [{"prompt": f"What is {a} plus {b}?", "answer": str(a + b)} for a, b in PAIRS]
    r = _post(client, "/api/evaluations", {"model_version_id": child.pk, "compare_to_version_id": parent.pk,
                                           "tasks": tasks, "preset": "arithmetic", "max_new_tokens": 12})
    assert r.status_code == 201, r.content
    ev = evaluation_process(evaluation_id=r.json()["id"])
    assert ev.status == "succeeded", ev.error
    sides, cmp_ = ev.summary["sides"], ev.summary["comparison"]["total"]
    for side in ("a", "b"):  # every answer of both versions scored per component
        assert sides[side]["n"] == len(PAIRS) and set(sides[side]["components"]) == {"answer_match", "length"}
        assert all(c["n"] == len(PAIRS) and c["mean"] is not None for c in sides[side]["components"].values())
    answers = [a for t in ev.tasks.all() for a in t.answers.all()]
    assert len(answers) == 2 * len(PAIRS) and all(set(a.components) == {"answer_match", "length"} for a in answers)

    # 4. it beats its parent, with the numbers
    child_mean, parent_mean = sides["a"]["total"], sides["b"]["total"]
    assert child_mean >= parent_mean + 0.25, (child_mean, parent_mean, [a.text for a in answers])
    assert sides["a"]["components"]["answer_match"]["mean"] > sides["b"]["components"]["answer_match"]["mean"]
    assert cmp_["n"] == len(PAIRS) and cmp_["diff"] == pytest.approx(child_mean - parent_mean) and cmp_["wins"] > 0

    client.force_login(owner)
    page = client.get(f"/evaluations/{ev.pk}/").content.decode()
    assert _mean_of(page, "total-a") == f"{child_mean:.3f}" and _mean_of(page, "total-b") == f"{parent_mean:.3f}"
    assert _mean_of(page, "total-diff") == f"{child_mean - parent_mean:+.3f}".replace("-", "−")
    assert '<span class="badge">its parent</span>' in page
    row = page.split('<span class="mono muted">answer_match</span>')[1].split("</tr>")[0]
    match = sides["a"]["components"]["answer_match"]["mean"], sides["b"]["components"]["answer_match"]["mean"]
    assert f">{match[0]:.3f}</td>" in row and f">{match[1]:.3f}</td>" in row
