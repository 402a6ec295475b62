// On a phone the header's navigation and language folds into "Menu", so that the header
// holds on one row; on a wider screen it stays open (its summary is hidden). Without
// JavaScript it stays open everywhere and the header wraps.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var phone = window.matchMedia("(max-width: 40rem)");
  function apply() {
    document.querySelectorAll("details.site-menu").forEach(function (menu) {
      menu.open = !phone.matches;
    });
  }
  apply();
  phone.addEventListener("change", apply);
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !phone.matches) return;
    document.querySelectorAll("details.site-menu[open], details.user-menu[open]").forEach(function (menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
    });
  });
})();
