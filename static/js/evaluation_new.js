// The new-evaluation form (templates/evaluations/new.html): shows the task source that is chosen (a dataset
// version, or a JSON / JSONL list) and the custom weights only when "Custom weights" is picked. Without this
// script every part stays visible and the form still works.
(function () {
  "use strict";
  const form = document.getElementById("evaluation-form");
  if (!form) return;
  function sync() {
    const source = form.querySelector("input[name=source]:checked");
    form.querySelectorAll(".source-part").forEach((el) => {
      el.hidden = source ? el.dataset.sourcePart !== source.value : false;
    });
    const preset = form.querySelector("select[name=preset]");
    const custom = document.getElementById("custom-weights");
    if (preset && custom) custom.hidden = preset.value !== "custom";
  }
  form.addEventListener("change", sync);
  sync();
})();
