"""Chart data of an experiment's page: per arm and time bucket, requests, error rate and p95 latency, from the
start to its end (or now), in at most MAX_BUCKETS buckets of whole minutes. Sent twice, as everywhere in the
dashboard: server-drawn SVG (apps.core.svgchart, the first paint) and JSON that plotly turns into the
interactive charts (static/js/experiments.js)."""
from __future__ import annotations

import math

from django.utils import timezone

from apps.core.svgchart import bars, line_chart
from apps.experiments.metrics import series

MAX_BUCKETS = 60


def experiment_series(exp, arm_names: list[str]) -> dict:
    until = exp.ended_at or timezone.now()
    span = max(60.0, (until - exp.started_at).total_seconds())
    bucket_s = max(60, math.ceil(span / MAX_BUCKETS / 60) * 60)
    data = series(exp.pk, arm_names, since=exp.started_at, until=until, bucket_s=bucket_s)
    for arm in data["arms"].values():
        arm["error_rate"] = [round(e / n, 4) if n else None for e, n in zip(arm["errors"], arm["requests"])]
    data["threshold"] = (exp.thresholds or {}).get("error_rate") if exp.kind == "canary" else None
    data["total"] = sum(sum(a["requests"]) for a in data["arms"].values())
    return data


def charts_svg(data: dict) -> dict:
    """{"requests", "errors", "latency"}: SVG of the same series, x in minutes since the first bucket."""
    if not data["total"]:
        return {}
    step = data["bucket_s"] / 60
    xs = [i * step for i in range(len(data["buckets"]))]
    names = list(data["arms"])
    requests = bars([{"name": f"arm {n}", "x": xs, "y": data["arms"][n]["requests"]} for n in names],
                    title="Requests per arm", x_title="minutes since start", y_title="requests", width=1100,
                    height=300)

    def lines(key: str, scale: float = 1.0) -> list[dict]:
        out = []
        for n in names:
            pts = [(x, y * scale) for x, y in zip(xs, data["arms"][n][key]) if y is not None]
            out.append({"name": f"arm {n}", "x": [p[0] for p in pts], "y": [p[1] for p in pts], "markers": True})
        return out

    errors = lines("error_rate", 100)
    if data["threshold"] is not None:
        errors.append({"name": "threshold", "x": [xs[0], xs[-1]], "y": [data["threshold"] * 100] * 2,
                       "color": "#b42318"})
    return {"requests": requests,
            "errors": line_chart(errors, x_title="minutes since start", y_title="error rate (%)", height=300),
            "latency": line_chart(lines("p95_ms"), x_title="minutes since start", y_title="p95 latency (ms)",
                                  height=300)}
