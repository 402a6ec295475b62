// The week and day grids show 24 hours in a frame that scrolls: start them at the morning
// (07:00, or the first event's hour if it is earlier), as calendar applications do, and keep
// the learner's place when the live refresh (calendar-live.js) swaps the calendar in.
(function () {
  "use strict";
  var HOUR = 7;
  function morning(frame) {
    var labels = frame.querySelectorAll(".tg-hour-labels li");
    if (labels.length <= HOUR) return;
    var origin = frame.getBoundingClientRect().top - frame.scrollTop;
    function offset(element) { return element.getBoundingClientRect().top - origin; }
    var top = offset(labels[HOUR]);
    frame.querySelectorAll(".tg-block").forEach(function (block) {
      top = Math.min(top, offset(block));
    });
    var heading = frame.querySelector(".tg-day-heading");
    var allDay = frame.querySelector(".tg-all-day");
    var above = (heading ? heading.offsetHeight : 0) + (allDay ? allDay.offsetHeight : 0);
    frame.scrollTop = Math.max(0, top - above - 8);
  }
  document.querySelectorAll(".time-grid-scroll").forEach(morning);

  var kept = null;
  document.addEventListener("calendar:before-refresh", function () {
    var frame = document.querySelector(".time-grid-scroll");
    kept = frame ? [frame.scrollTop, frame.scrollLeft] : null;
  });
  document.addEventListener("calendar:refreshed", function () {
    var frame = document.querySelector(".time-grid-scroll");
    if (frame && kept) { frame.scrollTop = kept[0]; frame.scrollLeft = kept[1]; }
  });
})();
