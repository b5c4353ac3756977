// The new-arena form (templates/arena/new.html): shows the part of "Prompts" that the chosen source uses (a
// dataset version, or prompts typed in) and hides the other. Without this script both parts stay visible and
// the form still works. A static file, no inline script: the dashboard runs under a strict CSP.
(function () {
  "use strict";
  const radios = Array.from(document.querySelectorAll('input[name="source"]'));
  if (!radios.length) return;
  function show() {
    const chosen = (radios.find((r) => r.checked) || radios[0]).value;
    for (const part of document.querySelectorAll("[data-source-part]")) part.hidden = part.dataset.sourcePart !== chosen;
  }
  for (const r of radios) r.addEventListener("change", show);
  show();
})();
