"""Dramatiq actors of blind arenas (apps/arena) on the default queue (the `worker` process). Thin: they take an
arena id and call the service, which claims the job (a re-delivered message is harmless), beats a heartbeat,
calls the models through the proxy with bounded concurrency and finishes the job once.

A generation resumes after a crash: the job reconciler queues it again and `arena_generate_process` calls only
the answers still missing. Time limits are generous (every call has the proxy's own timeouts)."""
from __future__ import annotations

import dramatiq

from apps.arena.services import arena_generate_process, judge_process


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=12 * 60 * 60 * 1000)
def arena_generate(arena_id: int) -> None:
    arena_generate_process(arena_id=arena_id)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=12 * 60 * 60 * 1000)
def arena_judge(arena_id: int) -> None:
    judge_process(arena_id=arena_id)
