"""Writes of the tool registry: the builtin tools, admins' definitions, and scans of dataset versions.

Contract:
- `tool_registry_ensure_builtins() -> int`: creates the builtin tools (apps/registry/tools/builtin.py) that have
  no row yet, as origin "builtin" (no data migration: the selectors and the scan call it; one query when they
  all exist). A name taken by any row is left alone (an admin's edit of a builtin tool survives).
- `tool_create / tool_update / tool_delete(*, actor, name, ...)`: admins only (PermissionDenied otherwise).
  `parameters` is a JSON schema (an object, or its JSON text); a bad name, bad JSON or a bad schema is a
  ValidationFailed with field errors ("name", "parameters", "parameters.properties.x.type", "call_format",
  "description"), nothing written. An edit makes the tool origin "admin" (a scan never changes its schema
  again). A builtin tool cannot be deleted (Conflict): edit it; deleting an admin's edit of a builtin name
  brings the builtin definition back.
- `tool_scan(*, actor, dataset_version_id) -> dict`: reads a ready version's examples once (values_list,
  iterator) and records per tool its calls, argument shapes, formats and up to 3 examples under
  `observed.versions[<id>]` (apps/registry/tools/scan.py), replacing that version's earlier figures (a re-scan
  never double counts). New names become origin "scan" tools with a schema inferred from the shapes
  (re-inferred on each scan); admin and builtin tools get only `observed`. Admins only when an actor is given.
  Names that are not valid tool names are skipped and reported; at most MAX_NEW_TOOLS new tools per scan.
"""
from __future__ import annotations

import json
import time
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import Q

from apps.accounts.services import require_admin
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.core.inputs import has_nul
from apps.registry.models import Tool
from apps.registry.tools.builtin import BUILTIN_TOOLS, CALL_FORMATS
from apps.registry.tools.scan import Tally, calls_in_messages, dominant_format, merge_observed
from apps.registry.tools.validate import infer_schema, name_problem, parameter_order, schema_problems

MAX_DESCRIPTION = 4000
MAX_SCHEMA_CHARS = 100_000
MAX_NEW_TOOLS = 500


def tool_registry_ensure_builtins() -> int:
    have = set(Tool.objects.filter(name__in=list(BUILTIN_TOOLS)).values_list("name", flat=True))
    missing = [n for n in BUILTIN_TOOLS if n not in have]
    if missing:
        Tool.objects.bulk_create([
            Tool(name=n, description=BUILTIN_TOOLS[n]["description"], parameters=BUILTIN_TOOLS[n]["parameters"],
                 call_format="bracket", origin=Tool.Origin.BUILTIN, observed={})
            for n in missing], ignore_conflicts=True)
    return len(missing)


def _parameters(raw) -> dict:
    """The schema as an object (parsed from its JSON text), or a ValidationFailed naming the field."""
    if isinstance(raw, str):
        if len(raw) > MAX_SCHEMA_CHARS:
            raise ValidationFailed("The schema is too long.", field="parameters")
        if not raw.strip():
            raw = "{}"
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
                                   field="parameters") from exc
    if has_nul(raw):
        raise ValidationFailed("The schema must not contain NUL bytes.", field="parameters")
    if isinstance(raw, dict) and not raw:
        raw = {"type": "object", "properties": {}}
    problems = schema_problems(raw)
    if problems:
        raise ValidationFailed(problems[0][1], errors=[{"field": f, "message": m} for f, m in problems])
    if len(json.dumps(raw)) > MAX_SCHEMA_CHARS:
        raise ValidationFailed("The schema is too long.", field="parameters")
    return raw


def _check_fields(*, description: str | None, call_format: str | None) -> None:
    errors = []
    if description is not None and (len(description) > MAX_DESCRIPTION or "\x00" in description):
        errors.append({"field": "description", "message": f"At most {MAX_DESCRIPTION} characters, no NUL bytes."})
    if call_format is not None and call_format not in CALL_FORMATS:
        errors.append({"field": "call_format", "message": f"One of {', '.join(CALL_FORMATS)}."})
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)


def tool_create(*, actor, name: str, parameters, description: str = "", call_format: str = "openai") -> Tool:
    require_admin(actor)
    problem = name_problem(name)
    if problem:
        raise ValidationFailed(problem, field="name")
    _check_fields(description=description, call_format=call_format)
    schema = _parameters(parameters)
    if Tool.objects.filter(name=name).exists():
        raise ValidationFailed(f"A tool named {name} exists: edit it instead.", field="name")
    try:
        with transaction.atomic():
            return Tool.objects.create(name=name, description=description or "", parameters=schema,
                                       call_format=call_format, origin=Tool.Origin.ADMIN, observed={},
                                       updated_by=actor)
    except IntegrityError as exc:  # created meanwhile by a scan or another admin
        raise ValidationFailed(f"A tool named {name} exists: edit it instead.", field="name") from exc


def _locked(name: str) -> Tool:
    tool_registry_ensure_builtins()
    tool = Tool.objects.select_for_update().filter(name=name).first() if not name_problem(name) else None
    if tool is None:
        raise NotFound("No such tool.")
    return tool


@transaction.atomic
def tool_update(*, actor, name: str, parameters=None, description: str | None = None,
                call_format: str | None = None) -> Tool:
    """Change what is given (None: keep it)."""
    require_admin(actor)
    tool = _locked(name)
    _check_fields(description=description, call_format=call_format)
    if parameters is not None:
        tool.parameters = _parameters(parameters)
    if description is not None:
        tool.description = description
    if call_format is not None:
        tool.call_format = call_format
    tool.origin = Tool.Origin.ADMIN
    tool.updated_by = actor
    tool.save()
    return tool


@transaction.atomic
def tool_delete(*, actor, name: str) -> None:
    require_admin(actor)
    tool = _locked(name)
    if tool.origin == Tool.Origin.BUILTIN:
        raise Conflict(f"{name} ships with the hub and cannot be deleted; edit it instead.")
    tool.delete()


def _definitions(tools) -> dict[str, str]:
    """{name: description} from an example's `tools` (OpenAI or Anthropic shape)."""
    out = {}
    for t in tools if isinstance(tools, list) else ():
        fn = t.get("function") if isinstance(t, dict) and isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and isinstance(fn.get("name"), str) and isinstance(fn.get("description"), str):
            out[fn["name"]] = fn["description"][:MAX_DESCRIPTION]
    return out


def _version(dataset_version_id: int):
    from apps.datasets.models import DatasetVersion

    version = DatasetVersion.objects.select_related("dataset").filter(pk=dataset_version_id).first()
    if version is None:
        raise ValidationFailed("No such dataset version.", field="dataset_version_id")
    if version.status != DatasetVersion.Status.READY:
        raise ValidationFailed(f"Version {version.number} of {version.dataset.name} is {version.status}: "
                               "scan a ready version.", field="dataset_version_id")
    return version


def _read(version, known: dict[str, tuple[str, dict]]):
    from apps.datasets.models import Example

    params = {n: (list(BUILTIN_TOOLS[n]["parameters"]["properties"]) if n in BUILTIN_TOOLS and origin == "builtin"
                  else parameter_order(schema))
              for n, (origin, schema) in known.items() if origin != Tool.Origin.SCAN}
    lower = {n.lower(): n for n in known}
    tally, described, skipped = Tally(version.pk), {}, Counter()
    examples = 0
    rows = Example.objects.filter(version_id=version.pk).order_by().values_list("index", "messages", "tools")
    for index, messages, tools in rows.iterator(chunk_size=2000):
        examples += 1
        calls = calls_in_messages(messages, params, lower)
        if not calls:
            continue
        if tools:
            for k, v in _definitions(tools).items():
                described.setdefault(k, v)
        for name, args, fmt in calls:
            if name_problem(name) or (name not in known and name not in tally.tools
                                      and len(tally.tools) >= MAX_NEW_TOOLS + len(known)):
                skipped[name[:100]] += 1
                continue
            tally.add(name, args, fmt, index)
    return tally, described, skipped, examples


def _inferred(observed: dict) -> dict:
    return infer_schema(observed["argument_shapes"], observed["calls"] - observed["invalid_arguments"])


def _create_scanned(name: str, version_id: int, entry: dict, description: str) -> tuple[Tool, bool]:
    """(a new origin-"scan" tool, True); (the row, locked, False) when someone created that name meanwhile."""
    observed = merge_observed(None, version_id, entry)
    try:
        with transaction.atomic():
            return Tool.objects.create(name=name, origin=Tool.Origin.SCAN, observed=observed,
                                       parameters=_inferred(observed), call_format=dominant_format(observed),
                                       description=description[:MAX_DESCRIPTION]), True
    except IntegrityError:
        return Tool.objects.select_for_update().get(name=name), False


def _record(tool: Tool, version_id: int, entry: dict | None) -> None:
    """Put one version's figures into a tool's `observed`; a scan tool's schema and call format follow them."""
    tool.observed = merge_observed(tool.observed, version_id, entry)
    fields = ["observed", "updated_at"]
    if tool.origin == Tool.Origin.SCAN:
        tool.parameters = _inferred(tool.observed)
        tool.call_format = dominant_format(tool.observed, tool.call_format)
        fields += ["parameters", "call_format"]
    tool.save(update_fields=fields)


def tool_scan(*, actor, dataset_version_id: int) -> dict:
    if actor is not None:
        require_admin(actor)
    started = time.monotonic()
    version = _version(dataset_version_id)
    tool_registry_ensure_builtins()
    known = {n: (o, p) for n, o, p in Tool.objects.values_list("name", "origin", "parameters")}
    tally, described, skipped, examples = _read(version, known)
    label = f"{version.dataset.name} v{version.number}"
    out_tools = []
    with transaction.atomic():
        rows = {t.name: t for t in Tool.objects.select_for_update().filter(
            Q(name__in=list(tally.tools)) | Q(observed__datasets__has_key=str(version.pk)))}
        for name in sorted(set(tally.tools) | set(rows)):
            entry = tally.entry(name) if name in tally.tools else None
            tool, created = rows.get(name), False
            if tool is None:
                tool, created = _create_scanned(name, version.pk, entry, described.get(name) or f"Found in {label}.")
            if not created:
                _record(tool, version.pk, entry)
            out_tools.append({"name": name, "origin": tool.origin, "created": created,
                              "calls": entry["calls"] if entry else 0})
    return {"dataset_version_id": version.pk, "dataset": version.dataset.name, "version": version.number,
            "examples": examples, "calls": sum(t["calls"] for t in out_tools),
            "created": [t["name"] for t in out_tools if t["created"]], "tools": out_tools,
            "skipped": {"calls": sum(skipped.values()), "names": sorted(skipped)[:20]},
            "seconds": round(time.monotonic() - started, 3)}
