"""Reads for the proxy: what a requested model name routes to (`plan_resolve`: the alias's chain, or its
deployed version, or a version by id), the /v1/models list, and the providers and chains the API and the
dashboard show. Builds `routing.Route`s with everything the request path needs, so that a cached plan
answers a warm request without the database."""
from __future__ import annotations

import re

from django.conf import settings

from apps.proxy import crypto
from apps.proxy.models import AliasChain, ChainTarget, Provider
from apps.proxy.routing import ChainSettings, Plan, Route, context_length_for
from apps.registry.models import Alias, ModelVersion

_VERSION_RE = re.compile(r"^(?:mv-)?([0-9]{1,18})$")  # ASCII digits only: `mv-٣` names nothing
_CLAUDE_FAMILIES = ("haiku", "sonnet", "opus")

__all__ = ["Route", "Plan", "plan_resolve", "provider_plan", "route_resolve", "alias_names", "model_list", "model_get",
           "provider_list", "provider_get", "chain_get", "chain_list", "target_label", "provider_base_url"]


def _nameable(name: object) -> bool:
    """A model name the database can be asked about (PostgreSQL rejects NUL bytes in a query)."""
    return isinstance(name, str) and bool(name) and "\x00" not in name and len(name) <= 1000


def _min(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --- targets --------------------------------------------------------------------------------------
def target_label(*, version_id: int | None = None, provider: str = "", model: str = "") -> str:
    return f"version:{version_id}" if version_id is not None else f"provider:{provider}/{model}"


def provider_base_url(provider: Provider) -> str:
    """Where its API lives: `{base}/chat/completions` (OpenAI-compatible: the base includes /v1) or
    `{base}/v1/messages` (Anthropic: the base is the host, a trailing /v1 is dropped)."""
    base = provider.base_url.rstrip("/")
    if provider.kind == Provider.Kind.ANTHROPIC and base.endswith("/v1"):
        base = base[:-3]
    return base


def _version_route(version: ModelVersion, requested: str, alias: str | None, s: ChainSettings) -> Route:
    label = target_label(version_id=version.pk)
    first_byte = _min(settings.HUB_PROXY_TIMEOUT_S, s.timeout_s)
    if version.kind == ModelVersion.Kind.REMOTE:
        unavailable = "" if version.remote_model_id else \
            f"Model version {version.pk} is remote but has no remote model id yet."
        return Route(requested, version.pk, version.remote_model_id, settings.TOGETHER_BASE_URL.rstrip("/"),
                     settings.TOGETHER_API_KEY or None, True, alias, label=label, first_byte_s=first_byte,
                     total_s=s.timeout_s, unavailable=unavailable)
    base_path = version.base_model.path if version.base_model_id and version.base_model else None
    artifact = (settings.ARTIFACT_ROOT / version.artifact_path) if version.artifact_path else None
    if version.kind == ModelVersion.Kind.FULL:
        ctx = context_length_for(artifact, context_length_for(base_path, None))
    else:
        ctx = context_length_for(base_path, version.base_model.context_length if base_path else None)
    return Route(requested, version.pk, version.served_name, settings.HUB_INFERENCE_URL.rstrip("/"),
                 settings.HUB_INFERENCE_API_KEY or None, False, alias, label=label, first_byte_s=first_byte,
                 total_s=s.timeout_s, context_length=ctx)


def _provider_route(provider: Provider, model: str, requested: str, alias: str | None, s: ChainSettings) -> Route:
    unavailable, key = "", None
    if not provider.enabled:
        unavailable = f"The provider {provider.name} is disabled."
    try:
        key = crypto.decrypt(provider.api_key_encrypted) or None
    except crypto.KeyUnreadable as exc:
        unavailable = f"The key of provider {provider.name} cannot be used: {exc}"
    return Route(requested, None, model, provider_base_url(provider), key, True, alias, kind=provider.kind,
                 label=target_label(provider=provider.name, model=model), provider_id=provider.pk,
                 provider_name=provider.name, connect_s=provider.connect_timeout_s,
                 first_byte_s=_min(provider.first_byte_timeout_s, s.timeout_s),
                 total_s=_min(provider.total_timeout_s, s.timeout_s), max_concurrency=provider.max_concurrency,
                 context_length=provider.context_length, unavailable=unavailable)


def provider_plan(provider: Provider, model: str) -> Plan:
    """The plan that calls one provider's model directly (no alias, default settings), named
    `<provider>/<model>`: for callers that target a provider model themselves (the arena's contestants)."""
    requested = f"{provider.name}/{model}"
    return Plan(requested, None, (_provider_route(provider, model, requested, None, ChainSettings()),),
                ChainSettings())


def _settings_of(chain: AliasChain | None) -> ChainSettings:
    if chain is None:
        return ChainSettings()
    allow = chain.tools_allow
    return ChainSettings(temperature=chain.temperature, max_tokens=chain.max_tokens, timeout_s=chain.timeout_s,
                         system_prefix=chain.system_prefix or "",
                         tools_allow=tuple(str(t) for t in allow) if isinstance(allow, list) else None)


def _chain_rows(name: str) -> AliasChain | None:
    return (AliasChain.objects.filter(name=name)
            .prefetch_related("targets__model_version__base_model", "targets__provider").first())


def _alias_plan(name: str, requested: str) -> Plan | None:
    chain = _chain_rows(name)
    alias = Alias.objects.select_related("model_version__base_model").filter(name=name).first()
    if chain is None and alias is None:
        return None
    s = _settings_of(chain)
    targets = []
    for t in (chain.targets.all() if chain else ()):
        if t.model_version_id:
            targets.append(_version_route(t.model_version, requested, name, s))
        elif t.provider_id:
            targets.append(_provider_route(t.provider, t.model, requested, name, s))
    if not targets and alias is not None:
        targets.append(_version_route(alias.model_version, requested, name, s))
    return Plan(requested, name, tuple(targets), s, split=_split(name, requested, targets, s))


def _split(name: str, requested: str, targets: list[Route], s: ChainSettings):
    """The alias's running experiment or canary (apps.experiments) as one plan per arm: the arm's version,
    then the chain's provider targets as its fallbacks. None when none runs. Cached with the plan."""
    from apps.experiments.assign import Arm, Split
    from apps.experiments.selectors import split_rows

    rows = split_rows(name)
    if rows is None:
        return None
    experiment_id, sticky_by, arms = rows
    fallbacks = tuple(t for t in targets if t.version_id is None)
    return Split(experiment_id, sticky_by, tuple(
        Arm(arm, weight, Plan(requested, name, (_version_route(version, requested, name, s), *fallbacks), s))
        for arm, weight, version in arms))


def plan_resolve(name: str, *, anthropic: bool = False) -> Plan | None:
    """An alias name -> its chain (or its deployed version); `mv-<id>` or `<id>` -> that version. With
    `anthropic`, Claude model names (e.g. claude-3-5-haiku-20241022) also fall back to the aliases
    `<family>` (haiku/sonnet/opus), then `claude`, then `production`. A name with a NUL byte names nothing."""
    if not _nameable(name):
        return None
    plan = _alias_plan(name, name)
    if plan is not None:
        return plan
    m = _VERSION_RE.match(name)
    if m:
        version = ModelVersion.objects.select_related("base_model").filter(pk=int(m.group(1))).first()
        if version is not None:
            return Plan(name, None, (_version_route(version, name, None, ChainSettings()),))
    if anthropic and name.lower().startswith("claude"):
        lowered = name.lower()
        for cand in [f for f in _CLAUDE_FAMILIES if f in lowered] + ["claude", "production"]:
            plan = _alias_plan(cand, name)
            if plan is not None:
                return plan
    return None


def alias_names() -> frozenset[str]:
    """Every alias a client can call by name: registry aliases and chains (a chain may exist alone)."""
    return frozenset(Alias.objects.values_list("name", flat=True)) | frozenset(
        AliasChain.objects.values_list("name", flat=True))


def route_resolve(name: str, *, anthropic: bool = False) -> Route | None:
    """The first target of `plan_resolve` (callers that need one upstream, e.g. count_tokens)."""
    plan = plan_resolve(name, anthropic=anthropic)
    return plan.targets[0] if plan is not None and plan.targets else None


# --- /v1/models -----------------------------------------------------------------------------------
def model_list() -> list[dict]:
    """Aliases (registry aliases and chains) first, then every version, in the OpenAI model-object shape."""
    data = []
    aliases = {a.name: a for a in Alias.objects.select_related("model_version")}
    chains = {c.name: c for c in AliasChain.objects.all()}
    for name in sorted(set(aliases) | set(chains)):
        a, c = aliases.get(name), chains.get(name)
        stamp = max(x.updated_at for x in (a, c) if x is not None)
        item = {"id": name, "object": "model", "created": int(stamp.timestamp()), "owned_by": "training-hub"}
        if a is not None:
            item["root"] = a.model_version.served_name
        data.append(item)
    for v in ModelVersion.objects.order_by("-created_at"):
        data.append({"id": v.served_name, "object": "model", "created": int(v.created_at.timestamp()),
                     "owned_by": "training-hub"})
    return data


def model_get(name: str) -> dict | None:
    if not _nameable(name):
        return None
    for item in model_list():
        if item["id"] == name:
            return item
    m = _VERSION_RE.match(name)
    if m:
        v = ModelVersion.objects.filter(pk=int(m.group(1))).first()
        if v is not None:
            return {"id": name, "object": "model", "created": int(v.created_at.timestamp()),
                    "owned_by": "training-hub"}
    return None


# --- providers and chains (API, dashboard) ----------------------------------------------------------
def provider_list():
    return Provider.objects.order_by("name")


def provider_get(provider_id: int) -> Provider:
    from apps.core.exceptions import NotFound

    p = Provider.objects.filter(pk=provider_id).first()
    if p is None:
        raise NotFound(f"Provider {provider_id} does not exist.")
    return p


def _target_out(t: ChainTarget | None, *, version: ModelVersion | None = None) -> dict:
    from apps.proxy import breaker

    if t is not None and t.provider_id:
        label = target_label(provider=t.provider.name, model=t.model)
        return {"position": t.position, "kind": "provider", "provider": t.provider.name, "provider_id": t.provider_id,
                "provider_kind": t.provider.kind, "model": t.model, "model_version_id": None,
                "model_version_name": None, "label": label, "enabled": t.provider.enabled,
                "breaker": breaker.state_of(label)}
    v = version if version is not None else t.model_version
    label = target_label(version_id=v.pk)
    return {"position": t.position if t is not None else 0, "kind": "model_version", "provider": None,
            "provider_id": None, "provider_kind": None, "model": v.served_name, "model_version_id": v.pk,
            "model_version_name": v.name, "label": label, "enabled": True, "breaker": breaker.state_of(label)}


def chain_get(name: str) -> dict:
    """The chain of an alias as the API returns it. An alias with no chain shows its deployed version as
    its one target (`configured: false`). NotFound when neither exists."""
    from apps.core.exceptions import NotFound

    if not _nameable(name):
        raise NotFound(f"Alias {name!r} does not exist.")
    chain = _chain_rows(name)
    alias = Alias.objects.select_related("model_version").filter(name=name).first()
    if chain is None and alias is None:
        raise NotFound(f"Alias {name!r} does not exist.")
    targets = [_target_out(t) for t in chain.targets.all()] if chain else []
    deployed = alias.model_version if alias is not None else None
    if not targets and deployed is not None:
        targets = [_target_out(None, version=deployed)]
    s = _settings_of(chain)
    return {"alias": name, "configured": bool(chain and chain.targets.all()), "targets": targets,
            "settings": s.as_dict(), "deployed_version_id": deployed.pk if deployed else None,
            "updated_at": chain.updated_at if chain else (alias.updated_at if alias else None),
            "updated_by": chain.updated_by.username if chain and chain.updated_by else None}


def chain_list() -> list[dict]:
    """Every alias (registry aliases and chains), each with its chain, for the dashboard."""
    names = sorted(set(Alias.objects.values_list("name", flat=True)) | set(AliasChain.objects.values_list("name",
                                                                                                    flat=True)))
    return [chain_get(n) for n in names]
