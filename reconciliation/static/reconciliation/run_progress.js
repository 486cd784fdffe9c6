// A run in flight shows its progress moving without a reload: every 2 s each non-terminal
// progress cell asks the admin's progress.json (same session) and stops once the run is terminal.
(function () {
  "use strict";
  function base() {
    var m = window.location.pathname.match(/^(.*\/reconciliation\/run\/)/);
    return m ? m[1] : null;
  }
  function poll() {
    var root = base();
    if (!root) return;
    var cells = document.querySelectorAll(".jf-progress[data-run]:not([data-terminal='1'])");
    if (!cells.length) return;
    cells.forEach(function (cell) {
      fetch(root + cell.dataset.run + "/progress.json", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          cell.textContent = data.text;
          if (data.terminal) {
            cell.dataset.terminal = "1";
            // On the run's own page the counts and links below are the finished run's: show them.
            if (/\/run\/\d+\/change\/$/.test(window.location.pathname)) window.location.reload();
          }
        })
        .catch(function () {});
    });
    window.setTimeout(poll, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, 2000); });
})();
