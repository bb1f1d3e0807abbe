// Refreshes the overview every 2 seconds from /ui/overview.json. The server renders each
// section (escaped HTML); this only swaps it in, keeping keyboard focus where it was.
(function () {
  "use strict";
  var sections = ["traffic", "health", "money"];
  var stamp = document.getElementById("refreshed");

  function focusedHref() {
    var el = document.activeElement;
    return el && el.closest("section") ? el.getAttribute("href") : null;
  }

  function refresh() {
    fetch("/ui/overview.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (reply) {
        if (reply.status === 401) { window.location.assign("/ui/signin?next=/ui/overview"); return null; }
        return reply.ok ? reply.json() : null;
      })
      .then(function (body) {
        if (!body) { return; }
        var href = focusedHref();
        sections.forEach(function (name) {
          var el = document.getElementById(name);
          if (el) { el.innerHTML = body.html[name]; }
        });
        if (href) {
          var again = document.querySelector('section a[href="' + CSS.escape(href) + '"]');
          if (again) { again.focus(); }
        }
        if (stamp) { stamp.textContent = "Updated " + new Date().toLocaleTimeString() + "."; }
      })
      .catch(function () {
        if (stamp) { stamp.textContent = "The gateway did not answer; retrying."; }
      });
  }

  window.setInterval(refresh, 2000);
}());
