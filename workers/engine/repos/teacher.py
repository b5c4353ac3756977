"""An optional teacher model: any OpenAI-compatible endpoint (the hub's own ``/v1`` alias or an upstream
provider) rewrites each example's request and ``<thinking>`` plan from the extracted context.

Only the request part of the user turn (``meta.request_chars``) and the plan change: the code context in
the request and every ``<file>`` block stay byte-for-byte, so provenance stays exact. Requests are spaced
to ``requests_per_minute``; 429 / 5xx / connection errors are retried with backoff (``Retry-After``
honoured). ``on_item(index, example)`` is called after each example so the caller can persist the
cursor (``index + 1``) and resume after a crash with ``enrich(..., cursor=saved)``.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field

import httpx

from workers.engine.repos.errors import RepoError, check_stop
from workers.engine.repos.generators.base import parse_file_blocks

THINK_RE = re.compile(r"^<thinking>\n(.*?)\n</thinking>", re.S)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SYSTEM = ("You improve training data for a coding assistant. You get one example extracted from a real repository: "
          "the request, the plan of the change and the files of the answer. Rewrite the request the way a developer "
          "would ask for it (specific, natural, no solution code) and write a better step-by-step plan (which files "
          "and functions change, how, and why). Reply with one JSON object only: "
          '{"query": "...", "thinking": "..."}.')


@dataclass
class TeacherConfig:
    base_url: str
    api_key: str = ""
    model: str = ""
    temperature: float = 0.2
    requests_per_minute: float = 30
    max_retries: int = 4
    timeout: float = 120
    max_tokens: int = 1024
    context_chars: int = 6000        # how much of each answer file the teacher sees


@dataclass
class TeacherResult:
    examples: list[dict]             # the examples from the starting cursor on (rewritten or left as they were)
    cursor: int                      # the next index to process
    rewritten: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class RateLimiter:
    """At most ``per_minute`` starts a minute, evenly spaced."""

    def __init__(self, per_minute: float, *, clock=time.monotonic, sleep=time.sleep):
        self.interval = 60.0 / per_minute if per_minute and per_minute > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def _split(example: dict) -> tuple[str, str, str, str]:
    """(request, context after the request, thinking, answer after the thinking)."""
    user = next(m for m in example["messages"] if m["role"] == "user")["content"]
    answer = next(m for m in example["messages"] if m["role"] == "assistant")["content"]
    n = example.get("meta", {}).get("request_chars", len(user))
    m = THINK_RE.match(answer)
    thinking, rest = (m.group(1), answer[m.end():]) if m else ("", answer)
    return user[:n], user[n:], thinking, rest


def teacher_messages(example: dict, config: TeacherConfig) -> list[dict]:
    request, context, thinking, rest = _split(example)
    files = [{"path": p, "content": c[: config.context_chars]} for p, c in parse_file_blocks(rest)]
    meta = example.get("meta", {})
    payload = {"repository": (meta.get("provenance") or {}).get("repo"), "category": example.get("category"),
               "request": request, "context": context[: config.context_chars], "plan": thinking, "files": files}
    if not files and rest.strip():
        payload["answer"] = rest.strip()[: config.context_chars]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": json.dumps(payload, ensure_ascii=False)}]


def estimate_teacher(examples: list[dict], config: TeacherConfig, *, price_in_per_million: float = 0.0,
                     price_out_per_million: float = 0.0, latency_s: float = 4.0) -> dict:
    """Tokens (≈ chars/4), cost and time before launch."""
    tokens_in = tokens_out = 0
    for ex in examples:
        tokens_in += sum(math.ceil(len(m["content"]) / 4) for m in teacher_messages(ex, config))
        request, _c, thinking, _r = _split(ex)
        tokens_out += min(config.max_tokens, math.ceil((len(request) + len(thinking)) / 4 * 1.5) + 20)
    n = len(examples)
    per_request = max(60.0 / config.requests_per_minute if config.requests_per_minute else 0.0, latency_s)
    return {"requests": n, "input_tokens": tokens_in, "output_tokens": tokens_out,
            "cost_usd": round(tokens_in / 1e6 * price_in_per_million + tokens_out / 1e6 * price_out_per_million, 4),
            "seconds": int(math.ceil(n * per_request)),
            "basis": f"≈ chars/4 tokens; {config.requests_per_minute:g} requests/min; ≥ {latency_s:g} s a request"}


def _parse_reply(body) -> tuple[str, str]:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("the reply has no choices[0].message.content")
    if not isinstance(content, str):
        raise ValueError("the reply content is not text")
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", content.strip())
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the reply holds no JSON object")
    try:
        data = json.loads(text[start:end + 1])
    except ValueError as exc:
        raise ValueError(f"the reply's JSON does not parse ({exc})")
    query, thinking = data.get("query"), data.get("thinking")
    if not isinstance(query, str) or not query.strip() or not isinstance(thinking, str) or not thinking.strip():
        raise ValueError("the reply lacks a non-empty `query` and `thinking`")
    if "</thinking>" in thinking or "<file path=" in thinking or "<file path=" in query:
        raise ValueError("the reply tries to add tags")
    return query.strip(), thinking.strip()


def _post(client: httpx.Client, config: TeacherConfig, messages: list[dict], sleep) -> dict:
    url = config.base_url.rstrip("/") + "/chat/completions"
    body = {"model": config.model, "messages": messages, "temperature": config.temperature,
            "max_tokens": config.max_tokens}
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    last = ""
    for attempt in range(config.max_retries + 1):
        try:
            resp = client.post(url, json=body, headers=headers, timeout=config.timeout)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
            if attempt == config.max_retries:
                raise RepoError("teacher_unreachable", f"The teacher endpoint {config.base_url} cannot be reached "
                                f"after {attempt + 1} attempts ({last}).")
            sleep(min(2 ** attempt, 30))
            continue
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError:
                return {}
        detail = resp.text[:300]
        if resp.status_code in RETRY_STATUS and attempt < config.max_retries:
            retry_after = resp.headers.get("retry-after", "")
            wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else min(2 ** attempt, 30)
            sleep(min(wait, 60))
            last = f"HTTP {resp.status_code}"
            continue
        raise RepoError("teacher_http_error", f"The teacher endpoint answered HTTP {resp.status_code}: {detail}",
                        status=resp.status_code)
    raise RepoError("teacher_http_error", f"The teacher endpoint kept failing ({last}).")  # pragma: no cover


def rewrite(example: dict, query: str, thinking: str, model: str) -> dict:
    """A copy of ``example`` with the request and plan replaced (context and file blocks untouched)."""
    request, context, _thinking, rest = _split(example)
    new = copy.deepcopy(example)
    for m in new["messages"]:
        if m["role"] == "user":
            m["content"] = query + context
        elif m["role"] == "assistant":
            m["content"] = f"<thinking>\n{thinking}\n</thinking>" + rest
    meta = new.setdefault("meta", {})
    meta["request_chars"] = len(query)
    meta["provenance"] = {**(meta.get("provenance") or {}), "teacher_model": model}
    meta["teacher"] = {"model": model, "original_request": request}
    return new


def enrich(examples: list[dict], config: TeacherConfig, *, cursor: int = 0, on_item=None, progress=None,
           should_stop=None, client: httpx.Client | None = None, sleep=time.sleep, clock=time.monotonic,
           max_consecutive_failures: int = 5) -> TeacherResult:
    if not config.base_url or not config.model:
        raise RepoError("invalid_option", "The teacher needs a base URL and a model name.")
    own = client is None
    client = client or httpx.Client()
    limiter = RateLimiter(config.requests_per_minute, clock=clock, sleep=sleep)
    result = TeacherResult(examples=[], cursor=cursor)
    consecutive = 0
    total = len(examples)
    try:
        if progress:
            progress("teacher", cursor, total)
        for i in range(cursor, total):
            check_stop(should_stop)
            ex = examples[i]
            limiter.wait()
            body = _post(client, config, teacher_messages(ex, config), sleep)
            try:
                query, thinking = _parse_reply(body)
            except ValueError as exc:
                result.failed += 1
                consecutive += 1
                result.errors.append(f"{ex.get('meta', {}).get('example_id')}: {exc}")
                new = ex
                if consecutive >= max_consecutive_failures:
                    raise RepoError("teacher_bad_response", f"The teacher model gave {consecutive} unusable replies in "
                                    f"a row (last: {exc}); stopped at example {i}.", cursor=i)
            else:
                consecutive = 0
                result.rewritten += 1
                new = rewrite(ex, query, thinking, config.model)
            result.examples.append(new)
            result.cursor = i + 1
            if on_item:
                on_item(i, new)
            if progress and ((i + 1) % 10 == 0 or i + 1 == total):
                progress("teacher", i + 1, total)
    finally:
        if own:
            client.close()
    return result
