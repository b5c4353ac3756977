"""Sticky arm assignment for the /v1 request path. Pure Python, no Django, no I/O: a `Split` is built once with
the alias's cached plan (apps.proxy.selectors) and asked per request.

Contract:
- `sticky_unit(sticky_by, ...)` is the string a request is assigned by, and where it came from:
    api_key  the API key's id (a dashboard session: the user's id);
    user     the request's `user` (OpenAI), `metadata.user_id` (Anthropic; Claude Code puts its session in it)
             or `safety_identifier` (Responses), else the API key;
    session  the first of the headers `X-Claude-Code-Session-Id` (Claude Code), `session-id` / `session_id`
             (Codex), `x-session-id` (anything else), else `metadata.user_id`, else the API key;
    request  the request id: no stickiness (a canary's default: the split is per request, as Flagger's).
  A fallback is named in the source (`api_key (no session header)`), so the page can say why.
- `choose(experiment_id, unit, arms)` is weighted rendezvous hashing (highest random weight): every arm
  scores -weight / ln(u), u a uniform number in (0, 1) hashed (BLAKE2b) from the experiment, the unit and the
  arm's name; the highest score wins. The same unit always gets the same arm; an arm wins with probability
  weight / sum(weights); changing one arm's weight moves only the units that must move (to or from that arm),
  and adding or removing an arm moves only the units it takes or frees. Experiments hash independently.
- `unit_hash(sticky_by, unit)` is what is logged (16 hex characters), never the raw session id or user name.
Cost: two BLAKE2b digests and logs per arm, a few microseconds (bench: tests/experiments/test_assign.py).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

STICKY_BY = ("api_key", "user", "session", "request")
SESSION_HEADERS = ("x-claude-code-session-id", "session-id", "session_id", "x-session-id")
_TWO64 = float(2 ** 64)


def _uniform(data: bytes) -> float:
    return (int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") + 0.5) / _TWO64


def choose(experiment_id: int, unit: str, arms: Sequence[tuple[str, float]]) -> str | None:
    """The arm (name) `unit` is assigned to among `arms` [(name, weight)]; None when no arm has weight."""
    prefix = f"{experiment_id}\x1f{unit}\x1f".encode("utf-8", "surrogatepass")
    best, best_score = None, -1.0
    for name, weight in arms:
        if weight <= 0:
            continue
        score = -weight / math.log(_uniform(prefix + name.encode()))
        if score > best_score:
            best, best_score = name, score
    return best


def unit_hash(sticky_by: str, unit: str) -> str:
    return hashlib.blake2b(f"{sticky_by}\x1f{unit}".encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _text(value) -> str | None:
    return value[:500] if isinstance(value, str) and value else None


def sticky_unit(sticky_by: str, *, key_id: int | None, user_id: int | None, body: Mapping | None,
                headers: Mapping | None, request_id: str) -> tuple[str, str]:
    """(unit, source) for a request; see the module's contract."""
    if sticky_by == "request":
        return request_id, "request"
    fallback = (f"key:{key_id}", "api_key") if key_id is not None else (f"user:{user_id}", "dashboard user")
    if sticky_by == "api_key":
        return fallback
    body = body if isinstance(body, Mapping) else {}
    meta = body.get("metadata")
    meta_user = _text(meta.get("user_id")) if isinstance(meta, Mapping) else None
    if sticky_by == "session":
        for name in SESSION_HEADERS:
            value = _text(headers.get(name)) if headers is not None else None
            if value:
                return f"session:{value}", name
        if meta_user:
            return f"user:{meta_user}", "metadata.user_id"
        return fallback[0], f"{fallback[1]} (no session header)"
    for field in ("user", "safety_identifier"):
        value = _text(body.get(field))
        if value:
            return f"user:{value}", field
    if meta_user:
        return f"user:{meta_user}", "metadata.user_id"
    return fallback[0], f"{fallback[1]} (no user in the request)"


@dataclass(frozen=True)
class Arm:
    """One arm of a cached split: its name, weight and the plan (apps.proxy.routing.Plan) that serves it."""

    name: str
    weight: float
    plan: object


@dataclass(frozen=True)
class Split:
    """A running experiment on an alias, as the proxy caches it with the alias's plan."""

    experiment_id: int
    sticky_by: str
    arms: tuple[Arm, ...]

    def pick(self, unit: str) -> Arm | None:
        name = choose(self.experiment_id, unit, [(a.name, a.weight) for a in self.arms])
        for arm in self.arms:
            if arm.name == name:
                return arm
        return None
