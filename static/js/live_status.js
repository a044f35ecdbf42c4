// The banner and the navigation's alert badge refresh together: one htmx poll (#alert-status)
// every 60 s. A hidden tab does not poll; when it becomes visible again it refreshes at once.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (document.hidden && event.detail.elt && event.detail.elt.id === "alert-status") {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      document.body.dispatchEvent(new Event("itb-refresh"));
    }
  });
})();
