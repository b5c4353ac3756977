"""The server-rendered SVG charts (the first paint of chart pages)."""
import re
import xml.etree.ElementTree as ET

from apps.core import svgchart

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))  # well-formed XML, or this raises


def test_nice_ticks_are_round_and_cover_the_range():
    assert svgchart.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svgchart.nice_ticks(0.61, 3.1) == [1.0, 1.5, 2.0, 2.5, 3.0]
    ticks = svgchart.nice_ticks(0, 500, target=8)
    assert ticks[0] == 0 and ticks[-1] == 500 and len(ticks) <= 12
    assert svgchart.nice_ticks(5, 5)  # a flat series still gets an axis
    assert svgchart.nice_ticks(float("nan"), 1) == []


def test_line_chart_draws_each_series_in_its_own_colour_with_a_legend():
    svg = svgchart.line_chart([
        {"name": "train loss", "x": list(range(1, 501)), "y": [2.5 - i / 250 for i in range(500)]},
        {"name": "validation loss", "x": [50, 100, 150], "y": [2.4, 2.1, 1.9], "markers": True},
    ], x_title="step", y_title="loss")
    root = _parse(svg)
    lines = root.findall(f"{NS}polyline")
    assert [l.get("stroke") for l in lines] == ["#1f77b4", "#ff7f0e"]
    assert len(lines[0].get("points").split()) == 500
    assert len(root.findall(f"{NS}circle")) == 3  # markers on the eval series only
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert {"step", "loss", "train loss", "validation loss"} <= set(texts)
    # decreasing loss: the last train point is drawn lower on the screen (larger y) than the first
    pts = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert pts[-1][1] > pts[0][1]


def test_long_lines_are_thinned_but_keep_their_ends():
    n = 20_000
    svg = svgchart.line_chart([{"name": "a", "x": list(range(n)), "y": [float(i % 7) for i in range(n)]}])
    points = _parse(svg).find(f"{NS}polyline").get("points").split()
    assert len(points) <= svgchart.MAX_POINTS + 1
    assert len(str(svg)) < 40_000


def test_no_data_renders_nothing_and_bad_values_are_skipped():
    assert str(svgchart.line_chart([{"name": "x", "x": [], "y": []}])) == ""
    assert str(svgchart.bar_chart([], [])) == ""
    svg = svgchart.line_chart([{"x": [1, 2, 3], "y": [1.0, float("nan"), None]}])
    assert len(_parse(svg).find(f"{NS}polyline").get("points").split()) == 1


def test_text_is_escaped_and_there_is_no_style_or_script():
    svg = str(svgchart.bar_chart(["<script>alert(1)</script>", "b&c"], [3, 4], title='"><img src=x>'))
    root = _parse(svg)
    assert not re.search(r"<script|<style|style=|on\w+=", svg)
    assert "&lt;script&gt;alert(" in svg  # the category label, escaped (and cut to 14 characters)
    assert {t.text for t in root.iter(f"{NS}text")} >= {'"><img src=x>', "b&c"}
    assert "<img" not in svg


def test_histogram_bars_scale_with_counts_and_mark_the_context_length():
    svg = svgchart.bar_chart([10, 30, 50], [1, 4, 2], vline=60, title="tokens")
    root = _parse(svg)
    rects = root.findall(f"{NS}rect")
    heights = [float(r.get("height")) for r in rects]
    assert heights[1] == max(heights) and abs(heights[1] / heights[0] - 4) < 0.05
    dashed = [l for l in root.findall(f"{NS}line") if l.get("stroke-dasharray")]
    assert len(dashed) == 1 and float(dashed[0].get("x1")) > max(float(r.get("x")) for r in rects)


def test_overlaid_series_are_translucent_with_a_legend():
    svg = svgchart.bars([{"name": "user", "x": [1, 2], "y": [3, 4]}, {"name": "assistant", "x": [1, 2], "y": [5, 1]}])
    root = _parse(svg)
    assert all(r.get("fill-opacity") == "0.6" for r in root.findall(f"{NS}rect"))
    assert {"user", "assistant"} <= {t.text for t in root.iter(f"{NS}text")}
