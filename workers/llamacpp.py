"""Dramatiq actor: build this machine's pinned llama.cpp (job "llamacpp.build", apps/registry/exports/llamacpp_job.py).
Thin and idempotent; a compile takes minutes on two cores, so the time limit is generous and it runs on the default
queue, never holding the gpu worker."""
from __future__ import annotations

import dramatiq

from apps.registry.exports.llamacpp_job import llamacpp_build_run


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=3 * 60 * 60 * 1000)
def llamacpp_build(job_id: int) -> None:
    llamacpp_build_run(job_id=job_id)
