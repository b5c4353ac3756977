"""The results page's plots as server-drawn SVG (first paint, and what stays when plotly cannot load): a
"forest" plot — one row per pair or contestant, its value as a dot and its interval as a bar, a dashed
reference line (a 50 % win rate, the mean Bradley–Terry score). Its height follows the number of rows.
Presentation attributes only, every text escaped (the dashboard's strict CSP); the same data goes to
static/js/arena_charts.js, which draws the interactive plotly version in its place.
"""
from __future__ import annotations

import math
from html import escape

from django.utils.safestring import SafeString, mark_safe

from apps.core.svgchart import FONT, PALETTE, nice_ticks

ROW_PX, TOP_PX, BOTTOM_PX = 34, 16, 46


def _fmt(v: float, percent: bool) -> str:
    return f"{v * 100:.0f} %" if percent else f"{v:.0f}"


def interval_chart(rows: list[dict], *, reference: float | None, x_title: str, percent: bool = False,
                   lo: float | None = None, hi: float | None = None, width: int = 1100, label_px: int = 300,
                   color: str = PALETTE[0]) -> SafeString:
    """rows: [{"label", "value", "low", "high", "note"}]; rows without a value are listed with "no votes"."""
    if not rows:
        return mark_safe("")
    finite = [v for r in rows for v in (r.get("value"), r.get("low"), r.get("high"))
              if isinstance(v, (int, float)) and math.isfinite(v)]
    if reference is not None:
        finite.append(reference)
    x0 = lo if lo is not None else (min(finite) if finite else 0.0)
    x1 = hi if hi is not None else (max(finite) if finite else 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 50, x1 + 50
    if lo is None or hi is None:
        pad = (x1 - x0) * 0.08
        x0, x1 = (x0 if lo is not None else x0 - pad), (x1 if hi is not None else x1 + pad)
    height = TOP_PX + ROW_PX * len(rows) + BOTTOM_PX
    left, right = label_px, width - 90
    bottom = height - BOTTOM_PX

    def x(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (right - left)

    body = []
    for t in nice_ticks(x0, x1, target=6):
        if x0 <= t <= x1:
            px = x(t)
            body.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP_PX}" y2="{bottom}" stroke="#eee"/>')
            body.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle" {FONT}>'
                        f'{escape(_fmt(t, percent))}</text>')
    body.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle" {FONT}>'
                f'{escape(x_title)}</text>')
    if reference is not None and x0 <= reference <= x1:
        px = x(reference)
        body.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP_PX - 4}" y2="{bottom}" stroke="#b42318" '
                    f'stroke-dasharray="4 3"/>')
    for i, r in enumerate(rows):
        cy = TOP_PX + ROW_PX * i + ROW_PX / 2
        label = str(r.get("label") or "")
        short = label if len(label) <= 44 else label[:43] + "…"
        body.append(f'<text x="{left - 10}" y="{cy + 4:.1f}" text-anchor="end" {FONT}>{escape(short)}</text>')
        value, low, high = r.get("value"), r.get("low"), r.get("high")
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            body.append(f'<text x="{left + 6}" y="{cy + 4:.1f}" {FONT}>no decisive votes yet</text>')
            continue
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            body.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{color}" '
                        f'stroke-width="3" stroke-linecap="round" stroke-opacity="0.45"/>')
        body.append(f'<circle cx="{x(value):.1f}" cy="{cy:.1f}" r="5" fill="{color}"/>')
        note = r.get("note") or _fmt(value, percent)
        body.append(f'<text x="{right + 8}" y="{cy + 4:.1f}" {FONT}>{escape(str(note))}</text>')
    return mark_safe(f'<svg class="svg-chart" viewBox="0 0 {width} {height}" width="100%" '
                     f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(x_title)}" '
                     f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def pair_rows(pairs: list[dict]) -> list[dict]:
    return [{"label": f"{p['a']}  vs  {p['b']}", "value": p["win_rate_a"], "low": p["ci_low"], "high": p["ci_high"],
             "note": (f"{p['win_rate_a'] * 100:.0f} % ({p['wins_a']}–{p['wins_b']})"
                      if p["win_rate_a"] is not None else "")} for p in pairs]


def rank_rows(ranking: list[dict]) -> list[dict]:
    return [{"label": r["contestant"], "value": r["score"], "low": r["ci_low"], "high": r["ci_high"],
             "note": f"{r['score']:.0f}" if r["score"] is not None else ""} for r in ranking]


def chart_data(results: dict) -> dict:
    """The plots' data for arena_charts.js (json_script)."""
    return {"pairs": pair_rows(results["pairs"]), "ranking": rank_rows(results["ranking"])}
