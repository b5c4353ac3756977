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
  window.hubLivePoints = 0;
  let lastTrain = curves.train.x.length ? curves.train.x[curves.train.x.length - 1] : -1;
  let lastEval = curves.eval.x.length ? curves.eval.x[curves.eval.x.length - 1] : -1;
  const layout = {margin: {t: 10, r: 10, b: 40, l: 50}, xaxis: {title: {text: "step"}}, yaxis: {title: {text: "loss"}},
                  legend: {orientation: "h"}};
  // The server-rendered SVG (the first paint) gives way to the interactive chart; should plotly fail to
  // load, the SVG stays and the live stats still update.
  const plotly = !!window.Plotly;
  if (plotly) {
    chart.replaceChildren();
    Plotly.newPlot("loss-chart", [
      {x: curves.train.x, y: curves.train.y, name: "train loss", mode: "lines"},
      {x: curves.eval.x, y: curves.eval.y, name: "validation loss", mode: "lines+markers"},
    ], layout, {responsive: true, displaylogo: false});
  }

  const $ = (id) => document.getElementById(id);
  const fmt = (v, d) => (v === null || v === undefined) ? "" : Number(v).toFixed(d);
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
    if (shown && shown !== "training") $("stat-eta").textContent = "";  // no "ETA 0 s" while evaluating or saving
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
    if (s.eta_s !== undefined) $("stat-eta").textContent = (phase && phase !== "training") ? "" : duration(s.eta_s);
    if (s.rss_mb !== undefined) $("stat-mem").textContent = s.rss_mb + " MB RSS" + (s.gpu_mb ? " · " + s.gpu_mb + " MB GPU" : "");
    if (s.stage !== undefined && $("stat-stage")) $("stat-stage").textContent = s.stage + 1;
  }
  function addPoints(points, live) {
    const tx = [], ty = [], ex = [], ey = [];
    for (const p of points || []) {
      if (p.kind === "eval" && p.eval_loss !== undefined && p.step > lastEval) { ex.push(p.step); ey.push(p.eval_loss); lastEval = p.step; }
      else if (p.kind !== "eval" && p.loss !== undefined && p.step > lastTrain) { tx.push(p.step); ty.push(p.loss); lastTrain = p.step; }
    }
    if (plotly && tx.length) Plotly.extendTraces("loss-chart", {x: [tx], y: [ty]}, [0]);
    if (plotly && ex.length) Plotly.extendTraces("loss-chart", {x: [ex], y: [ey]}, [1]);
    if (live) window.hubLivePoints += tx.length + ex.length;
  }
  function handle(event, p) {
    // other charts of the page (a DPO run's preference charts, static/js/run_preference.js) follow the same stream
    document.dispatchEvent(new CustomEvent("hub:run-event", {detail: {event: event, payload: p}}));
    if (event === "snapshot") {
      setStatus(p.status); setQueuePosition(p.status, p.queue_position); setPhase(p.phase, p.status); setTimes(p);
      setSummary(p.summary, p);
      // a resumed run may have dropped points after its checkpoint: redraw from the snapshot
      const t = p.points.filter(q => q.kind !== "eval" && q.loss !== undefined);
      const e = p.points.filter(q => q.kind === "eval" && q.eval_loss !== undefined);
      if (plotly) Plotly.react("loss-chart", [
        {x: t.map(q => q.step), y: t.map(q => q.loss), name: "train loss", mode: "lines"},
        {x: e.map(q => q.step), y: e.map(q => q.eval_loss), name: "validation loss", mode: "lines+markers"},
      ], layout);
      lastTrain = t.length ? t[t.length - 1].step : -1; lastEval = e.length ? e[e.length - 1].step : -1;
    } else if (event === "progress") {
      if (plotly && p.points && p.points.length && p.points[0].step <= lastTrain && p.points[0].kind !== "eval") {
        // the run resumed from an earlier checkpoint: drop the points after it
        const gd = $("loss-chart"), cut = p.points[0].step;
        const keep = (tr) => { const i = tr.x.findIndex(x => x >= cut); if (i >= 0) { tr.x = tr.x.slice(0, i); tr.y = tr.y.slice(0, i); } };
        keep(gd.data[0]); keep(gd.data[1]); Plotly.redraw(gd);
        lastTrain = cut - 1; lastEval = Math.min(lastEval, cut - 1);
      }
      addPoints(p.points, true); setSummary(p.summary, p); setStatus(p.status);
    } else if (event === "resume") {
      // restarted from a checkpoint after a crash: the curve continues from its step
      const gd = $("loss-chart"), cut = p.step;
      if (plotly) for (const tr of gd.data) { const i = tr.x.findIndex(x => x > cut); if (i >= 0) { tr.x = tr.x.slice(0, i); tr.y = tr.y.slice(0, i); } }
      if (plotly) Plotly.redraw(gd);
      lastTrain = Math.min(lastTrain, cut); lastEval = Math.min(lastEval, cut);
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
