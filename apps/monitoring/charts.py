"""The Monitoring page's plots, described once and drawn twice: as server-side SVG (apps.core.svgchart, the first
paint) and as plotly traces (static/js/monitoring.js replaces each SVG once plotly has loaded).

Each chart is {"id", "title", "y_title", "traces": [{"name", "x": [ISO times], "y": [...]}], "since", "until",
"svg"}, or {"id", "title", "note"} for a count that stayed 0 (drawn as the note); `svg` stays on the server
(the json_script block carries the drawable charts without it). The SVG's x axis is minutes (or
hours, for windows past six hours) before the end of the window, as svgchart has no time axis; plotly's is
dates. A chart whose traces hold no value is left out."""
from __future__ import annotations

import datetime as dt

from apps.core import svgchart

TRAFFIC = (  # (point key, chart title, y title, scale, note when every value is 0)
    ("requests_per_min", "Requests per minute", "requests / min", 1, ""),
    ("error_rate", "Error rate (5xx)", "%", 100, ""),
    ("p50_ms", "Latency p50 (successful requests)", "ms", 1, ""),
    ("p95_ms", "Latency p95 (successful requests)", "ms", 1, ""),
    ("ttft_p50_ms", "Time to first token p50", "ms", 1, ""),
    ("tokens_per_s", "Completion tokens per second", "tokens / s", 1, "No completion tokens reported in this window."),
    ("fallbacks", "Fallbacks", "requests", 1, "No request needed a fallback in this window."),
)
WIDTH = 560  # the SVG's viewBox: a half-width card of the 1200 px page at 1:1
HOST = (("cpu_percent", "Host CPU", "%"), ("memory_percent", "Host memory", "%"),
        ("gpu_memory_percent", "GPU memory (fullest GPU)", "%"), ("gpu_util_percent", "GPU utilisation (busiest GPU)", "%"))


def _svg(traces: list[dict], until: str, minutes: int, y_title: str):
    end = dt.datetime.fromisoformat(until)
    per = 60.0 if minutes > 360 else 1.0  # hours or minutes before the end
    lines = []
    for tr in traces:
        xs, ys = [], []
        for x, y in zip(tr["x"], tr["y"]):
            if y is not None:
                xs.append(round((dt.datetime.fromisoformat(x) - end).total_seconds() / 60 / per, 3))
                ys.append(y)
        lines.append({"name": tr["name"], "x": xs, "y": ys, "markers": len(xs) <= 30})
    room = max(6, int(((WIDTH - 56) / max(len(lines), 1) - 48) / 7))  # svgchart's legend is one row
    for ln in lines if len(lines) > 1 else []:
        ln["name"] = ln["name"] if len(ln["name"]) <= room else ln["name"][: room - 1] + "…"
    # an invisible last line from the window's start to its end at 0: the x axis spans the whole window and the
    # y axis starts at 0, as plotly's (rangemode "tozero"); last, so its empty legend entry moves no other
    lines.append({"name": "", "x": [round(-minutes / per, 3), 0.0], "y": [0.0, 0.0], "color": "none"})
    return svgchart.line_chart(lines, x_title="hours before now" if per > 1 else "minutes before now",
                               y_title=y_title, width=WIDTH, height=260)


def _chart(cid: str, title: str, y_title: str, traces: list[dict], since: str, until: str, minutes: int,
           note: str = "") -> dict | None:
    """None when no trace holds a value; a chart with `note` (and nothing to draw) when `note` is given and
    every value is 0 (e.g. no fallback at all)."""
    if not any(v is not None for tr in traces for v in tr["y"]):
        return None
    if note and not any(tr["y"][i] for tr in traces for i in range(len(tr["y"]))):
        return {"id": cid, "title": title, "note": note}
    return {"id": cid, "title": title, "y_title": y_title, "traces": traces, "since": since, "until": until,
            "svg": _svg(traces, until, minutes, y_title)}


def traffic_charts(data: dict) -> list[dict]:
    """Charts of `selectors.series()`: the total, and its breakdown when it has two lines or more."""
    lines = data["series"]
    if not any(p["requests"] for ln in lines for p in ln["points"]):
        return []
    shown = lines if len(lines) > 2 else lines[:1]
    if len(lines) == 2:  # one member only: name it on the total's line
        shown = [{**lines[0], "label": f"{lines[0]['label']}: {lines[1]['label']}"}]
    out = []
    for key, title, y_title, scale, note in TRAFFIC:
        traces = []
        for ln in shown:
            ys = [None if p[key] is None else round(p[key] * scale, 3) for p in ln["points"]]  # None: a gap
            traces.append({"name": ln["label"], "x": [p["t"] for p in ln["points"]], "y": ys})
        chart = _chart(f"chart-{key}", title, y_title, traces, data["since"], data["until"], data["minutes"], note)
        if chart:
            out.append(chart)
    return out


def health_charts(overview: dict, minutes: int) -> list[dict]:
    s = overview["series"]
    since, until = s["since"], s["until"]
    out = []
    if s["broker"]:
        queues = sorted({q for r in s["broker"] for q in r["waiting"]})
        x = [r["t"] for r in s["broker"]]
        traces = [{"name": q, "x": x, "y": [r["waiting"].get(q, 0) for r in s["broker"]]} for q in queues]
        out.append(_chart("chart-queues", "Queue depth (messages waiting)", "messages", traces, since, until, minutes,
                          "No message waited in any queue in this window."))
        out.append(_chart("chart-consumers", "Live workers (broker consumers)", "workers",
                          [{"name": "live", "x": x, "y": [r["live_consumers"] for r in s["broker"]]}],
                          since, until, minutes))
    hosts = sorted({r["hostname"] for r in s["hosts"]})
    for key, title, y_title in HOST:
        traces = []
        for h in hosts:
            rows = [r for r in s["hosts"] if r["hostname"] == h]
            traces.append({"name": h, "x": [r["t"] for r in rows], "y": [r[key] for r in rows]})
        out.append(_chart(f"chart-host-{key}", title, y_title, traces, since, until, minutes))
    return [c for c in out if c]
