"""Dramatiq actor for remote fine-tuning on Together.ai (logic: apps.training.backends.together).

Thin and idempotent: each message does one step for one run (submit, or one status poll) and, while the
remote job is still going, schedules the next step with a delay instead of sleeping in a loop. A worker
restart loses nothing: the state is the run row (status, remote_job_id, summary).
"""
from __future__ import annotations

import dramatiq
from django.db import transaction
from dramatiq.middleware.time_limit import TimeLimitExceeded

from apps.training.backends import together as backend

# Uploads of large exports can take a while; one step never waits on Together for longer than this.
_STEP_TIME_LIMIT_MS = 30 * 60 * 1000


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=_STEP_TIME_LIMIT_MS)
def together_run(run_id: int) -> None:
    try:
        delay_s = backend.together_run_step(run_id=run_id)
    except TimeLimitExceeded:  # an Interrupt (BaseException): the step's own error handling never saw it
        backend.together_run_fail(run_id=run_id, error=f"A Together.ai step (upload or status check) took longer "
                                                       f"than {_STEP_TIME_LIMIT_MS // 60000} minutes and was stopped.")
        raise
    if delay_s is not None:
        delay_ms = max(0, int(delay_s * 1000))
        transaction.on_commit(lambda: together_run.send_with_options(args=(run_id,), delay=delay_ms))
