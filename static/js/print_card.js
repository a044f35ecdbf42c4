/* The refill card's print button (no inline handlers under the content security policy). */
(function () {
  "use strict";
  var button = document.getElementById("print-card");
  if (button) {
    button.addEventListener("click", function () {
      window.print();
    });
  }
})();
