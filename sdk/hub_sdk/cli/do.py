"""`hub do "…"`: a plain-language command, parsed by the hub (POST /api/commands/parse) into a plan that is shown
first. A plan that changes something (a POST, PUT, PATCH or DELETE) runs only after a yes typed at a terminal;
when stdin is not a terminal the plan is printed and nothing is done. A status question (a GET) changes nothing:
its answer is the plan's summary."""
from __future__ import annotations

import json
import re

import typer

from hub_sdk.cli.common import JSON_OPTION, emit_json, err, fields, fmt, hub, out, stdin_is_terminal


def _print_plan(plan: dict, url: str) -> None:
    console = out()
    changes = bool(plan.get("api")) and plan["api"].get("method", "GET").upper() != "GET"
    console.print(("Would: " if changes else "") + (plan.get("summary") or plan.get("action") or ""), markup=False)
    params = {k: v for k, v in (plan.get("params") or {}).items() if v is not None}
    if params and changes:
        fields([(f"  {k}", v) for k, v in params.items()])
    api = plan.get("api")
    if changes:
        body = api.get("body")
        console.print(f"  = {api['method'].upper()} {api['path']}"
                      + (f" {json.dumps(body, separators=(', ', ': '))}" if body else ""), markup=False)
    for note in plan.get("notes") or []:
        console.print(f"  note: {note}", markup=False)
    if plan.get("missing"):
        console.print(f"  missing: {', '.join(plan['missing'])}", markup=False)
    for problem in plan.get("problems") or []:
        console.print(f"  {problem.get('field') or 'problem'}: {problem.get('message')}", markup=False)
    if plan.get("form_url") and not changes:
        console.print(f"  {url}{plan['form_url']}", markup=False)


def _result_url(template: str | None, result) -> str | None:
    if not template or not isinstance(result, dict):
        return None
    try:
        return re.sub(r"\{(\w+)\}", lambda m: str(result[m.group(1)]), template)
    except KeyError:
        return None


def do(
    text: str = typer.Argument(..., help='What to do, e.g. "train demo with lr 1e-5 and 3 epochs".'),
    as_json: bool = JSON_OPTION,
) -> None:
    """Say what to do in plain words; see the plan; confirm. Nothing changes without a yes at a terminal.

    With --json: {"plan": …, "performed": true|false, "result": the API's answer or null}."""
    with hub() as h:
        plan = h.commands.parse(text)
        api = plan.get("api")
        changes = bool(api) and api.get("method", "GET").upper() != "GET"
        outcome = {"plan": plan, "performed": False, "result": None}

        def finish(code: int = 0):
            if as_json:
                emit_json(outcome)
            raise typer.Exit(code)

        if not as_json:
            _print_plan(plan, h.url)
        if not api:
            suggestions = plan.get("suggestions") or []
            if suggestions and not as_json:
                out().print("Try one of:", markup=False)
                for s in suggestions:
                    out().print(f"  hub do {json.dumps(s, ensure_ascii=False)}", markup=False)
            finish(1)
        if not changes:
            finish(0)  # a status question: the summary is the answer
        if not plan.get("allowed", True):
            err().print("You may not do this (see above): nothing was done.")
            finish(1)
        if not stdin_is_terminal():
            err().print("Not a terminal, so nothing was done. Run it in a terminal to confirm.")
            finish(0)
        if not typer.confirm(f"{plan.get('confirm') or 'Do it'}?", default=False, err=as_json):
            if not as_json:
                out().print("Nothing done.", markup=False)
            finish(0)
        result = h.commands.perform(plan)
        outcome.update(performed=True, result=result)
        url = _result_url(plan.get("result_url"), result)
    if as_json:
        emit_json(outcome)
        return
    out().print("Done." + (f" {h.url}{url}" if url else ""), markup=False)
    if isinstance(result, dict):
        scalars = [(k, v) for k, v in result.items() if isinstance(v, (str, int, float, bool))][:8]
        if scalars:
            fields([(f"  {k}", v) for k, v in scalars])
    elif result is not None:
        out().print(fmt(result), markup=False)
    if plan.get("action") == "train" and isinstance(result, dict) and result.get("id"):
        out().print(f"Follow it: hub runs watch {result['id']}", markup=False)
