// alwrity-billing dashboards: refresh every 30 s while the page is visible,
// on the Refresh button, and say when the figures were last read. Written
// for this project; no library. Pages work without it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-refresh]");
  if (!main) return;
  var every = (parseInt(main.getAttribute("data-refresh"), 10) || 30) * 1000;
  var last = Date.now();
  var busy = false;

  function status(text) {
    var s = document.getElementById("refresh-status");
    if (s) s.textContent = text;
  }

  function refresh() {
    if (busy) return;
    busy = true;
    status("Refreshing…");
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        // A lost session redirects to the sign-in page: follow it for real.
        if (res.redirected && res.url.indexOf("/signin") >= 0) { location.href = res.url; return null; }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main[data-refresh]");
        if (!fresh) throw new Error("no content");
        var focusedId = document.activeElement && document.activeElement.id;
        main.innerHTML = fresh.innerHTML;
        if (focusedId) {
          var el = document.getElementById(focusedId);
          if (el) el.focus();
        }
        last = Date.now();
        status("Refreshed");
      })
      .catch(function (err) { status("Refresh failed: " + err.message); })
      .then(function () { busy = false; });
  }

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t && t.closest && t.closest("[data-action=refresh]")) refresh();
  });
  setInterval(function () {
    if (document.visibilityState === "visible" && Date.now() - last >= every - 500) refresh();
  }, 1000);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && Date.now() - last >= every) refresh();
  });
})();
