"""Enqueue a Dramatiq actor by name, after commit: the seam between `apps/` and the workers.

Contract: `enqueue("train_run", run_id, queue_name="gpu")` builds the same `dramatiq.Message` that
`train_run.send(run_id)` would (actor name, queue, args, kwargs) and hands it to the configured broker
(`dramatiq.get_broker()`: Redis in production, the StubBroker in tests) once the current transaction
commits (at once outside a transaction, or with on_commit=False), with `delay_ms` for a delayed message.
The actor module need not be imported in the sending process: the queue is declared here, and the worker
that imported the actor runs it with the actor's own options (time limit, retries). When the actor *is*
declared in this process, a queue_name that disagrees with it is a programming error (ValueError), so
tests catch a message sent to a queue no worker reads. Tests look at the stub broker's queues, or patch
`apps.core.jobs.enqueue.enqueue`: callers reach it through this module (`from apps.core.jobs import
enqueue as jobs` ... `jobs.enqueue(...)`) so that the patch takes effect."""
from __future__ import annotations

from typing import Any

import dramatiq
from django.db import transaction

DEFAULT_QUEUE = "default"


def _queue_for(broker: dramatiq.Broker, actor_name: str, queue_name: str | None) -> str:
    actor = broker.actors.get(actor_name)
    if queue_name is None:
        return actor.queue_name if actor is not None else DEFAULT_QUEUE
    if actor is not None and actor.queue_name != queue_name:
        raise ValueError(f"Actor {actor_name!r} reads queue {actor.queue_name!r}, not {queue_name!r}.")
    return queue_name


def send_now(actor_name: str, args: tuple = (), kwargs: dict[str, Any] | None = None, *,
             queue_name: str | None, delay_ms: int | None = None) -> dramatiq.Message:
    """Build the message and put it on the broker now (no transaction handling). Returns the message."""
    broker = dramatiq.get_broker()
    queue = _queue_for(broker, actor_name, queue_name)
    broker.declare_queue(queue)  # idempotent; the sender may never have imported the actor
    message = dramatiq.Message(queue_name=queue, actor_name=actor_name, args=tuple(args), kwargs=kwargs or {},
                               options={})
    return broker.enqueue(message, delay=max(0, int(delay_ms)) if delay_ms is not None else None)


def enqueue(actor_name: str, *args: Any, queue_name: str | None, delay_ms: int | None = None,
            on_commit: bool = True, **kwargs: Any) -> None:
    """Send `actor_name(*args, **kwargs)` to `queue_name` once the current transaction commits
    (on_commit=False: now). queue_name=None means the actor's own queue when it is declared in this
    process, else "default"."""
    def send() -> None:
        send_now(actor_name, args, kwargs, queue_name=queue_name, delay_ms=delay_ms)

    if on_commit:
        transaction.on_commit(send)
    else:
        send()
