"""Live progress of a review task: the websocket group, its events, sent only after commit.

Group `review-<task_id>` (consumer: apps.review.consumers.ReviewConsumer at /ws/reviews/<task_id>/).
Events, each `{"event": name, "payload": ...}` on the wire:
- `snapshot` (on connect) and `progress` (after a decision, skip, undo, adjudication, bulk action or
  snapshot): `selectors.task_progress(task)` plus `task_id` and `status`;
- `presence` (someone took or gave back an item): the same payload without `disputed` / `resolved` (two cheap
  reads, as it follows every `next`);
- `finished`: `{"task_id", "dataset_version_id"}`.
The payload is computed after the commit, so it shows what was committed."""
from __future__ import annotations

from django.db import transaction

from apps.core.realtime import broadcast


def review_group(task_id: int) -> str:
    return f"review-{task_id}"


def progress_payload(task_id: int) -> dict | None:
    from apps.review import selectors
    from apps.review.models import ReviewTask

    task = ReviewTask.objects.filter(pk=task_id).first()
    if task is None:
        return None
    return {"task_id": task.pk, "status": task.status, **selectors.task_progress(task=task)}


def _send(task_id: int, event: str) -> None:
    payload = progress_payload(task_id)
    if payload is not None:
        broadcast(review_group(task_id), event, payload)


def progress_on_commit(task_id: int, event: str = "progress") -> None:
    """Broadcast the task's progress once the current transaction commits."""
    transaction.on_commit(lambda: _send(task_id, event))


def presence_payload(task_id: int) -> dict:
    from apps.review import selectors

    return {"task_id": task_id, **selectors.task_presence(task_id=task_id)}


def presence_on_commit(task_id: int) -> None:
    """Broadcast who holds which item now (`presence`) once the current transaction commits."""
    transaction.on_commit(lambda: broadcast(review_group(task_id), "presence", presence_payload(task_id)))


def finished_on_commit(task_id: int, version_id: int) -> None:
    transaction.on_commit(lambda: broadcast(review_group(task_id), "finished",
                                            {"task_id": task_id, "dataset_version_id": version_id}))
