"""Writes for upstream providers and alias chains (admins only), shared by /api and the dashboard.

Contract:
- `provider_create`, `provider_update`, `provider_delete`, `provider_models_fetch`, `chain_set`,
  `chain_delete`: keyword-only; raise `PermissionDenied` for non-admins and `ValidationFailed` with one entry
  per bad field (`name`, `base_url`, `timeouts.connect_s`, `targets.1.model`, `settings.max_tokens`, ...),
  writing nothing then. Every change publishes `invalidation.ROUTES` after commit, so every web process drops
  the plans it cached (a warm request never reads these rows).
- A provider's key is encrypted before it is stored (apps.proxy.crypto) and is never returned or logged;
  `api_key=UNSET` (the default of `provider_update`) keeps it, `None` or `""` removes it.
- `chain_set` replaces an alias's targets (1–8: `{"model_version_id": N}` or `{"provider": NAME, "model":
  STR}`) and, when given, its settings; it creates the alias's chain when there is none. With no targets the
  alias serves its deployed registry version (an error when it has none).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from apps.accounts.services import require_admin
from apps.core import invalidation
from apps.core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed
from apps.core.inputs import SLUG_PATTERN
from apps.proxy import crypto
from apps.proxy.models import AliasChain, ChainTarget, Provider
from apps.proxy.selectors import provider_base_url

UNSET = object()
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_TARGETS = 8
MODELS_TIMEOUT_S = 10.0
LIMITS = {  # field: (min, max)
    "connect_s": (0.1, 120.0), "first_byte_s": (0.1, 3600.0), "total_s": (0.1, 86_400.0),
    "max_concurrency": (1, 100_000), "context_length": (1, 100_000_000),
    "temperature": (0.0, 2.0), "max_tokens": (1, 10_000_000), "timeout_s": (0.1, 86_400.0),
}


class UpstreamFailed(ApplicationError):
    status_code = 502
    code = "upstream_error"


def _changed() -> None:
    invalidation.publish_on_commit(invalidation.ROUTES)


def _number(errors: list, field: str, key: str, value, *, integer: bool = False):
    if value is None:
        return None
    lo, hi = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        errors.append({"field": field, "message": "must be a whole number" if integer else "must be a number"})
        return None
    if not lo <= value <= hi:
        errors.append({"field": field, "message": f"must be between {lo:g} and {hi:g}"})
        return None
    return int(value) if integer else float(value)


def _check_base_url(errors: list, url) -> str:
    if not isinstance(url, str) or not url.strip():
        errors.append({"field": "base_url", "message": "required: e.g. https://api.openai.com/v1"})
        return ""
    url = url.strip()
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment
    except ValueError:
        ok = False
    if not ok or len(url) > 500 or any(c.isspace() for c in url) or "\x00" in url:
        errors.append({"field": "base_url", "message": "an http(s) URL without query string, e.g. "
                                                       "https://api.openai.com/v1 (at most 500 characters)"})
        return ""
    return url.rstrip("/")


def _check_name(errors: list, name, *, exclude: int | None = None) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors.append({"field": "name", "message": "1–100 letters, digits, dots, underscores or dashes, starting "
                                                   "with a letter or digit (no slash: targets are named "
                                                   "provider/model)"})
        return ""
    clash = Provider.objects.filter(name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        errors.append({"field": "name", "message": f"A provider named {name!r} already exists."})
    return name


def _check_key(errors: list, api_key) -> str:
    if api_key is None or api_key == "":
        return ""
    if not isinstance(api_key, str) or len(api_key) > 4000 or any(c in api_key for c in "\x00\r\n"):
        errors.append({"field": "api_key", "message": "a single-line string of at most 4000 characters"})
        return ""
    return api_key.strip()


def _fail(errors: list) -> None:
    if errors:
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


@transaction.atomic
def provider_create(*, actor, name: str, kind: str, base_url: str, api_key: str | None = None,
                    timeouts: dict | None = None, max_concurrency: int | None = None,
                    context_length: int | None = None, enabled: bool = True) -> Provider:
    require_admin(actor)
    errors: list[dict] = []
    name = _check_name(errors, name)
    if kind not in Provider.Kind.values:
        errors.append({"field": "kind", "message": "one of: openai, anthropic"})
    url = _check_base_url(errors, base_url)
    key = _check_key(errors, api_key)
    t = timeouts or {}
    values = {f: _number(errors, f"timeouts.{f}", f, t.get(f)) for f in ("connect_s", "first_byte_s", "total_s")}
    cap = _number(errors, "max_concurrency", "max_concurrency", max_concurrency, integer=True)
    ctx = _number(errors, "context_length", "context_length", context_length, integer=True)
    _fail(errors)
    provider = Provider(name=name, kind=kind, base_url=url, api_key_encrypted=crypto.encrypt(key),
                        max_concurrency=cap, context_length=ctx, enabled=bool(enabled))
    for field, attr in (("connect_s", "connect_timeout_s"), ("first_byte_s", "first_byte_timeout_s"),
                        ("total_s", "total_timeout_s")):
        if values[field] is not None:
            setattr(provider, attr, values[field])
    provider.save()
    _changed()
    return provider


@transaction.atomic
def provider_update(*, actor, provider_id: int, name=UNSET, kind=UNSET, base_url=UNSET, api_key=UNSET,
                    timeouts=UNSET, max_concurrency=UNSET, context_length=UNSET, enabled=UNSET) -> Provider:
    """Change the given fields only (UNSET: unchanged)."""
    require_admin(actor)
    provider = Provider.objects.select_for_update().filter(pk=provider_id).first()
    if provider is None:
        raise NotFound(f"Provider {provider_id} does not exist.")
    errors: list[dict] = []
    if name is not UNSET:
        provider.name = _check_name(errors, name, exclude=provider.pk) or provider.name
    if kind is not UNSET:
        if kind not in Provider.Kind.values:
            errors.append({"field": "kind", "message": "one of: openai, anthropic"})
        else:
            provider.kind = kind
    if base_url is not UNSET:
        provider.base_url = _check_base_url(errors, base_url) or provider.base_url
    if api_key is not UNSET:
        provider.api_key_encrypted = crypto.encrypt(_check_key(errors, api_key))
    if timeouts is not UNSET and timeouts is not None:
        for field, attr in (("connect_s", "connect_timeout_s"), ("first_byte_s", "first_byte_timeout_s"),
                            ("total_s", "total_timeout_s")):
            if field in timeouts and timeouts[field] is not None:
                value = _number(errors, f"timeouts.{field}", field, timeouts[field])
                if value is not None:
                    setattr(provider, attr, value)
    if max_concurrency is not UNSET:
        provider.max_concurrency = _number(errors, "max_concurrency", "max_concurrency", max_concurrency,
                                           integer=True)
    if context_length is not UNSET:
        provider.context_length = _number(errors, "context_length", "context_length", context_length, integer=True)
    if enabled is not UNSET:
        if not isinstance(enabled, bool):
            errors.append({"field": "enabled", "message": "true or false"})
        else:
            provider.enabled = enabled
    _fail(errors)
    provider.save()
    _changed()
    return provider


@transaction.atomic
def provider_delete(*, actor, provider_id: int) -> None:
    require_admin(actor)
    provider = Provider.objects.filter(pk=provider_id).first()
    if provider is None:
        raise NotFound(f"Provider {provider_id} does not exist.")
    used = sorted(set(ChainTarget.objects.filter(provider=provider).values_list("chain__name", flat=True)))
    if used:
        raise Conflict(f"Provider {provider.name} is in the chains of: {', '.join(used)}. Remove it there first.",
                       extra={"aliases": used})
    try:
        provider.delete()
    except ProtectedError as exc:  # a chain added it meanwhile
        raise Conflict(f"Provider {provider.name} is in use.") from exc
    _changed()


def _model_ids(data) -> list[str]:
    items = data.get("data", data.get("models")) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("no model list")
    ids = []
    for item in items:
        ident = item.get("id") or item.get("name") if isinstance(item, dict) else item
        if isinstance(ident, str) and ident and "\x00" not in ident:
            ids.append(ident[:300])
    return sorted(set(ids))[:5000]


def provider_models_fetch(*, actor, provider_id: int) -> Provider:
    """GET {base}/models (OpenAI-compatible) or {base}/v1/models (Anthropic) with a short timeout, and keep
    the ids on the provider (the chain editor offers them). UpstreamFailed (502) when the provider does not
    answer with a model list."""
    require_admin(actor)
    provider = Provider.objects.filter(pk=provider_id).first()
    if provider is None:
        raise NotFound(f"Provider {provider_id} does not exist.")
    try:
        key = crypto.decrypt(provider.api_key_encrypted)
    except crypto.KeyUnreadable as exc:
        raise UpstreamFailed(str(exc), field="api_key") from exc
    base = provider_base_url(provider)
    headers = {"accept": "application/json"}
    if provider.kind == Provider.Kind.ANTHROPIC:
        url = base + "/v1/models?limit=1000"
        headers["anthropic-version"] = "2023-06-01"
        if key:
            headers["x-api-key"] = key
    else:
        url = base + "/models"
        if key:
            headers["authorization"] = f"Bearer {key}"
    try:
        with httpx.Client(timeout=MODELS_TIMEOUT_S, trust_env=False, follow_redirects=False) as client:
            r = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise UpstreamFailed(f"{provider.name} did not answer ({type(exc).__name__}).") from exc
    if r.status_code != 200:
        hint = " (check the key)" if r.status_code in (401, 403) else ""
        raise UpstreamFailed(f"{provider.name} answered HTTP {r.status_code} to GET /models{hint}.")
    try:
        ids = _model_ids(r.json())
    except ValueError as exc:
        raise UpstreamFailed(f"{provider.name} did not send a model list.") from exc
    with transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(model_ids=ids, models_fetched_at=timezone.now())
    provider.refresh_from_db()
    return provider


# --- chains ---------------------------------------------------------------------------------------
def _check_settings(errors: list, s: dict) -> dict:
    out = {
        "temperature": _number(errors, "settings.temperature", "temperature", s.get("temperature")),
        "max_tokens": _number(errors, "settings.max_tokens", "max_tokens", s.get("max_tokens"), integer=True),
        "timeout_s": _number(errors, "settings.timeout_s", "timeout_s", s.get("timeout_s")),
    }
    prefix = s.get("system_prefix")
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str) or len(prefix) > 50_000 or "\x00" in prefix:
        errors.append({"field": "settings.system_prefix", "message": "a string of at most 50000 characters"})
        prefix = ""
    out["system_prefix"] = prefix
    allow = s.get("tools_allow")
    if allow is not None:
        if not isinstance(allow, list) or len(allow) > 500 or not all(
                isinstance(n, str) and 0 < len(n) <= 200 and "\x00" not in n for n in allow):
            errors.append({"field": "settings.tools_allow", "message": "a list of at most 500 tool names"})
            allow = None
        else:
            allow = list(dict.fromkeys(n.strip() for n in allow if n.strip()))
    out["tools_allow"] = allow
    return out


def _check_targets(errors: list, targets) -> list[dict]:
    from apps.registry.models import ModelVersion

    if not isinstance(targets, list):
        errors.append({"field": "targets", "message": "a list of targets"})
        return []
    if len(targets) > MAX_TARGETS:
        errors.append({"field": "targets", "message": f"at most {MAX_TARGETS} targets"})
        return []
    out = []
    seen = set()
    providers = {p.name: p for p in Provider.objects.all()}
    for i, t in enumerate(targets):
        p = f"targets.{i}"
        if not isinstance(t, dict):
            errors.append({"field": p, "message": "{model_version_id} or {provider, model}"})
            continue
        vid, pname, model = t.get("model_version_id"), t.get("provider"), t.get("model")
        if vid is not None and (pname is not None or model is not None):
            errors.append({"field": p, "message": "either model_version_id or provider + model, not both"})
        elif vid is not None:
            if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 2**63 - 1:
                errors.append({"field": f"{p}.model_version_id", "message": "a model version id"})
            elif not ModelVersion.objects.filter(pk=vid).exists():
                errors.append({"field": f"{p}.model_version_id", "message": f"model version {vid} does not exist"})
            elif ("v", vid) in seen:
                errors.append({"field": p, "message": "this target is already in the chain"})
            else:
                seen.add(("v", vid))
                out.append({"model_version_id": vid})
        elif pname is not None or model is not None:
            provider = providers.get(pname) if isinstance(pname, str) else None
            if provider is None:
                errors.append({"field": f"{p}.provider", "message": f"no provider named {pname!r}"})
            if not isinstance(model, str) or not model.strip() or len(model) > 300 or "\x00" in model:
                errors.append({"field": f"{p}.model", "message": "the provider's model id (at most 300 characters)"})
            elif provider is not None:
                if ("p", provider.pk, model.strip()) in seen:
                    errors.append({"field": p, "message": "this target is already in the chain"})
                seen.add(("p", provider.pk, model.strip()))
                out.append({"provider": provider, "model": model.strip()})
        else:
            errors.append({"field": p, "message": "{model_version_id} or {provider, model}"})
    return out


@transaction.atomic
def chain_set(*, actor, name: str, targets: list, settings: dict | None = None) -> AliasChain:
    require_admin(actor)
    from apps.registry.models import Alias

    errors: list[dict] = []
    if not isinstance(name, str) or not re.fullmatch(SLUG_PATTERN, name) or len(name) > 100:
        errors.append({"field": "name", "message": "an alias name: lower-case letters, digits, `-` and `_`"})
    checked = _check_targets(errors, targets)
    values = _check_settings(errors, settings) if isinstance(settings, dict) else None
    if settings is not None and not isinstance(settings, dict):
        errors.append({"field": "settings", "message": "an object"})
    if not errors and not checked and not Alias.objects.filter(name=name).exists():
        errors.append({"field": "targets", "message": "at least one target: this alias has no deployed version"})
    _fail(errors)
    chain, _ = AliasChain.objects.select_for_update().get_or_create(name=name)
    chain.updated_by = actor
    if values is not None:
        for k, v in values.items():
            setattr(chain, k, v)
    chain.save()
    chain.targets.all().delete()
    ChainTarget.objects.bulk_create([
        ChainTarget(chain=chain, position=i, model_version_id=t.get("model_version_id"),
                    provider=t.get("provider"), model=t.get("model", ""))
        for i, t in enumerate(checked)])
    _changed()
    return chain


@transaction.atomic
def chain_delete(*, actor, name: str) -> None:
    """Forget an alias's chain: it serves its deployed version again (if any)."""
    require_admin(actor)
    deleted, _ = AliasChain.objects.filter(name=name).delete()
    if not deleted:
        raise NotFound(f"Alias {name!r} has no chain.")
    _changed()
