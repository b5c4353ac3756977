"""Chart data for run pages: loss curves (train + eval), a DPO run's preference curves (rewards, margins,
accuracy) and the comparison of several runs."""
from __future__ import annotations

from apps.training import selectors


def run_curves(run) -> dict:
    """{"train": {"x": steps, "y": loss}, "eval": {...}} from the stored metric points."""
    train_x, train_y, eval_x, eval_y = [], [], [], []
    for p in selectors.run_metrics(run=run):
        if p["kind"] == "eval" and p.get("eval_loss") is not None:
            eval_x.append(p["step"])
            eval_y.append(p["eval_loss"])
        elif p["kind"] == "train" and p.get("loss") is not None:
            train_x.append(p["step"])
            train_y.append(p["loss"])
    return {"train": {"x": train_x, "y": train_y}, "eval": {"x": eval_x, "y": eval_y}}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def run_config(run) -> dict:
    cfg = {"method": run.method, "backend": run.backend, "base_model": run.base_model_id,
           "dataset_version": run.dataset_version_id, "parent_version": run.parent_version_id}
    cfg.update(_flatten(run.hyperparameters))
    return cfg


def compare_runs(*, user, run_ids: list[int]) -> dict:
    runs = list(selectors.run_list(user=user, ids=run_ids).order_by("pk"))
    configs = {r.pk: run_config(r) for r in runs}
    keys = sorted({k for c in configs.values() for k in c})
    rows = []
    for k in keys:
        values = [configs[r.pk].get(k) for r in runs]
        rows.append({"key": k, "values": values, "differs": len({repr(v) for v in values}) > 1})
    return {
        "runs": [{"id": r.pk, "name": str(r), "status": r.status, "final_loss": (r.summary or {}).get("final_loss"),
                  "eval_loss": (r.summary or {}).get("eval_loss"), "curves": run_curves(r)} for r in runs],
        "config": rows,
    }


def loss_chart_svg(curves: dict):
    """The loss chart as server-rendered SVG (the page's first paint; plotly replaces it once loaded)."""
    from apps.core.svgchart import line_chart

    return line_chart([
        {"name": "train loss", "x": curves["train"]["x"], "y": curves["train"]["y"]},
        {"name": "validation loss", "x": curves["eval"]["x"], "y": curves["eval"]["y"], "markers": True},
    ], x_title="step", y_title="loss")


# DPO runs: TRL's reward metrics, the run page's "Preference" charts (train lines, validation markers)
REWARD_SERIES = (("rewards/chosen", "chosen"), ("rewards/rejected", "rejected"), ("rewards/margins", "margin"))


def preference_curves(run) -> dict | None:
    """{"rewards": {metric: {"x", "y"}} (train), "eval_margins": {...}, "accuracy": {"train", "eval"}} of a
    DPO run from its stored metric points; None for other methods."""
    if run.method not in ("dpo", "kto"):  # KTO logs no accuracies: its accuracy chart stays empty
        return None
    keys = [k for k, _ in REWARD_SERIES]
    out = {"rewards": {k: {"x": [], "y": []} for k in keys}, "eval_margins": {"x": [], "y": []},
           "accuracy": {"train": {"x": [], "y": []}, "eval": {"x": [], "y": []}}}
    for p in selectors.run_metrics(run=run):
        kind = "eval" if p["kind"] == "eval" else "train"
        if kind == "train":
            for k in keys:
                if p.get(k) is not None:
                    out["rewards"][k]["x"].append(p["step"])
                    out["rewards"][k]["y"].append(p[k])
        elif p.get("rewards/margins") is not None:
            out["eval_margins"]["x"].append(p["step"])
            out["eval_margins"]["y"].append(p["rewards/margins"])
        if p.get("rewards/accuracies") is not None:
            out["accuracy"][kind]["x"].append(p["step"])
            out["accuracy"][kind]["y"].append(p["rewards/accuracies"])
    return out


def preference_chart_svgs(curves: dict) -> dict:
    """The two preference charts as server-rendered SVG (plotly replaces them once loaded)."""
    from apps.core.svgchart import line_chart

    rewards = [{"name": label, **curves["rewards"][k]} for k, label in REWARD_SERIES]
    rewards.append({"name": "validation margin", **curves["eval_margins"], "markers": True})
    acc = curves["accuracy"]
    return {
        "rewards": line_chart(rewards, x_title="step", y_title="reward (β·log-ratio)", width=560),
        "accuracy": line_chart([{"name": "train", **acc["train"]},
                                {"name": "validation", **acc["eval"], "markers": True}],
                               x_title="step", y_title="chosen > rejected", width=560),
    }


def preference_stats(summary: dict) -> dict:
    """The last reward margin and accuracy of a DPO run's summary (training, and validation as eval_*)."""
    return {"margin": summary.get("rewards/margins"), "accuracy": summary.get("rewards/accuracies"),
            "eval_margin": summary.get("eval_rewards/margins"), "eval_accuracy": summary.get("eval_rewards/accuracies")}
