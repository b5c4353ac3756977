"""Request logs for the traffic tests, written the way the worker writes them: through
apps.proxy.services.request_log_record (which calls the traffic hook), with the payload keys of the proxy's
interface (api_key_id, alias, served_by, fallback, attempts, upstream_ms, overhead_ms)."""
from __future__ import annotations

import itertools
import time
import uuid

import pytest

_clock = itertools.count()


def chat_request(user_text: str, *, system: str | None = None, tools=None, model: str = "production") -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_text}]
    body = {"model": model, "messages": msgs}
    if tools:
        body["tools"] = tools
    return body


def chat_response(text: str = "", *, tool_calls=None, finish: str = "stop") -> dict:
    msg = {"role": "assistant", "content": text or None}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "production",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@pytest.fixture(autouse=True)
def _no_cached_rules():
    from apps.traffic.services.captures import forget_rules

    forget_rules()
    yield
    forget_rules()


@pytest.fixture
def log_request(db, django_capture_on_commit_callbacks):
    """log_request(user=, text=, answer=, **payload overrides) -> RequestLog, recorded like the worker does
    (the traffic hook runs when the log's transaction commits, as on the worker)."""
    from apps.proxy.services import request_log_record

    def _log(*, user=None, text="What is the capital of France?", answer="Here is my answer.",
             request=None, response=None, ago_s: float | None = None, **overrides):
        started = time.time() - (ago_s if ago_s is not None else 1.0) + next(_clock) * 1e-3
        payload = {
            "request_id": uuid.uuid4().hex, "user_id": user.pk if user else None, "endpoint": "chat.completions",
            "model_requested": "production", "model_served": "hub-local", "stream": False, "status_code": 200,
            "latency_ms": 120.0, "ttft_ms": 50.0, "prompt_tokens": 10, "completion_tokens": 5,
            "request": request if request is not None else chat_request(text),
            "response": response if response is not None else chat_response(answer),
            "error": "", "started_at": started, "alias": "production", "served_by": "version:1",
            "fallback": False, "api_key_id": None, "attempts": [{"target": "version:1", "status": 200, "error": "",
                                                                 "ms": 100.0}],
            "upstream_ms": 100.0, "overhead_ms": 1.5,
        }
        payload.update(overrides)
        with django_capture_on_commit_callbacks(execute=True):
            return request_log_record(payload=payload)

    return _log


@pytest.fixture(scope="session", autouse=True)
def _default_tokenizer_loaded():
    """These tests stand for a web process whose default tokenizer is already loaded, so small exports are
    converted inside the request (a process without it sends them to the worker: test_export.py covers it)."""
    from apps.datasets.validation.tokens import counter_for_base_model

    counter_for_base_model(None)
