// The dataset page's charts (templates/datasets/detail.html): tokens per example, content tokens by role,
// examples per category and turns per example, from the json_script block "chart-data" (built by
// apps/datasets/views.py `_chart_data`: bars sized to the data, each with the link to its examples). The
// context limit is drawn only when the server put it on the chart (near the data); count axes have whole
// ticks; a click on a bar opens the examples behind it. The titles are the cards' headings (HTML wraps them).
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  const data = document.getElementById("chart-data");
  if (!data) return;
  const d = JSON.parse(data.textContent);
  if (!window.Plotly) return;  // plotly failed to load: the server-rendered SVG charts (with their links) stay
  const cfg = {displayModeBar: false, responsive: true};

  // whole-number ticks for counts: a step of 1, 2, 5 x 10^k, never a fraction
  function intStep(max) {
    const raw = Math.max(max, 1) / 5;
    if (raw <= 1) return 1;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  }
  function layout(xTitle, maxY, extra) {
    return Object.assign({
      margin: {t: 10, r: 10, l: 50, b: 40}, showlegend: false, bargap: 0.08,
      xaxis: {title: {text: xTitle}, automargin: true},
      yaxis: {title: {text: "examples"}, rangemode: "tozero", tickformat: ",d", dtick: intStep(maxY), automargin: true},
    }, extra || {});
  }
  function trace(b, color, name) {
    return {type: "bar", x: b.x, y: b.y, customdata: b.hrefs, text: b.labels, name: name || "",
            marker: {color: color}, textposition: "none",
            hovertemplate: "%{text}: %{y:,d} examples<br>click to list them<extra>" + (name || "") + "</extra>"};
  }
  function draw(id, traces, lay) {
    const el = document.getElementById(id);
    if (!el) return;
    el.replaceChildren();  // the server-rendered SVG (first paint) gives way to the interactive chart
    Plotly.newPlot(el, traces, lay, cfg).then(() => {
      el.on("plotly_click", (ev) => {
        const href = ev.points && ev.points[0] && ev.points[0].customdata;
        if (href) window.location.assign(href);
      });
    });
  }
  const maxOf = (ys) => Math.max(0, ...ys);

  if (d.token_bars) {
    const b = d.token_bars;
    const shapes = d.context_on_chart ? [{type: "line", x0: d.context_on_chart, x1: d.context_on_chart, yref: "paper",
      y0: 0, y1: 1, line: {color: "#b42318", dash: "dot"}}] : [];
    const annotations = d.context_on_chart ? [{x: d.context_on_chart, yref: "paper", y: 1, text: "context",
      showarrow: false, xanchor: "right", font: {size: 11, color: "#b42318"}}] : [];
    draw("chart-tokens", [trace(b, "#2f5fd0")], layout("tokens", maxOf(b.y), {shapes, annotations}));
  }
  const roles = Object.entries(d.role_bars || {});
  if (roles.length) {
    const colors = {user: "#1f77b4", assistant: "#ff7f0e", system: "#2ca02c", tool: "#d62728"};
    const traces = roles.map(([role, b]) => Object.assign(trace(b, colors[role] || "#9467bd", role), {opacity: 0.7}));
    draw("chart-roles", traces, layout("tokens", Math.max(...roles.map(([, b]) => maxOf(b.y))),
      {barmode: "overlay", showlegend: true, legend: {orientation: "h", y: 1.12, x: 0}}));
  }
  if (d.category_bars) {
    const b = d.category_bars;
    draw("chart-categories", [trace(b, "#32d583")], layout("category", maxOf(b.y)));
  }
  if (d.turn_bars) {
    const b = d.turn_bars;
    const extra = b.whole ? {xaxis: {title: {text: "turns"}, dtick: 1, tickformat: "d", automargin: true}} : {};
    draw("chart-turns", [trace(b, "#fdb022")], layout("turns", maxOf(b.y), extra));
  }
})();
