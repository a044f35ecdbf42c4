/* Refill and amendment forms: a catalogue product fixes the concentration, so choosing one fills
   the concentration in (read-only); "compounded" frees it for typing. The change is announced to
   htmx as an input event so the live preview follows. */
(function () {
  "use strict";
  var source = document.getElementById("product-concentrations");
  var product = document.getElementById("id_drug_product");
  var concentration = document.getElementById("id_concentration_mcg_per_ml");
  if (!source || !product || !concentration) {
    return;
  }
  var concentrations = JSON.parse(source.textContent);

  function sync(announce) {
    var value = concentrations[product.value];
    if (value !== undefined) {
      if (concentration.value !== value) {
        concentration.value = value;
        if (announce) {
          concentration.dispatchEvent(new Event("input", { bubbles: true }));
        }
      }
      concentration.readOnly = true;
    } else {
      concentration.readOnly = false;
    }
  }

  product.addEventListener("change", function () {
    sync(true);
    if (!concentration.readOnly) {
      concentration.focus();
    }
  });
  sync(false);
})();
