"""Server-rendered SVG charts: the first paint of a chart page.

A chart page sends its data twice: as an inline SVG drawn here (visible with the HTML's first paint, before
any script has run) and as a json_script block that plotly turns into the interactive chart once its bundle
has loaded (the page script then replaces the SVG). The SVG uses presentation attributes only (no <style>,
no script), so it passes the dashboard's strict Content-Security-Policy; every text is escaped.

Colours follow plotly's default palette so the swap is seamless."""
from __future__ import annotations

import math
from html import escape

from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12" fill="#444"'
MAX_POINTS = 600  # a line is thinned to this many points (a 360 px high chart can't show more)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(v, 12))
        v += step
    return ticks


def integer_ticks(hi: float, target: int = 5) -> list[int]:
    """Whole-number ticks from 0 covering [0, hi] in steps of 1, 2, 5 x 10^k (never a fraction: counts)."""
    hi = max(float(hi), 1.0)
    raw = hi / max(target, 1)
    step = 1
    if raw > 1:
        mag = 10 ** math.floor(math.log10(raw))
        step = int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))
    top = math.ceil(hi / step - 1e-9) * step
    return list(range(0, top + 1, step))


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 10_000:
        return f"{v / 1000:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def _thin(xs: list, ys: list) -> tuple[list, list]:
    n = len(xs)
    if n <= MAX_POINTS:
        return xs, ys
    stride = n / MAX_POINTS
    idx = sorted({int(i * stride) for i in range(MAX_POINTS)} | {n - 1})
    return [xs[i] for i in idx], [ys[i] for i in idx]


class _Frame:
    """Plot area and the data→pixel mapping."""

    def __init__(self, width, height, xlo, xhi, ylo, yhi, *, left=56, right=12, top=14, bottom=44):
        self.w, self.h = width, height
        self.l, self.r, self.t, self.b = left, width - right, top, height - bottom
        self.xlo, self.xhi = xlo, xhi if xhi > xlo else xlo + 1
        self.ylo, self.yhi = ylo, yhi if yhi > ylo else ylo + 1

    def x(self, v):
        return self.l + (v - self.xlo) / (self.xhi - self.xlo) * (self.r - self.l)

    def y(self, v):
        return self.b - (v - self.ylo) / (self.yhi - self.ylo) * (self.b - self.t)


def _axes(f: _Frame, xticks, yticks, x_title: str, y_title: str, xlabels: list[str] | None = None) -> list[str]:
    out = []
    for t in yticks:
        py = f.y(t)
        out.append(f'<line x1="{f.l}" x2="{f.r}" y1="{py:.1f}" y2="{py:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{f.l - 6}" y="{py + 4:.1f}" text-anchor="end" {FONT}>{escape(_fmt(t))}</text>')
    if xlabels is None:
        for t in xticks:
            px = f.x(t)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{f.t}" y2="{f.b}" stroke="#eee"/>')
            out.append(f'<text x="{px:.1f}" y="{f.b + 16}" text-anchor="middle" {FONT}>{escape(_fmt(t))}</text>')
    else:
        for px, label in zip(xticks, xlabels):
            out.append(f'<text x="{px:.1f}" y="{f.b + 16}" text-anchor="middle" {FONT}>{escape(label[:14])}</text>')
    out.append(f'<line x1="{f.l}" x2="{f.r}" y1="{f.b}" y2="{f.b}" stroke="#888"/>')
    if x_title:
        out.append(f'<text x="{(f.l + f.r) / 2:.1f}" y="{f.h - 6}" text-anchor="middle" {FONT}>{escape(x_title)}</text>')
    if y_title:
        cy = (f.t + f.b) / 2
        out.append(f'<text x="14" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 14 {cy:.1f})" '
                   f'{FONT}>{escape(y_title)}</text>')
    return out


def _svg(width: int, height: int, body: list[str], label: str) -> SafeString:
    return mark_safe(
        f'<svg class="svg-chart" viewBox="0 0 {width} {height}" width="100%" height="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>")


def _finite(xs, ys):
    pts = [(float(x), float(y)) for x, y in zip(xs, ys)
           if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y)]
    return [p[0] for p in pts], [p[1] for p in pts]


def line_chart(series: list[dict], *, x_title: str = "", y_title: str = "", width: int = 1100,
               height: int = 360) -> SafeString:
    """`series`: [{"name", "x", "y", "markers": bool}]. Empty series are left out; no data → ""."""
    clean = []
    for i, s in enumerate(series):
        xs, ys = _finite(s.get("x") or [], s.get("y") or [])
        if xs:
            clean.append({**s, "x": xs, "y": ys, "color": s.get("color") or PALETTE[i % len(PALETTE)]})
    if not clean:
        return mark_safe("")
    allx = [v for s in clean for v in s["x"]]
    ally = [v for s in clean for v in s["y"]]
    yticks = nice_ticks(min(ally), max(ally))
    xticks = nice_ticks(min(allx), max(allx), target=8)
    f = _Frame(width, height - (22 if len(clean) > 1 else 0), min(allx), max(allx),
               min([min(ally)] + yticks), max([max(ally)] + yticks))
    body = _axes(f, [t for t in xticks if f.xlo <= t <= f.xhi], yticks, x_title, y_title)
    for s in clean:
        xs, ys = _thin(s["x"], s["y"])
        pts = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in zip(xs, ys))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{s["color"]}" stroke-width="2"/>')
        if s.get("markers") and len(xs) <= 100:
            body += [f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="3.5" fill="{s["color"]}"/>'
                     for x, y in zip(xs, ys)]
    if len(clean) > 1:  # a legend under the plot, as plotly's horizontal one
        lx = f.l
        for s in clean:
            name = escape(str(s.get("name") or ""))
            body.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{height - 8}" y2="{height - 8}" stroke="{s["color"]}" '
                        f'stroke-width="2"/><text x="{lx + 30}" y="{height - 4}" {FONT}>{name}</text>')
            lx += 48 + 7 * len(name)
    return _svg(width, height, body, y_title or "chart")


def bar_chart(x: list, y: list, *, title: str = "", x_title: str = "", y_title: str = "", color: str = PALETTE[0],
              vline: float | None = None, width: int = 640, height: int = 360, integer_y: bool = False) -> SafeString:
    """Bars at numeric positions (histogram bin middles) or categories (strings). No data → ""."""
    return bars([{"x": x, "y": y, "color": color}], title=title, x_title=x_title, y_title=y_title, vline=vline,
                width=width, height=height, integer_y=integer_y)


def _bar(rect: str, href: str) -> str:
    return f'<a href="{escape(href)}">{rect}</a>' if href else rect


def bars(series: list[dict], *, title: str = "", x_title: str = "", y_title: str = "", vline: float | None = None,
         width: int = 640, height: int = 360, integer_y: bool = False) -> SafeString:
    """One or more bar series ({"name", "x", "y", "color", "hrefs"}), overlaid with transparency when there are
    several (plotly's barmode "overlay"). x values are numbers (bin middles) or categories (strings); `hrefs`
    (optional, aligned with x): each bar links there. `integer_y`: whole-number ticks on the y axis (counts)."""
    clean = []
    for i, s in enumerate(series):
        hrefs = list(s.get("hrefs") or [])
        pairs = [(a, float(b), hrefs[k] if k < len(hrefs) else "")
                 for k, (a, b) in enumerate(zip(s.get("x") or [], s.get("y") or []))
                 if isinstance(b, (int, float)) and math.isfinite(b)]
        if pairs:
            clean.append({"name": s.get("name") or "", "pairs": pairs,
                          "color": s.get("color") or PALETTE[i % len(PALETTE)]})
    if not clean:
        return mark_safe("")
    top = 40 if title else 14
    legend = 22 if len(clean) > 1 else 0
    ys = [b for s in clean for _, b, _ in s["pairs"]]
    target = max(3, min(5, height // 70))
    yticks = integer_ticks(max(ys), target) if integer_y else nice_ticks(0, max(ys) or 1, target=target)
    opacity = ' fill-opacity="0.6"' if len(clean) > 1 else ""
    body = []
    if title:
        body.append(f'<text x="{width / 2}" y="24" text-anchor="middle" font-family="system-ui, sans-serif" '
                    f'font-size="13" fill="#333">{escape(title)}</text>')
    if any(isinstance(a, str) for s in clean for a, _, _ in s["pairs"]):
        cats = list(dict.fromkeys(str(a) for s in clean for a, _, _ in s["pairs"]))
        n = len(cats)
        f = _Frame(width, height - legend, 0, n, 0, max(yticks + [max(ys)]), top=top)
        slot = (f.r - f.l) / n
        center = {c: f.l + slot * (i + 0.5) for i, c in enumerate(cats)}
        body += _axes(f, list(center.values()) if n <= 20 else [], yticks, x_title, y_title,
                      xlabels=cats if n <= 20 else [])
        for s in clean:
            for a, b, href in s["pairs"]:
                cx = center[str(a)]
                body.append(_bar(f'<rect x="{cx - slot * 0.4:.1f}" y="{f.y(b):.1f}" width="{slot * 0.8:.1f}" '
                                 f'height="{max(f.b - f.y(b), 0):.1f}" fill="{s["color"]}"{opacity}/>', href))
    else:
        xs = sorted({float(a) for s in clean for a, _, _ in s["pairs"]})
        gap = min((b - a for a, b in zip(xs, xs[1:]) if b > a), default=1.0)
        xlo, xhi = xs[0] - gap / 2, xs[-1] + gap / 2
        if vline is not None and math.isfinite(vline):
            xlo, xhi = min(xlo, vline), max(xhi, vline)
        f = _Frame(width, height - legend, xlo, xhi, 0, max(yticks + [max(ys)]), top=top)
        xticks = [t for t in nice_ticks(xlo, xhi, target=max(3, min(6, width // 60))) if xlo <= t <= xhi]
        if all(x.is_integer() for x in xs):  # whole-number bars (turns): no tick between two of them
            xticks = [t for t in xticks if float(t).is_integer()] or [int(x) for x in xs]
        body += _axes(f, xticks, yticks, x_title, y_title)
        for s in clean:
            sgap = min((b - a for a, b in zip(sorted(float(p[0]) for p in s["pairs"]),
                                              sorted(float(p[0]) for p in s["pairs"])[1:]) if b > a), default=gap)
            bw = max(sgap / (f.xhi - f.xlo) * (f.r - f.l) * 0.9, 1)
            for a, b, href in s["pairs"]:
                body.append(_bar(f'<rect x="{f.x(float(a)) - bw / 2:.1f}" y="{f.y(b):.1f}" width="{bw:.1f}" '
                                 f'height="{max(f.b - f.y(b), 0):.1f}" fill="{s["color"]}"{opacity}/>', href))
        if vline is not None and math.isfinite(vline):
            px = f.x(vline)
            body.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{f.t}" y2="{f.b}" stroke="#b42318" '
                        f'stroke-dasharray="4 3"/>')
    if legend:
        lx = 56
        for s in clean:
            name = escape(str(s["name"]))
            body.append(f'<rect x="{lx}" y="{height - 16}" width="12" height="12" fill="{s["color"]}"{opacity}/>'
                        f'<text x="{lx + 18}" y="{height - 6}" {FONT}>{name}</text>')
            lx += 40 + 7 * len(name)
    return _svg(width, height, body, title or y_title or "chart")


def histogram_mids(hist: dict) -> list[float]:
    edges = hist.get("edges") or []
    return [(a + b) / 2 for a, b in zip(edges, edges[1:])]
