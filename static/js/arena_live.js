// An arena's live progress (templates/arena/detail.html): one websocket to ws(s)://<host>/ws/arenas/<id>/
// (apps.arena.consumers). `snapshot` (on connect), `progress` and `closed` carry the voting progress ({status,
// votes, required, matches, per_voter: {username: votes}}); `status` / `job_progress` carry the generation
// and judge jobs (apps.core.jobs' one payload). This updates [data-live=<key>] texts, the votes bar, the
// per-voter rows (added for voters the page did not list) and the generation card; when a job or the voting
// ends, the page reloads to show what is possible now. Text only (textContent), never HTML from the wire.
(function () {
  "use strict";
  const marker = document.getElementById("arena-live");
  if (!marker) return;
  const arenaId = marker.dataset.arenaId;
  const all = (q) => Array.from(document.querySelectorAll(q));
  const sel = (attr, name) => "[" + attr + '="' + CSS.escape(name) + '"]';
  window.hubArenaEvents = 0;
  const badge0 = document.getElementById("arena-status");
  const shownStatus = badge0 ? badge0.textContent.trim() : null;  // what the page was drawn for

  function setState(ok, text) {
    const dot = document.getElementById("ws-dot"), label = document.getElementById("ws-text");
    if (dot) dot.classList.toggle("off", !ok);
    if (label) label.textContent = text;
  }

  function voterRow(name, max) {
    const grid = document.getElementById("voter-grid");
    if (!grid) return;
    const empty = grid.querySelector(".muted");
    if (empty) empty.remove();
    const who = document.createElement("span");
    who.className = "who-name"; who.textContent = name;
    const bar = document.createElement("progress");
    bar.className = "arena-bar"; bar.dataset.voterBar = name; bar.max = Math.max(1, max || 0); bar.value = 0;
    bar.setAttribute("aria-label", name + ": votes");
    const done = document.createElement("span");
    done.className = "mono"; done.dataset.voterDone = name; done.textContent = "0";
    grid.append(who, bar, done);
  }

  function progress(p) {
    for (const el of all("[data-live]")) {
      const v = p[el.dataset.live];
      if (v !== undefined && v !== null && typeof v !== "object") el.textContent = String(v);
    }
    for (const bar of all('progress[data-live-bar="votes"]')) { bar.max = Math.max(1, p.required || 0); bar.value = p.votes || 0; }
    for (const [name, n] of Object.entries(p.per_voter || {})) {
      if (!document.querySelector(sel("data-voter-bar", name))) voterRow(name, p.matches);
      for (const el of all(sel("data-voter-done", name))) el.textContent = String(n);
      for (const bar of all(sel("data-voter-bar", name))) { bar.max = Math.max(1, p.matches || 0); bar.value = n; }
    }
    const badge = document.getElementById("arena-status");
    if (badge && p.status) badge.className = "badge status-" + p.status;
    if (shownStatus && p.status && p.status !== shownStatus) setTimeout(() => window.location.reload(), 400);
  }

  const terminal = ["succeeded", "failed", "cancelled"];
  function job(p) {
    if (p.job_kind === "arena.generate") {
      const card = document.getElementById("generation-card");
      if (!card) return;
      const st = card.querySelector("[data-job-status]");
      if (st) { st.textContent = p.status; st.className = "badge status-" + p.status; }
      const phase = card.querySelector("[data-job-phase]");
      if (phase) phase.textContent = (terminal.includes(p.status) || p.phase === p.status) ? "" : (p.phase || "");
      const prog = p.progress || {};
      const bar = card.querySelector("[data-job-bar]");
      if (bar && prog.total) { bar.max = prog.total; bar.value = Math.min(prog.current || 0, prog.total); }
      const count = card.querySelector("[data-job-count]");
      if (count && prog.total) count.textContent = (prog.current || 0) + "/" + prog.total;
      const msg = card.querySelector("[data-job-message]");
      if (msg) msg.textContent = prog.message ? " · " + prog.message : "";
    }
    if (terminal.includes(p.status)) setTimeout(() => window.location.reload(), 600);
  }

  let retry = 1000;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/arenas/" + arenaId + "/");
    ws.onopen = () => { retry = 1000; setState(true, "live"); };
    ws.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (!msg || !msg.payload) return;
      if (msg.event === "snapshot" || msg.event === "progress" || msg.event === "closed") progress(msg.payload);
      else if (msg.event === "status" || msg.event === "job_progress") job(msg.payload);
      window.hubArenaEvents += 1;
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
