// The new-run form (templates/training/new.html): shows only the inputs that apply to the chosen method and
// backend, and shows each empty input's effective default as its placeholder.
//
// Everything it needs is in the page: each input's wrapper carries data-methods / data-backends (from the
// hyperparameter table), and JSON blocks hold the defaults per (base model, method, continuing), each model
// version's base model and the methods each backend can run. Inputs that do not apply are hidden AND
// disabled, so the browser does not submit them. A static file, no inline script: the dashboard runs under
// a strict Content-Security-Policy. The form is swapped by htmx (Estimate): it re-applies after a swap.
(function () {
  "use strict";

  function json(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : {};
  }

  function refresh() {
    const form = document.getElementById("run-form");
    if (!form) return;
    const defaultsTable = json("run-defaults");
    const parentBase = json("run-parent-base");
    const backendMethods = json("run-backend-methods");
    const val = (name) => { const el = form.elements[name]; return el && el.value ? el.value : ""; };
    const method = val("method") || "lora";
    const backend = val("backend") || "local";
    const parent = val("parent_version");
    const runnable = !backendMethods[backend] || backendMethods[backend].includes(method);

    for (const box of form.querySelectorAll("[data-methods]")) {
      const on = runnable && box.dataset.methods.split(" ").includes(method) &&
        box.dataset.backends.split(" ").includes(backend);
      box.hidden = !on;
      for (const el of box.querySelectorAll("input, select, textarea")) el.disabled = !on;
    }
    for (const group of form.querySelectorAll("[data-hp-group]")) {
      group.hidden = !group.querySelector(".hp-field:not([hidden])");
      const summary = group.querySelector("summary[data-titles]");  // "Preference (KTO)" for a KTO run, ...
      if (summary) { const titles = JSON.parse(summary.dataset.titles); summary.textContent = titles[method] || titles[""]; }
    }

    const bm = parent ? (parentBase[parent] || "") : val("base_model");
    const key = bm + "|" + method + "|" + (parent && method !== "scratch" ? 1 : 0);
    const defaults = backend === "together" ? {} : (defaultsTable[key] || defaultsTable["|" + method + "|0"] || {});
    for (const el of form.querySelectorAll("[data-default-of]")) el.placeholder = defaults[el.dataset.defaultOf] || "";
  }

  document.addEventListener("change", (e) => {
    if (e.target.closest && e.target.closest("#run-form")) refresh();
  });
  document.addEventListener("htmx:afterSwap", refresh);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
})();
