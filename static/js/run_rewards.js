// A GRPO run's reward chart on the run page (templates/training/detail.html): the mean reward of the sampled
// answers per step, each reward component's mean (TRL's reward and rewards/<name>/mean), and the validation
// reward as markers; the components' table gets each one's last mean and its share of failed scorings
// (reward_errors/<name>). The stored curves come from the json_script block "run-rewards"; live points arrive
// through run_detail.js, which re-dispatches every websocket event of the run as a "hub:run-event" DOM event.
// A component first seen in a live point gets its own line. The server-rendered SVG stays if plotly fails.
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  const data = document.getElementById("run-rewards");
  if (!data || !window.Plotly) return;
  let curves = JSON.parse(data.textContent);
  const names = () => Object.keys(curves.components);
  const layout = {margin: {t: 30, r: 10, b: 40, l: 55}, xaxis: {title: {text: "step"}},
                  yaxis: {title: {text: "reward (0–1)"}, rangemode: "tozero"},
                  legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"}};
  const config = {responsive: true, displaylogo: false};
  const $ = (id) => document.getElementById(id);
  const component = (key) => (key.startsWith("rewards/") && key.endsWith("/mean")) ? key.slice(8, -5) : null;

  function traces(c) {  // fresh arrays every time: Plotly.react redraws what is not the same array
    const t = (s, name, extra) => ({x: s.x.slice(), y: s.y.slice(), name: name, mode: "lines", ...extra});
    const out = [t(c.reward, "mean reward", {line: {width: 3}})];
    for (const name of Object.keys(c.components)) out.push(t(c.components[name], name, {line: {width: 1.5}}));
    out.push(t(c.eval_reward, "validation reward", {mode: "lines+markers", marker: {size: 9}}));
    return out;
  }
  function empty() {
    const e = () => ({x: [], y: []});
    return {reward: e(), components: Object.fromEntries(names().map((n) => [n, e()])), eval_reward: e(), errors: {}};
  }
  function add(c, points) {
    for (const p of points || []) {
      if (p.kind === "eval") {
        if (p.reward !== undefined) { c.eval_reward.x.push(p.step); c.eval_reward.y.push(p.reward); }
        continue;
      }
      if (p.kind !== "train") continue;
      if (p.reward !== undefined) { c.reward.x.push(p.step); c.reward.y.push(p.reward); }
      for (const [key, value] of Object.entries(p)) {
        const name = component(key);
        if (name === null || value === null) continue;
        const s = c.components[name] || (c.components[name] = {x: [], y: []});
        s.x.push(p.step); s.y.push(value);
      }
    }
    return c;
  }
  function cut(c, step) {  // a resume from a checkpoint drops what came after it
    const keep = (t) => {
      const i = t.x.findIndex((x) => x > step);
      if (i >= 0) { t.x = t.x.slice(0, i); t.y = t.y.slice(0, i); }
    };
    keep(c.reward); keep(c.eval_reward); Object.values(c.components).forEach(keep);
    return c;
  }
  const lastTrain = (c) => c.reward.x.length ? c.reward.x[c.reward.x.length - 1] : -1;

  let drawn = false;
  function draw() {
    // an empty chart says so (no −1…6 axes): hidden until a trace has a point
    const ts = traces(curves), has = ts.some((t) => t.x && t.x.length), el = $("grpo-reward-chart");
    let note = $("grpo-reward-chart-empty");
    if (!note) { note = document.createElement("p"); note.id = "grpo-reward-chart-empty"; note.className = "muted chart-empty";
                 note.textContent = "No points yet."; el.before(note); }
    note.hidden = has; el.hidden = !has;
    if (!has) return;
    if (!drawn) { $("grpo-reward-chart").replaceChildren(); drawn = true; }  // the SVG goes
    Plotly.react("grpo-reward-chart", traces(curves), layout, config);
  }
  function stats(s) {
    if (!s) return;
    if (s.reward !== undefined && $("stat-reward")) $("stat-reward").textContent = Number(s.reward).toFixed(3);
    for (const row of document.querySelectorAll("#reward-components tr[data-component]")) {
      const name = row.dataset.component;
      const mean = s["rewards/" + name + "/mean"], failed = s["reward_errors/" + name];
      if (mean !== undefined && mean !== null) {
        row.querySelector('[data-stat="mean"]').textContent = Number(mean).toFixed(3);
      }
      const cell = row.querySelector('[data-stat="errors"]');
      if (failed !== undefined && failed !== null && !cell.querySelector("code")) {  // the final count stays once shown
        cell.textContent = failed > 0 ? Math.round(100 * failed) + " % of the last step's answers (scored 0)" : "none";
      }
    }
  }

  draw();
  document.addEventListener("hub:run-event", (e) => {
    const {event, payload} = e.detail;
    if (event === "snapshot") { curves = add(empty(), payload.points); draw(); stats(payload.summary); }
    else if (event === "progress") {
      const first = (payload.points || [])[0];
      // a training point at or before the last one: the run resumed from an earlier checkpoint
      if (first && first.kind === "train" && first.step <= lastTrain(curves)) cut(curves, first.step - 1);
      add(curves, payload.points); draw(); stats(payload.summary);
    } else if (event === "resume") { cut(curves, payload.step); draw(); }
  });
})();
