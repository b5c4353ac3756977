"""Calling models for an arena: many chat requests at once, at most `concurrency` in flight, each through the
proxy's own request path for a plan (apps.proxy.fallback.open_plan: the alias's settings, its fallback chain,
circuit breakers, the provider's concurrency cap, context checks, Anthropic translation), non-streamed.

Contract: `call_all([(key, plan, body), ...], concurrency=N) -> {key: Answer}` runs in its own event loop
(in a thread of its own when the caller's thread already runs one), never raises for one request's failure
(an `Answer` with `error` set: the proxy's message, one line) and closes its HTTP client before returning.
Nothing is written to the request log: arena traffic is the hub's own, not a client's.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)
MAX_CONCURRENCY = 32


@dataclass
class Answer:
    text: str = ""
    error: str = ""
    served_by: str = ""
    latency_ms: float | None = None
    completion_tokens: int | None = None


def chat_body(messages: list[dict], *, temperature: float | None = None, max_tokens: int | None = None) -> dict:
    body: dict = {"messages": messages, "stream": False}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def answer_text(data: dict) -> str:
    """The text of an OpenAI chat completion's first choice (tool calls written out as text)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    msg = choices[0].get("message") or {}
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    parts = [content] if isinstance(content, str) and content else []
    for tc in msg.get("tool_calls") or []:
        fn = (tc or {}).get("function") or {}
        parts.append(f"[tool call] {fn.get('name', '?')}({fn.get('arguments', '')})")
    return "\n".join(parts)


def _one_line(text: str, limit: int = 500) -> str:
    line = next((p.strip() for p in str(text).splitlines() if p.strip()), "")
    return line[:limit]


async def _one(plan, body: dict, sem: asyncio.Semaphore) -> Answer:
    from apps.proxy import fallback
    from apps.proxy.errors import ProxyError
    from apps.proxy.gateway import Call

    async with sem:
        if plan is None:
            return Answer(error="The model no longer routes anywhere (its alias or version was removed).")
        call = Call(endpoint="arena")
        started = time.perf_counter()
        try:
            opened = await fallback.open_plan(call, plan, path="/chat/completions", clean=dict(body), native_body=None)
        except ProxyError as exc:
            return Answer(error=_one_line(exc.message) or f"HTTP {exc.status}",
                          latency_ms=round((time.perf_counter() - started) * 1000, 1))
        except Exception as exc:  # one failed call must never sink the batch
            log.warning("arena call to %s failed", plan.requested, exc_info=True)
            return Answer(error=_one_line(f"{type(exc).__name__}: {exc}"))
        data = opened.data or {}
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens")
        return Answer(text=answer_text(data), served_by=opened.route.label,
                      latency_ms=round((time.perf_counter() - started) * 1000, 1),
                      completion_tokens=tokens if isinstance(tokens, int) and tokens >= 0 else None)


def call_all(requests: list[tuple], *, concurrency: int) -> dict:
    """{key: Answer} for [(key, plan, body)], at most `concurrency` requests in flight."""
    if not requests:
        return {}
    limit = max(1, min(int(concurrency), MAX_CONCURRENCY))

    async def main() -> list[Answer]:
        from apps.proxy import upstream

        sem = asyncio.Semaphore(limit)
        try:
            return await asyncio.gather(*(_one(plan, body, sem) for _, plan, body in requests))
        finally:
            await upstream.client().aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: a worker, a command, a test — no loop in this thread
        answers = asyncio.run(main())
    else:  # called under a running loop (e.g. a sync caller inside an async framework): a thread of its own
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arena-calls") as pool:
            answers = pool.submit(asyncio.run, main()).result()
    return {key: a for (key, _, _), a in zip(requests, answers)}


def prompt_preview(messages: list[dict], limit: int = 160) -> str:
    """The last user turn of a prompt, on one line (lists, titles)."""
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            text = c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)
            text = " ".join(text.split())
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""
