/* Implant and replacement forms: the chosen pump model sets the alarm threshold's placeholder
   (its default) and the reservoir hint, and shows the flow rate only for constant-flow models. */
(function () {
  "use strict";
  var source = document.getElementById("pump-model-facts");
  var model = document.getElementById("id_pump_model");
  if (!source || !model) {
    return;
  }
  var facts = JSON.parse(source.textContent);
  var lra = document.getElementById("id_lra_ml");
  var flowField = document.getElementById("flow-rate-field");
  var flow = document.getElementById("id_flow_rate_ml_per_day");

  function sync() {
    var f = facts[model.value];
    if (lra) {
      lra.placeholder = f ? f.default_lra_ml + " (model default)" : "";
    }
    var constant = Boolean(f && f.constant_flow);
    if (flowField) {
      flowField.hidden = !constant && !(flow && flow.value);
    }
  }

  model.addEventListener("change", sync);
  sync();
})();
