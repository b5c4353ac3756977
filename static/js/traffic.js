// The Requests page (templates/traffic/requests.html): "select all" on the page's checkboxes, and the
// "Add selected" button says how many are ticked (disabled at none). A static file: the dashboard runs under
// a strict Content-Security-Policy (no inline script).
(function () {
  "use strict";
  const form = document.getElementById("selection");
  if (!form) return;
  const all = document.getElementById("select-all");
  const button = document.getElementById("add-selected");
  const boxes = () => Array.from(form.querySelectorAll('input[name="ids"][type="checkbox"]'));
  function update() {
    const n = boxes().filter((b) => b.checked).length;
    if (button) {
      button.textContent = n ? `Add ${n} selected` : "Add selected";
      button.disabled = n === 0;
    }
    if (all) {
      const total = boxes().length;
      all.checked = total > 0 && n === total;
      all.indeterminate = n > 0 && n < total;
    }
  }
  form.addEventListener("change", (e) => {
    if (e.target === all) boxes().forEach((b) => { b.checked = all.checked; });
    update();
  });
  update();
})();
