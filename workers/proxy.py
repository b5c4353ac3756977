"""Dramatiq actors for the /v1 proxy: request logs are written here, never on the request path."""
import dramatiq

from apps.proxy.services import request_log_record


@dramatiq.actor(queue_name="default", max_retries=5, time_limit=60_000)
def request_log_write(payload: dict) -> None:
    """Write (or update, for a repeated request id / Idempotency-Key) one RequestLog row."""
    request_log_record(payload=payload)


@dramatiq.actor(queue_name="default", max_retries=5, time_limit=120_000)
def request_log_write_many(payloads: list[dict]) -> None:
    """Write a batch of request logs (one message per ~50 ms of a web process's traffic). Each row is
    idempotent by request id, so a retried batch rewrites nothing twice."""
    for payload in payloads:
        request_log_record(payload=payload)
