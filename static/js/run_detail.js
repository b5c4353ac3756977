// The run page (templates/training/detail.html): the loss chart, then the run's live progress over its
// websocket (ws(s)://<host>/ws/runs/<id>/): snapshot, progress points, resume, status and checkpoint events
// update the stats, the status badge, the queue position and the chart; terminal states reload the results
// partial through htmx. The run id comes from the chart's data-run-id, the stored curves from the
// json_script block "run-curves". A static file, no inline script: the dashboard runs under a strict CSP.
(function () {
  const chart = document.getElementById("loss-chart");
  if (!chart) return;
  const runId = chart.dataset.runId;
  const terminal = ["succeeded", "failed", "cancelled"];
  const curves = JSON.parse(document.getElementById("run-curves").textContent);
  // every point the page knows (stored ones from "run-points", live ones appended): {step, kind, t, loss, ...}
  let points = JSON.parse((document.getElementById("run-points") || {textContent: "[]"}).textContent);
  window.hubLivePoints = 0;
  let lastTrain = curves.train.x.length ? curves.train.x[curves.train.x.length - 1] : -1;
  let lastEval = curves.eval.x.length ? curves.eval.x[curves.eval.x.length - 1] : -1;
  const plotly = !!window.Plotly;
  // the controls: smoothing (an exponential moving average, debiased as TensorBoard's), log scale, step/time axis
  const smoothing = document.getElementById("loss-smoothing"), logBox = document.getElementById("loss-log");
  const axisSel = document.getElementById("chart-axis");
  const panels = [
    ["learning_rate", [["learning_rate", "learning rate"]]], ["grad_norm", [["grad_norm", "grad norm"]]],
    ["throughput", [["tokens_per_s", "tokens/s"]]], ["memory", [["rss_mb", "RSS"], ["gpu_mb", "GPU"]]],
  ];
  function smooth(ys, a) {
    if (!a) return ys;
    let m = 0, n = 0;
    return ys.map((y) => { m = a * m + (1 - a) * y; n = a * n + (1 - a); return m / n; });
  }
  function startedAt() {
    const el = document.getElementById("stat-elapsed");
    return el && el.dataset.startedAt ? Date.parse(el.dataset.startedAt) : null;
  }
  function xOf(p) { return axisSel && axisSel.value === "time" ? p.t : p.step; }
  function showChart(id, has) {
    const box = document.getElementById(id), empty = document.getElementById(id + "-empty");
    if (box) box.hidden = !has;
    if (empty) empty.hidden = has;
  }
  const base = {margin: {t: 10, r: 10, b: 40, l: 56}, legend: {orientation: "h"}};
  function xTitle() { return axisSel && axisSel.value === "time" ? "seconds since start" : "step"; }
  let drawn = false;
  function render() {
    const a = smoothing ? Number(smoothing.value) : 0;
    const out = document.getElementById("loss-smoothing-value"); if (out) out.textContent = a.toFixed(2);
    const train = points.filter((p) => p.kind !== "eval" && p.loss !== undefined);
    const evals = points.filter((p) => p.kind === "eval" && p.eval_loss !== undefined);
    showChart("loss-chart", train.length + evals.length > 0);
    if (!plotly) return;
    if (train.length + evals.length > 0) {
      const traces = [
        {x: train.map(xOf), y: smooth(train.map((p) => p.loss), a), name: a ? "train loss (smoothed)" : "train loss", mode: "lines",
         line: {color: "#1f77b4"}},
        {x: evals.map(xOf), y: evals.map((p) => p.eval_loss), name: "validation loss", mode: "lines+markers", line: {color: "#ff7f0e"}},
      ];
      if (a) traces.push({x: train.map(xOf), y: train.map((p) => p.loss), name: "train loss (raw)", mode: "lines",
                          line: {color: "#1f77b4", width: 1}, opacity: 0.3});
      if (!drawn) chart.replaceChildren();  // the server-drawn SVG gives way to the interactive chart
      Plotly.react("loss-chart", traces, {...base, xaxis: {title: {text: xTitle()}},
        yaxis: {title: {text: "loss"}, type: logBox && logBox.checked ? "log" : "linear"}},
        {responsive: true, displaylogo: false});
      drawn = true;
    }
    for (const [key, fields] of panels) {
      const id = "panel-" + key, box = document.getElementById(id);
      if (!box) continue;
      const traces = fields.map(([f, name]) => {
        const ps = points.filter((p) => p.kind !== "eval" && p[f] !== undefined && p[f] !== null);
        return {x: ps.map(xOf), y: ps.map((p) => p[f]), name: name, mode: "lines"};
      }).filter((t) => t.x.length);
      showChart(id, traces.length > 0);
      if (!traces.length) continue;
      if (!box.dataset.plotted) box.replaceChildren();
      Plotly.react(id, traces, {margin: {t: 6, r: 8, b: 34, l: 56}, showlegend: traces.length > 1,
        legend: {orientation: "h"}, xaxis: {title: {text: xTitle()}},
        yaxis: {exponentformat: key === "learning_rate" ? "e" : "none"}}, {responsive: true, displaylogo: false});
      box.dataset.plotted = "1";
    }
  }
  let pending = false;
  function scheduleRender() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } }
  for (const el of [smoothing, logBox, axisSel]) if (el) el.addEventListener("input", render);
  if (axisSel) axisSel.addEventListener("change", render);
  render();

  const $ = (id) => document.getElementById(id);
  const fmt = (v, d) => (v === null || v === undefined) ? ""  // as the page's `num` filter: 12,345.6
    : Number(v).toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d});
  function duration(s) {
    if (s === null || s === undefined) return "";
    s = Math.round(s);
    if (s >= 3600) return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
    if (s >= 60) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return s + " s";
  }
  function setQueuePosition(status, position) {
    // the position is only meaningful while queued: a run that started (or ended) drops it
    const q = $("queue-position");
    if (!q || !status) return;
    if (status !== "queued") { q.remove(); return; }
    if (position) q.textContent = "Position " + position + " in the GPU queue";
  }
  function setStatus(status) {
    setQueuePosition(status);
    const el = $("run-status");
    if (!status || el.dataset.status === status) return;
    el.dataset.status = status; el.textContent = status; el.className = "badge status-" + status;
    if (terminal.includes(status)) {
      const form = $("cancel-form"); if (form) form.remove();
      setTimeout(() => htmx.ajax("GET", "?partial=results", {target: "#results", swap: "outerHTML"}), 300);
    }
  }
  // the phase (loading, training, evaluating, saving, registering) and the elapsed time, from the run's job
  function setPhase(phase, status) {
    const badge = $("run-phase"), stat = $("stat-phase");
    const shown = terminal.includes(status) ? "" : (phase || "");
    if (badge) { badge.textContent = shown; badge.dataset.phase = shown; badge.hidden = !shown; }
    if (stat) stat.textContent = shown || "—";
    // no "ETA 0 s" while it loads, evaluates or saves: the ETA names the phase instead ("evaluating…")
    if (shown && shown !== "training") $("stat-eta").textContent = shown + "…";
    else if (!shown) $("stat-eta").textContent = "";
  }
  function setTimes(p) {
    const el = $("stat-elapsed");
    if (!el || !p) return;
    if (p.started_at) el.dataset.startedAt = p.started_at;
    if (p.finished_at) el.dataset.finishedAt = p.finished_at;
    tick();
  }
  function tick() {
    const el = $("stat-elapsed");
    if (!el || !el.dataset.startedAt) return;
    const end = el.dataset.finishedAt ? Date.parse(el.dataset.finishedAt) : Date.now();
    el.textContent = duration(Math.max(0, (end - Date.parse(el.dataset.startedAt)) / 1000));
    $("stat-time-label").textContent = el.dataset.finishedAt ? "Duration" : "Elapsed";
  }
  setInterval(() => { if (!terminal.includes($("run-status").dataset.status)) tick(); }, 1000);
  function setSummary(s, p) {
    if (!s) return;
    if (p && p.current_step !== undefined) $("stat-step").textContent = p.current_step;
    if (p && p.total_steps) $("stat-total").textContent = p.total_steps;
    if (s.loss !== undefined) $("stat-loss").textContent = fmt(s.loss, 4);
    if (s.eval_loss !== undefined && s.eval_loss !== null) $("stat-eval").textContent = fmt(s.eval_loss, 4);
    if (s.learning_rate !== undefined) $("stat-lr").textContent = Number(s.learning_rate).toExponential(2);
    if (s.grad_norm !== undefined) $("stat-gn").textContent = fmt(s.grad_norm, 3);
    if (s.steps_per_s !== undefined) $("stat-sps").textContent = fmt(s.steps_per_s, 2);
    if (s.tokens_per_s !== undefined) $("stat-tps").textContent = fmt(s.tokens_per_s, 1);
    if (s.samples_per_s !== undefined) $("stat-samples").textContent = fmt(s.samples_per_s, 2);
    const phase = $("run-phase") ? $("run-phase").dataset.phase : "training";
    if (s.eta_s !== undefined) $("stat-eta").textContent = (phase && phase !== "training") ? phase + "…" : duration(s.eta_s);
    if (s.rss_mb !== undefined) $("stat-mem").textContent = s.rss_mb + " MB RSS" + (s.gpu_mb ? " · " + s.gpu_mb + " MB GPU" : "");
    if (s.stage !== undefined && $("stat-stage")) $("stat-stage").textContent = s.stage + 1;
  }
  function stamp(p) {
    // a live point's time: now, since the run started (stored points carry theirs)
    const t0 = startedAt();
    return {...p, t: p.t !== undefined ? p.t : (t0 ? Math.max(0, (Date.now() - t0) / 1000) : 0)};
  }
  function addPoints(incoming, live) {
    let n = 0;
    for (const p of incoming || []) {
      if (p.kind === "eval" && p.eval_loss !== undefined && p.step > lastEval) { points.push(stamp(p)); lastEval = p.step; n++; }
      else if (p.kind !== "eval" && p.step > lastTrain) { points.push(stamp(p)); if (p.loss !== undefined) { lastTrain = p.step; n++; } }
    }
    if (n) scheduleRender();
    if (live) window.hubLivePoints += n;
  }
  function handle(event, p) {
    // other charts of the page (a DPO run's preference charts, static/js/run_preference.js) follow the same stream
    document.dispatchEvent(new CustomEvent("hub:run-event", {detail: {event: event, payload: p}}));
    if (event === "snapshot") {
      setStatus(p.status); setQueuePosition(p.status, p.queue_position); setPhase(p.phase, p.status); setTimes(p);
      setSummary(p.summary, p);
      // a resumed run may have dropped points after its checkpoint: redraw from the snapshot (keeping the
      // times of points already known)
      const known = new Map(points.map((q) => [q.kind + ":" + q.step, q.t]));
      points = (p.points || []).map((q) => stamp({...q, t: known.get((q.kind === "eval" ? "eval" : q.kind) + ":" + q.step)}));
      const t = points.filter(q => q.kind !== "eval" && q.loss !== undefined);
      const e = points.filter(q => q.kind === "eval" && q.eval_loss !== undefined);
      lastTrain = t.length ? t[t.length - 1].step : -1; lastEval = e.length ? e[e.length - 1].step : -1;
      render();
    } else if (event === "progress") {
      if (p.points && p.points.length && p.points[0].step <= lastTrain && p.points[0].kind !== "eval") {
        // the run resumed from an earlier checkpoint: drop the points after it
        const cut = p.points[0].step;
        points = points.filter((q) => q.step < cut);
        lastTrain = cut - 1; lastEval = Math.min(lastEval, cut - 1);
      }
      addPoints(p.points, true); setSummary(p.summary, p); setStatus(p.status);
    } else if (event === "resume") {
      // restarted from a checkpoint after a crash: the curve continues from its step
      const cut = p.step;
      points = points.filter((q) => q.step <= cut);
      lastTrain = Math.min(lastTrain, cut); lastEval = Math.min(lastEval, cut);
      render();
    } else if (event === "status") {
      // the job lifecycle's one payload: job status + phase, and the run's own status (remote runs differ)
      const status = p.run_status || p.status;
      setPhase(p.phase, status); setTimes(p); setStatus(status);
    } else if (event === "checkpoint") {
      if (!terminal.includes($("run-status").dataset.status)) htmx.ajax("GET", "?partial=results", {target: "#results", swap: "outerHTML"});
    }
  }
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/runs/" + runId + "/");
    ws.onmessage = (m) => { const msg = JSON.parse(m.data); handle(msg.event, msg.payload); };
    ws.onclose = () => { if (!terminal.includes($("run-status").dataset.status)) setTimeout(connect, 2000); };
  }
  connect();
})();
