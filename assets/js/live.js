// The dashboard's polling is the fallback for its live stream (htmx's SSE
// extension): while a stream is open, the polls of the fragments it pushes
// are dropped; when it fails, they run again. No inline script: the CSP
// is script-src 'self'.
(function () {
  "use strict";
  var body = function () { return document.body; };
  document.addEventListener("htmx:sseOpen", function () { body().dataset.live = "open"; });
  document.addEventListener("htmx:sseError", function () { delete body().dataset.live; });
  document.addEventListener("htmx:sseClose", function () { delete body().dataset.live; });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    if (body().dataset.live === "open" && elt && elt.hasAttribute("sse-swap")) {
      e.preventDefault();
    }
  });
})();
