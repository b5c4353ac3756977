// A model version's page (templates/registry/detail.html): the deploy form posts with htmx and its answer is the
// form's fragment again — the confirmation before a deploy to production (200), or the form with its field
// errors: bad input (422), not an admin (403), an experiment or canary already running on the alias (409).
// htmx does not swap a 4xx by default; these are swapped like a 200 (a 204 with HX-Redirect loads the next page).
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", (e) => {
    const xhr = e.detail.xhr;
    const target = e.detail.target;
    if (xhr && [403, 409, 422].includes(xhr.status) && target && target.id === "deploy-box") {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
