"""Reads for the proxy: which upstream serves a requested model name, and the /v1/models list."""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from apps.registry.models import Alias, ModelVersion

_VERSION_RE = re.compile(r"^(?:mv-)?([0-9]{1,18})$")  # ASCII digits only: `mv-٣` names nothing
_CLAUDE_FAMILIES = ("haiku", "sonnet", "opus")


@dataclass(frozen=True)
class Route:
    requested: str
    version_id: int
    upstream_model: str  # the name the upstream knows it by
    base_url: str
    api_key: str | None
    remote: bool
    alias: str | None = None


def _nameable(name: object) -> bool:
    """A model name the database can be asked about (PostgreSQL rejects NUL bytes in a query)."""
    return isinstance(name, str) and bool(name) and "\x00" not in name and len(name) <= 1000


def _route_for(version: ModelVersion, requested: str, alias: str | None) -> Route:
    if version.kind == ModelVersion.Kind.REMOTE:
        if not version.remote_model_id:
            from apps.proxy.errors import ProxyError

            raise ProxyError(503, f"Model version {version.pk} is remote but has no remote model id yet.",
                             code="model_unavailable")
        return Route(requested, version.pk, version.remote_model_id, settings.TOGETHER_BASE_URL.rstrip("/"),
                     settings.TOGETHER_API_KEY or None, True, alias)
    return Route(requested, version.pk, version.served_name, settings.HUB_INFERENCE_URL.rstrip("/"), None, False,
                 alias)


def route_resolve(name: str, *, anthropic: bool = False) -> Route | None:
    """An alias name -> its version; `mv-<id>` or `<id>` -> that version. With `anthropic`,
    Claude model names (e.g. claude-3-5-haiku-20241022) also fall back to the aliases
    `<family>` (haiku/sonnet/opus), then `claude`, then `production`. A name with a NUL byte names nothing."""
    if not _nameable(name):
        return None
    alias = Alias.objects.select_related("model_version").filter(name=name).first()
    if alias is not None:
        return _route_for(alias.model_version, name, alias.name)
    m = _VERSION_RE.match(name)
    if m:
        version = ModelVersion.objects.filter(pk=int(m.group(1))).first()
        if version is not None:
            return _route_for(version, name, None)
    if anthropic and name.lower().startswith("claude"):
        lowered = name.lower()
        candidates = [f for f in _CLAUDE_FAMILIES if f in lowered] + ["claude", "production"]
        for cand in candidates:
            alias = Alias.objects.select_related("model_version").filter(name=cand).first()
            if alias is not None:
                return _route_for(alias.model_version, name, alias.name)
    return None


def model_list() -> list[dict]:
    """Aliases first, then every version, in the OpenAI model-object shape."""
    data = []
    for alias in Alias.objects.select_related("model_version").order_by("name"):
        data.append({"id": alias.name, "object": "model", "created": int(alias.updated_at.timestamp()),
                     "owned_by": "training-hub", "root": alias.model_version.served_name})
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
