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
  var served = Date.now(); // when the calendar shown was drawn by the server

  function refresh() {
    return fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("calendar-live");
        if (!fresh) return;
        document.dispatchEvent(new CustomEvent("calendar:before-refresh"));
        region.innerHTML = fresh.innerHTML;
        document.dispatchEvent(new CustomEvent("calendar:refreshed"));
        served = Date.now();
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

  // The week and day views' line at the current time, drawn by the server where it was then:
  // moved on with the minutes gone by since, hidden once the day is over.
  function moveNow() {
    var line = region.querySelector(".now-line");
    if (!line) return;
    var minute = Number(line.dataset.minute) + Math.floor((Date.now() - served) / 60000);
    line.hidden = minute >= 1440;
    line.style.setProperty("--now", (minute * 100) / 1440 + "%");
  }

  window.setInterval(check, every);
  window.setInterval(moveNow, 30000);
  document.addEventListener("visibilitychange", check);
})();
