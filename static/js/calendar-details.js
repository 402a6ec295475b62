// An event's details in place: a click (or Enter) on an event of the week or day grid asks
// the server for its details panel and shows it in a modal dialog; Escape or "Fermer" closes
// it and the focus goes back to the event. Without JavaScript, or if the panel cannot be had,
// the event's link opens its details as a page.
(function () {
  "use strict";
  var dialog = document.getElementById("event-dialog");
  if (!dialog || typeof dialog.showModal !== "function" || !window.fetch || !window.DOMParser) return;
  var body = dialog.querySelector(".event-dialog-body");
  var openedFrom = null; // the key of the event whose details are shown
  var asked = 0; // the latest request: a slower earlier answer is dropped

  function eventLink(key) {
    // The live refresh may have swapped the grid meanwhile: found again by its key.
    var links = document.querySelectorAll("a[data-details]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].dataset.key === key) return links[i];
    }
    return null;
  }

  function show(link) {
    var ask = ++asked;
    openedFrom = link.dataset.key;
    fetch(link.href, { credentials: "same-origin", headers: { "X-Calendar-Panel": "1" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        if (ask !== asked) return;
        var panel = new DOMParser().parseFromString(html, "text/html").getElementById("event-details");
        if (!panel) throw new Error("no panel");
        body.replaceChildren(document.importNode(panel, true));
        dialog.setAttribute("aria-labelledby", "event-details-title");
        if (!dialog.open) dialog.showModal();
        var title = document.getElementById("event-details-title");
        if (title) title.focus();
      })
      .catch(function () {
        if (ask === asked) window.location.assign(link.href);
      });
  }

  document.addEventListener("click", function (event) {
    var link = event.target instanceof Element ? event.target.closest("a[data-details]") : null;
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return; // a new tab
    event.preventDefault();
    show(link);
  });

  // A click on the backdrop (outside the dialog's box) closes it too.
  dialog.addEventListener("click", function (event) {
    if (event.target === dialog) dialog.close();
  });

  dialog.addEventListener("close", function () {
    asked++;
    body.replaceChildren();
    dialog.removeAttribute("aria-labelledby");
    var link = openedFrom && eventLink(openedFrom);
    openedFrom = null;
    if (link) link.focus();
  });
})();
