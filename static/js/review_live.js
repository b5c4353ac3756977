// Live progress of a review task (templates/review/detail.html, review.html): one websocket to
// ws(s)://<host>/ws/reviews/<task id>/ (apps.review.consumers). Its `snapshot` (on connect) and `progress`
// events carry the task's progress ({total, done, decisions, required, disputed, resolved,
// per_reviewer: {username: done}, active: [{username, example_index}]}); `presence` carries only a change of
// `active` ({took: {username, item_id, example_index, since}} or {left: {username, item_id}}: a reviewer holds
// one item at a time). This updates every element that shows a part of it: [data-live=<key>] texts,
// progress[data-live-bar] bars, the per-reviewer rows ([data-reviewer-done|bar|dot=<username>], rows added
// for reviewers the page did not list) and the "reviewing now" badges. `finished` shows a link to the
// reviewed version. The task page's result versions being built ([data-result-job=<job id>]) follow their
// job's `status` / `job_progress` events (apps.review.jobs) and the page reloads when one ends. Text only
// (textContent), never HTML from the wire. A static file, no inline script: the dashboard runs under a
// strict CSP.
(function () {
  "use strict";
  const marker = document.getElementById("review-live");
  if (!marker) return;
  const taskId = marker.dataset.taskId;
  const taskUrl = marker.dataset.taskUrl;
  window.hubReviewEvents = 0;

  const sel = (attr, name) => "[" + attr + '="' + CSS.escape(name) + '"]';
  const all = (q) => Array.from(document.querySelectorAll(q));

  function setState(ok, text) {
    const dot = document.getElementById("ws-dot"), label = document.getElementById("ws-text");
    if (dot) dot.classList.toggle("off", !ok);
    if (label) label.textContent = text;
  }

  function reviewerRow(name, total) {
    const grid = document.getElementById("reviewer-grid");
    if (!grid) return;
    const empty = grid.querySelector(".muted");
    if (empty && !grid.querySelector("[data-reviewer-name]")) empty.remove();
    const who = document.createElement("span");
    who.className = "who-name"; who.dataset.reviewerName = name;
    const dot = document.createElement("span");
    dot.className = "live-dot off"; dot.dataset.reviewerDot = name;
    who.append(dot, document.createTextNode(name));
    const bar = document.createElement("progress");
    bar.className = "review-bar"; bar.dataset.reviewerBar = name; bar.max = Math.max(1, total || 0); bar.value = 0;
    bar.setAttribute("aria-label", name + ": answers");
    const done = document.createElement("span");
    done.className = "mono"; done.dataset.reviewerDone = name; done.textContent = "0";
    grid.append(who, bar, done);
  }

  function apply(p) {
    for (const el of all("[data-live]")) {
      const v = p[el.dataset.live];
      if (v !== undefined && v !== null && typeof v !== "object") el.textContent = String(v);
    }
    for (const bar of all("progress[data-live-bar]")) {
      if (bar.dataset.liveBar === "answers") { bar.max = Math.max(1, p.required || 0); bar.value = p.decisions || 0; }
      else if (bar.dataset.liveBar === "items") { bar.max = Math.max(1, p.total || 0); bar.value = p.done || 0; }
    }
    const per = p.per_reviewer || {};
    for (const [name, done] of Object.entries(per)) {
      if (!document.querySelector(sel("data-reviewer-bar", name)) && document.getElementById("reviewer-grid")) reviewerRow(name, p.total);
      for (const el of all(sel("data-reviewer-done", name))) el.textContent = String(done);
      for (const bar of all(sel("data-reviewer-bar", name))) { bar.max = Math.max(1, p.total || 0); bar.value = done; }
    }
    if (Array.isArray(p.active)) showActive(p.active);
    if (p.status) {
      const badge = document.getElementById("task-status");
      if (badge && badge.textContent !== p.status) badge.textContent = p.status;
    }
  }

  let active = [];
  function presence(p) {
    if (p.took) active = active.filter((a) => a.username !== p.took.username).concat([p.took]);
    if (p.left) active = active.filter((a) => !(a.username === p.left.username && a.item_id === p.left.item_id));
    active.sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
    showActive(active);
  }

  function showActive(list) {
    active = list.slice();
    const names = new Set(active.map((a) => a.username));
    for (const dot of all("[data-reviewer-dot]")) dot.classList.toggle("off", !names.has(dot.dataset.reviewerDot));
    const now = document.getElementById("reviewing-now");
    if (now) {
      const badges = active.map((a) => {
        const b = document.createElement("span");
        b.className = "badge";
        b.textContent = a.username + (a.example_index !== undefined && a.example_index !== null ? " · #" + (a.example_index + 1) : "");
        return b;
      });
      if (!badges.length) { const m = document.createElement("span"); m.className = "muted"; m.textContent = "Nobody."; badges.push(m); }
      now.replaceChildren(...badges);
    }
  }

  function finished(p) {
    const note = document.getElementById("finished-note"), link = document.getElementById("finished-link");
    if (!note || !link) return;
    link.href = taskUrl + "?made=" + encodeURIComponent(p.dataset_version_id);
    note.hidden = false;
  }

  // a result version being built: its job's `status` / `job_progress` events (apps.core.jobs' payload)
  const terminal = ["succeeded", "failed", "cancelled"];
  function resultJob(p) {
    const box = document.querySelector(sel("data-result-job", String(p.job_id)));
    if (!box) return;
    const field = (name) => box.querySelector('[data-field="' + name + '"]');
    const st = field("status");
    if (st) { st.textContent = p.status; st.className = "badge status-" + p.status; }
    const prog = p.progress || {};
    const bar = field("bar");
    if (bar && prog.total) { bar.max = prog.total; bar.value = Math.min(prog.current || 0, prog.total); }
    const msg = field("message");
    if (msg) {
      if (prog.total) msg.textContent = (prog.current || 0) + " of " + prog.total + " " + (prog.unit || "");
      else if (p.status === "queued") msg.textContent = "waiting for a worker…";
    }
    if (terminal.includes(p.status) && box.dataset.status !== p.status) {
      box.dataset.status = p.status;
      setTimeout(() => window.location.reload(), 600);  // the version's row, the task's status and buttons
    }
  }

  let retry = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/reviews/" + taskId + "/");
    ws.onopen = () => { retry = 1000; setState(true, "live"); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (!msg || !msg.payload) return;
      if (msg.event === "snapshot" || msg.event === "progress") apply(msg.payload);
      else if (msg.event === "presence") presence(msg.payload);
      else if (msg.event === "finished") finished(msg.payload);
      else if (msg.event === "status" || msg.event === "job_progress") resultJob(msg.payload);
      window.hubReviewEvents += 1;
    };
    ws.onclose = (e) => {
      if ([4401, 4403, 4404].includes(e.code)) { setState(false, "not live (no access)"); return; }
      setState(false, "reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }
  connect();
})();
