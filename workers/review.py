"""Dramatiq actor for team review (apps/review): a review's result version too big to build in a web request.

Thin and idempotent: `review_result(snapshot_id)` calls apps.review.services.result_build, which claims the
version's job "review.result" (returns at once for a version no longer `importing`, or one a live process
holds), beats a heartbeat while it works, reports progress, stops when a cancel is asked, and starts over when
re-run. A build whose worker died is queued again by the job reconciler (apps/review/jobs.py)."""
from __future__ import annotations

import dramatiq

from apps.review.services import result_build


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def review_result(snapshot_id: int) -> None:
    result_build(snapshot_id=snapshot_id)
