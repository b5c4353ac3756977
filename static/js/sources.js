// The code sources pages (templates/sources/*). A static file, no inline script: the dashboard runs under a
// strict Content-Security-Policy.
// - New source: shows the fields of the chosen kind (path / url / archive) through `data-kind` attributes.
// - Live progress: a `.job-live[data-job-id]` card follows its job over ws(s)://<host>/ws/sources/jobs/<id>/
//   (snapshot, then `status` and `job_progress` events) and reloads the page when the job ends; without a
//   websocket it polls /api/jobs/<id> every 2 s instead.
// - Analysis charts: plotly replaces the server-drawn SVG charts with interactive ones (data: #source-charts).
// - Buttons with data-confirm ask first.
(function () {
  "use strict";

  // -- new source: fields per kind -----------------------------------------------------------------------
  const form = document.getElementById("source-form");
  if (form) {
    const apply = () => {
      const checked = form.querySelector("input[name=kind]:checked");
      const kind = checked ? checked.value : "path";
      form.querySelectorAll("[data-kind]").forEach((el) => {
        el.hidden = !el.dataset.kind.split(" ").includes(kind);
      });
    };
    form.addEventListener("change", (e) => { if (e.target.name === "kind") apply(); });
    apply();
  }

  // -- confirmations --------------------------------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const el = e.target instanceof Element ? e.target.closest("[data-confirm]") : null;
    if (el && !window.confirm(el.dataset.confirm)) e.preventDefault();
  });

  // -- live job progress ----------------------------------------------------------------------------------
  const terminal = ["succeeded", "failed", "cancelled"];
  document.querySelectorAll(".job-live[data-job-id]").forEach((card) => {
    const jobId = card.dataset.jobId;
    const field = (name) => card.querySelector(`[data-field="${name}"]`);
    let done = false;
    function show(p) {
      if (!p || done) return;
      const status = p.status || card.dataset.status;
      const st = field("status");
      if (st) { st.textContent = status; st.className = "badge status-" + status; }
      const ph = field("phase"); if (ph) { ph.textContent = p.phase || ""; ph.hidden = !p.phase || p.phase === status; }
      const prog = p.progress || {};
      const bar = field("bar");
      if (bar) {
        if (prog.total) { bar.max = prog.total; bar.value = Math.min(prog.current || 0, prog.total); }
        else { bar.removeAttribute("value"); }
      }
      const msg = field("message");
      if (msg) {
        const parts = [];
        if (prog.message) parts.push(prog.message);
        if (prog.total) parts.push((prog.current || 0) + " of " + prog.total + " " + (prog.unit || ""));
        else if (status === "queued") parts.push("waiting for the worker…");
        msg.textContent = parts.join(" — ");
      }
      if (terminal.includes(status)) { done = true; setTimeout(() => window.location.reload(), 600); }
    }
    function poll() {
      if (done) return;
      fetch(`/api/jobs/${jobId}`, {credentials: "same-origin"})
        .then((r) => r.ok ? r.json() : null).then(show).catch(() => {})
        .finally(() => { if (!done) setTimeout(poll, 2000); });
    }
    try {
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/sources/jobs/${jobId}/`);
      let opened = false;
      ws.onopen = () => { opened = true; };
      ws.onmessage = (m) => { try { show(JSON.parse(m.data).payload); } catch (err) { /* ignore */ } };
      ws.onclose = () => { if (!done) poll(); };
      setTimeout(() => { if (!opened && !done) { ws.close(); } }, 4000);
    } catch (err) {
      poll();
    }
  });

  // -- analysis charts ------------------------------------------------------------------------------------
  const dataEl = document.getElementById("source-charts");
  if (dataEl && window.Plotly) {
    const d = JSON.parse(dataEl.textContent);
    const cfg = {displayModeBar: false, responsive: true};
    const lay = (title, x, y) => ({title: {text: title, font: {size: 13}}, margin: {t: 40, r: 60, l: 60, b: 60},
                                   xaxis: {title: {text: x}, automargin: true, type: "category"}, yaxis: {title: {text: y}}});
    const draw = (id, traces, layout) => {
      const el = document.getElementById(id);
      if (!el || !traces.length) return;
      el.replaceChildren();
      Plotly.newPlot(el, traces, layout, cfg);
    };
    if (d.languages.names.length) {
      draw("chart-languages", [{type: "bar", x: d.languages.names, y: d.languages.loc, marker: {color: "#2f5fd0"},
                                customdata: d.languages.files, hovertemplate: "%{x}: %{y} lines, %{customdata} files<extra></extra>"}],
           lay("Language mix (lines of code)", "language", "lines"));
    }
    if (d.complexity.buckets.length) {
      draw("chart-complexity", [{type: "bar", x: d.complexity.buckets, y: d.complexity.counts, marker: {color: "#fdb022"}}],
           lay("Cyclomatic complexity per function", "complexity", "functions"));
    }
    if (d.components.names.length) {
      draw("chart-components", [{type: "bar", x: d.components.names, y: d.components.counts, marker: {color: "#32d583"}}],
           lay("Components", "component", "count"));
    }
    if (d.churn.months.length) {
      draw("chart-churn", [
        {type: "bar", name: "added", x: d.churn.months, y: d.churn.added, marker: {color: "#2ca02c"}},
        {type: "bar", name: "removed", x: d.churn.months, y: d.churn.removed, marker: {color: "#d62728"}},
        {type: "scatter", mode: "lines+markers", name: "commits", x: d.churn.months, y: d.churn.commits, yaxis: "y2", line: {color: "#1f77b4"}},
      ], Object.assign(lay("Churn per month", "month", "lines"), {barmode: "group", legend: {orientation: "h"},
         yaxis2: {title: {text: "commits"}, overlaying: "y", side: "right"}}));
    }
  }
})();
