"""Websocket: /ws/runs/<run_id>/ streams a run's progress events (one channels group per run).

On connect the client gets a `snapshot` (status, summary, all points so far); afterwards every
`progress`, `status` and `checkpoint` event the worker broadcasts (about once a second)."""
from __future__ import annotations

from apps.core.consumers import GroupStreamConsumer
from apps.core.realtime import run_group


class RunConsumer(GroupStreamConsumer):
    url_kwarg = "run_id"

    def group_for(self, key: int) -> str:
        return run_group(key)

    def load_snapshot(self, user, key: int):
        from apps.core.exceptions import NotFound
        from apps.training import selectors

        try:
            run = selectors.run_get(user=user, run_id=key)
        except NotFound:
            return None, 4404
        data = selectors.run_as_dict(run)
        data["points"] = selectors.run_metrics(run=run)
        return data, 0
