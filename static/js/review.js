// The review screen (templates/review/review.html): keyboard shortcuts for everything, the inline turn
// editor, the help overlay, the lease keep-alive, and htmx swapping refused answers (409/422/403) in place so
// their messages show. Every action is a button or a form of the page (htmx posts it); a key only clicks it,
// so the mouse and the keyboard take the same path. A static file, no inline script: the dashboard runs
// under a strict Content-Security-Policy.
//
// The cursor is the example itself (-1: a/r decide the example) or one of its turns (j/k move it; a/r mark
// that turn, e edits it). The keys are listed in the page's help overlay (?).
(function () {
  "use strict";
  const root = () => document.getElementById("review-item");
  if (!root()) return;

  let cursor = -1;          // -1: the whole example; else a turn index
  let itemId = root().dataset.itemId;
  let chord = null;         // "l" (label) or "f" (flag) waiting for its second key
  let chordTimer = null;
  // An item-level request is in flight until its answer has replaced #review-item and htmx has settled it
  // (wired its buttons). Keys pressed meanwhile wait in `typeAhead` and run, in order, once it has.
  let busySince = 0;
  const typeAhead = [];
  const isBusy = () => busySince > 0 && Date.now() - busySince < 15000;

  const $ = (sel, el) => (el || document).querySelector(sel);
  const turns = () => Array.from(document.querySelectorAll("#turns .rturn"));
  const turnEl = (i) => document.getElementById("turn-" + i);
  const helpEl = () => document.getElementById("help-overlay");

  function hint(text, isError) {
    const h = document.getElementById("review-hint");
    if (!h) return;
    h.textContent = text || "";
    h.classList.toggle("error", !!isError);
  }

  function showCursor(scroll) {
    for (const t of turns()) { t.classList.remove("focused"); t.removeAttribute("aria-current"); }
    if (cursor < 0) return;
    const el = turnEl(cursor);
    if (!el) { cursor = -1; return; }
    el.classList.add("focused");
    el.setAttribute("aria-current", "true");
    if (scroll) { el.focus({preventScroll: true}); el.scrollIntoView({block: "nearest"}); }
  }

  function moveCursor(delta) {
    const n = turns().length;
    if (!n) return;
    cursor = Math.max(-1, Math.min(n - 1, cursor + delta));
    showCursor(true);
    hint(cursor < 0 ? "The whole example is selected: a / r decide it." : "Turn " + (cursor + 1) + " of " + n + ": a accept · r reject · e edit.");
  }

  function click(el) {
    if (!el || el.disabled) return false;
    el.click();
    return true;
  }

  function editTurn(i) {
    const el = turnEl(i);
    if (!el) return;
    const form = $(".rturn-edit", el);
    if (!form) return;
    cursor = i; showCursor(false);
    form.hidden = false;
    const box = $("textarea", form);
    if (box) { box.focus(); box.setSelectionRange(box.value.length, box.value.length); }
    hint("Editing turn " + (i + 1) + ": Ctrl+Enter saves, Esc cancels.");
  }

  function cancelEdit(form) {
    for (const box of form.querySelectorAll("textarea")) box.value = box.defaultValue;
    const preview = $(".edit-preview", form);
    if (preview) preview.replaceChildren();
    form.hidden = true;
    const t = form.closest(".rturn");
    if (t) { cursor = Number(t.dataset.turn); showCursor(true); }
    hint("Edit cancelled.");
  }

  function lastAssistantTurn() {
    const all = turns();
    for (let i = all.length - 1; i >= 0; i--) if (all[i].classList.contains("turn-assistant")) return i;
    return all.length ? all.length - 1 : -1;
  }

  function decideTurnOrItem(kind) {  // kind: "accept" | "reject"
    if (cursor >= 0) {
      const el = turnEl(cursor);
      if (el && click($('[data-turn-action="' + kind + '"]', el))) {
        if (cursor < turns().length - 1) { cursor += 1; showCursor(true); }
      }
      return;
    }
    decideItem(kind);
  }

  function decideItem(kind) {
    if (!click($('[data-action="' + kind + '-item"]'))) hint("Nothing to decide here.", true);
  }

  function toggleHelp(show) {
    const h = helpEl();
    if (!h) return;
    h.hidden = show === undefined ? !h.hidden : !show;
    if (!h.hidden) { const b = $("[data-help-close]", h); if (b) b.focus(); }
  }

  function startChord(key, text) {
    chord = key;
    clearTimeout(chordTimer);
    chordTimer = setTimeout(() => { chord = null; hint(""); }, 2000);
    hint(text);
  }

  function onChord(key) {
    const kind = chord;
    chord = null; clearTimeout(chordTimer);
    if (kind === "l") {
      const box = $('input[data-label-key="' + key + '"]');
      if (!box) { hint("No label " + key + ".", true); return; }
      box.checked = !box.checked;
      hint("Label “" + box.value + "” " + (box.checked ? "on" : "off") + ".");
    } else if (kind === "f") {
      const btn = $('button[data-flag-key="' + key + '"]');
      if (!btn) { hint("Flags: p PII · w wrong · q low quality · d duplicate.", true); return; }
      click(btn);
      hint("Flag " + btn.firstChild.textContent.trim() + (btn.getAttribute("aria-pressed") === "true" ? " lowered." : " raised."));
    }
  }

  function inField(el) {
    return el instanceof HTMLElement && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  }

  document.addEventListener("keydown", (e) => {
    const target = e.target;
    // Ctrl+Enter: save the edit or post the comment being typed
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && target instanceof HTMLElement) {
      const form = target.closest("form.rturn-edit, form[data-ctrl-enter]");
      if (form) { e.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (e.key === "Escape") {
      const h = helpEl();
      if (h && !h.hidden) { toggleHelp(false); e.preventDefault(); return; }
      if (target instanceof HTMLElement) {
        const form = target.closest("form.rturn-edit");
        if (form) { e.preventDefault(); cancelEdit(form); return; }
        if (inField(target)) { target.blur(); return; }
      }
      if (cursor >= 0) { cursor = -1; showCursor(false); hint("The whole example is selected."); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || inField(target)) return;
    const h = helpEl();
    if (h && !h.hidden && e.key !== "?") return;
    const key = e.key;
    if (chord && key.length === 1) { e.preventDefault(); onChord(key.toLowerCase()); return; }
    if (isBusy() && KEYS.has(key)) { typeAhead.push(key); e.preventDefault(); return; }
    if (act(key)) e.preventDefault();
  });

  const KEYS = new Set(["j", "k", "ArrowDown", "ArrowUp", "a", "r", "A", "R", "e", "s", "u", "n", "p", "c", "t",
                        "l", "f", "1", "2", "3", "4", "5"]);
  function act(key) {
    let handled = true;
    switch (key) {
      case "?": toggleHelp(); break;
      case "j": case "ArrowDown": moveCursor(+1); break;
      case "k": case "ArrowUp": moveCursor(-1); break;
      case "a": decideTurnOrItem("accept"); break;
      case "r": decideTurnOrItem("reject"); break;
      case "A": decideItem("accept"); break;
      case "R": decideItem("reject"); break;
      case "e": { const i = cursor >= 0 ? cursor : lastAssistantTurn(); if (i >= 0) editTurn(i); break; }
      case "s": if (!click($('[data-action="skip"]'))) hint("Only the example you hold can be skipped.", true); break;
      case "u": click($('[data-action="undo"]')); break;
      case "n": if (!click($('[data-action="next"]'))) hint("This is the newest example: answer it (A / R) or skip it (s).", true); break;
      case "p": if (!click($('[data-action="prev"]'))) hint("No earlier answer to go back to.", true); break;
      case "c": { const c = document.getElementById("decision-comment"); if (c) c.focus(); else handled = false; break; }
      case "t": { const c = document.getElementById("thread-body"); if (c) c.focus(); else handled = false; break; }
      case "l": if ($("input[data-label-key]")) startChord("l", "Label: press its number."); else handled = false; break;
      case "f": if ($("button[data-flag-key]")) startChord("f", "Flag: p PII · w wrong · q low quality · d duplicate."); else handled = false; break;
      case "1": case "2": case "3": case "4": case "5": {
        const radio = $('input[data-rating-key="' + key + '"]');
        if (radio) { radio.checked = true; hint("Rating " + key + "."); } else handled = false;
        break;
      }
      default: handled = false;
    }
    return handled;
  }

  // clicks: Edit buttons, Cancel in the editor, closing the help
  document.addEventListener("click", (e) => {
    const el = e.target instanceof Element ? e.target : null;
    if (!el) return;
    const edit = el.closest('[data-turn-action="edit"]');
    if (edit) { const t = edit.closest(".rturn"); if (t) editTurn(Number(t.dataset.turn)); return; }
    const cancel = el.closest("[data-edit-cancel]");
    if (cancel) { const f = cancel.closest("form"); if (f) cancelEdit(f); return; }
    if (el.closest("[data-help-close]") || el.id === "help-overlay") { toggleHelp(false); return; }
    const t = el.closest("#turns .rturn");
    if (t && !el.closest("button, a, textarea, input, summary")) { cursor = Number(t.dataset.turn); showCursor(false); }
  });

  // htmx: swap refused answers too (their body says why), and keep the cursor across swaps
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    // A resized textarea carries a style attribute (set by the browser). htmx's settle step copies the old
    // element's attributes onto its replacement, which the CSP (style-src-attr) would refuse: drop them first.
    const target = e.detail.target;
    if (target && target.querySelectorAll) {
      for (const el of [target, ...target.querySelectorAll("[style]")]) if (el.hasAttribute("style")) el.removeAttribute("style");
    }
    const status = e.detail.xhr.status;
    if ([403, 404, 409, 422].includes(status) && e.detail.serverResponse) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    if (e.detail.target && e.detail.target.id === "review-item") busySince = Date.now();
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    // an answer that will not be swapped in (a 500, no connection): drop the keys typed ahead
    if (e.detail.target && e.detail.target.id === "review-item" && e.detail.failed
        && ![403, 404, 409, 422].includes(e.detail.xhr.status)) { busySince = 0; typeAhead.length = 0; }
    if (e.detail.failed && !e.detail.xhr.status) hint("The server did not answer: check the connection and try again.", true);
  });
  document.body.addEventListener("htmx:afterSettle", (e) => {
    const r = root();
    if (!r) return;
    if (e.detail.target && e.detail.target.id === "review-item") {
      if (r.dataset.itemId !== itemId) { itemId = r.dataset.itemId; cursor = -1; window.scrollTo({top: 0}); }
      showCursor(false);
      window.hubReviewSwaps = (window.hubReviewSwaps || 0) + 1;
      busySince = 0;
      while (typeAhead.length && !isBusy()) act(typeAhead.shift());
      return;
    }
    // an outerHTML swap replaced the turn: find the new element by its id
    const t = e.detail.target && e.detail.target.id ? document.getElementById(e.detail.target.id) : null;
    if (t && t.classList.contains("rturn")) {
      const form = $(".rturn-edit", t);
      const editing = form && !form.hidden;
      showCursor(false);
      if (editing) { const box = $("textarea", form); if (box) box.focus(); }
      else if (Number(t.dataset.turn) === cursor) t.focus({preventScroll: true});
    }
  });
  // keep the lease while the reviewer works on a long example (the page is visible)
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (_) { return ""; }
  }
  setInterval(() => {
    const r = root();
    const url = r && r.dataset.leaseUrl;
    if (!url || document.visibilityState !== "visible") return;
    fetch(url, {method: "POST", headers: {"X-CSRFToken": csrf()}, credentials: "same-origin"}).catch(() => {});
  }, 120000);
})();
