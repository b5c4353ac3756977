// Pages whose htmx forms answer invalid input with 422 and the form's fragment, field errors included (the
// API-keys pages, the providers and chain pages): htmx does not swap a 4xx by default, so a 422 is swapped like
// a 200 (a 204 with HX-Redirect reloads the page). Included by those pages only.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.xhr && e.detail.xhr.status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
