// An experiment's plots (templates/experiments/detail.html): plotly replaces the server-drawn SVG charts with
// interactive ones from the json_script block "experiment-series" (per arm and time bucket: requests, error
// rate, p95 latency; a canary's error-rate threshold as a dashed line). Strict CSP: a static file, no inline
// script.
(function () {
  "use strict";
  const el = document.getElementById("experiment-series");
  if (!el || typeof Plotly === "undefined") return;
  const d = JSON.parse(el.textContent);
  const names = Object.keys(d.arms || {});
  if (!names.length || !d.total) return;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  const cfg = {displayModeBar: false, responsive: true};
  const x = d.buckets;
  const plot = (id, traces, lay) => {  // the server-drawn SVG makes way for the interactive chart
    const box = document.getElementById(id);
    if (!box) return;
    box.replaceChildren();
    Plotly.newPlot(box, traces, lay, cfg);
  };
  const layout = (title, y) => ({
    title: {text: title, font: {size: 14}}, height: 300, margin: {t: 40, r: 20, l: 60, b: 50},
    xaxis: {type: "date"}, yaxis: {title: {text: y}, rangemode: "tozero"},
    legend: {orientation: "h", y: -0.25}, hovermode: "x unified",
  });
  const req = names.map((n, i) => ({type: "bar", name: `arm ${n}`, x, y: d.arms[n].requests,
                                    marker: {color: palette[i % palette.length]}}));
  plot("chart-requests", req, Object.assign(layout("Requests per arm", "requests"), {barmode: "group"}));
  const line = (key, scale) => names.map((n, i) => ({
    type: "scatter", mode: "lines+markers", name: `arm ${n}`, x,
    y: d.arms[n][key].map((v) => (v === null ? null : v * scale)), connectgaps: false,
    line: {color: palette[i % palette.length]}, marker: {size: 5},
  }));
  const errors = line("error_rate", 100);
  const errLayout = layout("Error rate (%)", "%");
  if (d.threshold !== null && d.threshold !== undefined) {
    errLayout.shapes = [{type: "line", xref: "paper", x0: 0, x1: 1, y0: d.threshold * 100, y1: d.threshold * 100,
                         line: {color: "#b42318", dash: "dash"}}];
  }
  plot("chart-errors", errors, errLayout);
  plot("chart-latency", line("p95_ms", 1), layout("p95 latency of successful requests (ms)", "ms"));
})();
