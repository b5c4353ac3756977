// The dataset page's charts (templates/datasets/detail.html): tokens per example (with the context length
// marked), content tokens by role, examples per category and turns per example, from the json_script block
// "chart-data"; a chart whose data is empty is left out. A static file, no inline script: the dashboard
// runs under a strict Content-Security-Policy.
(function () {
  const data = document.getElementById("chart-data");
  if (!data) return;
  const d = JSON.parse(data.textContent);
  if (!window.Plotly) return;  // plotly failed to load: the server-rendered SVG charts stay
  const cfg = {displayModeBar: false, responsive: true};
  // each chart's server-rendered SVG (first paint) gives way to the interactive plotly chart
  ["chart-tokens", "chart-roles", "chart-categories", "chart-turns"].forEach((id) => {
    const el = document.getElementById(id); if (el) el.replaceChildren();
  });
  const mids = (h) => (h.edges || []).slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
  const lay = (title, x, y) => ({title: {text: title, font: {size: 13}}, margin: {t: 40, r: 10, l: 50, b: 40}, xaxis: {title: {text: x}}, yaxis: {title: {text: y}}});
  if (d.tokens && d.tokens.counts) {
    const shapes = d.context ? [{type: "line", x0: d.context, x1: d.context, yref: "paper", y0: 0, y1: 1, line: {color: "#b42318", dash: "dot"}}] : [];
    Plotly.newPlot("chart-tokens", [{type: "bar", x: mids(d.tokens), y: d.tokens.counts, marker: {color: "#2f5fd0"}}],
      Object.assign(lay("Tokens per example (with chat template)", "tokens", "examples"), {shapes}), cfg);
  }
  const rt = Object.entries(d.role_hist || {}).map(([role, h]) => ({type: "bar", name: role, x: mids(h), y: h.counts, opacity: 0.7}));
  if (rt.length) Plotly.newPlot("chart-roles", rt, Object.assign(lay("Content tokens per example, by role", "tokens", "examples"), {barmode: "overlay"}), cfg);
  const cats = Object.entries(d.categories || {});
  if (cats.length) Plotly.newPlot("chart-categories", [{type: "bar", x: cats.map(c => c[0]), y: cats.map(c => c[1]), marker: {color: "#32d583"}}], lay("Examples per category", "category", "examples"), cfg);
  if (d.turns && d.turns.counts) Plotly.newPlot("chart-turns", [{type: "bar", x: mids(d.turns), y: d.turns.counts, marker: {color: "#fdb022"}}], lay("Turns per example", "turns", "examples"), cfg);
})();
