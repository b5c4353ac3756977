"""The one shape of the dashboard's websockets: a one-way stream of a channels group.

On connect: 4401 when signed out; otherwise the subclass loads a snapshot (sync, on the database thread) —
None and a close code refuse the connection (4404 unknown or hidden, 4403 forbidden) — else the socket joins
the group and sends `{"event": "snapshot", "payload": …}`. Afterwards every `hub_event` broadcast to the group
(apps.core.realtime.broadcast) is forwarded as `{"event", "payload"}`; client messages are ignored."""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class GroupStreamConsumer(AsyncJsonWebsocketConsumer):
    url_kwarg: str = ""  # the URL route's id argument (`run_id`, `task_id`, …)

    def group_for(self, key: int) -> str:
        raise NotImplementedError

    def load_snapshot(self, user, key: int) -> tuple[dict | None, int]:
        """(payload, 0) to accept, (None, close code) to refuse. Runs on the database thread."""
        raise NotImplementedError

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        key = int(self.scope["url_route"]["kwargs"][self.url_kwarg])
        snapshot, code = await database_sync_to_async(self.load_snapshot)(user, key)
        if snapshot is None:
            await self.close(code=code or 4404)
            return
        self.group = self.group_for(key)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "snapshot", "payload": snapshot})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def hub_event(self, message):
        await self.send_json({"event": message["event"], "payload": message["payload"]})

    async def receive_json(self, content, **kwargs):  # the stream is one-way
        return
