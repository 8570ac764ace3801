// Keeps the Tempotask overview live: polls its JSON endpoint and swaps the server-rendered fragments.
// Without JavaScript the page refreshes itself with a meta refresh instead.
(function () {
  "use strict";
  var root = document.querySelector("[data-refresh-url]");
  if (!root) { return; }
  var url = root.getAttribute("data-refresh-url");
  var every = 1000 * Number(root.getAttribute("data-refresh-seconds") || 5);
  function refresh() {
    if (document.hidden) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        Object.keys(data.html).forEach(function (name) {
          var target = root.querySelector('[data-fragment="' + name + '"]');
          if (target) { target.innerHTML = data.html[name]; }
        });
        root.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* a failed poll is retried at the next tick */ });
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
})();
