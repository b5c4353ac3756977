"""Per-key limits on /v1 (interfaces §1): allowed names, requests and tokens per minute, a monthly token
budget and an expiry, for the KeyInfo that apps.accounts.key_cache resolved (the fields and their
meaning: apps.accounts.key_limits).

Contract:
- `await admit(key, model, est_tokens)`, after the body is validated and before the call is routed,
  raises ProxyError: 401 `key_expired`; 403 `model_not_allowed` (param `model`); 429
  `rate_limit_exceeded` when the requests or tokens of the last 60 s leave no room, with `retry-after`
  (whole seconds) and `retry-after-ms` saying when there will be; 429 `insufficient_quota` when the
  month's budget is spent (retry-after: the start of next month, UTC; x-should-retry: false). An
  admitted request counts towards rpm. Tokens: admitted when the tokens charged in the last 60 s plus
  `est_tokens` fit in tpm; a request whose estimate alone exceeds tpm can never fit and gets a 429
  with x-should-retry: false. `key` None (a dashboard session) is not limited.
- `await charge(key, tokens)` adds real usage (prompt + completion) to the tpm window and the month.
  `metered(key, chunks, call)` wraps a streamed body so that the charge happens as soon as the upstream
  reported usage, or else when the stream ends however it ends (failed upstream, client gone);
  `used_tokens(call)` is what it charges (0 when the upstream never reported usage).
  Requests already admitted are not held back by each other's charges: tpm can overshoot by what is
  in flight, and the budget by the last requests of the month.
- Redis (settings.REDIS_URL, shared by every web process): one EVALSHA per admit and one per charge
  for a key that has rpm, tpm or a budget; none for a key without. Counters: two hashes of 1-second
  buckets per key (`hub:lim:<id>:r`, `:t`: a sliding 60-second window, exact to the second, at most
  60 fields each) and a month counter `hub:lim:<id>:m:<YYYYMM>` (only for keys with a budget; a
  budget set mid-month counts from then).
- The month survives a Redis restart: charge adds `<id>:<YYYYMM>` to the set `hub:lim:dirty`, and the
  periodic `key_usage_persist` job (workers/keys.py, every minute) copies those counters to
  ApiKeyUsage (never lowering a stored count). When the month counter is missing (a restarted or
  flushed Redis, a new month) admit and charge seed it from ApiKeyUsage (one query, then SET NX)
  before counting. A Redis that dies loses at most the last minute of charges.
- Redis unreachable, slow (over REDIS_TIMEOUT_S) or failing: the request is served (fail open), a
  warning is logged (at most once a minute) and Redis is not tried again for RETRY_REDIS_S. Never a 500.
- Names (key_limits): a name matching an entry of either list is allowed; any other name is allowed only
  when the list for its kind (alias or model) is unset. Which names are aliases comes from an in-process
  set loaded from the database when first needed and forgotten on invalidation.ROUTES / "*" (kept only
  while the invalidation listener is live, like every hot-path cache). `visible(key, items)` filters
  the /v1/models list the same way; `allows(key, name)` answers for one name.
"""
from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
import math
import time
from typing import AsyncIterator

import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.conf import settings

from apps.accounts import key_limits
from apps.accounts.key_cache import KeyInfo
from apps.core import invalidation
from apps.proxy.errors import ProxyError
from apps.proxy.limits.scripts import ADMIT_LUA, CHARGE_LUA

log = logging.getLogger(__name__)

PREFIX = "hub:lim:"
WINDOW_S = 60
MONTH_TTL_S = 40 * 86400
REDIS_TIMEOUT_S = 0.5
RETRY_REDIS_S = 5.0
WARN_EVERY_S = 60.0

OK, RPM, TPM, TPM_TOO_LARGE, BUDGET, SEED = range(6)  # the admit script's answers (limits/scripts.py)


# --- keys and months ------------------------------------------------------------------------------
def _month(now: float | None = None) -> str:
    return time.strftime("%Y%m", time.gmtime(time.time() if now is None else now))


def _month_date(month: str) -> dt.date:
    return dt.date(int(month[:4]), int(month[4:]), 1)


def _seconds_to_next_month(now: float | None = None) -> int:
    now = time.time() if now is None else now
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return max(1, math.ceil(calendar.timegm((year, month, 1, 0, 0, 0)) - now))


def requests_key(key_id: int) -> str:
    return f"{PREFIX}{key_id}:r"


def tokens_key(key_id: int) -> str:
    return f"{PREFIX}{key_id}:t"


def month_key(key_id: int, month: str) -> str:
    return f"{PREFIX}{key_id}:m:{month}"


def dirty_key() -> str:
    return f"{PREFIX}dirty"


# --- Redis, failing open --------------------------------------------------------------------------
_client: tuple | None = None  # (event loop, url, client, admit script, charge script)
_down: tuple[str, float] = ("", 0.0)  # (REDIS_URL, monotonic time until which it is not tried)
_last_warning = -1e9
round_trips = 0  # Redis commands sent by this module in this process (tests and the bench read it)


def _scripts():
    global _client
    loop = asyncio.get_running_loop()
    url = settings.REDIS_URL
    if _client is None or _client[0] is not loop or _client[1] != url:
        client = aredis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                       socket_connect_timeout=REDIS_TIMEOUT_S)
        _client = (loop, url, client, client.register_script(ADMIT_LUA), client.register_script(CHARGE_LUA))
    return _client[2:]


def _redis_failed(exc: BaseException, what: str) -> None:
    global _down, _last_warning
    now = time.monotonic()
    _down = (settings.REDIS_URL, now + RETRY_REDIS_S)
    if now - _last_warning > WARN_EVERY_S:
        _last_warning = now
        log.warning("key limits: Redis failed during %s (%s: %s); serving without rate limits or budgets "
                    "(retrying Redis in %ss)", what, type(exc).__name__, exc, RETRY_REDIS_S)


def _redis_down() -> bool:
    return _down[0] == settings.REDIS_URL and time.monotonic() < _down[1]


def reset() -> None:
    """Forget the client and the outage state (tests that point REDIS_URL elsewhere)."""
    global _client, _down, _last_warning
    _client, _down, _last_warning = None, ("", 0.0), -1e9
    _forget_aliases()


async def _seed_month(client, key: KeyInfo, month: str) -> None:
    """A missing month counter: start it from what the database kept (cold path)."""
    global round_trips
    from apps.accounts import services

    used = await sync_to_async(services.api_key_usage_get)(key_id=key.id, month=_month_date(month))
    round_trips += 1
    await client.set(month_key(key.id, month), used, nx=True, ex=MONTH_TTL_S)


# --- names ----------------------------------------------------------------------------------------
_alias_names: frozenset[str] | None = None
_alias_generation = invalidation.Generation()


def _forget_aliases(topic: str = "*", payload: str = "") -> None:
    global _alias_names
    _alias_generation.bump()
    _alias_names = None


invalidation.on(invalidation.ROUTES, _forget_aliases)
invalidation.on("*", _forget_aliases)


def _alias_created(sender, instance, created=False, **kwargs):
    """A new alias (the admin site does not publish one): the alias-name sets must learn about it, or
    a key limited to other aliases could call it as a "model"."""
    if created:
        invalidation.publish_on_commit(invalidation.ROUTES)


def connect_signals() -> None:
    """ProxyConfig.ready."""
    from django.db.models.signals import post_save

    from apps.registry.models import Alias

    post_save.connect(_alias_created, sender=Alias, dispatch_uid="limits.alias_created")


def _load_alias_names() -> frozenset[str]:
    from apps.registry.models import Alias

    return frozenset(Alias.objects.values_list("name", flat=True))


async def _aliases() -> frozenset[str]:
    global _alias_names
    names = _alias_names
    if names is None:
        generation, live = _alias_generation.value, invalidation.is_live()
        names = await sync_to_async(_load_alias_names)()
        if live and _alias_generation.value == generation:
            _alias_names = names
    return names


async def allows(key: KeyInfo | None, model: str, *, aliases: frozenset[str] | None = None) -> bool:
    """Whether `key` may call the model name `model` (apps.accounts.key_limits). `aliases`: the alias
    names, when the caller has them already."""
    if key is None or (key.allowed_aliases is None and key.allowed_models is None):
        return True
    name = key_limits.normalize_name(model)
    for names in (key.allowed_aliases, key.allowed_models):
        if names and key_limits.matcher(names)(name):
            return True
    if key.allowed_aliases is not None and key.allowed_models is not None:
        return False
    is_alias = model in (aliases if aliases is not None else await _aliases())
    return (key.allowed_aliases if is_alias else key.allowed_models) is None


async def visible(key: KeyInfo | None, items: list[dict]) -> list[dict]:
    """The /v1/models entries (`{"id": name, ...}`) that `key` may call."""
    if key is None or (key.allowed_aliases is None and key.allowed_models is None):
        return items
    aliases = await _aliases()
    return [item for item in items if await allows(key, str(item.get("id", "")), aliases=aliases)]


def check_expiry(key: KeyInfo | None) -> None:
    if key is not None and key.expired():
        raise ProxyError(401, "This API key has expired. Create a new one on the API keys page.",
                         code="key_expired")


# --- admit and charge -----------------------------------------------------------------------------
def estimate_tokens(raw_body: bytes) -> int:
    """A cheap upper-side estimate of a request's prompt tokens: about four bytes of JSON per token."""
    return len(raw_body) // 4


def _refusal(key: KeyInfo, status: int, retry_ms: int, used: int, est: int) -> ProxyError:
    if status == BUDGET:
        wait = _seconds_to_next_month()
        return ProxyError(429, f"This API key has used its monthly budget of {key.monthly_tokens:,} tokens "
                          f"({used:,} used). It renews at the start of next month (UTC).",
                          code="insufficient_quota", type="insufficient_quota",
                          headers={"retry-after": str(wait), "x-should-retry": "false"})
    if status == TPM_TOO_LARGE:
        return ProxyError(429, f"Request too large for this API key's tokens per minute (TPM): limit "
                          f"{key.tpm:,}, requested about {est:,}. Send a shorter request.",
                          code="rate_limit_exceeded",
                          headers={"retry-after": str(WINDOW_S), "x-should-retry": "false",
                                   "x-ratelimit-limit-tokens": str(key.tpm)})
    retry_ms = max(1, int(retry_ms))
    headers = {"retry-after": str(max(1, math.ceil(retry_ms / 1000))), "retry-after-ms": str(retry_ms)}
    if status == TPM:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm)
        what = f"tokens per minute (TPM): limit {key.tpm:,}, used {used:,}, requested about {est:,}"
    else:
        headers["x-ratelimit-limit-requests"] = str(key.rpm)
        what = f"requests per minute (RPM): limit {key.rpm:,}, used {used:,}"
    return ProxyError(429, f"Rate limit reached for this API key on {what}. Please try again in "
                      f"{retry_ms / 1000:.1f}s.", code="rate_limit_exceeded", headers=headers)


async def admit(key: KeyInfo | None, model: str, est_tokens: int) -> None:
    global round_trips
    if key is None:
        return
    check_expiry(key)
    if not await allows(key, model):
        raise ProxyError(403, f"This API key may not use the model `{model}`.", param="model",
                         code="model_not_allowed")
    if not key.limited or _redis_down():
        return
    est = max(0, int(est_tokens))
    month = _month()
    try:
        client, admit_script, _ = _scripts()
        keys = [requests_key(key.id), tokens_key(key.id), month_key(key.id, month)]
        args = [key.rpm or 0, key.tpm or 0, est, key.monthly_tokens or 0]
        round_trips += 1
        status, retry_ms, used = await admit_script(keys=keys, args=args)
        if status == SEED:
            await _seed_month(client, key, month)
            round_trips += 1
            status, retry_ms, used = await admit_script(keys=keys, args=args)
            if status == SEED:  # the counter vanished again at once (a flushing Redis): do not guess
                raise RuntimeError("the month counter could not be seeded")
    except Exception as exc:  # Redis down, slow or failing: serve without limits
        _redis_failed(exc, "admit")
        return
    if status != OK:
        raise _refusal(key, int(status), int(retry_ms), int(used), est)


async def charge(key: KeyInfo | None, tokens: int) -> None:
    global round_trips
    if key is None or not (key.tpm or key.monthly_tokens) or _redis_down():
        return
    tokens = int(tokens or 0)
    if tokens <= 0:
        return
    month = _month()
    try:
        client, _, charge_script = _scripts()
        keys = [tokens_key(key.id), month_key(key.id, month), dirty_key()]
        args = [tokens, 1 if key.tpm else 0, 1 if key.monthly_tokens else 0, f"{key.id}:{month}", MONTH_TTL_S]
        round_trips += 1
        if await charge_script(keys=keys, args=args) == SEED:
            await _seed_month(client, key, month)
            round_trips += 1
            await charge_script(keys=keys, args=args)
    except Exception as exc:
        _redis_failed(exc, "charge")


def used_tokens(call) -> int:
    """Prompt + completion tokens the call reported (0 when the upstream never said)."""
    return (getattr(call, "prompt_tokens", None) or 0) + (getattr(call, "completion_tokens", None) or 0)


async def metered(key: KeyInfo | None, chunks: AsyncIterator, call) -> AsyncIterator:
    """Yield `chunks`, charging the call's tokens to `key` once the upstream reported its usage (before
    the chunk that follows it, so a client that saw the end of the stream sees the charge too) or, when
    usage never came, when the stream ends however it ends (finished, failed, client gone)."""
    charged = key is None or not key.limited
    try:
        async for chunk in chunks:
            if not charged and getattr(call, "completion_tokens", None) is not None:
                charged = True
                await charge(key, used_tokens(call))
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # the inner stream's own clean-up (its log, its usage) runs first
        if not charged:
            await charge(key, used_tokens(call))


# the dashboard's and the periodic job's reads (sync): limits/usage.py
from apps.proxy.limits.usage import month_usage, usage_persist  # noqa: E402,F401  (after what it uses)
