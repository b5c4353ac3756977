// A DPO (or KTO: no accuracy chart) run's preference charts on the run page (templates/training/detail.html): rewards of the chosen and
// the rejected answers with their margin, and the share of pairs whose chosen answer wins (TRL's
// rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies). The stored curves come from the
// json_script block "run-preference"; live points arrive through run_detail.js, which re-dispatches every
// websocket event of the run as a "hub:run-event" DOM event. The server-rendered SVGs stay if plotly fails.
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  const data = document.getElementById("run-preference");
  if (!data || !window.Plotly) return;
  let curves = JSON.parse(data.textContent);
  const REWARDS = [["rewards/chosen", "chosen"], ["rewards/rejected", "rejected"], ["rewards/margins", "margin"]];
  // the legend above the plot: below it, in these half-width charts, it runs into the axis title
  const base = {margin: {t: 30, r: 10, b: 40, l: 55}, xaxis: {title: {text: "step"}},
                legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"}};
  const rewardLayout = {...base, yaxis: {title: {text: "reward (β·log-ratio)"}, zeroline: true}};
  const accLayout = {...base, yaxis: {title: {text: "chosen > rejected"}, range: [-0.05, 1.05], tickformat: ".0%"}};
  const config = {responsive: true, displaylogo: false};
  const $ = (id) => document.getElementById(id);

  function traces(c) {  // fresh arrays every time: Plotly.react redraws what is not the same array
    const t = (s, name, mode) => ({x: s.x.slice(), y: s.y.slice(), name: name, mode: mode});
    const r = REWARDS.map(([k, name]) => t(c.rewards[k], name, "lines"));
    r.push(t(c.eval_margins, "validation margin", "lines+markers"));
    return [r, [t(c.accuracy.train, "train", "lines"), t(c.accuracy.eval, "validation", "lines+markers")]];
  }
  function empty() {
    const e = () => ({x: [], y: []});
    return {rewards: Object.fromEntries(REWARDS.map(([k]) => [k, e()])), eval_margins: e(),
            accuracy: {train: e(), eval: e()}};
  }
  function add(c, points) {
    for (const p of points || []) {
      const kind = p.kind === "eval" ? "eval" : "train";
      if (kind === "train") for (const [k] of REWARDS) if (p[k] !== undefined) { c.rewards[k].x.push(p.step); c.rewards[k].y.push(p[k]); }
      if (kind === "eval" && p["rewards/margins"] !== undefined) { c.eval_margins.x.push(p.step); c.eval_margins.y.push(p["rewards/margins"]); }
      if (p["rewards/accuracies"] !== undefined) { c.accuracy[kind].x.push(p.step); c.accuracy[kind].y.push(p["rewards/accuracies"]); }
    }
    return c;
  }
  function cut(c, step) {  // a resume from a checkpoint drops what came after it
    const keep = (t) => { const i = t.x.findIndex((x) => x > step); if (i >= 0) { t.x = t.x.slice(0, i); t.y = t.y.slice(0, i); } };
    Object.values(c.rewards).forEach(keep); keep(c.eval_margins); keep(c.accuracy.train); keep(c.accuracy.eval);
    return c;
  }
  function lastTrain(c) {
    const t = c.accuracy.train.x.length ? c.accuracy.train : c.rewards["rewards/chosen"];  // KTO: no accuracies
    return t.x.length ? t.x[t.x.length - 1] : -1;
  }
  let drawn = false;
  // an empty chart says so (no −1…6 axes): the chart stays hidden until a trace has a point
  function hasPoints(ts) { return ts.some((t) => t.x && t.x.length); }
  function showEmpty(id, has) {
    const el = $(id); if (!el) return;
    let note = $(id + "-empty");
    if (!note) { note = document.createElement("p"); note.id = id + "-empty"; note.className = "muted chart-empty";
                 note.textContent = "No points yet."; el.before(note); }
    note.hidden = has; el.hidden = !has;
  }
  function draw() {
    const [r, a] = traces(curves);
    const acc = $("accuracy-chart");  // absent on a KTO run's page
    showEmpty("reward-chart", hasPoints(r)); if (acc) showEmpty("accuracy-chart", hasPoints(a));
    if (!hasPoints(r) && !hasPoints(a)) return;
    if (!drawn) { $("reward-chart").replaceChildren(); if (acc) acc.replaceChildren(); drawn = true; }  // the SVGs go
    Plotly.react("reward-chart", r, rewardLayout, config);
    if (acc) Plotly.react("accuracy-chart", a, accLayout, config);
  }
  function stats(s) {
    if (!s) return;
    if (s["rewards/margins"] !== undefined && $("stat-margin")) $("stat-margin").textContent = Number(s["rewards/margins"]).toFixed(4);
    if (s["rewards/accuracies"] !== undefined && $("stat-accuracy")) $("stat-accuracy").textContent = Math.round(100 * s["rewards/accuracies"]) + " %";
  }

  draw();
  document.addEventListener("hub:run-event", (e) => {
    const {event, payload} = e.detail;
    if (event === "snapshot") { curves = add(empty(), payload.points); draw(); stats(payload.summary); }
    else if (event === "progress") {
      const first = (payload.points || [])[0];
      // a training point at or before the last one: the run resumed from an earlier checkpoint
      if (first && first.kind !== "eval" && first.step <= lastTrain(curves)) cut(curves, first.step - 1);
      add(curves, payload.points); draw(); stats(payload.summary);
    } else if (event === "resume") { cut(curves, payload.step); draw(); }
  });
})();
