"""run_create / cancel validation and permissions (no training here)."""
from __future__ import annotations

import pytest

from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from apps.training import services
from apps.training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _fields(exc) -> set[str]:
    return {e["field"] for e in exc.value.errors}


def test_create_queues_a_run_after_commit(member, qa_version, tiny_base_model, django_capture_on_commit_callbacks,
                                          fresh_broker):
    broker = fresh_broker
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                  hyperparameters={"max_steps": 5, "lora_r": 4})
    assert run.status == "queued"
    assert run.hyperparameters["lora_r"] == 4
    assert run.hyperparameters["learning_rate"] == services.DEFAULT_LR["lora"]
    assert run.summary["estimate"]["steps"] == 5
    assert run.summary["estimate"]["dataset_tokens"] > 0
    msgs = broker.queues["gpu"].qsize()
    assert msgs == 1


@pytest.mark.parametrize("hp,field", [
    ({"learning_rate": -0.1}, "hyperparameters.learning_rate"),
    ({"batch_size": 0}, "hyperparameters.batch_size"),
    ({"lora_r": 65}, "hyperparameters.lora_r"),  # nano hidden size is 64
    ({"max_steps": -1}, "hyperparameters.max_steps"),
    ({"epochs": 0}, "hyperparameters.epochs"),
    ({"max_seq_len": 100000}, "hyperparameters.max_seq_len"),
    ({"lr_scheduler": "zigzag"}, "hyperparameters.lr_scheduler"),
    ({"bogus": 1}, "hyperparameters.bogus"),
    ({"batch_size": "x"}, "hyperparameters.batch_size"),
])
def test_bad_hyperparameters_are_refused_with_field_messages(member, qa_version, tiny_base_model, hp, field):
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny", hyperparameters=hp)
    assert field in _fields(exc)
    assert TrainingRun.objects.count() == 0


def test_several_errors_reported_at_once(member, qa_version, tiny_base_model):
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="nope", method="wat",
                            hyperparameters={"batch_size": 0})
    assert {"base_model", "method", "hyperparameters.batch_size"} <= _fields(exc)


def test_unknown_base_model_and_missing_dataset(member, qa_version, tiny_base_model):
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="no-such-model")
    assert "base_model" in _fields(exc)
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=999999, base_model="tiny")
    assert "dataset_version_id" in _fields(exc)


def test_dataset_version_with_validation_errors_is_refused(member, qa_version_factory, tiny_base_model):
    bad = qa_version_factory(errors=[{"line": 3, "message": "no assistant turn"}])
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=bad.pk, base_model="tiny")
    assert "dataset_version_id" in _fields(exc)
    assert "validation error" in exc.value.errors[0]["message"]


def test_too_long_examples_need_truncation_consent(member, qa_version, tiny_base_model):
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                            hyperparameters={"max_seq_len": 16})
    assert "hyperparameters.max_seq_len" in _fields(exc)
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                              hyperparameters={"max_seq_len": 16}, allow_truncation=True)
    assert run.hyperparameters["allow_truncation"] is True


def test_dataset_id_picks_latest_ready_version(member, qa_version, tiny_base_model):
    run = services.run_create(user=member, dataset_id=qa_version.dataset_id, base_model="tiny")
    assert run.dataset_version_id == qa_version.pk


def test_scratch_shows_parameter_count(member, qa_version):
    from workers.engine.tiny import count_parameters

    est = services.run_create(user=member, dataset_version_id=qa_version.pk, method="scratch",
                              hyperparameters={"size": "micro", "vocab_size": 1000}, dry_run=True)
    assert est["estimate"]["parameters"] == count_parameters("micro", 1000)
    assert TrainingRun.objects.count() == 0


def test_cancel_permissions_and_states(member, make_user, admin_user, qa_version, tiny_base_model):
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    other = make_user("other", "member")
    with pytest.raises(PermissionDenied):
        services.run_request_cancel(user=other, run_id=run.pk)
    run = services.run_request_cancel(user=admin_user, run_id=run.pk)
    assert run.status == "cancelled"  # queued: cancelled at once
    with pytest.raises(Conflict):
        services.run_request_cancel(user=member, run_id=run.pk)


def test_queue_position(member, qa_version, tiny_base_model):
    from apps.training.selectors import run_queue_position

    a = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    b = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
    assert run_queue_position(a) == 1
    assert run_queue_position(b) == 2


def test_tokens_per_second_default_and_measured(member, qa_version, tiny_base_model):
    from apps.training.services import DEFAULT_TOKENS_PER_S, tokens_per_second

    assert tokens_per_second(None) == DEFAULT_TOKENS_PER_S
    for tps in (100.0, 300.0, 200.0):
        run = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny")
        TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", summary={"tokens_per_s": tps})
    assert tokens_per_second("tiny") == 200.0


def test_continue_requires_matching_method_and_lowers_lr(member, qa_version, tiny_base_model, tiny_model_dir):
    from apps.registry.services import model_version_register

    full = model_version_register(name="full", kind="full", base_model=tiny_base_model, source_dir=tiny_model_dir)
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, method="lora", parent_version_id=full.pk)
    assert "method" in _fields(exc)
    run = services.run_create(user=member, dataset_version_id=qa_version.pk, method="full", parent_version_id=full.pk)
    assert run.hyperparameters["learning_rate"] == services.DEFAULT_LR["full"] * services.CONTINUE_LR_FACTOR
    assert run.base_model_id == "tiny"


def test_together_backend_dispatches_remote_actor(member, qa_version, settings, django_capture_on_commit_callbacks,
                                                  fresh_broker):
    settings.TOGETHER_API_KEY = "test-key"
    broker = fresh_broker
    with django_capture_on_commit_callbacks(execute=True):
        run = services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together",
                                  base_model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
                                  hyperparameters={"n_epochs": 2, "learning_rate": 1e-5})
    assert run.backend == "together" and run.base_model is None
    assert run.hyperparameters["model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert run.summary["estimate"]["cost"]["epochs"] == 2
    from dramatiq import Message

    sent = [Message.decode(m) for q in broker.queues.values() for m in list(q.queue)]
    assert [(m.actor_name, m.args) for m in sent] == [("together_run", (run.pk,))]
    run = services.run_request_cancel(user=member, run_id=run.pk)  # never submitted: cancelled at once
    assert run.status == "cancelled"


def test_together_backend_validation(member, qa_version, settings):
    settings.TOGETHER_API_KEY = ""
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together", base_model="m")
    assert "backend" in _fields(exc)
    settings.TOGETHER_API_KEY = "k"
    with pytest.raises(ValidationFailed) as exc:
        services.run_create(user=member, dataset_version_id=qa_version.pk, backend="together", base_model="m",
                            method="scratch")
    assert "method" in _fields(exc)


@pytest.mark.django_db(transaction=True)  # real commits: on_commit callbacks fire when each transaction ends
def test_relaunch_sends_its_message_only_after_the_checkpoint_is_copied(member, qa_version, tiny_base_model,
                                                                           settings, monkeypatch):
    """Regression: the relaunched run's message went out when run_create committed, before the checkpoint
    was copied and its Checkpoint row written, so a fast worker could start training from step 0."""
    from django.db import transaction

    from apps.core.jobs import enqueue as enqueue_module
    from apps.training.models import Checkpoint

    source = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                 hyperparameters={"max_steps": 8})
    ckpt_dir = settings.ARTIFACT_ROOT / source.output_dir / "stage-0" / "checkpoint-4"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "adapter_model.safetensors").write_bytes(b"weights")
    ckpt = Checkpoint.objects.create(run=source, step=4, stage=0, path=str(ckpt_dir.relative_to(settings.ARTIFACT_ROOT)))

    seen: list[dict] = []

    def observe(actor_name, run_id):
        rows = list(Checkpoint.objects.filter(run_id=run_id).values_list("step", "path"))
        run = TrainingRun.objects.get(pk=run_id)
        seen.append({"actor": actor_name, "run_id": run_id, "checkpoints": rows,
                     "on_disk": [(settings.ARTIFACT_ROOT / p / "adapter_model.safetensors").is_file() for _, p in rows],
                     "relaunched_from": (run.summary or {}).get("relaunched_from")})

    def fake_enqueue(actor_name, *args, queue_name=None, delay_ms=None, on_commit=True, **kwargs):
        send = lambda: observe(actor_name, *args)  # noqa: E731 - what a worker would find when the message arrives
        transaction.on_commit(send) if on_commit else send()

    monkeypatch.setattr(enqueue_module, "enqueue", fake_enqueue)
    new = services.run_relaunch(user=member, run_id=source.pk, checkpoint_id=ckpt.pk)

    sent = [s for s in seen if s["run_id"] == new.pk]
    assert len(sent) == 1 and sent[0]["actor"] == "train_run"
    assert [step for step, _ in sent[0]["checkpoints"]] == [4] and sent[0]["on_disk"] == [True]
    assert sent[0]["relaunched_from"] == {"run_id": source.pk, "checkpoint_id": ckpt.pk, "step": 4}
    new.refresh_from_db()
    assert new.status == "queued" and new.job.status == "queued" and new.job.enqueued_at is not None


@pytest.mark.django_db(transaction=True)
def test_relaunch_that_cannot_copy_fails_its_run_and_sends_nothing(member, qa_version, tiny_base_model, settings,
                                                                    monkeypatch):
    """A copy that fails (disk full, permissions) leaves a failed run with a one-line error, never a queued
    run that a worker (or the lost-message reconciler) would train from scratch."""
    import shutil as shutil_module

    from apps.core.exceptions import ApplicationError
    from apps.core.jobs import enqueue as enqueue_module
    from apps.training.models import Checkpoint

    source = services.run_create(user=member, dataset_version_id=qa_version.pk, base_model="tiny",
                                 hyperparameters={"max_steps": 8})
    ckpt_dir = settings.ARTIFACT_ROOT / source.output_dir / "stage-0" / "checkpoint-4"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "adapter_model.safetensors").write_bytes(b"weights")
    ckpt = Checkpoint.objects.create(run=source, step=4, stage=0, path=str(ckpt_dir.relative_to(settings.ARTIFACT_ROOT)))
    sent: list = []
    monkeypatch.setattr(enqueue_module, "enqueue", lambda actor_name, *args, **kw: sent.append((actor_name, args)))

    def copytree(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil_module, "copytree", copytree)
    with pytest.raises(ApplicationError) as exc:
        services.run_relaunch(user=member, run_id=source.pk, checkpoint_id=ckpt.pk)
    assert "No space left on device" in exc.value.message
    new = TrainingRun.objects.exclude(pk=source.pk).get()
    assert new.status == "failed" and "No space left on device" in new.error and "\n" not in new.error
    assert new.job.status == "failed" and new.job.error_code == "E_RELAUNCH_COPY"
    assert sent == []
