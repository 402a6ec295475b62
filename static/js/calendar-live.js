// Keeps the calendar page current without a click: every few seconds, while the page is
// visible, asks whether anything it shows changed (a sync ended, an event or formation
// moved) and, if so, fetches the page again and swaps the calendar in, telling screen
// readers. Without JavaScript the page is simply as it was served.
(function () {
  "use strict";
  var region = document.getElementById("calendar-live");
  if (!region || !window.fetch || !window.DOMParser) return;
  var status = document.getElementById("calendar-live-status");
  var version = region.dataset.version;
  var every = parseInt(region.dataset.every, 10) || 5000;
  var busy = false;

  function refresh() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("calendar-live");
        if (!fresh) return;
        region.innerHTML = fresh.innerHTML;
        version = fresh.dataset.version;
        region.dataset.version = version;
        if (status) status.textContent = status.dataset.message;
      });
  }

  function check() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(region.dataset.versionUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (answer && answer.version !== version) return refresh();
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  window.setInterval(check, every);
  document.addEventListener("visibilitychange", check);
})();
