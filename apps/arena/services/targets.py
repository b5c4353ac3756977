"""What an arena calls: a contestant or a judge named as the hub names models, resolved through the proxy's
own routing (apps.proxy.selectors.plan_resolve), so an arena calls exactly what /v1 would.

A target is given as
- a string: an alias (`production`), a model version (`mv-12` or `12`, after any alias of that name, as
  /v1 resolves it), or a provider's model (`openrouter/gpt-4o`: the provider's name, a slash, its model id);
- or an object: `{"model_version_id": 12}`, `{"alias": "production"}`, `{"provider": "openrouter" |
  "provider_id": 3, "model": "gpt-4o"}`, or `{"model": "<one of the strings above>"}`, each with an optional
  `label` (what the results call it; by default the version's name, the alias, or provider/model).
`parse_target` checks that it names something (a 422 on `field` otherwise) and returns
`Target(kind, model, label, model_version, provider)`; `plan_for(kind, model, provider)` gives the proxy
Plan to call (None when it no longer routes anywhere): an alias's chain with its settings and fallbacks, a
version's inference route, or the provider's model as the only target.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from apps.core.exceptions import ValidationFailed

_VERSION_RE = re.compile(r"^(?:mv-)?([0-9]{1,18})$")
MAX_NAME = 300


@dataclass
class Target:
    kind: str  # version | alias | provider
    model: str  # mv-<id>, the alias, or the provider's model id
    label: str
    model_version: object = None
    provider: object = None

    @property
    def key(self) -> tuple:
        return self.kind, self.model, getattr(self.provider, "pk", None)

    @property
    def name(self) -> str:
        """The string form (what a judge is stored as)."""
        return f"{self.provider.name}/{self.model}" if self.kind == "provider" else self.model


def _bad(field: str, message: str):
    return ValidationFailed(message, field=field)


def _version(pk: int, field: str, label: str | None) -> Target:
    from apps.registry.models import ModelVersion

    v = ModelVersion.objects.filter(pk=pk).first()
    if v is None:
        raise _bad(field, f"Model version {pk} does not exist.")
    return Target("version", v.served_name, label or f"{v.name} (mv-{v.pk})", model_version=v)


def _alias(name: str, field: str, label: str | None) -> Target:
    from apps.proxy import selectors as proxy
    from apps.registry.models import Alias

    if name not in proxy.alias_names():
        raise _bad(field, f"There is no alias `{name}`.")
    alias = Alias.objects.select_related("model_version").filter(name=name).first()
    return Target("alias", name, label or name, model_version=alias.model_version if alias else None)


def _provider(provider, model: str, field: str, label: str | None) -> Target:
    if provider is None:
        raise _bad(field, "There is no such provider.")
    model = (model or "").strip()
    if not model or len(model) > MAX_NAME:
        raise _bad(field, f"Name the model of provider {provider.name} (1 to {MAX_NAME} characters).")
    return Target("provider", model, label or f"{provider.name}/{model}", provider=provider)


def _from_string(text: str, field: str, label: str | None) -> Target:
    from apps.proxy import selectors as proxy
    from apps.proxy.models import Provider

    text = text.strip()
    if not text or len(text) > MAX_NAME or "\x00" in text:
        raise _bad(field, f"Name a model: an alias, mv-<id>, or provider/model (at most {MAX_NAME} characters).")
    if text in proxy.alias_names():
        return _alias(text, field, label)
    m = _VERSION_RE.match(text)
    if m:
        return _version(int(m.group(1)), field, label)
    if "/" in text:
        name, model = text.split("/", 1)
        provider = Provider.objects.filter(name=name).first()
        if provider is not None:
            return _provider(provider, model, field, label)
        raise _bad(field, f"`{text}` is neither an alias, a model version nor a provider's model (no provider "
                          f"is called `{name}`).")
    raise _bad(field, f"There is no alias `{text}` (a model version is mv-<id>; a provider's model is "
                      f"provider/model).")


def parse_target(spec, *, field: str) -> Target:
    """One contestant or judge, as given to the API or the form."""
    from apps.core.inputs import is_id
    from apps.proxy.models import Provider

    if isinstance(spec, str):
        return _from_string(spec, field, None)
    if not isinstance(spec, dict):
        raise _bad(field, "Give a model name (string) or an object such as {\"alias\": \"production\"}.")
    label = spec.get("label")
    if label is not None:
        if not isinstance(label, str) or "\x00" in label or len(label.strip()) > 200:
            raise _bad(f"{field}.label", "A label is text of at most 200 characters.")
        label = label.strip() or None
    known = {"model_version_id", "alias", "provider", "provider_id", "model", "label"}
    extra = sorted(set(spec) - known)
    if extra:
        raise _bad(field, f"Unknown key{'s' if len(extra) > 1 else ''}: {', '.join(extra)}.")
    if spec.get("model_version_id") is not None:
        if not is_id(spec["model_version_id"]):
            raise _bad(f"{field}.model_version_id", "A model version id is a whole number.")
        return _version(int(spec["model_version_id"]), f"{field}.model_version_id", label)
    if spec.get("alias") is not None:
        if not isinstance(spec["alias"], str) or "\x00" in spec["alias"] or len(spec["alias"]) > MAX_NAME:
            raise _bad(f"{field}.alias", "An alias is a name.")
        return _alias(spec["alias"].strip(), f"{field}.alias", label)
    if spec.get("provider") is not None or spec.get("provider_id") is not None:
        model = spec.get("model")
        if not isinstance(model, str) or "\x00" in model:
            raise _bad(f"{field}.model", "Name the provider's model.")
        if spec.get("provider_id") is not None:
            if not is_id(spec["provider_id"]):
                raise _bad(f"{field}.provider_id", "A provider id is a whole number.")
            provider = Provider.objects.filter(pk=int(spec["provider_id"])).first()
        else:
            name = spec["provider"]
            provider = Provider.objects.filter(name=name).first() if isinstance(name, str) and "\x00" not in name \
                else None
        return _provider(provider, model, f"{field}.provider", label)
    if isinstance(spec.get("model"), str):
        return _from_string(spec["model"], f"{field}.model", label)
    raise _bad(field, "Say which model: model_version_id, alias, provider + model, or model.")


def plan_for(*, kind: str, model: str, provider=None):
    """The proxy plan that serves this target now, or None."""
    from apps.proxy import selectors as proxy

    if kind == "provider":
        # the proxy's own route for a provider's model (timeouts, key, concurrency cap, wire format)
        return proxy.provider_plan(provider, model) if provider is not None else None
    return proxy.plan_resolve(model)


def target_plan(name: str):
    """The plan of a target stored as its string form (a judge): None when it names nothing any more."""
    try:
        t = _from_string(name, "model", None)
    except ValidationFailed:
        return None
    return plan_for(kind=t.kind, model=t.model, provider=t.provider)
