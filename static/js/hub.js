// Behaviour shared by every dashboard page (templates/base.html). No inline handlers anywhere: the
// dashboard runs under a strict Content-Security-Policy (script-src 'self'), so what an `onchange=` used to
// do is declared with a data attribute and wired here, for the page and for whatever htmx swaps in.
//
// - data-autosubmit on an input or select: submit its form when its value changes.
(function () {
  "use strict";

  document.addEventListener("change", (e) => {
    const el = e.target;
    if (el instanceof Element && el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
  });
})();
