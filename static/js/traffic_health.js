// The Proxy health page's plots (templates/traffic/health.html), per target over the chosen window, from the
// json_script block "health-series" (every bucket present; an empty one has no latency, so lines break at
// gaps): latency (p50 solid, p95 dotted), requests, and errors (left out, with a note, when there are none).
// Each plot's height follows its legend (one entry per target); the x axis spans the window. Strict CSP: a
// static file, no inline script.
(function () {
  "use strict";
  const el = document.getElementById("health-series");
  if (!el || typeof Plotly === "undefined") return;
  const d = JSON.parse(el.textContent);
  const names = Object.keys(d.targets || {});
  if (!names.length) return;
  const palette = ["#2f5fd0", "#e8590c", "#2b8a3e", "#7048e8", "#0c8599", "#a61e4d", "#5c940d", "#c92a2a"];
  const cfg = {displayModeBar: false, responsive: true};
  const layout = (title, y, entries) => ({
    title: {text: title, font: {size: 14}}, height: 260 + 22 * Math.ceil(entries / 3),
    margin: {t: 40, r: 20, l: 60, b: 50}, xaxis: {type: "date", range: [d.since, d.until]},
    yaxis: {title: {text: y}, rangemode: "tozero"}, legend: {orientation: "h", y: -0.22}, hovermode: "x unified",
  });
  const lat = [], req = [], err = [];
  let errors = 0;
  const labels = d.labels || {};
  names.forEach((key, i) => {
    const pts = d.targets[key];
    const name = labels[key] || key;
    const color = palette[i % palette.length];
    const x = pts.map((p) => p.t);
    lat.push({type: "scatter", mode: "lines+markers", name: `${name} p50`, x, y: pts.map((p) => p.p50_ms),
              line: {color}, marker: {size: 4}, connectgaps: false});
    lat.push({type: "scatter", mode: "lines", name: `${name} p95`, x, y: pts.map((p) => p.p95_ms),
              line: {color, dash: "dot"}, connectgaps: false});
    req.push({type: "bar", name, x, y: pts.map((p) => p.requests), marker: {color}});
    err.push({type: "bar", name, x, y: pts.map((p) => p.errors), marker: {color}});
    errors += pts.reduce((n, p) => n + p.errors, 0);
  });
  Plotly.newPlot("chart-latency", lat, layout("Latency of successful requests (ms)", "ms", lat.length), cfg);
  Plotly.newPlot("chart-requests", req, Object.assign(layout("Requests", "requests", req.length), {barmode: "stack"}), cfg);
  const box = document.getElementById("chart-errors");
  if (errors) {
    Plotly.newPlot(box, err, Object.assign(layout("Errors (status ≥ 400)", "errors", err.length), {barmode: "stack"}), cfg);
  } else {
    box.classList.add("empty");
    box.textContent = "No errors in this window.";
  }
})();
