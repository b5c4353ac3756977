// The agreement page's plots (templates/review/agreement.html), from the json_script block "agreement-data":
// answers per reviewer, accept rate, median seconds per example, agreement with the consensus, and Cohen's
// kappa per pair. Horizontal bars, one per reviewer (or pair): each plot's height follows its number of bars,
// so two reviewers make a short plot and twenty a tall one. A reviewer without a value (no answers yet) is
// left out of that plot. A static file, no inline script: the dashboard runs under a strict CSP.
(function () {
  "use strict";
  const data = document.getElementById("agreement-data");
  if (!data || !window.Plotly) return;
  const d = JSON.parse(data.textContent);
  const cfg = {displayModeBar: false, responsive: true};
  const BAR = 30, CHROME = 90;  // px per bar, px for the title and the axis

  function bars(id, title, labels, values, opts) {
    const el = document.getElementById(id);
    if (!el) return;
    const rows = labels.map((l, i) => [l, values[i], (opts.text || [])[i]]).filter((r) => r[1] !== null && r[1] !== undefined);
    if (!rows.length) {
      const p = document.createElement("p");
      p.className = "muted"; p.textContent = title + ": no values yet.";
      el.replaceChildren(p);
      return;
    }
    rows.reverse();  // plotly draws the first category at the bottom
    const height = CHROME + BAR * rows.length;
    el.style.height = height + "px";  // CSSOM, not a style attribute: allowed under style-src 'self'
    const trace = {type: "bar", orientation: "h", y: rows.map((r) => r[0]), x: rows.map((r) => r[1]),
                   marker: {color: opts.color || "#2f5fd0"},
                   text: rows.map((r) => r[2] !== undefined ? r[2] : (opts.fmt ? opts.fmt(r[1]) : String(r[1]))),
                   textposition: "outside", cliponaxis: false, hoverinfo: "y+text"};
    const layout = {title: {text: title, font: {size: 14}}, height: height, margin: {t: 36, r: 70, l: 110, b: 36},
                    xaxis: Object.assign({zeroline: true}, opts.range ? {range: opts.range} : {},
                                         opts.xtitle ? {title: {text: opts.xtitle}} : {}),
                    yaxis: {automargin: true}, bargap: 0.25};
    Plotly.newPlot(el, [trace], layout, cfg);
  }

  const pct = (v) => Math.round(v * 100) + " %";
  bars("chart-done", "Examples answered", d.reviewers, d.done, {color: "#2f5fd0", xtitle: "answers"});
  bars("chart-accept", "Accept rate", d.reviewers, d.accept_rate, {color: "#32d583", range: [0, 1], fmt: pct});
  bars("chart-time", "Median time per example", d.reviewers, d.median_seconds,
       {color: "#fdb022", xtitle: "seconds", fmt: (v) => v.toFixed(1) + " s"});
  bars("chart-consensus", "Agreement with the consensus", d.reviewers, d.agreement, {color: "#7a5af8", range: [0, 1], fmt: pct});
  if (d.pairs && d.pairs.length) {
    bars("chart-pairs", "Cohen's κ per pair", d.pairs.map((p) => p.label), d.pairs.map((p) => p.kappa),
         {color: "#0e9384", range: [-1, 1],
          text: d.pairs.map((p) => (p.kappa === null || p.kappa === undefined) ? "" : p.kappa.toFixed(2) + " (n=" + p.n + ")")});
  }
  window.hubAgreementDrawn = true;
})();
