/* The pump page's reservoir chart. Data comes from the page (json_script), computed server-side
   with the same depletion functions as the projection; x is in days from the chart's first
   clinic-zone midnight, labelled here with calendar dates (UTC arithmetic on dates only, so the
   browser's own time zone cannot shift them). */
(function () {
  "use strict";
  var source = document.getElementById("reservoir-chart-data");
  var canvas = document.getElementById("reservoir-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  window.Chart.defaults.color = "#343a40";
  var origin = data.origin.split("-").map(Number);

  function dateOf(x) {
    var day = new Date(Date.UTC(origin[0], origin[1] - 1, origin[2] + Math.floor(x + 1e-6)));
    return day.toISOString().slice(0, 10);
  }

  var colours = {
    nominal: "#0b3d6b",
    conservative: "#b02a37",
    lra: "#8a5300",
    due: "#6f42c1",
    expiry: "#495057",
    now: "#212529",
    residual: "#146c43",
    discrepancy: "#b02a37",
    fill: "#0b3d6b"
  };
  var markerDash = { due: [8, 4], expiry: [2, 3, 8, 3], now: [] };

  var datasets = [
    {
      label: "Nominal volume",
      data: data.nominal,
      borderColor: colours.nominal,
      backgroundColor: colours.nominal,
      borderWidth: 2.5,
      pointRadius: 0,
      pointStyle: "line",
      tension: 0
    },
    {
      label: "Conservative (+" + data.conservative_pct + "%)",
      data: data.conservative,
      borderColor: colours.conservative,
      backgroundColor: colours.conservative,
      borderDash: [6, 4],
      borderWidth: 2,
      pointRadius: 0,
      pointStyle: "line",
      tension: 0
    },
    {
      label: "Alarm threshold (" + data.lra[0].y + " mL)",
      data: data.lra,
      borderColor: colours.lra,
      backgroundColor: colours.lra,
      borderDash: [2, 3],
      borderWidth: 2,
      pointRadius: 0,
      pointStyle: "line"
    }
  ];
  data.markers.forEach(function (marker) {
    datasets.push({
      label: marker.label,
      data: [{ x: marker.x, y: 0 }, { x: marker.x, y: data.y_max }],
      borderColor: colours[marker.key],
      backgroundColor: colours[marker.key],
      borderDash: markerDash[marker.key] || [],
      borderWidth: marker.key === "now" ? 1.5 : 2,
      pointRadius: 0,
      pointStyle: "line",
      marker: true
    });
  });
  if (data.fills.length) {
    datasets.push({
      type: "scatter",
      label: "Filled to",
      data: data.fills,
      borderColor: colours.fill,
      backgroundColor: "#ffffff",
      pointStyle: "circle",
      pointRadius: 5,
      borderWidth: 2
    });
  }
  var withinTolerance = data.residuals.filter(function (r) { return !r.discrepancy; });
  var discrepant = data.residuals.filter(function (r) { return r.discrepancy; });
  if (withinTolerance.length) {
    datasets.push({
      type: "scatter",
      label: "Residual measured",
      data: withinTolerance,
      borderColor: colours.residual,
      backgroundColor: colours.residual,
      pointStyle: "triangle",
      pointRadius: 7
    });
  }
  if (discrepant.length) {
    datasets.push({
      type: "scatter",
      label: "Residual measured (discrepancy)",
      data: discrepant,
      borderColor: colours.discrepancy,
      backgroundColor: colours.discrepancy,
      pointStyle: "rectRot",
      pointRadius: 8
    });
  }

  var span = data.x_max;
  var step = span > 240 ? 28 : span > 100 ? 14 : 7;

  var drawnFlag = {
    id: "drawnFlag",
    afterRender: function (chart) {
      chart.canvas.setAttribute("data-drawn", "true");
    }
  };

  new window.Chart(canvas, {
    type: "line",
    data: { datasets: datasets },
    plugins: [drawnFlag],
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: true,
      interaction: { mode: "nearest", intersect: false, axis: "x" },
      scales: {
        x: {
          type: "linear",
          min: 0,
          max: span,
          title: { display: true, text: "Date (clinic time)" },
          ticks: { stepSize: step, callback: function (value) { return dateOf(value); }, maxRotation: 45 }
        },
        y: {
          min: 0,
          suggestedMax: data.y_max,
          grace: "6%",
          title: { display: true, text: "Reservoir volume (mL)" }
        }
      },
      plugins: {
        legend: { position: "bottom", labels: { usePointStyle: true, color: "#212529" } },
        tooltip: {
          filter: function (item) { return !item.dataset.marker; },
          callbacks: {
            title: function (items) { return items.length ? dateOf(items[0].parsed.x) : ""; },
            label: function (item) {
              var raw = item.raw || {};
              var text = item.dataset.label + ": " + item.parsed.y.toFixed(2) + " mL";
              if (raw.expected !== undefined) {
                text += " (expected " + raw.expected.toFixed(2) + " mL" + (raw.discrepancy ? ", discrepancy" : "") + ")";
              }
              return text;
            }
          }
        }
      }
    }
  });
})();
