"""Websocket /ws/reviews/<task_id>/: a review task's live progress (group `review-<task_id>`).

On connect the client gets `snapshot` (the task's progress: per reviewer, overall, who is reviewing right
now); afterwards every `progress`, `presence` and `finished` event (apps.review.realtime). Not signed in:
closed with 4401; no such task: 4404; a task the user is not part of: 4403."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.review.realtime import review_group


class ReviewConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        snapshot, code = await self._snapshot(user)
        if snapshot is None:
            await self.close(code=code)
            return
        self.group = review_group(self.task_id)
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
        from apps.core.exceptions import NotFound, PermissionDenied
        from apps.review import selectors

        try:
            task = selectors.task_get(user=user, task_id=self.task_id)
        except NotFound:
            return None, 4404
        except PermissionDenied:
            return None, 4403
        return {"task_id": task.pk, "status": task.status, **selectors.task_progress(task=task)}, None
