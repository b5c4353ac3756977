// The playground (templates/proxy/playground.html): streams a chat through the form's data-url
// (/v1/chat/completions, with the session cookie and the CSRF token, as an OpenAI client would with a key) and
// shows the answer as it arrives, rendered as Markdown, with time to first token and tokens/s.
// - Busy state: a spinner, the elapsed seconds and a disabled Send from the moment a message is sent until the
//   last answer has finished (or failed, or was stopped).
// - Markdown: marked (static/vendor/marked.umd.js) with raw HTML rendered as escaped text, then DOMPurify
//   (static/vendor/purify.min.js) over its output: nothing the model writes runs or styles the page.
// - An answer cut off by the max tokens (finish_reason "length") gets a notice under it.
// - Compare: a second model answers the same prompt in a second column (each column keeps its own history).
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  if (!$("pg-form")) return;
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }
  let md = null;
  if (window.marked && window.marked.Marked) {
    md = new window.marked.Marked({gfm: true, breaks: true});
    md.use({renderer: {html(token) { return escapeHtml(token.raw || token.text || ""); }}});
  }
  // Markdown -> sanitized HTML; without the libraries (they failed to load), the text as it is
  function renderInto(el, text) {
    if (md && window.DOMPurify) {
      el.classList.add("md");
      el.innerHTML = window.DOMPurify.sanitize(md.parse(text), {USE_PROFILES: {html: true}});
    } else {
      el.textContent = text;
    }
  }

  function makePane(suffix, modelSelect, titleEl) {
    return {transcript: $(suffix ? "pg-transcript-" + suffix : "pg-transcript"),
            stats: $(suffix ? "pg-stats-" + suffix : "pg-stats"), select: modelSelect, title: titleEl,
            history: [], controller: null, label: suffix ? "B" : "A"};
  }
  const panes = [makePane("", $("pg-model"), $("pg-title-a")), makePane("b", $("pg-model-b"), $("pg-title-b"))];
  const comparing = () => $("pg-compare") && $("pg-compare").checked;

  function titles() {
    panes.forEach((p) => { if (p.title && p.select) p.title.textContent = p.select.value || ""; });
  }
  function setCompare() {
    const on = comparing();
    $("pg-model-b").disabled = !on;
    $("pg-pane-b").hidden = !on;
    $("pg-panes").classList.toggle("compare", on);
    titles();
  }
  if ($("pg-compare")) $("pg-compare").addEventListener("change", setCompare);
  panes.forEach((p) => p.select && p.select.addEventListener("change", titles));
  setCompare();

  function addTurn(pane, role, text) {
    const div = document.createElement("div");
    div.className = "turn turn-" + role;
    const r = document.createElement("div"); r.className = "role"; r.textContent = role;
    const body = document.createElement("div"); body.className = "turn-body"; body.textContent = text;
    div.append(r, body); pane.transcript.append(div);
    return body;
  }
  function notice(body, text) {
    const n = document.createElement("p");
    n.className = "pg-notice"; n.setAttribute("role", "note"); n.textContent = text;
    body.after(n);
  }

  // busy state: spinner, elapsed seconds, Send disabled, Stop enabled
  let busyTimer = null; let t0 = 0;
  function busy(on) {
    $("pg-send").disabled = on; $("pg-stop").disabled = !on;
    $("pg-busy").hidden = !on;
    clearInterval(busyTimer); busyTimer = null;
    if (on) {
      t0 = performance.now();
      $("pg-busy-text").textContent = "waiting for the model";
      $("pg-elapsed").textContent = "0.0";
      busyTimer = setInterval(() => { $("pg-elapsed").textContent = ((performance.now() - t0) / 1000).toFixed(1); }, 100);
    }
  }

  async function ask(pane, text, maxTokens) {
    const out = addTurn(pane, "assistant", "");
    const messages = [];
    const system = $("pg-system").value.trim();
    if (system) messages.push({role: "system", content: system});
    messages.push(...pane.history);
    const body = {model: pane.select.value, messages, stream: true, stream_options: {include_usage: true},
                  temperature: parseFloat($("pg-temperature").value), max_tokens: maxTokens};
    pane.controller = new AbortController();
    const start = performance.now(); let tFirst = null; let answer = ""; let usage = null; let pieces = 0;
    let finish = null; let frame = null;
    const paint = () => { frame = null; renderInto(out, answer); };
    try {
      const resp = await fetch($("pg-form").dataset.url, {
        method: "POST", credentials: "same-origin", signal: pane.controller.signal,
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: JSON.stringify(body)});
      if (!resp.ok) {
        let msg = resp.status + " " + resp.statusText;
        try { msg = (await resp.json()).error.message; } catch (e) {}
        throw new Error(msg);
      }
      const reader = resp.body.getReader(); const dec = new TextDecoder(); let buf = "";
      outer: while (true) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += dec.decode(value, {stream: true});
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") break outer;
            const obj = JSON.parse(data);
            if (obj.error) throw new Error(obj.error.message);
            if (obj.usage) usage = obj.usage;
            const choice = obj.choices && obj.choices[0];
            if (choice && choice.finish_reason) finish = choice.finish_reason;
            const delta = choice && choice.delta;
            if (delta && delta.content) {
              if (tFirst === null) { tFirst = performance.now(); $("pg-busy-text").textContent = "streaming"; }
              answer += delta.content; pieces += 1;
              if (frame === null) frame = requestAnimationFrame(paint);
            }
          }
        }
      }
      pane.history.push({role: "assistant", content: answer});
    } catch (e) {
      if (e.name !== "AbortError") {
        $("pg-error").textContent = (comparing() ? pane.select.value + ": " : "") + e.message;
      }
      if (answer) pane.history.push({role: "assistant", content: answer});
    } finally {
      if (frame !== null) cancelAnimationFrame(frame);
      if (answer) renderInto(out, answer);
      if (finish === "length") {
        notice(out, "Cut off: the answer reached the max tokens (" + maxTokens + "). Raise Max tokens and send again to see more.");
      }
      const t1 = performance.now();
      const n = usage ? usage.completion_tokens : pieces;
      const genS = tFirst ? (t1 - tFirst) / 1000 : 0;
      pane.stats.textContent = tFirst ? ("TTFT " + Math.round(tFirst - start) + " ms · " + n + " tokens · " +
        (genS > 0 ? (n / genS).toFixed(1) : "–") + " tokens/s") : "";
      pane.controller = null;
    }
  }

  let running = false;
  $("pg-clear").addEventListener("click", () => {
    panes.forEach((p) => { p.history = []; p.transcript.textContent = ""; p.stats.textContent = ""; });
    $("pg-error").textContent = "";
  });
  $("pg-stop").addEventListener("click", () => panes.forEach((p) => p.controller && p.controller.abort()));
  $("pg-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("pg-form").requestSubmit(); }
  });

  $("pg-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("pg-input").value.trim();
    if (!text || running) return;
    running = true;
    $("pg-error").textContent = "";
    $("pg-input").value = "";
    const active = comparing() ? panes : [panes[0]];
    const maxTokens = parseInt($("pg-max-tokens").value, 10);
    active.forEach((p) => { p.history.push({role: "user", content: text}); addTurn(p, "user", text); });
    busy(true);
    try {
      await Promise.all(active.map((p) => ask(p, text, maxTokens)));
    } finally {
      busy(false);
      running = false;
    }
  });
})();
