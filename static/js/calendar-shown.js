// "Calendriers affichés": with JavaScript, ticking or unticking a calendar sends the form at
// once (the page comes back on the same view and date), so its button is not needed. Listens
// on the document: the live refresh replaces the form.
(function () {
  "use strict";
  document.documentElement.classList.add("js-autosubmit");
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (!form || !form.hasAttribute("data-autosubmit")) return;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  });
})();
