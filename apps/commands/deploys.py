"""The command resolvers of the registry and the proxy: deploy a version to an alias, roll an alias back,
configure an alias's chain (temperature, max tokens, timeout, fallback model, the model it serves). All three
are admins' actions (apps.registry.services.alias_deploy / alias_rollback, apps.proxy.providers.chain_set
check it again); a member gets the plan with `allowed: false`. Reads only. See apps.commands.services."""
from __future__ import annotations

from urllib.parse import urlencode

from apps.commands.actions import _is_admin, _join
from apps.commands.services import Result, closest, fmt, replace_word
from apps.core.exceptions import ApplicationError

ADMINS_ONLY = "Only admins can {what}; ask an admin, or open the page to see the current state."


def _version_text(v) -> str:
    loss = f", final loss {fmt(round(v.final_loss, 4))}" if v.final_loss is not None else ""
    return f"mv-{v.pk} ({v.name}{loss})"


def _model_version(user, p: dict, out: Result, *, field: str = "version"):
    from apps.registry.models import ModelVersion

    qs = ModelVersion.objects.select_related("run", "base_model")
    if p.get("version_id"):
        v = qs.filter(pk=p["version_id"]).first()
        if v is None:
            out.need(field, f"Model version {p['version_id']} does not exist.")
        return v
    if p.get("run_id"):
        v = qs.filter(run_id=p["run_id"]).first()
        if v is None:
            out.need(field, f"Run {p['run_id']} has no model version (it has not succeeded, or was not promoted).")
        return v
    if p.get("latest"):
        v = qs.filter(created_by=user).order_by("-created_at").first() or qs.order_by("-created_at").first()
        if v is None:
            out.need(field, "There is no model version yet: train one first.")
        return v
    name = p.get("version_name")
    if name:
        v = qs.filter(name__iexact=name).order_by("-created_at").first()
        if v is None:
            near = closest(name, list(ModelVersion.objects.values_list("name", flat=True)[:2000]))
            out.need(field, f"No model version is named {name!r}." + (f" Did you mean {_join(near)}?" if near else ""))
            out.suggest(*[replace_word(out.text, name, n) for n in near])
        return v
    out.need(field, "Say which model version, e.g. “version 3”, “run 12” or “the latest model”.")
    latest = qs.order_by("-created_at").first()
    if latest is not None and p.get("alias"):
        out.suggest(f"deploy version {latest.pk} to {p['alias']}")
    return None


def _alias_names() -> list[str]:
    from apps.proxy.models import AliasChain
    from apps.registry.models import Alias

    return sorted(set(Alias.objects.values_list("name", flat=True)) | set(AliasChain.objects.values_list("name",
                                                                                                      flat=True)))


def deploy(user, p: dict, out: Result) -> None:
    from apps.registry.models import Alias

    v = _model_version(user, p, out)
    alias = p.get("alias")
    if not alias:  # never a silent `production`: the alias is said out loud
        out.need("alias", "Say which alias to deploy to, e.g. “to production” or “to staging”.")
        if v is not None:
            out.suggest(*[f"{out.text} to {a}" for a in (_alias_names() or ["staging", "production"])[:3]])
    if p.get("canary") and not p.get("canary_percent"):
        out.need("canary_percent", "Say the canary's share, e.g. “as a 10% canary”.")
    if p.get("canary_percent") is not None and not 1 <= p["canary_percent"] <= 99:
        out.problem("canary_percent", "A canary takes 1 to 99 percent of the requests.")
    body: dict = {"alias": alias or "", "reason": p.get("reason") or f"command: {out.text}"[:2000]}
    if p.get("canary_percent"):
        body["canary_percent"] = p["canary_percent"]
    current = Alias.objects.select_related("model_version").filter(name=alias).first() if alias else None
    if v is not None:
        out.params.update({"version_id": v.pk, "version": v.name, "run_id": v.run_id, "final_loss": v.final_loss})
        said = {**p, "canary": "true" if p.get("canary") else None}  # the deploy form's fields, only those said
        query = {k: said[k] for k in ("alias", "canary", "canary_percent", "reason") if said.get(k)}
        out.form_url = f"/models/{v.pk}/" + ("?" + urlencode(query) if query else "")
    if alias:
        out.params.update({"alias": alias, "current_version_id": current.model_version_id if current else None})
    if p.get("canary_percent"):
        out.params["canary_percent"] = p["canary_percent"]
    if not _is_admin(user):
        out.deny(ADMINS_ONLY.format(what="deploy"))
    what = _version_text(v) if v is not None else "a model version you still have to name"
    where = alias or "an alias you still have to name"
    if p.get("canary_percent"):
        out.summary = (f"Deploy {what} to {where} as a {p['canary_percent']}% canary, watched and rolled back on "
                       "a breach.")
    elif current is not None:
        out.summary = f"Point {where} at {what}, replacing {_version_text(current.model_version)}."
    else:
        out.summary = f"Deploy {what} to {where}" + (" (a new alias)." if alias else ".")
    out.result_url = "/models/aliases/{name}/"
    out.confirm = f"Deploy to {alias}" if alias else "Deploy"
    out.call("POST", f"/api/models/{v.pk if v is not None else 0}/deploy", body)


def rollback(user, p: dict, out: Result) -> None:
    from apps.registry import selectors

    alias = p.get("alias")
    out.confirm = "Roll back"
    if not alias:
        out.need("alias", "Say which alias to roll back, e.g. “roll back production”.")
        out.suggest(*[f"roll back {a}" for a in _alias_names()[:3]])
        out.summary = out.problems[-1]["message"]
        return
    try:
        current = selectors.alias_get(alias)
    except ApplicationError:
        near = closest(alias, _alias_names())
        out.need("alias", f"There is no alias {alias!r}." + (f" Did you mean {_join(near)}?" if near else ""))
        out.suggest(*[replace_word(out.text, alias, n) for n in near])
        out.summary = out.problems[-1]["message"]
        return
    targets = selectors.alias_rollback_targets(alias, current_version_id=current.model_version_id)
    target = None
    if p.get("to_deployment_id"):
        target = next((d for d in targets if d.pk == p["to_deployment_id"]), None)
        if target is None:
            out.problem("to", f"Deployment {p['to_deployment_id']} is not one {alias} can roll back to.")
    elif p.get("to_version_id"):
        target = next((d for d in targets if d.model_version_id == p["to_version_id"]), None)
        if target is None:
            can = _join([f"mv-{d.model_version_id}" for d in targets[:5]]) if targets else "nothing"
            out.problem("to", f"{alias} never served mv-{p['to_version_id']} before: it can roll back to {can}.")
    elif targets:
        target = targets[0]
    else:
        out.problem("to", f"{alias} has served no other version: there is nothing to roll back to.")
    out.params.update({"alias": alias, "current_version_id": current.model_version_id})
    body: dict = {"reason": p.get("reason") or f"command: {out.text}"[:2000]}
    if target is not None:
        body["to_version_id"] = target.model_version_id
        out.params.update({"to_version_id": target.model_version_id, "to_version": target.model_version.name})
        out.form_url = f"/models/aliases/{alias}/?to={target.pk}"
        out.summary = (f"Roll {alias} back from {_version_text(current.model_version)} to "
                       f"{_version_text(target.model_version)}, which it served since "
                       f"{target.created_at:%Y-%m-%d %H:%M}.")
    else:
        out.form_url = f"/models/aliases/{alias}/"
        out.summary = out.problems[-1]["message"]
    if not _is_admin(user):
        out.deny(ADMINS_ONLY.format(what="roll back an alias"))
    out.result_url = "/models/aliases/{name}/"
    out.call("POST", f"/api/aliases/{alias}/rollback", body)


# -- configure (the proxy's alias chains) -------------------------------------------------------------------
def _chain_alias(p: dict, out: Result) -> str | None:
    names = _alias_names()
    alias = p.get("alias")
    if alias:
        if alias in names:
            return alias
        near = closest(alias, names)
        out.need("alias", f"There is no alias {alias!r}." + (f" Did you mean {_join(near)}?" if near else ""))
        out.suggest(*[replace_word(out.text, alias, n) for n in near])
        return None
    if p.get("alias_hint"):
        for candidate in ("auto-coder", "autocoder", "coder", "reasoning"):
            if candidate in names:
                return candidate
    if len(names) == 1:
        out.notes.append(f"Using the only alias, {names[0]}.")
        return names[0]
    out.need("alias", "Say which alias to configure, e.g. “for production”." if names else
             "There is no alias yet: deploy a model version to one first.")
    out.suggest(*[f"{out.text} for {n}" for n in names[:3]])
    return None


def _target(user, value: str, provider: str | None, out: Result, *, field: str) -> dict | None:
    """`mv-3` / `version 3` / a version's name / `provider/model` / a model a provider lists -> a chain target."""
    import re

    from apps.proxy.models import Provider
    from apps.registry.models import ModelVersion

    m = re.fullmatch(r"(?:mv-?|version\s*|v)(\d+)", value.strip().lower())
    if m:
        if not ModelVersion.objects.filter(pk=int(m.group(1))).exists():
            out.problem(field, f"Model version {m.group(1)} does not exist.")
            return None
        return {"model_version_id": int(m.group(1))}
    providers = list(Provider.objects.order_by("name"))
    by_name = {pr.name.lower(): pr for pr in providers}
    model = value
    if provider is None and "/" in value and value.split("/", 1)[0].lower() in by_name:
        provider, model = value.split("/", 1)
    if provider is not None:
        pr = by_name.get(provider.lower())
        if pr is None:
            out.problem(field, f"There is no provider {provider!r}" + (f" (there are {_join(sorted(by_name))})."
                                                                       if by_name else "."))
            return None
        return {"provider": pr.name, "model": model}
    listing = [pr for pr in providers if pr.enabled and model in (pr.model_ids or [])]
    if listing:
        if len(listing) > 1:
            out.notes.append(f"{model} is offered by {_join([pr.name for pr in listing])}: using {listing[0].name}.")
        return {"provider": listing[0].name, "model": model}
    v = ModelVersion.objects.filter(name__iexact=value).order_by("-created_at").first()
    if v is not None:
        return {"model_version_id": v.pk}
    out.problem(field, f"No provider lists {value!r} and no model version has that name: name it as "
                       f"provider/model (e.g. openrouter/{value}), or add its provider on the Providers page.")
    return None


def _target_in(t: dict) -> dict:
    return {"model_version_id": t["model_version_id"]} if t["kind"] == "model_version" else \
        {"provider": t["provider"], "model": t["model"]}


def _target_text(t: dict) -> str:
    return f"mv-{t['model_version_id']}" if "model_version_id" in t else f"{t['model']} on {t['provider']}"


def configure(user, p: dict, out: Result) -> None:
    from apps.proxy import selectors
    from apps.registry.models import ModelVersion

    alias = _chain_alias(p, out)
    out.confirm = "Save the chain"
    changes: list[str] = []
    settings_new = {k: p[k] for k in ("temperature", "max_tokens", "timeout_s", "system_prefix") if k in p}
    if "temperature" in settings_new and not 0 <= settings_new["temperature"] <= 2:
        out.problem("temperature", "The temperature is between 0 and 2.")
    for key, label in (("temperature", "temperature"), ("max_tokens", "max tokens"), ("timeout_s", "timeout")):
        if key in settings_new:
            changes.append(f"{label} to {fmt(settings_new[key])}{' s' if key == 'timeout_s' else ''}")
    if "system_prefix" in settings_new:
        changes.append("the system prefix")
    use = None
    if p.get("use"):
        if p["use"].get("latest"):
            v = ModelVersion.objects.filter(created_by=user).order_by("-created_at").first() or \
                ModelVersion.objects.order_by("-created_at").first()
            if v is None:
                out.problem("use", "There is no model version yet: train one first.")
            else:
                use = {"model_version_id": v.pk}
        else:
            use = _target(user, f"mv-{p['use']['version_id']}", None, out, field="use")
    fallback = _target(user, p["fallback"], p.get("fallback_provider"), out, field="fallback") \
        if p.get("fallback") else None
    if not settings_new and not p.get("use") and not p.get("fallback"):
        out.need("settings", "Say what to change: temperature, max tokens, timeout, a fallback model, or the "
                             "model to use.")
    chain = None
    if alias is not None:
        try:
            chain = selectors.chain_get(alias)
        except ApplicationError:
            out.need("alias", f"There is no alias {alias!r}.")
    body = None
    if chain is not None:
        targets = [_target_in(t) for t in chain["targets"]] if chain["configured"] else []
        if use is not None or fallback is not None:
            if not targets and chain["deployed_version_id"]:
                targets = [{"model_version_id": chain["deployed_version_id"]}]
            if use is not None:
                targets = [use] + [t for t in targets if t != use]
                changes.append(f"serve {_target_text(use)} first")
            if fallback is not None:
                if fallback in targets:
                    out.notes.append(f"{_target_text(fallback)} is already in the chain.")
                else:
                    targets.append(fallback)
                    changes.append(f"fall back to {_target_text(fallback)}")
        settings = {k: v for k, v in chain["settings"].items()
                    if k in ("temperature", "max_tokens", "timeout_s", "system_prefix", "tools_allow")}
        settings.update(settings_new)
        body = {"targets": targets, "settings": settings}
        served = [_target_text(t) for t in targets] or (
            [f"its deployed version (mv-{chain['deployed_version_id']})"] if chain["deployed_version_id"] else [])
        out.params.update({"alias": alias, **settings_new, "targets": served})
        out.form_url = f"/proxy/aliases/{alias}/chain" if _is_admin(user) else None  # an admins' page
    if p.get("fallback"):
        out.params["fallback"] = p["fallback"]
    if not _is_admin(user):
        out.deny(ADMINS_ONLY.format(what="change an alias's chain"))
    out.summary = (f"Set {alias or 'an alias you still have to name'}'s " if alias or changes else "") + \
        (_join(changes) + "." if changes else "Nothing to change yet.")
    if changes and not any(c.startswith(("temperature", "max tokens", "timeout", "the system")) for c in changes):
        out.summary = f"In {alias or 'an alias'}'s chain: " + _join(changes) + "."
    out.result_url = "/proxy/aliases/{alias}/chain"
    out.call("PUT", f"/api/aliases/{alias}/chain", body)
