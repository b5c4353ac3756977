"""Websocket /ws/reviews/<task_id>/: a review task's live progress (group `review-<task_id>`).

On connect the client gets `snapshot` (the task's progress: per reviewer, overall, who is reviewing right
now); afterwards every `progress`, `presence` and `finished` event (apps.review.realtime). Not signed in:
closed with 4401; no such task: 4404; a task the user is not part of: 4403."""
from __future__ import annotations

from apps.core.consumers import GroupStreamConsumer
from apps.review.realtime import review_group


class ReviewConsumer(GroupStreamConsumer):
    url_kwarg = "task_id"

    def group_for(self, key: int) -> str:
        return review_group(key)

    def load_snapshot(self, user, key: int):
        from apps.core.exceptions import NotFound, PermissionDenied
        from apps.review import selectors

        try:
            task = selectors.task_get(user=user, task_id=key)
        except NotFound:
            return None, 4404
        except PermissionDenied:
            return None, 4403
        return {"task_id": task.pk, "status": task.status, **selectors.task_progress(task=task)}, 0
