"""Upload → train a few steps on a tiny model → deploy → chat through /v1 with the official openai client,
against the real processes."""
import openai
import pytest

from tests.e2e.conftest import chat_jsonl, upload_ready, wait_run

pytestmark = [pytest.mark.e2e]


def _assert_job_succeeded(c, kind: str, target_id: int) -> None:
    """The Jobs API lists the job of `kind` for `target_id`, finished succeeded (imports parsed in the request
    and those the worker imported both have one)."""
    r = c.get("/api/jobs", params={"kind": kind, "limit": 500})
    assert r.status_code == 200, r.text
    jobs = [j for j in r.json() if j["target"]["id"] == target_id]
    assert len(jobs) == 1 and jobs[0]["status"] == "succeeded", (kind, target_id, jobs)


def run_whole_loop(stack, alias: str = "e2e") -> None:
    c = stack.client()
    version_id = upload_ready(c, "e2e arithmetic", "arith.jsonl", chat_jsonl(40))
    _assert_job_succeeded(c, "dataset.import", version_id)

    r = c.post("/api/runs", json={"dataset_version_id": version_id, "base_model": "tiny",
                                  "hyperparameters": {"max_steps": 12, "batch_size": 4, "learning_rate": 3e-3,
                                                      "max_seq_len": 256, "lora_r": 8}})
    assert r.status_code in (200, 201), r.text
    run = r.json()
    done = wait_run(c, run["id"])
    assert done["status"] == "succeeded", (done, stack.logs())
    assert done["model_version_id"]
    _assert_job_succeeded(c, "training.local", run["id"])
    points = c.get(f"/api/runs/{run['id']}/metrics", params={"kind": "train"}).json()
    losses = [p["loss"] for p in points if p.get("loss") is not None]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses

    r = c.post(f"/api/models/{done['model_version_id']}/deploy", json={"alias": alias})
    assert r.status_code == 200, r.text

    oa = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=stack.api_key, max_retries=0)
    models = [m.id for m in oa.models.list().data]
    assert alias in models
    resp = oa.chat.completions.create(model=alias, messages=[{"role": "user", "content": "What is 2 plus 3?"}],
                                      max_tokens=8, temperature=0)
    assert resp.object == "chat.completion"
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.completion_tokens >= 1

    stream = oa.chat.completions.create(model=alias, messages=[{"role": "user", "content": "What is 2 plus 3?"}],
                                        max_tokens=8, temperature=0, stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == resp.choices[0].message.content  # greedy: the same answer streamed and not

    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    bad = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="th_wrong_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=alias, messages=[{"role": "user", "content": "hi"}])


def test_whole_loop_through_real_processes(stack):
    run_whole_loop(stack)
