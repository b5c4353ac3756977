// An alias's page (templates/registry/alias.html): the rollback button names its target ("Roll back production to
// <name> (mv-12)") and follows the chosen version. A static file, no inline script (the dashboard's strict CSP).
(function () {
  "use strict";
  const select = document.getElementById("id_to");
  const target = document.getElementById("rollback-target");
  if (!select || !target) return;
  select.addEventListener("change", () => {
    const opt = select.options[select.selectedIndex];
    if (opt && opt.dataset.target) target.textContent = opt.dataset.target;
  });
})();
