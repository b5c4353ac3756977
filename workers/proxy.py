"""Dramatiq actors for the /v1 proxy: request logs are written here, never on the request path."""
import logging

import dramatiq

from apps.proxy.services import request_log_record

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="default", max_retries=5, time_limit=60_000)
def request_log_write(payload: dict) -> None:
    """Write (or update, for a repeated request id / Idempotency-Key) one RequestLog row."""
    request_log_record(payload=payload)


@dramatiq.actor(queue_name="default", max_retries=5, time_limit=120_000)
def request_log_write_many(payloads: list[dict]) -> None:
    """Write a batch of request logs (one message per ~50 ms of a web process's traffic). Each row is
    idempotent by request id, so a retried batch rewrites nothing twice. A payload the database refuses as data
    (its user or version deleted meanwhile) is logged and skipped, so it cannot hold the rest of the batch in
    retries; anything else (the database unreachable) fails the batch, which is retried whole."""
    from django.db import DataError, IntegrityError

    for payload in payloads:
        try:
            request_log_record(payload=payload)
        except (IntegrityError, DataError, ValueError, TypeError):
            log.exception("request log %s refused; skipped", payload.get("request_id") if isinstance(payload, dict)
                          else payload)
