// Deploy bundles of an export (templates/registry/bundles.html): the fragment's form posts with htmx and gets the
// fragment back — 200 with the new bundle listed, or the form with its field errors: bad settings (422), a
// reviewer (403), an export that cannot be bundled (422). htmx does not swap a 4xx by default; these are swapped
// in place like a 200. The fragment may be swapped in many times (the export page loads it with hx-get), so the
// listener is added once.
(function () {
  "use strict";
  if (window.__hubBundlesSwap) return;
  window.__hubBundlesSwap = true;

  document.addEventListener("htmx:beforeSwap", (e) => {
    const xhr = e.detail.xhr;
    const target = e.detail.target;
    if (xhr && [403, 404, 409, 422].includes(xhr.status) && target && target.id === "bundles-box") {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
