// Links marked data-dialog open their page's confirmation (its [data-dialog-content] part) in
// a modal dialog instead of leaving the page; its form posts as on the page. Escape or the
// part's [data-dialog-close] link closes it, and focus goes back to the link. Without
// JavaScript, or if the page cannot be fetched, the link simply opens the page.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser || typeof HTMLDialogElement !== "function") return;

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-dialog]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    fetch(link.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var part = html && new DOMParser().parseFromString(html, "text/html")
          .querySelector("[data-dialog-content]");
        if (!part) { window.location.href = link.href; return; }
        var dialog = document.createElement("dialog");
        dialog.className = "confirm-dialog";
        var heading = part.querySelector("h1, h2");
        if (heading) {
          heading.id = heading.id || "confirm-dialog-title";
          dialog.setAttribute("aria-labelledby", heading.id);
        }
        dialog.appendChild(document.importNode(part, true));
        document.body.appendChild(dialog);
        dialog.addEventListener("close", function () {
          dialog.remove();
          link.focus();
        });
        dialog.querySelectorAll("[data-dialog-close]").forEach(function (close) {
          close.addEventListener("click", function (closing) {
            closing.preventDefault();
            dialog.close();
          });
        });
        dialog.showModal();
        var first = dialog.querySelector("input:checked, button, input, a[href]");
        if (first) first.focus();
      })
      .catch(function () { window.location.href = link.href; });
  });
})();
