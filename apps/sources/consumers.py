"""Websocket: /ws/sources/jobs/<job_id>/ streams the live progress of a source's analysis or generation job.

On connect the client gets a `snapshot` (the job event payload of apps.core.jobs: status, phase, progress,
error); afterwards every `status` and `job_progress` event the lifecycle broadcasts to the job's group (about
once a second). Only the source's owner or an admin may listen (4401 signed out, 4404 otherwise)."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.realtime import job_group


class SourceJobConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        snapshot = await self._snapshot(user)
        if snapshot is None:
            await self.close(code=4404)
            return
        self.group = job_group(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "snapshot", "payload": snapshot})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def hub_event(self, message):
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    async def receive_json(self, content, **kwargs):  # one-way stream
        return

    @database_sync_to_async
    def _snapshot(self, user):
        from apps.core.jobs.services import job_event
        from apps.core.models import Job
        from apps.sources.models import Analysis, Generation
        from apps.sources.services.sources import can_manage

        job = Job.objects.filter(pk=self.job_id, kind__in=("source.analyse", "source.generate")).first()
        if job is None:
            return None
        model = Analysis if job.kind == "source.analyse" else Generation
        row = model.objects.select_related("source").filter(pk=job.target_id).first()
        if row is None or not can_manage(user, row.source):
            return None
        return job_event(job)
