/* The report's charts (deliveries and cost per day) and its Print button; the PDF runs the same script inline. */
(function () {
  "use strict";
  function draw() {
    var node = document.getElementById("report-chart-data");
    if (!node || !window.Chart) return;
    var data = JSON.parse(node.textContent);
    var common = { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } };
    new window.Chart(document.getElementById("report-deliveries"), {
      type: "bar",
      data: { labels: data.days, datasets: [{ label: "deliveries", data: data.deliveries, backgroundColor: "#2f7d4f" }] },
      options: Object.assign({}, common, { scales: { x: { ticks: { maxTicksLimit: 10 } }, y: { beginAtZero: true, ticks: { precision: 0 } } } }),
    });
    new window.Chart(document.getElementById("report-cost"), {
      type: "bar",
      data: { labels: data.days, datasets: [{ label: "USD", data: data.cost, backgroundColor: "#3a5bbf" }] },
      options: Object.assign({}, common, { scales: { x: { ticks: { maxTicksLimit: 10 } }, y: { beginAtZero: true } } }),
    });
  }
  var print = document.querySelector("[data-print]");
  if (print) print.addEventListener("click", function () { window.print(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
