// The blind voting screen (templates/arena/vote.html): keys 1 left, 2 right, 3 tie, 4 both bad (each clicks
// its button, so the mouse and the keyboard take the same path), c writes a comment (Esc leaves the box), s
// skips. While a vote is on its way every key is ignored: a key pressed too early must never vote on a pair
// its voter has not seen yet. htmx swaps refused answers (403/404/409/422) in place so their message shows.
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const root = () => document.getElementById("arena-match");
  if (!root()) return;
  let busy = false;
  window.hubArenaSwaps = 0;

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "INPUT" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function press(key) {
    const r = root();
    const btn = r && r.querySelector('[data-key="' + key + '"]');
    if (!btn || btn.disabled) return false;
    btn.click();
    return true;
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const active = document.activeElement;
    if (typing(active)) {
      if (e.key === "Escape") { active.blur(); e.preventDefault(); }
      return;
    }
    if (busy) { e.preventDefault(); return; }
    if (["1", "2", "3", "4", "s"].includes(e.key)) {
      if (press(e.key)) e.preventDefault();
    } else if (e.key === "c") {
      const box = document.getElementById("vote-comment");
      if (box) { box.focus(); e.preventDefault(); }
    }
  });

  document.body.addEventListener("htmx:beforeRequest", (e) => {
    if (e.detail.target && e.detail.target.id === "arena-match") busy = true;
  });
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    const status = e.detail.xhr.status;
    if ([403, 404, 409, 422].includes(status) && e.detail.serverResponse) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    if (e.detail.failed && ![403, 404, 409, 422].includes(e.detail.xhr.status)) {
      busy = false;
      const r = root();
      if (r && !e.detail.xhr.status) {
        let h = document.getElementById("vote-hint");
        if (!h) { h = document.createElement("p"); h.id = "vote-hint"; h.className = "hint error"; r.prepend(h); }
        h.textContent = "The server did not answer: check the connection and press the key again.";
      }
    }
  });
  document.body.addEventListener("htmx:afterSettle", (e) => {
    if (!e.detail.target || e.detail.target.id !== "arena-match") return;
    busy = false;
    window.hubArenaSwaps += 1;
    window.scrollTo({top: 0});
  });
})();
