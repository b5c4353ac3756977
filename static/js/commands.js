// The command bar and the keyboard-shortcut list on every signed-in page (templates/commands/bar.html).
// - Ctrl+K / Cmd+K (or the topbar's Commands button) opens the bar; typing previews the command through htmx
//   (POST /commands/preview: nothing runs); Confirm (or Ctrl+Enter) performs the preview's /api request with
//   the page's CSRF token, exactly the request `hub do` would send, and shows the answer with a link to the
//   created object; Esc or a click outside closes it.
// - `?` (outside a text field, where the page has no `?` of its own) opens the shortcut list.
// A static file, no inline script: the dashboard runs under a strict Content-Security-Policy.
(function () {
  "use strict";
  const bar = () => document.getElementById("cmdk");
  const help = () => document.getElementById("hub-help");
  const input = () => document.getElementById("cmdk-input");

  function typing(el) {
    if (!(el instanceof HTMLElement) || !(el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName))) {
      return false;
    }
    const d = el.closest("dialog");  // focus left on a field of a dialog just closed: nobody types there
    return !d || d.open;
  }

  function openBar() {
    const d = bar();
    if (!d) return;
    const h = help();
    if (h && h.open) h.close();
    if (!d.open) d.showModal();
    const i = input();
    if (i) { i.focus(); i.select(); }
  }

  function openHelp() {
    const h = help();
    if (!h || h.open) return;
    const d = bar();
    if (d && d.open) d.close();
    h.showModal();
    const close = h.querySelector("[data-dialog-close]");
    if (close) close.focus();
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (err) {
      return "";
    }
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (m, key) => (data && data[key] !== undefined && data[key] !== null ? String(data[key]) : m));
  }

  function show(box, ok, message, link) {
    box.replaceChildren();
    box.className = ok ? "cmdk-done" : "cmdk-failed";
    const p = document.createElement("p");
    p.textContent = message;
    box.appendChild(p);
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.label;
      a.className = "button";
      a.id = "cmdk-result-link";
      box.appendChild(a);
      a.focus();
    }
  }

  async function confirm(btn) {
    const box = document.getElementById("cmdk-result");
    if (!btn || btn.disabled || !box) return;
    const preview = btn.closest(".cmdk-preview");
    if (preview && input() && preview.dataset.input !== input().value) {
      // the command changed since this preview: confirm only what was shown
      show(box, false, "The command changed: check the new preview, then confirm.");
      document.getElementById("cmdk-form").requestSubmit();
      return;
    }
    btn.disabled = true;
    const method = btn.dataset.method;
    const body = btn.dataset.body;
    show(box, true, "Working…");
    let resp, data = null;
    try {
      resp = await fetch(btn.dataset.path, {
        method, credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
        body: method === "GET" ? undefined : (body || "{}"),
      });
      try { data = await resp.json(); } catch (err) { data = null; }
    } catch (err) {
      show(box, false, "The server did not answer: check the connection and confirm again.");
      btn.disabled = false;
      return;
    }
    if (resp.ok) {
      const url = btn.dataset.resultUrl;
      const link = url && !/\{\w+\}/.test(fill(url, data)) ? {href: fill(url, data), label: fill(btn.dataset.resultLabel || "Open", data)} : null;
      show(box, true, "Done.", link);
      return;
    }
    const errors = (data && data.errors) || [];
    const detail = (data && data.detail) || ("The request failed (" + resp.status + ").");
    show(box, false, detail + (errors.length ? " " + errors.map((e) => (e.field ? e.field + ": " : "") + e.message).join("; ") : ""));
    btn.disabled = false;
  }

  // Ctrl/Cmd+K anywhere (capture: before a page's own keys, and inside text fields too); Esc closes the bar
  // even where a page's handler would swallow it.
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && (e.key === "k" || e.key === "K")) {
      if (!bar()) return;
      e.preventDefault();
      e.stopPropagation();
      openBar();
      return;
    }
    const d = bar();
    if (d && d.open) {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); d.close(); return; }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        e.stopPropagation();
        confirm(document.getElementById("cmdk-confirm"));
        return;
      }
      e.stopPropagation(); // the page's own shortcuts stay quiet while the bar is open
    }
    const h = help();
    if (h && h.open && e.key === "Escape") { e.preventDefault(); e.stopPropagation(); h.close(); }
  }, true);

  // `?` after the page's own handlers: a page with its own `?` (the review screen) prevents the default
  window.addEventListener("keydown", (e) => {
    if (e.key !== "?" || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (!help()) return;
    e.preventDefault();
    openHelp();
  });

  document.addEventListener("click", (e) => {
    const el = e.target instanceof Element ? e.target : null;
    if (!el) return;
    if (el.closest("[data-cmdk-open]")) { e.preventDefault(); openBar(); return; }
    const fillBtn = el.closest("[data-cmdk-fill]");
    if (fillBtn) {
      const i = input();
      i.value = fillBtn.getAttribute("data-cmdk-fill");
      i.focus();
      document.getElementById("cmdk-form").requestSubmit();
      return;
    }
    if (el.closest("#cmdk-confirm")) { confirm(el.closest("#cmdk-confirm")); return; }
    if (el.closest("[data-dialog-close]")) { const d = el.closest("dialog"); if (d) d.close(); return; }
    if (el.tagName === "DIALOG" && (el.id === "cmdk" || el.id === "hub-help")) el.close(); // a click on the backdrop
  });

  // the preview answers 422 for a command it refuses (a NUL byte, too long): show its message in place
  document.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.target && e.detail.target.id === "cmdk-panel" && e.detail.xhr.status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
