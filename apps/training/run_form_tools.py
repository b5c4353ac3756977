"""The new-run form's helpers (issue 14 #4): presets, and the preview of the equivalent API call and `hub`
command for what the form holds.

Contract: PRESETS are (key, label, description, hyperparameters) the form's "Start from" menu fills in (the
fields they do not name are cleared, so the effective defaults show); `run_preview(kwargs)` takes
`RunForm.service_kwargs()` and returns {"json": the `POST /api/runs` body, "cli": the `hub runs create …`
command line (sdk/hub_sdk/cli/runs.py's options; other hyperparameters as `-p key=value`), "notes": what
the command cannot say}."""
from __future__ import annotations

import json
import math
import shlex

PRESETS = (
    ("quick", "Quick test", "20 steps, a checkpoint and an evaluation at step 10: checks the setup in minutes.",
     {"max_steps": 20, "save_steps": 10, "eval_steps": 10}),
    ("default", "Default", "The hub's defaults for the method and base model (every field empty).", {}),
    ("thorough", "Thorough", "3 epochs, 10 % warmup, an evaluation and a checkpoint every 50 steps.",
     {"epochs": 3, "warmup_ratio": 0.1, "eval_steps": 50, "save_steps": 50}),
)

# `hub runs create` options for hyperparameters (the rest go through --param key=value)
_CLI_OPTIONS = {"learning_rate": "--lr", "epochs": "--epochs", "max_steps": "--max-steps",
                "batch_size": "--batch-size", "lora_r": "--lora-r", "max_seq_len": "--max-seq-len"}


def _scalar(value):
    """Form values are strings: numbers become numbers in the JSON body."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return value


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def run_preview(kwargs: dict) -> dict:
    hp = {k: _scalar(v) for k, v in (kwargs.get("hyperparameters") or {}).items()}
    body: dict = {}
    if kwargs.get("name"):
        body["name"] = kwargs["name"]
    body["dataset_version_id"] = kwargs.get("dataset_version_id")
    body["method"] = kwargs.get("method") or "lora"
    body["backend"] = kwargs.get("backend") or "local"
    if kwargs.get("base_model"):
        body["base_model"] = kwargs["base_model"]
    if kwargs.get("parent_version_id"):
        body["parent_version_id"] = kwargs["parent_version_id"]
    if kwargs.get("stages"):
        body["stages"] = kwargs["stages"]
    if kwargs.get("allow_truncation"):
        body["allow_truncation"] = True
    body["hyperparameters"] = hp

    args = ["hub", "runs", "create", "--dataset-version", str(body["dataset_version_id"])]
    if body["method"] != "lora":
        args += ["--method", body["method"]]
    if body["backend"] != "local":
        args += ["--backend", body["backend"]]
    if body.get("base_model"):
        args += ["--base-model", body["base_model"]]
    if body.get("name"):
        args += ["--name", body["name"]]
    for key, value in hp.items():
        if key in _CLI_OPTIONS:
            args += [_CLI_OPTIONS[key], _cli_value(value)]
        else:
            args += ["-p", f"{key}={_cli_value(value)}"]
    args.append("--watch")
    notes = []
    if body.get("parent_version_id"):
        notes.append("hub runs create has no option to continue a model version: use the API call.")
    if body.get("stages"):
        notes.append("hub runs create has no option for pipeline stages: use the API call.")
    if body.get("allow_truncation"):
        notes.append("hub runs create has no option to accept truncation: use the API call.")
    return {"json": json.dumps(body, indent=2), "cli": " ".join(shlex.quote(a) for a in args), "notes": notes}
