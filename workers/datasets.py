"""Dramatiq actors for datasets: big imports run on the default queue (the `worker` process).

Thin and idempotent: the actor takes a version id; `version_process` returns at once for a version
that is no longer `importing`, and starts over (deleting partial rows) when re-run.
"""
import dramatiq


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def import_dataset_version(version_id: int) -> None:
    from apps.datasets.services import version_process

    version_process(version_id=version_id, atomic=False)
