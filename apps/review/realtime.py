"""Live progress of a review task: the websocket group, its events, sent only after commit.

Group `review-<task_id>` (consumer: apps.review.consumers.ReviewConsumer at /ws/reviews/<task_id>/).
Events, each `{"event": name, "payload": ...}` on the wire:
- `snapshot` (on connect) and `progress` (after a decision, skip, undo, adjudication, bulk action or
  snapshot): `selectors.task_progress(task)` plus `task_id` and `status`;
- `presence` (someone took or gave back an item): only the change, built from what the service has at hand
  (no read: it follows every `next`): `{"task_id", "took": {username, item_id, example_index, since}}` or
  `{"task_id", "left": {username, item_id}}`; the page applies it to the `active` list of the last
  `snapshot` / `progress` (a reviewer holds one item at a time: `took` replaces theirs);
- `finished`: `{"task_id", "dataset_version_id"}`.
`progress` is computed after the commit, so it shows what was committed; `presence` is sent after the commit.
Job events of the task's result versions (apps.review.jobs: `status`, `job_progress`, apps.core.jobs' one
payload plus `task_id`, `snapshot_id`, `final`, `dataset_version_id`) reach the same group.

Off the request path: these events are handed to an event loop and the caller goes on at once (`send_soon`;
the request never waits for the channel layer, e.g. a Redis round trip, nor starts a thread for it): the
ASGI server's own loop when called from a sync view it runs, else one sender thread per process with its own
loop. Events handed over by one process keep their order (one loop, first in first out); at most
MAX_IN_FLIGHT wait at a time (an unreachable channel layer drops events rather than piling them up)."""
from __future__ import annotations

import asyncio
import logging
import os
import threading

from django.db import transaction

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1000
_lock = threading.Lock()
# per process (a forked child starts afresh: threads and pending sends do not survive a fork)
_sender: dict = {"pid": None, "loop": None, "in_flight": 0, "dropped_logged": False}


def _mine() -> dict:
    if _sender["pid"] != os.getpid():
        _sender.update(pid=os.getpid(), loop=None, in_flight=0, dropped_logged=False)
    return _sender


def _own_loop() -> asyncio.AbstractEventLoop:
    """This process's sender loop, started on first use."""
    with _lock:
        sender = _mine()
        if sender["loop"] is None:
            sender["loop"] = asyncio.new_event_loop()
            threading.Thread(target=sender["loop"].run_forever, name="review-events", daemon=True).start()
        return sender["loop"]


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The ASGI server's loop when this thread runs a sync view for it (asgiref's SyncToAsync marks it)."""
    from asgiref.sync import SyncToAsync

    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    if loop is not None and getattr(local, "main_event_loop_pid", None) == os.getpid() and loop.is_running():
        return loop
    return None


def _done(future) -> None:
    import time

    with _lock:
        _sender["in_flight"] = max(0, _sender["in_flight"] - 1)
    exc = future.exception()
    if exc is not None and time.monotonic() - _sender.get("failed_logged_at", -1e9) > 60:  # a line a minute
        _sender["failed_logged_at"] = time.monotonic()
        log.warning("review events are not delivered (the channel layer: %s)", exc)


def send_soon(group: str, event: str, payload: dict) -> None:
    """Send `{"event", "payload"}` to the group without waiting for it (see the module docstring)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    with _lock:
        sender = _mine()
        if sender["in_flight"] >= MAX_IN_FLIGHT:
            if not sender["dropped_logged"]:
                sender["dropped_logged"] = True
                log.warning("review events are dropped: %d wait for the channel layer", MAX_IN_FLIGHT)
            return
        sender["in_flight"] += 1
        sender["dropped_logged"] = False
    message = {"type": "hub.event", "event": event, "payload": payload}
    coro = layer.group_send(group, message)
    try:
        future = asyncio.run_coroutine_threadsafe(coro, _server_loop() or _own_loop())
    except RuntimeError:  # the server's loop closed meanwhile
        future = asyncio.run_coroutine_threadsafe(coro, _own_loop())
    future.add_done_callback(_done)


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
        send_soon(review_group(task_id), event, payload)


def progress_on_commit(task_id: int, event: str = "progress") -> None:
    """Broadcast the task's progress once the current transaction commits."""
    transaction.on_commit(lambda: _send(task_id, event))


def presence_on_commit(task_id: int, *, took: dict | None = None, left: dict | None = None) -> None:
    """Broadcast that a reviewer took (`took`) or gave back (`left`) an item, once the transaction commits."""
    payload = {"task_id": task_id, **({"took": took} if took else {}), **({"left": left} if left else {})}
    transaction.on_commit(lambda: send_soon(review_group(task_id), "presence", payload))


def finished_on_commit(task_id: int, version_id: int) -> None:
    transaction.on_commit(lambda: send_soon(review_group(task_id), "finished",
                                            {"task_id": task_id, "dataset_version_id": version_id}))
