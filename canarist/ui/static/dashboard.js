// Keeps a dashboard page live: polls its JSON (the main element's data-live) every two
// seconds and replaces each part that changed in place, with no reload. A failed poll (the
// API restarting) is retried with a growing wait; an ended session is said, with a link.
// Served from the package (canarist/ui/static/): no inline script, nothing from elsewhere.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch) {
    return;
  }
  var url = main.getAttribute("data-live");
  var version = main.getAttribute("data-version") || "";
  var status = document.getElementById("live-status");
  var PERIOD = 2000;
  var MAX_WAIT = 15000;
  var wait = PERIOD;
  var shown = {};

  function say(text, lost) {
    if (status.textContent !== text) {
      status.textContent = text;
    }
    status.classList.toggle("lost", Boolean(lost));
  }

  function ended() {
    say("", true);
    status.textContent = "Your session has ended. ";
    var link = document.createElement("a");
    link.href = "/ui/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
    link.textContent = "Sign in again to keep this page live.";
    status.appendChild(link);
  }

  function patchRows(target, fresh) {
    // Rows keep their place when only some changed, so focus and selection survive.
    var rows = Array.prototype.slice.call(fresh.content.children);
    var old = Array.prototype.slice.call(target.children);
    var sameOrder = rows.length === old.length && rows.every(function (row, i) {
      return row.id && row.id === old[i].id;
    });
    if (!sameOrder) {
      target.replaceChildren.apply(target, rows);
      return;
    }
    rows.forEach(function (row, i) {
      if (!old[i].isEqualNode(row)) {
        old[i].replaceWith(row);
      }
    });
  }

  function apply(parts) {
    var deferred = false;
    Object.keys(parts).forEach(function (name) {
      var target = document.getElementById("part-" + name);
      var html = parts[name];
      if (!target || shown[name] === html) {
        return;
      }
      var fresh = document.createElement("template");
      fresh.innerHTML = html;
      if (target.tagName === "TBODY") {
        patchRows(target, fresh);
      } else if (target.contains(document.activeElement) && target !== document.body) {
        deferred = true; // someone is typing or focused here: replace it on a later poll
        return;
      } else {
        target.replaceChildren(fresh.content);
      }
      shown[name] = html;
    });
    return !deferred;
  }

  function schedule() {
    window.setTimeout(poll, wait);
  }

  function poll() {
    var query = url + (url.indexOf("?") < 0 ? "?" : "&") + "seen=" + encodeURIComponent(version);
    fetch(query, {credentials: "same-origin", cache: "no-store",
                  headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status === 401) {
          ended();
          wait = MAX_WAIT;
          return null;
        }
        if (response.status === 204) {
          return {};
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        if (body === null) {
          return;
        }
        if (body.parts && apply(body.parts)) {
          version = body.version;
          main.setAttribute("data-version", version);
        }
        wait = PERIOD;
        say("Live: updates every few seconds.", false);
      })
      .catch(function () {
        wait = Math.min(wait * 2, MAX_WAIT);
        say("Connection lost; retrying…", true);
      })
      .then(schedule);
  }

  say("Live: updates every few seconds.", false);
  schedule();
}());
