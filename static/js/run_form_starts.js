// The new-run form's "Start from" menu (templates/training/new.html): a preset or saved settings fill the form.
// The entries come from the json_script block "run-starts-data": {key, label, description, values:
// {method?, backend?, base_model?, hyperparameters}}. Every hyperparameter input is emptied first (so the
// defaults show as placeholders), then the entry's values are set; a change event on the method select lets
// static/js/run_form.js re-apply which fields show and htmx refresh the preview. A static file: strict CSP.
(function () {
  "use strict";

  function apply(entry) {
    const form = document.getElementById("run-form");
    if (!form || !entry) return;
    const values = entry.values || {};
    for (const key of ["method", "backend", "base_model"]) {
      const el = form.elements[key];
      if (el && values[key] && [...el.options].some((o) => o.value === values[key])) el.value = values[key];
    }
    for (const el of form.querySelectorAll(".hp-group input, .hp-group select, .hp-group textarea")) {
      if (el.type === "checkbox") el.checked = false; else el.value = "";
    }
    for (const [name, value] of Object.entries(values.hyperparameters || {})) {
      const el = form.elements[name];
      if (!el || el.length !== undefined && !el.tagName) continue;
      if (el.type === "checkbox") el.checked = !!value;
      else el.value = Array.isArray(value) ? value.join(",") : (typeof value === "object" ? JSON.stringify(value) : value);
    }
    const help = document.getElementById("start-from-help");
    if (help && entry.description) help.textContent = entry.label + ": " + entry.description;
    form.elements.method.dispatchEvent(new Event("change", {bubbles: true}));
  }

  document.addEventListener("change", (e) => {
    if (!e.target || e.target.id !== "start-from" || !e.target.value) return;
    const data = document.getElementById("run-starts-data");
    const entries = data ? JSON.parse(data.textContent) : [];
    apply(entries.find((x) => x.key === e.target.value));
  });
})();
