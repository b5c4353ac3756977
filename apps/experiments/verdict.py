"""The verdict of an experiment: per-arm metrics, each treatment arm against the control (the first arm) on
every metric with the always-valid test (apps.experiments.stats.msprt), the primary metric's decision and
the sample-ratio-mismatch check. Read by GET /api/experiments/{id}, the detail page and the monitor.

Contract of `experiment_report(exp) -> dict`:
- `arms`: [{name, model_version_id, model_version_name, weight, units, metrics}] (metrics: apps.experiments.
  metrics.arm_metrics over the whole experiment);
- `comparisons`: {metric: {arm: {diff, p, ci_low, ci_high, ran, better}}} for every treatment arm; `p` is the
  running minimum of the always-valid p-value (the monitor keeps it in Experiment.stats["p_min"]), so it
  never rises; alpha is ALPHA / (number of treatment arms) (Bonferroni); `better` says whether the
  difference favours the treatment (by the metric's direction), `ci_*` the always-valid interval now;
- `verdict`: {status, winner, metric, message, stop}: `collecting` (fewer than stats.MIN_N observations in
  an arm), `winner` (a treatment is significantly better: the best such arm), `control_wins` (every
  treatment significantly worse), `no_difference_yet` (keep it running). The stopping rule: stop when the
  status is winner or control_wins (`stop` true); looking earlier or more often changes nothing.
- `srm`: stats.srm over the units (Exposure rows) per arm against the weights; a mismatch is named in the
  verdict's message (the assignment or the logging is broken: do not trust the result).
`experiment_evaluate(exp, now)` (the monitor, inside its transaction) stores the running minima and, the
first time the test decides, `decided_at` and a RolloutEvent(kind ready).
"""
from __future__ import annotations

from django.db.models import Count
from django.utils import timezone

from apps.experiments import stats
from apps.experiments.metrics import arm_metrics
from apps.experiments.models import Experiment, Exposure, RolloutEvent

# metric: (label, direction: +1 higher is better / -1 lower is better)
METRICS = {
    "feedback": ("feedback", 1),
    "error_rate": ("error rate", -1),
    "tool_call_validity": ("tool-call validity", 1),
    "latency_ms": ("mean latency (ms)", -1),
}


def sample(metric: str, m: dict) -> stats.Sample | None:
    if metric == "error_rate":
        return stats.rate_sample(m["errors"], m["requests"]) if m["requests"] else None
    if metric == "tool_call_validity":
        return stats.rate_sample(m["tool_calls_valid"], m["tool_calls"]) if m["tool_calls"] else None
    if metric == "feedback":
        n = m["feedback_n"]
        return stats.Sample(n, m["feedback_mean"], m["feedback_var"] or 0.0) if n >= 2 else None
    n = m["requests"] - m["errors"]
    return stats.Sample(n, m["latency_mean"], m["latency_var"] or 0.0) if n >= 2 and m["latency_mean"] is not None \
        else None


def difference_text(metric: str, value: float | None) -> str:
    """A difference between arms in the metric's unit, as the comparison table shows it: rates in percentage
    points, feedback as is, latency in ms."""
    if value is None:
        return "—"
    if metric in ("error_rate", "tool_call_validity"):
        return f"{value * 100:+.2f} pts"
    if metric == "feedback":
        return f"{value:+.3f}"
    return f"{value:+,.1f} ms"


def _decide(exp: Experiment, names: list[str], comparisons: dict, metrics: dict) -> dict:
    metric = exp.metric
    label, direction = METRICS[metric]
    control, treatments = names[0], names[1:]
    alpha = stats.ALPHA / max(1, len(treatments))
    rows = comparisons[metric]
    if not any(rows[a]["ran"] for a in treatments):
        return {"status": "collecting", "winner": None, "metric": metric, "stop": False, "alpha": alpha,
                "message": f"Collecting: the test of {label} starts at {stats.MIN_N} observations in each arm."}
    better = [a for a in treatments if rows[a]["p"] <= alpha and rows[a]["better"]]
    worse = [a for a in treatments if rows[a]["p"] <= alpha and rows[a]["better"] is False]
    if better:
        winner = max(better, key=lambda a: direction * rows[a]["diff"])
        r = rows[winner]
        return {"status": "winner", "winner": winner, "metric": metric, "stop": True, "alpha": alpha,
                "message": f"Arm {winner} beats {control} on {label}: difference {difference_text(metric, r['diff']).replace('-', '−')} "
                           f"(always-valid p = {r['p']:.3g} ≤ {alpha:.3g}). Stop and promote it."}
    if len(worse) == len(treatments):
        return {"status": "control_wins", "winner": control, "metric": metric, "stop": True, "alpha": alpha,
                "message": f"Control {control} beats every other arm on {label} (always-valid p ≤ {alpha:.3g}): "
                           "stop and keep it."}
    return {"status": "no_difference_yet", "winner": None, "metric": metric, "stop": False, "alpha": alpha,
            "message": f"No significant difference in {label} yet (smallest p = "
                       f"{min(rows[a]['p'] for a in treatments):.3g}, needs ≤ {alpha:.3g}): keep it running; "
                       "looking again does not inflate the error rate."}


def experiment_report(exp: Experiment, *, metrics: dict | None = None) -> dict:
    arms = list(exp.arms.select_related("model_version").order_by("position"))
    names = [a.name for a in arms]
    metrics = metrics or arm_metrics(exp.pk, names)
    stored = (exp.stats or {}).get("p_min") or {}
    alpha = stats.ALPHA / max(1, len(arms) - 1)
    comparisons: dict = {}
    for metric, (_, direction) in METRICS.items():
        comparisons[metric] = {}
        a = sample(metric, metrics[names[0]])
        for name in names[1:]:
            b = sample(metric, metrics[name])
            if a is None or b is None:
                r = {"diff": None, "p": 1.0, "ci_low": None, "ci_high": None, "ran": False}
            else:
                r = stats.msprt(a, b, alpha=alpha)
                r.pop("lam", None)
            r["p"] = min(r["p"], float((stored.get(metric) or {}).get(name, 1.0)))
            r["better"] = None if not r["diff"] else (r["diff"] * direction > 0)
            comparisons[metric][name] = r
    units = dict(Exposure.objects.filter(experiment=exp).order_by().values("arm").annotate(n=Count("pk"))
                 .values_list("arm", "n"))
    srm = stats.srm([units.get(n, 0) for n in names], [a.weight for a in arms])
    verdict = _decide(exp, names, comparisons, metrics) if len(names) > 1 else {
        "status": "collecting", "winner": None, "metric": exp.metric, "stop": False, "message": "One arm only."}
    if srm["mismatch"]:
        verdict["message"] = (f"Sample ratio mismatch (χ² p = {srm['p']:.2g}): the arms did not get the units their "
                              "weights promise, so the assignment or the logging is broken; do not trust this "
                              "result. " + verdict["message"])
    return {"arms": [{"name": a.name, "model_version_id": a.model_version_id, "model_version_name": a.model_version.name,
                      "weight": a.weight, "units": units.get(a.name, 0), "metrics": metrics[a.name]} for a in arms],
            "control": names[0] if names else None, "metric": exp.metric, "comparisons": comparisons,
            "verdict": verdict, "srm": srm, "alpha": alpha}


def experiment_evaluate(exp: Experiment, *, now=None) -> str:
    now = now or timezone.now()
    report = experiment_report(exp)
    st = dict(exp.stats or {})
    p_min = {m: dict(v) for m, v in (st.get("p_min") or {}).items()}
    for metric, rows in report["comparisons"].items():
        for arm, r in rows.items():
            if r["ran"]:
                p_min.setdefault(metric, {})[arm] = min(float(p_min.get(metric, {}).get(arm, 1.0)), r["p"])
    st.update(p_min=p_min, evaluations=int(st.get("evaluations") or 0) + 1, last_evaluated_at=now.isoformat())
    verdict = report["verdict"]
    if verdict["stop"] and not st.get("decided_at"):
        st["decided_at"] = now.isoformat()
        from apps.experiments.services import event_record

        event_record(experiment=exp, kind=RolloutEvent.Kind.READY, metric=exp.metric, message=verdict["message"],
                     value=report["comparisons"][exp.metric].get(verdict["winner"], {}).get("p"),
                     values={a["name"]: a["metrics"] for a in report["arms"]})
    exp.stats = st
    exp.save(update_fields=["stats"])
    return verdict["status"]
