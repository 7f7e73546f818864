// The experiment page while its experiment is queued or running: each event of the experiment's stream
// fetches a fresh copy of the page's live section (#experiment-live) and swaps it in, without a reload.
// After `done` or `error` (or once a fresh copy says the experiment finished) the stream is closed and the
// final state stays on the page. Fetches never overlap: events that arrive meanwhile cause one more.
(function () {
  "use strict";

  function start() {
    var live = document.getElementById("experiment-live");
    var count = document.getElementById("live-count");
    if (!live || live.getAttribute("data-finished") === "true") return;
    var stream = new EventSource(live.getAttribute("data-stream"));
    var fetching = false;
    var again = false;

    function swap(html) {
      var holder = document.createElement("template");
      holder.innerHTML = html.trim();
      var fresh = holder.content.querySelector("#experiment-live");
      if (!fresh) return;
      live.replaceWith(fresh);
      live = fresh;
      if (count) count.textContent = fresh.getAttribute("data-count");
      if (fresh.getAttribute("data-finished") === "true") stream.close();
    }

    function refresh() {
      if (fetching) {
        again = true;
        return;
      }
      fetching = true;
      fetch(live.getAttribute("data-fragment"), { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("the live section answered " + response.status);
          return response.text();
        })
        .then(swap)
        .catch(function (error) { console.warn(error); })
        .finally(function () {
          fetching = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    }

    ["progress", "replica_done", "invariant_result", "message"].forEach(function (name) {
      stream.addEventListener(name, refresh);
    });
    ["done", "error"].forEach(function (name) {
      stream.addEventListener(name, function (event) {
        // A stream that failed to connect fires a plain `error` without data: EventSource retries it.
        if (name === "error" && !event.data) return;
        stream.close();
        refresh();
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
