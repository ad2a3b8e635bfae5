/* bbmaster's web UI: progressive enhancement over server-rendered pages.
   Times in the viewer's zone, relative ages.  Everything works without it. */
"use strict";
(function () {
  function rel(s) {
    var a = Math.abs(s), u;
    if (a < 60) u = Math.round(a) + " s";
    else if (a < 3600) u = Math.round(a / 60) + " min";
    else if (a < 86400) u = Math.round(a / 3600) + " h";
    else u = Math.round(a / 86400) + " d";
    return s >= 0 ? u + " ago" : "in " + u;
  }
  function times() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.title = d.toLocaleString();
      t.textContent = rel(now - d.getTime() / 1000);
    });
  }
  times();
  setInterval(times, 30000);
})();
