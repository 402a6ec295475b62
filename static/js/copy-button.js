// "Copier l'adresse": buttons marked data-copy="<id of a field>" copy that field's value and
// say so in their status line. They are hidden in the page as served: without JavaScript the
// hint beside the field says how to copy it by hand.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    var status = document.getElementById(button.dataset.status);
    if (!field) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      function done(ok) {
        if (status) status.textContent = ok ? button.dataset.copied : button.dataset.failed;
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () {
          field.select();
          done(document.execCommand("copy"));
        });
      } else {
        field.select();
        done(document.execCommand("copy"));
      }
    });
  });
})();
