"""Websocket: /ws/runs/<run_id>/ streams a run's progress events (one channels group per run).

On connect the client gets a `snapshot` (status, summary, all points so far); afterwards every
`progress`, `status` and `checkpoint` event the worker broadcasts (about once a second)."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.realtime import run_group


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        snapshot = await self._snapshot(user)
        if snapshot is None:
            await self.close(code=4404)
            return
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "snapshot", "payload": snapshot})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def hub_event(self, message):
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    async def receive_json(self, content, **kwargs):  # the stream is one-way; ignore client messages
        return

    @database_sync_to_async
    def _snapshot(self, user):
        from apps.core.exceptions import NotFound
        from apps.training import selectors

        try:
            run = selectors.run_get(user=user, run_id=self.run_id)
        except NotFound:
            return None
        data = selectors.run_as_dict(run)
        data["points"] = selectors.run_metrics(run=run)
        return data
