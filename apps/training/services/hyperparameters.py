"""Hyperparameters of a run: validate what a user typed and fill in the effective defaults.

Contract: every rule comes from the hyperparameter table (workers/engine/hyperparameters/, re-exported
by apps/training/hyperparameters.py); this module adds the service's field paths (`hyperparameters.<name>`)
and the base model's limits. `_clean_hyperparameters(method, hp, base_model=, continuing=, errors=)`
returns the effective configuration a local run stores (every value the engine will use; rows the method
does not use are ignored) and appends `{field, message}` dicts to `errors` for bad input, never raising;
`_clean_remote_hyperparameters` does the same for Together runs through the Together mapping (and stores
the values sent, under the table's names). `run_default_hyperparameters` is what an empty form means (the
new-run form's placeholders). Nothing here touches the database."""
from __future__ import annotations

from apps.core.exceptions import ValidationFailed
from apps.training.hyperparameters import BY_NAME, CONTINUE_LR_FACTOR, LR_SCHEDULERS  # noqa: F401 (re-exported)
from workers.engine.hyperparameters import clean_local, together_effective, unknown_message, unknown_names

DEFAULT_LR: dict[str, float] = dict(BY_NAME["learning_rate"].default)


def _add(errors: list[dict], field: str, message: str) -> None:
    errors.append({"field": field, "message": message})


def _limits(base_model) -> dict:
    """The base model's limits the table's rows refer to (model_limit)."""
    if base_model is None:
        return {}
    return {"hidden_size": base_model.hidden_size, "context_length": base_model.context_length}


def _clean_hyperparameters(method: str, hp: dict, *, base_model, continuing: bool, errors: list[dict]) -> dict:
    out, problems = clean_local(hp, method=method, continuing=continuing, limits=_limits(base_model))
    for name, message in problems:
        _add(errors, f"hyperparameters.{name}" if name else "hyperparameters", message)
    return out


def run_default_hyperparameters(*, method: str, base_model=None, continuing: bool = False) -> dict:
    """The hyperparameters a local run gets when the user leaves them empty (exactly what run_create
    stores): per-method learning rate (lower when continuing), max_seq_len capped by the base model's
    context, LoRA settings for lora, size/vocabulary for scratch. Shown as the new-run form's placeholders."""
    return _clean_hyperparameters(method, {}, base_model=None if method == "scratch" else base_model,
                                  continuing=continuing and method != "scratch", errors=[])


def _clean_remote_hyperparameters(method: str, hp: dict, *, errors: list[dict]) -> dict:
    """Remote (Together.ai) runs: checked by the Together mapping (Together's bounds and names)."""
    from apps.training.backends.together import together_check_configured, together_job_request

    if not isinstance(hp, dict):
        _add(errors, "hyperparameters", "Must be an object.")
        return {}
    for name in unknown_names(hp, backend="together"):
        _add(errors, f"hyperparameters.{name}", unknown_message(name))
    try:
        together_check_configured()
        together_job_request(hyperparameters=hp, method=method)
    except ValidationFailed as exc:
        for e in exc.errors or [{"field": "backend", "message": exc.message}]:
            field = e.get("field") or "backend"
            if field not in ("backend", "method", "base_model"):
                field = f"hyperparameters.{field}"
            _add(errors, field, e["message"])
    return together_effective(hp, method=method)
