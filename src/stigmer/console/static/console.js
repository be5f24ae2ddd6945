// Stigmer console: applies the fragments the live streams send (see live.py).
// Pages are complete without this script; it only keeps them current.
"use strict";

(function () {
  function applyOperation(op) {
    var element = document.getElementById(op.id);
    if (op.op === "text") {
      if (element) element.append(op.text);
    } else if (op.op === "replace") {
      if (element) element.outerHTML = op.html;
    } else if (op.op === "append") {
      if (element) element.insertAdjacentHTML("beforeend", op.html);
    } else if (op.op === "upsert") {
      if (element) {
        element.outerHTML = op.html;
      } else {
        var parent = document.getElementById(op.parent);
        if (parent) parent.insertAdjacentHTML(op.at === "start" ? "afterbegin" : "beforeend", op.html);
      }
    } else if (op.op === "remove") {
      if (element) element.remove();
    }
  }

  function showState(text) {
    var state = document.getElementById("live-state");
    if (!state) return;
    state.textContent = text;
    state.hidden = !text;
  }

  function follow(root) {
    if (!window.EventSource || root.dataset.ended === "true") return;
    var source = new EventSource(root.dataset.liveEvents);
    source.addEventListener("ops", function (event) {
      JSON.parse(event.data).forEach(applyOperation);
      document.body.dataset.liveSequence = event.lastEventId;
      showState("");
    });
    source.addEventListener("problem", function (event) {
      showState("Live updates stopped: " + JSON.parse(event.data).message);
      source.close();
    });
    source.addEventListener("end", function () {
      root.dataset.ended = "true";
      document.body.dataset.liveEnded = "true";
      source.close();
    });
    source.addEventListener("open", function () {
      document.body.dataset.live = "open";
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CONNECTING) showState("Reconnecting…");
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-events]").forEach(follow);
  });
})();
