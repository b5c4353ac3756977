"""apps.core.jobs.enqueue: actors are sent by name, after commit, to the broker of the settings (the
StubBroker in tests), and a real worker runs what was sent."""
from __future__ import annotations

import dramatiq
import pytest
from dramatiq import Message

from apps.core.jobs import enqueue as jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(fresh_broker):
    """The global broker, new for the test (tests/conftest.py): its queues hold exactly what the test sent."""
    return fresh_broker


@pytest.fixture
def shared_broker():
    """The broker the actors were declared on (for the tests that need a declared actor)."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


def _messages(broker, queue: str) -> list[Message]:
    return [Message.decode(m) for m in list(broker.queues[queue].queue)] if queue in broker.queues else []


def test_sent_after_commit_with_name_queue_args_and_kwargs(broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        jobs.enqueue("some_actor_not_imported_here", 7, "x", queue_name="lane-a", flag=True)
        assert _messages(broker, "lane-a") == []  # nothing before the commit
    assert len(callbacks) == 1
    [msg] = _messages(broker, "lane-a")
    assert (msg.actor_name, msg.queue_name, msg.args, msg.kwargs) == ("some_actor_not_imported_here", "lane-a",
                                                                       (7, "x"), {"flag": True})


def test_nothing_is_sent_when_the_transaction_rolls_back(broker, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs.enqueue("some_actor", 1, queue_name="lane-b")
            raise RuntimeError("the write failed")
    assert callbacks == [] and _messages(broker, "lane-b") == []


def test_on_commit_false_sends_now_and_delay_goes_to_the_delay_queue(broker):
    jobs.enqueue("some_actor", 3, queue_name="lane-c", on_commit=False)
    jobs.enqueue("some_actor", 4, queue_name="lane-c", delay_ms=60_000, on_commit=False)
    assert [m.args for m in _messages(broker, "lane-c")] == [(3,)]
    [delayed] = _messages(broker, "lane-c.DQ")
    assert delayed.args == (4,) and delayed.options["eta"] > delayed.message_timestamp


def test_the_queue_must_match_a_declared_actor(shared_broker):
    broker = shared_broker
    from workers.training import train_run  # noqa: F401 - declares the actor in this process

    with pytest.raises(ValueError, match="reads queue 'gpu'"):
        jobs.enqueue("train_run", 1, queue_name="default", on_commit=False)
    jobs.enqueue("train_run", 1, queue_name=None, on_commit=False)  # None: the actor's own queue
    assert [m.actor_name for m in _messages(broker, "gpu")] == ["train_run"]


@pytest.fixture
def own_broker(fresh_broker):
    """A fresh StubBroker as the global broker (tests/conftest.py `fresh_broker`)."""
    return fresh_broker


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_message_sent_by_name(own_broker):
    seen = []

    @dramatiq.actor(actor_name="enqueue_probe", queue_name="probe", broker=own_broker, max_retries=0)
    def probe(value, *, extra=None):
        seen.append((value, extra))

    worker = dramatiq.Worker(own_broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        jobs.enqueue("enqueue_probe", 41, queue_name="probe", extra="yes")  # autocommit: sent at once
        own_broker.join("probe", timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    assert seen == [(41, "yes")]
