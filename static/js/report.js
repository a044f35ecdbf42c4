/* The clinic report: one small line chart per figure's 12-month trend (data from the page's
   json_script "report-trends"; no inline script under the content-security policy), the period
   chooser showing only the fields of the kind chosen, and the Print button. */
(function () {
  "use strict";

  var kind = document.getElementById("id_kind");
  function showPeriodFields() {
    if (!kind) {
      return;
    }
    document.querySelectorAll("[data-period]").forEach(function (box) {
      var shown = box.getAttribute("data-period") === kind.value;
      box.hidden = !shown;
      box.querySelectorAll("input, select").forEach(function (field) { field.disabled = !shown; });
    });
  }
  if (kind) {
    kind.addEventListener("change", showPeriodFields);
    showPeriodFields();
  }

  var printButton = document.getElementById("print-report");
  if (printButton) {
    printButton.addEventListener("click", function () { window.print(); });
  }

  var source = document.getElementById("report-trends");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var trends = JSON.parse(source.textContent);
  window.Chart.defaults.color = "#343a40";
  var charts = [];

  function monthLabel(iso) {
    var parts = iso.split("-").map(Number);
    var names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return names[parts[1] - 1] + " " + String(parts[0]).slice(2);
  }

  var drawnFlag = {
    id: "drawnFlag",
    afterRender: function (chart) { chart.canvas.setAttribute("data-drawn", "true"); }
  };

  document.querySelectorAll("canvas[data-trend]").forEach(function (canvas) {
    var trend = trends[canvas.getAttribute("data-trend")];
    if (!trend) {
      return;
    }
    var unit = trend.unit;
    if (trend.values.every(function (value) { return value === null; })) {
      // Nothing to draw: say so in words rather than an empty grid.
      var note = document.createElement("p");
      note.className = "trend-empty small text-body-secondary mb-0";
      note.textContent = "No data in these 12 months.";
      note.setAttribute("data-trend", canvas.getAttribute("data-trend"));
      note.setAttribute("data-drawn", "true");
      canvas.parentNode.replaceWith(note);
      return;
    }
    charts.push(new window.Chart(canvas, {
      type: "line",
      data: {
        labels: trend.months.map(monthLabel),
        datasets: [{
          label: trend.label,
          data: trend.values,
          borderColor: "#0b3d6b",
          backgroundColor: "#0b3d6b",
          borderWidth: 2,
          pointRadius: 3,
          spanGaps: false,
          tension: 0
        }]
      },
      plugins: [drawnFlag],
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 8 } },
          // A share never passes 100%: its axis stops there.
          y: unit === "%"
            ? { beginAtZero: true, max: 100, title: { display: true, text: unit } }
            : { beginAtZero: true, grace: "10%", title: { display: true, text: unit } }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.parsed.y === null ? "no data" : item.parsed.y + (unit === "%" ? "%" : " " + unit);
              }
            }
          }
        }
      }
    }));
  });

  // The printed page is narrower than the screen: redraw each chart at its printed size.
  window.addEventListener("beforeprint", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
  window.addEventListener("afterprint", function () {
    charts.forEach(function (chart) { chart.resize(); });
  });
})();
