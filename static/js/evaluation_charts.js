// The evaluation page's plots (templates/evaluations/detail.html), from the json_script block
// "evaluation-chart-data": mean score per category and per component, one horizontal bar per version (the
// evaluated version and the one compared with, side by side), on a 0–1 axis. Each plot's height follows its
// number of rows. Drawn again after htmx swaps the live part (the job finished). A static file, no inline script:
// the dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const COLORS = ["#2f5fd0", "#98a2b3"];
  const cfg = {displayModeBar: false, responsive: true};

  function bars(id, labels, series, key) {
    const el = document.getElementById(id);
    if (!el || !labels.length) return;
    const perRow = 22 * series.length + 12;
    const height = 70 + perRow * labels.length;
    el.replaceChildren();
    el.style.height = height + "px";  // CSSOM, not a style attribute: allowed under style-src 'self'
    const ys = labels.slice().reverse();
    const traces = series.map((s, i) => {
      const xs = s[key].slice().reverse();
      return {type: "bar", orientation: "h", name: s.name, y: ys, x: xs.map((v) => (v === null ? 0 : v)),
              text: xs.map((v) => (v === null ? "n/a" : v.toFixed(3))), textposition: "outside", cliponaxis: false,
              marker: {color: COLORS[i % COLORS.length]}, hovertemplate: "%{y}: %{text}<extra>" + s.name + "</extra>"};
    });
    const layout = {height: height, barmode: "group", margin: {t: 10, r: 60, l: 10, b: 40},
                    xaxis: {range: [0, 1.08], title: {text: "mean score (0–1)"}, tickvals: [0, 0.25, 0.5, 0.75, 1]},
                    yaxis: {automargin: true}, legend: {orientation: "h", y: -0.12 - 20 / height},
                    showlegend: series.length > 1};
    if (series.length > 1) layout.margin.b = 70;
    Plotly.newPlot(el, traces, layout, cfg);
  }

  function draw() {
    const data = document.getElementById("evaluation-chart-data");
    if (!data || !window.Plotly) return;
    const d = JSON.parse(data.textContent);
    bars("chart-categories", d.categories || [], d.series || [], "categories");
    bars("chart-components", d.components || [], d.series || [], "components");
    window.hubEvaluationChartsDrawn = true;
  }

  draw();
  document.body.addEventListener("htmx:afterSettle", (e) => {
    if (e.target && e.target.id === "ev-live") draw();
  });
})();
