"""Dramatiq actor of reward-based evaluations (apps/evaluations): a model version, and the one it is compared with,
answer a task set; each answer is scored by the reward components (workers.engine.rewards).

Thin and idempotent: `evaluate_rewards(evaluation_id)` calls apps.evaluations.run.evaluation_process, which claims
the evaluation's job "evaluation.run" (returns at once for a finished job or one a live process holds), beats a
heartbeat, reports phases and progress, stops when a cancel is asked, and resumes with the answers still missing.
It reads the `gpu` queue: it loads the model's weights, like training and exports."""
from __future__ import annotations

import dramatiq

from apps.evaluations.run import evaluation_process


@dramatiq.actor(queue_name="gpu", max_retries=0, time_limit=12 * 60 * 60 * 1000)
def evaluate_rewards(evaluation_id: int) -> None:
    evaluation_process(evaluation_id=evaluation_id)
