"""The registry of job kinds: what each kind of background job is called, which actor runs it, and the
hooks through which the one lifecycle (apps.core.jobs.services) keeps the kind's domain row in step.

A kind is a subclass of :class:`JobKind` decorated with :func:`register_kind`, in a module named
`jobs.py` of its Django app (found at start-up by CoreConfig.ready, like admin.py). Hooks run inside
the lifecycle's transaction, with the Job row locked; they write only their own domain row and never
send messages or broadcast (the lifecycle does both, after commit).

    @register_kind
    class ImportKind(JobKind):
        kind = "dataset.import"
        actor_name = "import_dataset_version"
        def on_finish(self, job, status, result): ...

Reconcile policy, per kind:
  stale_after_s   a holder on another host with no heartbeat for this long is dead (same host: its pid)
  lost_after_s    queued, never started, for this long while nothing runs on its queue: its message was
                  lost, send it again (None: never)
  max_attempts    sends in all (first + resends); past it the job fails instead of being sent again
  poll_stall_s    remote kinds: a next poll overdue by this long was lost, send it again (None: no polls)
  on_holder_dead  "requeue" (resume from where it got to), or ("fail", message), or "cancel"
"""
from __future__ import annotations

from typing import Any

from apps.core.exceptions import NotFound

REQUEUE, FAIL, CANCEL = "requeue", "fail", "cancel"

_KINDS: dict[str, "JobKind"] = {}


class JobKind:
    kind: str = ""
    label: str = ""
    actor_name: str = ""  # "" : runs inline only (nothing to send again)
    queue_name: str = "default"
    stale_after_s: float = 120.0
    lost_after_s: float | None = 600.0
    max_attempts: int = 4
    poll_stall_s: float | None = None
    phases: tuple[str, ...] = ()
    requeued_label: str = "requeued"  # the word reconcile reports for a requeue ("resumed" for runs)

    # -- the domain row ----------------------------------------------------------------------------
    def target(self, job) -> Any:
        return job.target

    def target_label(self, job) -> str:
        target = self.target(job)
        return str(target) if target is not None else "—"

    def target_url(self, job) -> str | None:
        return None

    def groups(self, job) -> list[str]:
        """Websocket groups (besides the job's own) that hear this job's events."""
        return []

    def payload(self, job) -> dict:
        """Extra keys for this kind's events (same shape for every event of the kind)."""
        return {}

    # -- lifecycle hooks (inside the lifecycle's transaction, job row locked) ------------------------
    def on_claim(self, job) -> None:
        """A worker took the job (status is now running)."""

    def on_phase(self, job, phase: str) -> None:
        """The job entered `phase`."""

    def on_cancel_requested(self, job) -> bool:
        """A cancel was asked for. Return True when nothing is working on it (never started, or a remote
        job with nothing submitted): the lifecycle then finishes it cancelled at once."""
        return job.status == job.Status.QUEUED and not job.holder

    def after_cancel_requested(self, job) -> None:
        """After the cancel request committed, outside any transaction (e.g. tell a remote service)."""

    def on_finish(self, job, status: str, result: dict) -> None:
        """The job just finished with `status` (exactly once). `result`: what the caller passed."""

    def on_holder_dead(self, job) -> str | tuple[str, str]:
        """Its holder died. REQUEUE (default: the job is idempotent), (FAIL, message) or CANCEL."""
        return REQUEUE

    def exhausted_message(self, job) -> str:
        """The error of a job whose holder died once too often (it is failed, not sent again)."""
        return (f"It was interrupted {job.attempts} times (its worker stopped each time), so it was not tried "
                f"again.")

    def on_requeue(self, job, reason: str) -> None:
        """It is going back to the queue: reason "worker_lost" (its holder died; resume) or "retry" (a
        person asked, after it finished): reset the domain row."""

    def retry_problem(self, job) -> str | None:
        """Why a finished job cannot be run again (None: it can)."""
        if not job.actor_name:
            return "This kind of job runs inline and cannot be retried; do it again from its page."
        if job.status == job.Status.SUCCEEDED:
            return "It succeeded; there is nothing to retry."
        return None


def register_kind(cls: type[JobKind]) -> type[JobKind]:
    """Class decorator: register one instance of `cls` under `cls.kind` (re-registering replaces it)."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    _KINDS[cls.kind] = cls()
    return cls


def get_kind(kind: str) -> JobKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise NotFound(f"Unknown job kind {kind!r}.") from None


def kinds() -> dict[str, JobKind]:
    return dict(_KINDS)


def autodiscover() -> None:
    """Import every installed app's `jobs` module, so its kinds register (CoreConfig.ready)."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("jobs")
