"""Job kind "traffic.export" (registered with apps.core.jobs): proxy requests become a new dataset version.

Its target is the DatasetVersion being made, so the dataset hooks keep that version in step (importing ->
ready | failed, examples deleted on failure: apps.datasets.jobs). Small selections run inline in the web
request; the rest, and capture-rule batches, run on the `default` queue (workers.traffic.traffic_export).
Idempotent: the selection is frozen in the TrafficExport row (ids, or the filter plus the newest log id),
so a dead holder's export is queued again and starts over.
"""
from __future__ import annotations

import time

from apps.core.jobs.registry import REQUEUE, register_kind
from apps.datasets.jobs import _VersionKind, version_of
from apps.datasets.models import DatasetVersion


@register_kind
class TrafficExportKind(_VersionKind):
    kind = "traffic.export"
    label = "Proxy traffic → dataset"
    actor_name = "traffic_export"
    queue_name = "default"
    max_attempts = 4
    phases = ("queued", "converting", "validating")

    def on_claim(self, job) -> None:
        job.phase = "converting"

    def on_holder_dead(self, job):
        return REQUEUE

    def on_requeue(self, job, reason: str) -> None:
        v = version_of(job)
        if v is None:
            return
        from apps.datasets.services.versions import delete_examples

        delete_examples(v)  # it starts over from the frozen selection
        v.status, v.error = DatasetVersion.Status.IMPORTING, ""
        v.progress = {**(v.progress or {}), "stage": "queued", "examples": 0, "updated_at": time.time()}
        v.save(update_fields=["status", "error", "progress"])
