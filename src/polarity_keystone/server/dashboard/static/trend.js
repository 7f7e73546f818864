// The experiments list's trend chart: a spec's pass rate over time on a branch, with its 95% interval as a
// band. The figures come from the page's <script type="application/json" id="trend-data"> block (the same
// figures are in the table under the chart, for readers without the chart).
(function () {
  "use strict";

  function percent(value) {
    return value == null ? "-" : (value * 100).toFixed(1) + "%";
  }

  function draw(holder, data) {
    var options = {
      width: Math.max(holder.clientWidth, 280),
      height: 240,
      scales: { y: { range: [0, 1] } },
      axes: [{}, { size: 64, values: function (u, ticks) { return ticks.map(percent); } }],
      series: [
        {},
        { label: "Pass rate", stroke: "#0b5cad", width: 2, points: { show: true, size: 7 }, value: function (u, v) { return percent(v); } },
        { label: "95% interval, low", stroke: "#7aa7d6", dash: [4, 4], value: function (u, v) { return percent(v); } },
        { label: "95% interval, high", stroke: "#7aa7d6", dash: [4, 4], value: function (u, v) { return percent(v); } },
      ],
      bands: [{ series: [3, 2], fill: "rgba(11, 92, 173, 0.12)" }],
    };
    return new uPlot(options, [data.x, data.pass_rate, data.low, data.high], holder);
  }

  function start() {
    var holder = document.getElementById("trend-chart");
    var source = document.getElementById("trend-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    var chart = draw(holder, JSON.parse(source.textContent));
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(holder.clientWidth, 280), height: 240 });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
