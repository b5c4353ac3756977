"""The Together.ai backend against a fake Together server over real HTTP on loopback (tests/fakes)."""
from __future__ import annotations

import json

import dramatiq
import pytest

from apps.core.exceptions import ValidationFailed
from apps.registry.models import ModelVersion
from apps.training.backends import together as backend
from apps.training.models import MetricPoint, TrainingRun
from tests.fakes.together_server import FakeTogether, closed_port_url, serve
from workers.together import together_run

pytestmark = pytest.mark.django_db

HP = {"model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "suffix": "support-bot", "learning_rate": 2e-5,
      "n_epochs": 2, "batch_size": 4, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
      "lora_trainable_modules": ["q_proj", "v_proj"]}


@pytest.fixture
def fake_together(settings):
    fake = FakeTogether()
    with serve(fake):
        settings.TOGETHER_API_KEY = fake.api_key
        settings.TOGETHER_BASE_URL = fake.base_url
        settings.TOGETHER_POLL_INTERVAL_S = 0
        settings.TOGETHER_TIMEOUT_S = 5
        settings.TOGETHER_MAX_RETRIES = 2
        settings.TOGETHER_RETRY_BACKOFF_S = 0.01
        settings.TOGETHER_MAX_POLL_FAILURES = 2
        yield fake


@pytest.fixture
def broker():
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def make_run(member):
    from tests.factories import DatasetVersionFactory, TrainingRunFactory

    def _make(hyperparameters=None, n_examples=6, method="lora", **fields):
        version = DatasetVersionFactory(owner=member, dataset__name="support", examples=[{"messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": f"Question {i} <b>?</b>"},
            {"role": "assistant", "content": f"Answer {i}.", "weight": 1},
        ]} for i in range(n_examples)])
        return TrainingRunFactory(name=fields.pop("name", "remote run"), owner=member, dataset_version=version,
                                  backend="together", method=method,
                                  hyperparameters=dict(HP if hyperparameters is None else hyperparameters), **fields)

    return _make


def step_until_done(run, limit=30):
    """Call the actor's function as the worker would, recording the run's status after each step."""
    seen = []
    for _ in range(limit):
        together_run.fn(run.pk)
        run.refresh_from_db()
        seen.append(run.status)
        if not run.is_active:
            return seen
    raise AssertionError(f"run still {run.status} after {limit} steps: {seen}")


# --- success ------------------------------------------------------------------------------------------
def test_success_end_to_end(fake_together, make_run, broker, django_capture_on_commit_callbacks):
    run = make_run()

    with django_capture_on_commit_callbacks(execute=True):
        together_run.fn(run.pk)
    run.refresh_from_db()

    # exported, uploaded and submitted with the run's hyperparameters
    assert run.remote_job_id.startswith("ft-")
    assert run.status == "queued"
    (upload,) = fake_together.files.values()
    rows = [json.loads(line) for line in upload["content"].splitlines()]
    assert len(rows) == 6 and rows[0]["messages"][1] == {"role": "user", "content": "Question 0 <b>?</b>"}
    exported = (run.summary["remote_file"])
    assert exported == f"remote/{run.pk}/train.jsonl"
    job = fake_together.jobs[run.remote_job_id]
    sent = job["request"]
    assert sent["training_file"] == upload["id"]
    assert sent["model"] == HP["model"] and sent["suffix"] == "support-bot"
    assert sent["n_epochs"] == 2 and sent["learning_rate"] == 2e-5 and sent["batch_size"] == 4
    assert sent["training_type"] == {"type": "Lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                     "lora_trainable_modules": "q_proj,v_proj"}
    # the next poll is scheduled through the broker with a delay, not a sleep
    delayed = broker.queues["default.DQ"]
    assert delayed.qsize() == 1

    seen = step_until_done(run)
    assert "running" in seen and seen[-1] == "succeeded", seen
    assert run.error == ""
    assert run.started_at and run.finished_at
    assert run.total_steps == job["total_steps"] == 4 and run.current_step == 4
    assert run.summary["remote_status"] == "completed"

    version = ModelVersion.objects.get(run=run)
    assert version.kind == "remote"
    assert version.remote_model_id == job["model_output_name"]
    assert version.dataset_version_id == run.dataset_version_id
    assert version.hyperparameters == HP
    assert run.summary["model_version_id"] == version.pk

    remote = MetricPoint.objects.filter(run=run, kind="remote")
    assert remote.count() == len(fake_together.events[run.remote_job_id])  # every event once, no duplicates
    losses = list(MetricPoint.objects.filter(run=run, kind="train").order_by("step").values_list("values", flat=True))
    assert losses and all("loss" in v for v in losses)
    assert losses[-1]["loss"] < losses[0]["loss"]

    # idempotent: a stray message for a finished run does nothing
    before = len(fake_together.requests)
    together_run.fn(run.pk)
    assert len(fake_together.requests) == before
    assert fake_together.calls("POST", "/v1/fine-tunes") == 1


def test_redelivered_message_polls_instead_of_resubmitting(fake_together, make_run):
    run = make_run()
    together_run.fn(run.pk)
    together_run.fn(run.pk)
    assert fake_together.calls("POST", "/v1/files/upload") == 1
    assert fake_together.calls("POST", "/v1/fine-tunes") == 1
    assert fake_together.calls("GET", r"/v1/fine-tunes/ft-[^/]+") == 1


def test_full_fine_tune_and_defaults(fake_together, make_run):
    run = make_run(hyperparameters={"model": "Qwen/Qwen3-8B"}, method="full")
    together_run.fn(run.pk)
    sent = fake_together.jobs[TrainingRun.objects.get(pk=run.pk).remote_job_id]["request"]
    assert sent["training_type"] == {"type": "Full"}
    assert sent["n_epochs"] == 1 and sent["batch_size"] == "max" and sent["learning_rate"] == 1e-5
    assert "suffix" not in sent


# --- failure ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("final", ["error", "user_error"])
def test_remote_job_error_fails_run_with_remote_message(fake_together, make_run, final):
    fake_together.script = ["pending", "running", final]
    fake_together.error_message = "Training failed: CUDA out of memory on the remote worker"
    run = make_run()
    seen = step_until_done(run)
    assert seen[-1] == "failed"
    assert run.remote_job_id in run.error
    assert "CUDA out of memory on the remote worker" in run.error
    assert run.finished_at is not None
    assert not ModelVersion.objects.filter(run=run).exists()


def test_upload_server_error_fails_run_after_bounded_retries(fake_together, make_run):
    fake_together.fail("POST", "/v1/files/upload", 500)
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Uploading the training file to Together.ai failed" in run.error
    assert "Together API error 500" in run.error and "Simulated failure 500" in run.error
    assert fake_together.calls("POST", "/v1/files/upload") == 3  # 1 + TOGETHER_MAX_RETRIES
    assert fake_together.calls("POST", "/v1/fine-tunes") == 0


def test_transient_errors_are_retried(fake_together, make_run):
    fake_together.fail("POST", "/v1/files/upload", 503, times=1)
    fake_together.fail("POST", "/v1/fine-tunes", 429, times=1)
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "queued" and run.remote_job_id and run.error == ""
    assert fake_together.calls("POST", "/v1/files/upload") == 2
    assert fake_together.calls("POST", "/v1/fine-tunes") == 2
    assert len(fake_together.jobs) == 1


def test_create_job_500_is_not_retried(fake_together, make_run):
    """A 500 on job creation may still have created a job: no blind retry, the run fails."""
    fake_together.fail("POST", "/v1/fine-tunes", 500)
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith("Creating the fine-tuning job on Together.ai failed: Together API error 500")
    assert fake_together.calls("POST", "/v1/fine-tunes") == 1


def test_upload_timeout_fails_run_with_clear_message(fake_together, make_run, settings):
    settings.TOGETHER_TIMEOUT_S = 0.2
    settings.TOGETHER_MAX_RETRIES = 1
    fake_together.hang_s = 1.0
    fake_together.fail("POST", "/v1/files/upload", "hang")
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert f"Together API unreachable at {fake_together.base_url}: timeout after 0.2s" in run.error


def test_status_poll_timeouts_fail_the_run_after_the_limit(fake_together, make_run, settings):
    run = make_run()
    together_run.fn(run.pk)  # submitted
    settings.TOGETHER_TIMEOUT_S = 0.2
    settings.TOGETHER_MAX_RETRIES = 0
    fake_together.hang_s = 1.0
    fake_together.fail("GET", r"/v1/fine-tunes/.*", "hang")

    together_run.fn(run.pk)  # first failed poll: kept, retried later
    run.refresh_from_db()
    assert run.status == "queued"
    assert run.summary["remote_poll_failures"] == 1
    assert "timeout after 0.2s" in run.summary["remote_last_error"]

    together_run.fn(run.pk)  # second in a row (TOGETHER_MAX_POLL_FAILURES=2): the run fails
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Together API unreachable" in run.error and "timeout after 0.2s" in run.error
    assert "2 status checks in a row failed" in run.error and run.remote_job_id in run.error


def test_one_failed_poll_then_recovery(fake_together, make_run):
    run = make_run()
    together_run.fn(run.pk)
    fake_together.fail("GET", r"/v1/fine-tunes/.*", 502, times=3)  # 1 + 2 retries inside one poll
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.is_active and run.summary["remote_poll_failures"] == 1
    seen = step_until_done(run)
    assert seen[-1] == "succeeded"


def test_unreachable_server_fails_run(fake_together, make_run, settings):
    settings.TOGETHER_BASE_URL = closed_port_url()
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert f"Together API unreachable at {settings.TOGETHER_BASE_URL}: cannot connect" in run.error


def test_wrong_api_key_fails_at_once(fake_together, make_run, settings):
    settings.TOGETHER_API_KEY = "wrong"
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "401" in run.error and "Invalid API key" in run.error
    assert fake_together.calls("POST", "/v1/files/upload") == 1  # auth errors are not retried


def test_missing_api_key(fake_together, make_run, settings):
    settings.TOGETHER_API_KEY = None
    with pytest.raises(ValidationFailed) as info:
        backend.together_check_configured()
    assert info.value.field == "backend" and "TOGETHER_API_KEY" in info.value.message

    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "TOGETHER_API_KEY" in run.error
    assert fake_together.requests == []


def test_bad_hyperparameters_fail_before_any_upload(fake_together, make_run):
    run = make_run(hyperparameters={"model": "", "learning_rate": -1, "batch_size": 0})
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Cannot run this on Together.ai" in run.error and "model:" in run.error and "learning_rate:" in run.error and "batch_size:" in run.error
    assert fake_together.requests == []


def test_empty_dataset_fails_clearly(fake_together, make_run):
    run = make_run(n_examples=0)
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "no training examples" in run.error
    assert fake_together.requests == []


def test_remote_rejects_the_file(fake_together, make_run):
    run = make_run()
    run.dataset_version.examples.update(messages=[{"role": "narrator", "content": "x"}])
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "Together API error 400" in run.error and "Line 1" in run.error


# --- cancel -------------------------------------------------------------------------------------------
def test_cancel_running_job(fake_together, make_run):
    fake_together.script = ["pending", "running", "running", "running", "running", "completed"]
    run = make_run()
    together_run.fn(run.pk)  # submit
    together_run.fn(run.pk)  # -> running
    run.refresh_from_db()
    assert run.status == "running"

    run = backend.together_run_cancel(run=run)
    assert fake_together.calls("POST", r"/v1/fine-tunes/ft-[^/]+/cancel") == 1
    assert run.cancel_requested and run.status == "running"  # not confirmed by Together yet
    assert run.summary["remote_status"] == "cancel_requested"

    seen = step_until_done(run)
    assert seen == ["cancelled"]
    assert run.finished_at is not None and run.error == ""
    assert fake_together.jobs[run.remote_job_id]["status"] == "cancelled"
    assert not ModelVersion.objects.filter(run=run).exists()


def test_cancel_before_submission_is_immediate(fake_together, make_run):
    run = make_run()
    run = backend.together_run_cancel(run=run)
    assert run.status == "cancelled" and run.finished_at is not None
    together_run.fn(run.pk)  # the queued message arrives later: nothing is submitted
    assert fake_together.requests == []


def test_cancel_that_did_not_reach_together_is_resent_by_the_poll(fake_together, make_run):
    fake_together.script = ["pending", "running", "running", "running", "completed"]
    run = make_run()
    together_run.fn(run.pk)
    fake_together.fail("POST", r"/v1/fine-tunes/.*/cancel", 500, times=3)
    run = backend.together_run_cancel(run=run)
    assert run.cancel_requested and run.is_active
    assert "Cancel not confirmed yet" in run.summary["remote_last_error"]
    seen = step_until_done(run)
    assert seen[-1] == "cancelled"
    assert fake_together.calls("POST", r"/v1/fine-tunes/ft-[^/]+/cancel") == 4


# --- pure functions -----------------------------------------------------------------------------------
def test_estimate_cost(settings):
    settings.TOGETHER_PRICE_PER_MTOK = 0.5
    est = backend.estimate_cost(tokens=2_000_000, epochs=3, model="m")
    assert est["billed_tokens"] == 6_000_000 and est["cost_usd"] == 3.0 and est["price_per_mtok_usd"] == 0.5
    with pytest.raises(ValidationFailed) as info:
        backend.estimate_cost(tokens=-1, epochs=1, model="m")
    assert info.value.field == "tokens"
    with pytest.raises(ValidationFailed) as info:
        backend.estimate_cost(tokens=10, epochs=0, model="m")
    assert info.value.field == "n_epochs"


def test_job_request_validation():
    with pytest.raises(ValidationFailed) as info:
        backend.together_job_request(hyperparameters={"model": "m", "learning_rate": 0, "n_epochs": 0,
                                                      "batch_size": 0, "lora_r": 0, "suffix": "x" * 41})
    fields = {e["field"] for e in info.value.errors}
    assert fields == {"learning_rate", "n_epochs", "batch_size", "lora_r", "suffix"}
    with pytest.raises(ValidationFailed) as info:
        backend.together_job_request(hyperparameters={"model": "m"}, method="scratch")
    assert info.value.errors[0]["field"] == "method"


def test_parse_event_metrics():
    assert backend.parse_event_metrics("Step 12/40: train loss 1.234") == (12, {"loss": 1.234})
    assert backend.parse_event_metrics("Epoch completed, at step 24") == (24, {})
    assert backend.parse_event_metrics("Evaluation at step 5: validation loss 2.5e-1") == (5, {"eval_loss": 0.25})
    assert backend.parse_event_metrics("Job started") == (None, {})


def test_state_map_covers_togethers_statuses():
    statuses = ["pending", "queued", "running", "compressing", "uploading", "completed", "error",
                "cancel_requested", "cancelled", "user_error"]
    assert set(backend.REMOTE_STATUS_MAP) == set(statuses)
    assert {backend.REMOTE_STATUS_MAP[s] for s in statuses} == {"queued", "running", "succeeded", "failed",
                                                                "cancelled"}


# --- robustness -------------------------------------------------------------------------------------------
def test_concurrent_duplicate_message_does_not_submit_twice(fake_together, make_run):
    from django.utils import timezone

    from apps.core.jobs.services import job_claim
    from apps.core.models import Job
    from apps.training.services import run_job_id

    run = make_run()
    job_claim(job_id=run_job_id(run), holder="elsewhere:1")  # another worker is submitting it
    Job.objects.filter(pk=run_job_id(run)).update(heartbeat_at=timezone.now())
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "queued" and run.remote_job_id == ""
    assert fake_together.requests == []


def test_reconcile_requeues_runs_whose_poll_was_lost(fake_together, make_run, broker,
                                                     django_capture_on_commit_callbacks):
    """Regression: nothing ever scheduled a reconcile, so a lost poll message stalled a remote run for ever.
    Now each step records when the next poll is due, and the job reconciler (worker boot + every 30 s)
    sends the poll again once it is overdue by the kind's stall timeout."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.jobs.reconcile import job_reconcile
    from apps.core.models import Job

    run = make_run()
    together_run.fn(run.pk)  # submitted; the delayed poll message is then lost
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert job.status == "running" and job.holder == "" and job.next_poll_at is not None
    assert job_reconcile(kinds=["training.together"]) == []  # its next poll is due: not stalled
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now() - timedelta(hours=1))
    fresh = make_run(name="fresh")
    together_run.fn(fresh.pk)  # submitted too, next poll due now: left alone
    broker.flush_all()
    with django_capture_on_commit_callbacks(execute=True):
        assert [(j.target_id, a) for j, a in job_reconcile(kinds=["training.together"])] == [(run.pk, "resent")]
    assert broker.queues["default"].qsize() == 1
    assert step_until_done(TrainingRun.objects.get(pk=run.pk))[-1] == "succeeded"


def test_the_poll_reconciler_is_scheduled_every_30_seconds():
    """The periodic reconcile is on dramatiq-crontab's schedule (the `scheduler` Procfile process)."""
    from pathlib import Path

    from dramatiq_crontab import scheduler

    import workers.periodic  # noqa: F401

    jobs = {j.name: j for j in scheduler.get_jobs()}
    assert "jobs_reconcile" in jobs
    assert jobs["jobs_reconcile"].trigger.interval.total_seconds() == 30
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    assert "scheduler: python manage.py crontab" in procfile


@pytest.mark.django_db(transaction=True)
def test_through_a_real_dramatiq_worker(fake_together, make_run, broker):
    """The actor, its delayed re-enqueue and the broker together: one send, the worker does the rest."""
    import time

    run = make_run()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        together_run.send(run.pk)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if not run.is_active:
                break
            time.sleep(0.05)
    finally:
        worker.stop()
    assert run.status == "succeeded", (run.status, run.error)
    assert ModelVersion.objects.filter(run=run, kind="remote").exists()
    assert fake_together.calls("GET", r"/v1/fine-tunes/ft-[^/]+") == len(fake_together.script) - 1


def test_job_request_accepts_the_training_services_keys():
    """run_create stores epochs (float), target_modules, batch_size: they map onto Together's fields."""
    body = backend.together_job_request(hyperparameters={"model": "m", "epochs": 3.0, "batch_size": 8,
                                                         "target_modules": "q_proj,k_proj", "learning_rate": 2e-4,
                                                         "max_seq_len": 512, "max_steps": 0})
    assert body["n_epochs"] == 3 and body["batch_size"] == 8
    assert body["training_type"]["lora_trainable_modules"] == "q_proj,k_proj"
    with pytest.raises(ValidationFailed) as info:
        backend.together_job_request(hyperparameters={"model": "m", "epochs": 0.5}, field_prefix="hyperparameters.")
    assert info.value.errors == [{"field": "hyperparameters.epochs",
                                  "message": "Epochs must be a whole number from 1 to 100 (got 0.5)."}]


def test_progress_and_status_are_broadcast(fake_together, make_run, django_capture_on_commit_callbacks):
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from apps.core.realtime import run_group

    run = make_run()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(run_group(run.pk), channel)
    for _ in range(len(fake_together.script)):
        with django_capture_on_commit_callbacks(execute=True):
            together_run.fn(run.pk)
    async def drain():
        received = []
        while True:
            try:
                received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.1))
            except asyncio.TimeoutError:
                return received

    events = async_to_sync(drain)()
    names = [m["event"] for m in events]
    assert "progress" in names and names[-1] == "status"
    assert events[-1]["payload"]["status"] == "succeeded"
    progress = [m["payload"] for m in events if m["event"] == "progress"]
    assert any(p["status"] == "running" and any(pt["kind"] == "train" and "loss" in pt for pt in p["points"])
               for p in progress)


def test_step_over_the_time_limit_fails_the_run(fake_together, make_run, monkeypatch):
    from dramatiq.middleware.time_limit import TimeLimitExceeded

    run = make_run()

    def interrupted(**kwargs):
        raise TimeLimitExceeded()

    monkeypatch.setattr(backend, "together_run_step", interrupted)
    with pytest.raises(TimeLimitExceeded):
        together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "took longer than 30 minutes" in run.error


def test_only_the_train_split_is_sent_to_together(fake_together, make_run):
    """Regression: the export had no split filter, so Together trained on the validation split too."""
    run = make_run(n_examples=6)
    run.dataset_version.examples.filter(index__gte=4).update(split="validation")
    together_run.fn(run.pk)
    (upload,) = fake_together.files.values()
    rows = [json.loads(line) for line in upload["content"].splitlines()]
    assert [r["messages"][1]["content"] for r in rows] == [f"Question {i} <b>?</b>" for i in range(4)]
    run.refresh_from_db()
    assert run.summary["remote_file_lines"] == 4


def test_remote_run_phases_and_one_line_error_code(fake_together, make_run):
    """A remote run's job moves through submitting -> queued -> training and ends with a coded error."""
    from apps.core.models import Job

    fake_together.script = ["pending", "running", "error"]
    fake_together.error_message = "Training failed: bad data\n  at /srv/together/worker.py line 3"
    run = make_run()
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert Job.objects.get(pk=run.job_id).phase == "queued" and run.status == "queued"
    together_run.fn(run.pk)
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert job.phase == "training" and run.status == "running" and job.progress["unit"] == "steps"
    step_until_done(run)
    job.refresh_from_db()
    assert run.status == job.status == "failed" and job.error_code == "E_TOGETHER_JOB_ERROR"
    assert "\n" not in run.error and "/srv/together" not in run.error and "bad data" in run.error


# --- preference training (DPO) -------------------------------------------------------------------------
REJECTED = [{"role": "assistant", "content": "I do not know."}]


def _dpo_run(member, *, hyperparameters=None, pairs=True):
    """A Together DPO run on a version of 4 train pairs, 1 plain train chat and 2 validation pairs."""
    from apps.datasets.models import Example
    from tests.factories import DatasetVersionFactory, TrainingRunFactory, qa_example

    version = DatasetVersionFactory(owner=member, dataset__name="prefs", examples=[qa_example(i) for i in range(5)],
                                    examples__validation=[qa_example(i) for i in range(5, 7)])
    if pairs:
        Example.objects.filter(version=version).update(
            meta={"kind": "preference", "non_preferred_output": REJECTED})
        Example.objects.filter(version=version, index=4).update(meta={"kind": "chat"})
    hp = {"model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "beta": 0.25}
    return TrainingRunFactory(name="remote dpo", owner=member, dataset_version=version, backend="together",
                              method="dpo", hyperparameters=hp if hyperparameters is None else hyperparameters)


def test_dpo_run_sends_training_method_dpo_and_preference_rows(fake_together, member):
    run = _dpo_run(member)
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status in ("queued", "running"), run.error
    sent = fake_together.jobs[run.remote_job_id]["request"]
    assert sent["training_method"] == {"method": "dpo", "dpo_beta": 0.25}
    assert sent["training_type"]["type"] == "Lora" and sent["training_type"]["lora_r"] == 8
    assert "dpo_beta" not in sent and "beta" not in sent
    (upload,) = fake_together.files.values()
    rows = [json.loads(line) for line in upload["content"].splitlines()]
    # the train split's pairs only: the plain chat (index 4) and the validation pairs are left out
    assert [r["input"]["messages"] for r in rows] == [
        [{"role": "user", "content": f"What is {i} plus {i}?"}] for i in range(4)]
    assert [r["preferred_output"] for r in rows] == [
        [{"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}] for i in range(4)]
    assert all(r["non_preferred_output"] == REJECTED and set(r) == {"input", "preferred_output",
                                                                    "non_preferred_output"} for r in rows)
    assert run.summary["remote_file_lines"] == 4


def test_dpo_beta_defaults_and_is_read_under_togethers_name(fake_together, member):
    from apps.training.backends.together import together_job_request

    body = together_job_request(hyperparameters={"model": "m"}, method="dpo")
    assert body["training_method"] == {"method": "dpo", "dpo_beta": 0.1}
    body = together_job_request(hyperparameters={"model": "m", "dpo_beta": 0.5}, method="dpo")
    assert body["training_method"] == {"method": "dpo", "dpo_beta": 0.5}
    assert body["training_type"]["type"] == "Lora"
    with pytest.raises(ValidationFailed) as info:
        together_job_request(hyperparameters={"model": "m", "beta": 0}, method="dpo",
                             field_prefix="hyperparameters.")
    assert [e["field"] for e in info.value.errors] == ["hyperparameters.beta"]
    # beta is a DPO setting: supervised runs neither send nor check it
    for method in ("lora", "full"):
        body = together_job_request(hyperparameters={"model": "m", "beta": 0}, method=method)
        assert body["training_method"] == {"method": "sft"} and "dpo_beta" not in body


def test_dpo_run_with_a_bad_beta_fails_before_any_upload(fake_together, member):
    run = _dpo_run(member, hyperparameters={"model": "m", "beta": -1})
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "beta" in run.error.lower()
    assert fake_together.calls("POST", "/v1/files/upload") == 0


def test_dpo_run_on_a_version_without_pairs_fails_clearly(fake_together, member):
    run = _dpo_run(member, pairs=False)
    together_run.fn(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "no preference pairs" in run.error and "non_preferred_output" in run.error
    assert fake_together.calls("POST", "/v1/files/upload") == 0


def test_sft_run_still_sends_sft_and_messages_rows(fake_together, make_run):
    run = make_run(hyperparameters={**HP, "beta": 0.3})
    together_run.fn(run.pk)
    run.refresh_from_db()
    sent = fake_together.jobs[run.remote_job_id]["request"]
    assert sent["training_method"] == {"method": "sft"} and "dpo_beta" not in sent
    (upload,) = fake_together.files.values()
    assert all("messages" in json.loads(line) and "non_preferred_output" not in json.loads(line)
               for line in upload["content"].splitlines())
