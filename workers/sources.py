"""Dramatiq actors for code sources (apps/sources): analyses and scenario generations on the default queue
(the `worker` process). Thin: they take an id and call the service, which claims the job (a re-delivered
message is harmless), beats a heartbeat and finishes it once.

A generation resumes after a crash: the job reconciler (workers/periodic.py, at worker boot and every 30 s)
queues it again and `generation_process` continues from its checkpoints (each repository's generator output,
the teacher's progress). A repository's test command (opt-in) runs here, in a sandboxed subprocess, never in a
web process.
"""
from __future__ import annotations

import dramatiq

from apps.sources.services import analysis_process, generation_process


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def source_analyse(analysis_id: int) -> None:
    analysis_process(analysis_id=analysis_id)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=12 * 60 * 60 * 1000)
def source_generate(generation_id: int) -> None:
    generation_process(generation_id=generation_id)
