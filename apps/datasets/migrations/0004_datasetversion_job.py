"""Each dataset version gets the Job (apps.core) that imports or derives it: its holder and heartbeat
move there from `worker` / `heartbeat_at`, and every existing version gets a Job matching its state."""
from django.db import migrations, models
import django.db.models.deletion


def forwards(apps, schema_editor):
    DatasetVersion = apps.get_model("datasets", "DatasetVersion")
    Job = apps.get_model("core", "Job")
    ContentType = apps.get_model("contenttypes", "ContentType")
    ct, _ = ContentType.objects.get_or_create(app_label="datasets", model="datasetversion")
    for v in DatasetVersion.objects.filter(job__isnull=True).iterator():
        derived = v.parent_id is not None
        status = {"importing": "running" if v.worker else "queued", "ready": "succeeded"}.get(v.status, "failed")
        progress = v.progress or {}
        job = Job.objects.create(
            kind="dataset.derive" if derived else "dataset.import", status=status,
            phase=progress.get("stage", "") if status in ("queued", "running") else "",
            owner_id=v.created_by_id, target_type=ct, target_id=v.pk,
            holder=v.worker if status == "running" else "", heartbeat_at=v.heartbeat_at,
            error=next((line.strip() for line in (v.error or "").splitlines() if line.strip()), "")[:500]
            if status == "failed" else "",
            error_code="E_IMPORT_FAILED" if status == "failed" else "",
            attempts=1 + int(progress.get("requeued") or 0),
            actor_name="" if derived else "import_dataset_version", queue_name="default", args=[] if derived else [v.pk],
            enqueued_at=v.created_at, started_at=v.created_at if status != "queued" else None,
            finished_at=v.created_at if status in ("succeeded", "failed") else None,
            progress={"current": progress.get("examples") or v.example_count, "total": progress.get("total"),
                      "unit": "examples"})
        Job.objects.filter(pk=job.pk).update(created_at=v.created_at)
        DatasetVersion.objects.filter(pk=v.pk).update(job=job)


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("core", "0001_job"),
        ("datasets", "0003_version_worker_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasetversion",
            name="job",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                       related_name="dataset_version", to="core.job"),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RemoveField(model_name="datasetversion", name="heartbeat_at"),
        migrations.RemoveField(model_name="datasetversion", name="worker"),
    ]
