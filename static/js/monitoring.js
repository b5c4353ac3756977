// The Monitoring page (templates/monitoring/page.html): each server-drawn SVG plot gives way to the same data
// drawn by plotly (json_script block "monitoring-charts": [{id, title, y_title, traces: [{name, x, y}], since,
// until}]), with a date axis over the chosen window; should plotly fail to load, the SVGs stay. The page reloads
// itself every minute while it is visible and no form is being filled in (the roll-ups and samples are written once a minute). A static file,
// no inline script: the dashboard runs under a strict CSP.
(function () {
  "use strict";
  const el = document.getElementById("monitoring-charts");
  const charts = el ? JSON.parse(el.textContent) : [];
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  // plotly reads a few HTML tags in trace names (<b>, <a href>...): a model version's name is shown as text
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  if (window.Plotly) {
    charts.forEach((c) => {
      const box = document.getElementById(c.id);
      if (!box) return;
      const few = c.traces.every((t) => t.x.length <= 30);
      const traces = c.traces.map((t, i) => ({
        type: "scatter", mode: few ? "lines+markers" : "lines", name: esc(t.name), x: t.x, y: t.y,
        line: {color: palette[i % palette.length], width: 2}, marker: {size: 5}, connectgaps: false,
      }));
      const legend = traces.length > 1;
      box.replaceChildren();
      Plotly.newPlot(box, traces, {
        height: 260, margin: {t: 8, r: 12, l: 56, b: legend ? 70 : 36},
        xaxis: {type: "date", range: [c.since, c.until]},
        yaxis: {title: {text: c.y_title}, rangemode: "tozero"},
        showlegend: legend, legend: {orientation: "h", y: -0.3}, hovermode: "x unified",
      }, {displayModeBar: false, responsive: true});
    });
  }
  // never while someone is typing: a form that was edited (or holds the focus) stops the reloads
  let dirty = false, timer = null;
  document.querySelectorAll("form").forEach((f) => f.addEventListener("input", () => { dirty = true; }));
  const busy = () => dirty || !!(document.activeElement && document.activeElement.closest("form"));
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { if (!document.hidden && !busy()) window.location.reload(); else schedule(); }, 60000);
  };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(); });
  schedule();
})();
