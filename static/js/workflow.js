/* The workflow page: render its unified diff with the vendored diff2html (static/vendor/diff2html). */
(function () {
  "use strict";

  function render() {
    var data = document.getElementById("workflow-diff");
    var target = document.querySelector("[data-diff-view]");
    if (!data || !target || target.getAttribute("data-diff-rendered") === "true") return;
    if (!window.Diff2Html) {
      target.innerHTML = '<p class="muted small">The diff viewer did not load; the raw diff is below.</p>';
      return;
    }
    var diff = JSON.parse(data.textContent);
    // diff2html escapes the diff's text itself; what it returns is markup for the file list and hunks.
    target.innerHTML = window.Diff2Html.html(diff, {
      drawFileList: true,
      matching: "lines",
      outputFormat: "line-by-line",
      renderNothingWhenEmpty: false,
    });
    target.setAttribute("data-diff-rendered", "true");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", render);
  else render();
  // The page's live regions are swapped in by console.js on each event of the session: render the new diff.
  document.addEventListener("hive:refreshed", render);
})();
