"""Chart data for run pages: loss curves (train + eval), a DPO run's preference curves (rewards, margins,
accuracy), a GRPO run's reward curves (mean reward and each component) and the comparison of several runs."""
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


# the run page's small metric panels: (key, title, [(point field, series name)])
METRIC_PANELS = (
    ("learning_rate", "Learning rate", (("learning_rate", "learning rate"),)),
    ("grad_norm", "Grad norm", (("grad_norm", "grad norm"),)),
    ("throughput", "Throughput (tokens/s)", (("tokens_per_s", "tokens/s"),)),
    ("memory", "Memory (MB)", (("rss_mb", "RSS"), ("gpu_mb", "GPU"))),
)
_POINT_FIELDS = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_s", "rss_mb", "gpu_mb")


def run_points(run) -> list[dict]:
    """Every stored metric point of a run, compact, for the run page's charts: {step, kind, t (seconds since
    the run started, from when the point was stored), and those of loss, eval_loss, learning_rate, grad_norm,
    tokens_per_s, rss_mb, gpu_mb it has}."""
    from apps.training.models import MetricPoint

    rows = list(MetricPoint.objects.filter(run=run).order_by("step", "id").values_list("step", "kind", "values",
                                                                                      "created_at"))
    start = run.started_at or (min(r[3] for r in rows) if rows else None)
    out = []
    for step, kind, values, created in rows:
        values = values or {}
        point = {"step": step, "kind": kind, "t": round(max(0.0, (created - start).total_seconds()), 1)}
        point.update({k: values[k] for k in _POINT_FIELDS if isinstance(values.get(k), (int, float))})
        out.append(point)
    return out


def metric_panel_svgs(points: list[dict]) -> list[dict]:
    """[{key, title, svg}] of the four small panels' first paint ("" svg: no point yet)."""
    from apps.core.svgchart import line_chart

    train = [p for p in points if p["kind"] == "train"]
    out = []
    for key, title, fields in METRIC_PANELS:
        series = [{"name": name, "x": [p["step"] for p in train if field in p],
                   "y": [p[field] for p in train if field in p]} for field, name in fields]
        out.append({"key": key, "title": title,
                    "svg": line_chart(series, x_title="step", y_title="", width=540, height=220)})
    return out


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


# GRPO runs: the mean reward and each reward component over the steps (TRL's reward, rewards/<name>/mean), the run
# page's "Reward" chart (train lines, validation reward as markers), and the components' table
def _component_of(key: str) -> str | None:
    if key.startswith("rewards/") and key.endswith("/mean"):
        return key[len("rewards/"):-len("/mean")]
    return None


def _by_weight(weights: dict) -> list[str]:
    """Component names, heaviest first (a JSON column does not keep the order they were given in)."""
    return sorted(weights, key=lambda n: (-float(weights[n]), n))


def reward_curves(run) -> dict | None:
    """{"reward": {"x", "y"}, "components": {name: {"x", "y"}}, "eval_reward": {"x", "y"}, "errors": {name:
    {"x", "y"}}} of a GRPO run from its stored metric points (components heaviest first, then any other
    logged); None for other methods."""
    if run.method != "grpo":
        return None
    names = _by_weight((run.hyperparameters or {}).get("reward_weights") or {})
    out = {"reward": {"x": [], "y": []}, "components": {n: {"x": [], "y": []} for n in names},
           "eval_reward": {"x": [], "y": []}, "errors": {}}
    for p in selectors.run_metrics(run=run):
        if p["kind"] == "eval":
            if p.get("reward") is not None:
                out["eval_reward"]["x"].append(p["step"])
                out["eval_reward"]["y"].append(p["reward"])
            continue
        if p["kind"] != "train":
            continue
        if p.get("reward") is not None:
            out["reward"]["x"].append(p["step"])
            out["reward"]["y"].append(p["reward"])
        for key, value in p.items():
            name = _component_of(key)
            if name is None and key.startswith("reward_errors/"):
                series = out["errors"].setdefault(key[len("reward_errors/"):], {"x": [], "y": []})
            elif name is not None and value is not None:
                series = out["components"].setdefault(name, {"x": [], "y": []})
            else:
                continue
            series["x"].append(p["step"])
            series["y"].append(value)
    return out


def reward_chart_svg(curves: dict):
    """The reward chart as server-rendered SVG (plotly replaces it once loaded)."""
    from apps.core.svgchart import line_chart

    series = [{"name": "mean reward", **curves["reward"]}]
    series += [{"name": name, **c} for name, c in curves["components"].items()]
    series.append({"name": "validation reward", **curves["eval_reward"], "markers": True})
    return line_chart(series, x_title="step", y_title="reward (0–1)")


def reward_components(run, summary: dict) -> list[dict]:
    """One row per weighted component of a GRPO run: its label, weight (normalised), last mean, the share of
    answers it failed to score in the last step, and (once finished) how often it failed and the last error."""
    from workers.engine import rewards

    weights = (run.hyperparameters or {}).get("reward_weights") or {}
    total = sum(weights.values()) or 1.0
    errors = summary.get("reward_errors") or {}
    rows = []
    for name in _by_weight(weights):
        weight = weights[name]
        comp = rewards.COMPONENTS.get(name)
        rows.append({"name": name, "label": comp.label if comp else name, "weight": weight / total,
                     "mean": summary.get(f"rewards/{name}/mean"), "eval_mean": summary.get(f"eval_rewards/{name}/mean"),
                     "error_share": summary.get(f"reward_errors/{name}"),
                     "errors": (errors.get(name) or {}).get("count"),
                     "last_error": (errors.get(name) or {}).get("last")})
    return rows
