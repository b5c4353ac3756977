"""Each training run gets its Job (apps.core): the run's holder and heartbeat move there (from
summary["worker"] and heartbeat_at), and every existing run gets a Job that matches its state."""
from django.db import migrations, models
import django.db.models.deletion

ACTOR = {"local": ("training.local", "train_run", "gpu"), "together": ("training.together", "together_run", "default")}


def _first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")[:500]


def forwards(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    Job = apps.get_model("core", "Job")
    ContentType = apps.get_model("contenttypes", "ContentType")
    ct, _ = ContentType.objects.get_or_create(app_label="training", model="trainingrun")
    for run in TrainingRun.objects.filter(job__isnull=True).iterator():
        kind, actor, queue = ACTOR.get(run.backend, ACTOR["local"])
        summary = run.summary or {}
        active = run.status in ("queued", "running")
        phase = {"queued": "queued", "running": "training"}.get(run.status, "")
        job = Job.objects.create(
            kind=kind, status=run.status, phase=phase, owner_id=run.owner_id, target_type=ct, target_id=run.pk,
            holder=(summary.get("worker") or "") if run.status == "running" and run.backend == "local" else "",
            heartbeat_at=run.heartbeat_at, cancel_requested=run.cancel_requested,
            error=_first_line(run.error) if run.status == "failed" else "",
            error_code="E_TRAIN_FAILED" if run.status == "failed" else "",
            attempts=1 + int(summary.get("resumed") or 0), actor_name=actor, queue_name=queue, args=[run.pk],
            enqueued_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
            next_poll_at=run.heartbeat_at if active and run.backend == "together" and run.remote_job_id else None,
            progress={"current": run.current_step, "total": run.total_steps, "unit": "steps"})
        Job.objects.filter(pk=job.pk).update(created_at=run.created_at)
        TrainingRun.objects.filter(pk=run.pk).update(job=job)


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("core", "0001_job"),
        ("training", "0002_checkpoint"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingrun",
            name="job",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                       related_name="training_run", to="core.job"),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RemoveField(model_name="trainingrun", name="heartbeat_at"),
    ]
