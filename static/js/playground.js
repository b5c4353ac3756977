// The playground (templates/proxy/playground.html): streams a chat through the form's data-url
// (/v1/chat/completions, with the session cookie and the CSRF token, as an OpenAI client would with a key)
// and shows the answer as it arrives, with time to first token and tokens/s. A static file, no inline
// script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  const $ = (id) => document.getElementById(id);
  if (!$("pg-form")) return;
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  let history = [];
  let controller = null;

  function addTurn(role, text) {
    const div = document.createElement("div");
    div.className = "turn turn-" + role;
    const r = document.createElement("div"); r.className = "role"; r.textContent = role;
    const body = document.createElement("div"); body.className = "turn-body"; body.textContent = text;
    div.append(r, body); $("pg-transcript").append(div);
    return body;
  }

  $("pg-clear").addEventListener("click", () => { history = []; $("pg-transcript").textContent = ""; $("pg-stats").textContent = ""; });
  $("pg-stop").addEventListener("click", () => controller && controller.abort());

  $("pg-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("pg-input").value.trim();
    if (!text || controller) return;
    $("pg-error").textContent = "";
    $("pg-input").value = "";
    history.push({role: "user", content: text});
    addTurn("user", text);
    const out = addTurn("assistant", "");
    const messages = [];
    const system = $("pg-system").value.trim();
    if (system) messages.push({role: "system", content: system});
    messages.push(...history);
    const body = {model: $("pg-model").value, messages, stream: true, stream_options: {include_usage: true},
                  temperature: parseFloat($("pg-temperature").value), max_tokens: parseInt($("pg-max-tokens").value, 10)};
    controller = new AbortController();
    $("pg-send").disabled = true; $("pg-stop").disabled = false;
    const t0 = performance.now(); let tFirst = null; let answer = ""; let usage = null; let pieces = 0;
    try {
      const resp = await fetch($("pg-form").dataset.url, {
        method: "POST", credentials: "same-origin", signal: controller.signal,
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
            const delta = obj.choices && obj.choices[0] && obj.choices[0].delta;
            if (delta && delta.content) {
              if (tFirst === null) tFirst = performance.now();
              answer += delta.content; pieces += 1; out.textContent = answer;
            }
          }
        }
      }
      history.push({role: "assistant", content: answer});
    } catch (e) {
      if (e.name !== "AbortError") $("pg-error").textContent = e.message;
      if (answer) history.push({role: "assistant", content: answer});
    } finally {
      const t1 = performance.now();
      const n = usage ? usage.completion_tokens : pieces;
      const genS = tFirst ? (t1 - tFirst) / 1000 : 0;
      $("pg-stats").textContent = tFirst ? ("TTFT " + Math.round(tFirst - t0) + " ms · " + n + " tokens · " +
        (genS > 0 ? (n / genS).toFixed(1) : "–") + " tokens/s") : "";
      controller = null; $("pg-send").disabled = false; $("pg-stop").disabled = true;
    }
  });
})();
