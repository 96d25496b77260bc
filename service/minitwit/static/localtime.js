// Show every <time datetime="...Z"> in the viewer's own time zone, in the same
// "YYYY-MM-DD @ HH:MM" format as the UTC text the server renders (the no-JS fallback).
(function () {
  "use strict";
  function pad(n) { return String(n).padStart(2, "0"); }
  function localise(element) {
    var date = new Date(element.getAttribute("datetime"));
    if (isNaN(date.getTime())) { return; }
    element.textContent = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " @ " + pad(date.getHours()) + ":" + pad(date.getMinutes());
    element.title = date.toString();
  }
  document.querySelectorAll("time[datetime]").forEach(localise);
})();
