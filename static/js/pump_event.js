/* The patient-call form says "emergency" the moment an emergency kind or any sign is ticked,
   before anything is saved. */
(function () {
  "use strict";
  var form = document.getElementById("event-form");
  var warning = document.getElementById("emergency-warning");
  if (!form || !warning) {
    return;
  }
  var kinds = (form.getAttribute("data-emergency-kinds") || "").split(" ");

  function update() {
    var kind = form.querySelector("[name=kind]");
    var signTicked = form.querySelector("input[name=withdrawal_signs]:checked, input[name=overdose_signs]:checked");
    warning.hidden = !(signTicked || (kind && kinds.indexOf(kind.value) !== -1));
  }

  form.addEventListener("change", update);
  update();
})();
