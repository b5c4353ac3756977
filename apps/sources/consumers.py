"""Websocket: /ws/sources/jobs/<job_id>/ streams the live progress of a source's analysis or generation job.

On connect the client gets a `snapshot` (the job event payload of apps.core.jobs: status, phase, progress,
error); afterwards every `status` and `job_progress` event the lifecycle broadcasts to the job's group (about
once a second). Only the source's owner or an admin may listen (4401 signed out, 4404 otherwise)."""
from __future__ import annotations

from apps.core.consumers import GroupStreamConsumer
from apps.core.realtime import job_group


class SourceJobConsumer(GroupStreamConsumer):
    url_kwarg = "job_id"

    def group_for(self, key: int) -> str:
        return job_group(key)

    def load_snapshot(self, user, key: int):
        from apps.core.jobs.services import job_event
        from apps.core.models import Job
        from apps.sources.models import Analysis, Generation
        from apps.sources.services.sources import can_manage

        job = Job.objects.filter(pk=key, kind__in=("source.analyse", "source.generate")).first()
        if job is None:
            return None, 4404
        model = Analysis if job.kind == "source.analyse" else Generation
        row = model.objects.select_related("source").filter(pk=job.target_id).first()
        if row is None or not can_manage(user, row.source):
            return None, 4404
        return job_event(job), 0
