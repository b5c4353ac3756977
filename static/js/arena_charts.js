// The arena results' plots (templates/arena/results.html), from the json_script block "arena-chart-data":
// the win rate of each pair and the Bradley–Terry scores, each a dot with its 95 % interval and a dashed
// reference line (50 %, the mean score 1000). One row per pair / contestant: each plot's height follows its
// number of rows. Replaces the server-drawn SVG (first paint) once plotly has loaded; without plotly the SVG
// stays. A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const data = document.getElementById("arena-chart-data");
  if (!data || !window.Plotly) return;
  const d = JSON.parse(data.textContent);
  const cfg = {displayModeBar: false, responsive: true};
  const ROW = 34, CHROME = 80;

  function forest(id, rows, opts) {
    const el = document.getElementById(id);
    if (!el || !rows.length) return;
    const shown = rows.filter((r) => r.value !== null && r.value !== undefined).reverse();  // first row on top
    if (!shown.length) return;
    const height = CHROME + ROW * shown.length;
    el.replaceChildren();
    el.style.height = height + "px";  // CSSOM, not a style attribute: allowed under style-src 'self'
    const trace = {type: "scatter", mode: "markers", orientation: "h", y: shown.map((r) => r.label),
                   x: shown.map((r) => r.value), text: shown.map((r) => r.note),
                   marker: {size: 10, color: opts.color}, hoverinfo: "y+text", cliponaxis: false,
                   error_x: {type: "data", symmetric: false, color: opts.color, thickness: 3, width: 0,
                             array: shown.map((r) => (r.high !== null && r.high !== undefined) ? r.high - r.value : 0),
                             arrayminus: shown.map((r) => (r.low !== null && r.low !== undefined) ? r.value - r.low : 0)}};
    const layout = {height: height, margin: {t: 16, r: 110, l: 40, b: 50}, showlegend: false,
                    xaxis: Object.assign({title: {text: opts.title}, zeroline: false}, opts.range ? {range: opts.range} : {},
                                         opts.percent ? {tickformat: ".0%"} : {}),
                    yaxis: {automargin: true},
                    // each row's value in the right margin, clear of the dots and the labels
                    annotations: shown.map((r) => ({xref: "paper", x: 1.01, xanchor: "left", y: r.label, yref: "y",
                                                   text: r.note, showarrow: false, font: {size: 12, color: "#444"}})),
                    shapes: [{type: "line", x0: opts.ref, x1: opts.ref, yref: "paper", y0: 0, y1: 1,
                              line: {color: "#b42318", dash: "dash", width: 1}}]};
    Plotly.newPlot(el, [trace], layout, cfg);
  }

  // a little room beyond 0 % and 100 %: a dot at either end would sit on the axis, over the end of its label
  forest("chart-pairs", d.pairs || [], {color: "#1f77b4", ref: 0.5, range: [-0.04, 1.04], percent: true,
                                        title: "win rate of the first-named model (Wilson 95 % interval)"});
  forest("chart-ranking", d.ranking || [], {color: "#7a5af8", ref: 1000,
                                            title: "Bradley–Terry score, Elo scale (bootstrap 95 % interval)"});
  window.hubArenaChartsDrawn = true;
})();
