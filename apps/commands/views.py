"""The command bar's dashboard endpoint: POST /commands/preview {text} renders what the command would do
(templates/commands/preview.html, swapped into the bar by htmx). The bar's Confirm button then performs the
preview's /api request itself (static/js/commands.js), exactly as `hub do` does."""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.commands.parser import EXAMPLES
from apps.commands.services import command_parse, fmt
from apps.core.exceptions import ApplicationError

LABELS = {"dataset_version": "Version", "base_model": "Base model", "learning_rate": "Learning rate",
          "batch_size": "Batch size", "max_examples": "Max scenarios", "include_tests": "Include tests",
          "include_config": "Include config", "exclude_complex": "Simple only", "max_tokens": "Max tokens",
          "timeout_s": "Timeout (s)", "canary_percent": "Canary %", "current_version_id": "Serving now",
          "to_version_id": "Roll back to", "version_id": "Model version", "final_loss": "Final loss",
          "run_id": "Run", "source_id": "Source id", "max_seq_len": "Max seq len", "lora_r": "LoRA r",
          "lora_alpha": "LoRA alpha", "grad_accum": "Grad accumulation", "max_steps": "Max steps",
          "total_steps": "Total steps", "current_step": "Step"}
HIDDEN = {"dataset_version_id"}
RESULT_LABELS = {"train": "Open run {id}", "generate": "Follow generation {id}", "review": "Open review task {id}",
                 "deploy": "Open alias {name}", "rollback": "Open alias {name}",
                 "configure": "Open the chain of {alias}",
                 "cancel": "Open run {id}"}


def _value(key: str, value, params: dict) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "dataset_version":
        return f"v{value}" + (f" (id {params['dataset_version_id']})" if params.get("dataset_version_id") else "")
    if key in ("version_id", "current_version_id", "to_version_id"):
        return f"mv-{value}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) if not isinstance(v, dict) else json.dumps(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return fmt(value)


def rows(params: dict) -> list[tuple[str, str]]:
    return [(LABELS.get(k, k.replace("_", " ").capitalize()), _value(k, v, params))
            for k, v in params.items() if k not in HIDDEN]


@login_required
@require_POST
def preview(request):
    text = request.POST.get("text", "")
    if not text.strip():
        return render(request, "commands/preview.html", {"examples": EXAMPLES})
    try:
        result = command_parse(user=request.user, text=text)
    except ApplicationError as exc:
        return render(request, "commands/preview.html", {"error": exc.message, "examples": EXAMPLES}, status=422)
    api = result["api"]
    ctx = {"r": result, "typed": text, "rows": rows(result["params"]),
           "read_only": bool(api and api["method"] == "GET"),
           "body_json": json.dumps(api["body"], indent=2) if api and api["body"] is not None else "",
           "result_label": RESULT_LABELS.get(result["action"], "Open")}
    return render(request, "commands/preview.html", ctx)
