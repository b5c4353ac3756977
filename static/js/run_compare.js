// The run comparison page (templates/training/compare.html): one chart with every chosen run's train and
// validation loss curves, from the json_script block "compare-data". A static file, no inline script: the
// dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const data = document.getElementById("compare-data");
  if (!data) return;
  const runs = JSON.parse(data.textContent);
  const traces = [];
  for (const r of runs) {
    traces.push({x: r.curves.train.x, y: r.curves.train.y, name: "#" + r.id + " train", mode: "lines"});
    if (r.curves.eval.x.length) traces.push({x: r.curves.eval.x, y: r.curves.eval.y, name: "#" + r.id + " validation", mode: "lines+markers", line: {dash: "dot"}});
  }
  Plotly.newPlot("compare-chart", traces, {margin: {t: 10, r: 10, b: 40, l: 50}, xaxis: {title: {text: "step"}}, yaxis: {title: {text: "loss"}}}, {responsive: true, displaylogo: false});
})();
