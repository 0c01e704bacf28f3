/* Agent Hive console: progressive enhancement of server-rendered pages.
 *
 * - one WebSocket to /ws/coordination/ (or a session's), resumed with ?after=<last id>,
 *   exponential backoff, duplicates dropped (id <= last), visible state live / reconnecting / offline;
 * - new events are prepended to every feed on the page, then the page's live regions
 *   ([data-live-region][id]) are re-rendered by the server and swapped in (debounced);
 * - decision answers without a reload, deadline countdowns, the replay slider, charts;
 * - the PWA: service worker registration and the offline snapshot of the overview.
 */
(function () {
  "use strict";

  var body = document.body;
  var socketPath = body.dataset.socketPath || "";
  var storageKey = "hive:last-event-id:" + socketPath;
  var SNAPSHOT_KEY = "hive:overview-snapshot";
  var MAX_FEED_ITEMS = 150;
  var lastEventId = parseInt(body.dataset.lastEventId || "0", 10) || 0;
  var socket = null;
  var attempts = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  var pongDeadline = null;
  var refreshTimer = null;
  var refreshing = false;
  var refreshAgain = false;

  // --- small helpers ---------------------------------------------------------------
  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function store(key, value) { try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ } }
  function load(key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } }
  function csrfToken() {
    var input = $("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function clock(date) { return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()); }
  function humanType(type) {
    var text = String(type || "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // --- connection state ----------------------------------------------------------------
  function setConn(state) {
    var el = $("[data-conn]");
    if (!el) return;
    el.dataset.state = state;
    var label = $("[data-conn-label]", el);
    if (label) label.textContent = state;
    el.title = "Live connection: " + state;
  }

  function showOfflineBanner(show) {
    var banner = $("[data-offline-banner]");
    if (!banner) return;
    banner.hidden = !show;
    var time = $("[data-offline-time]", banner);
    var at = body.dataset.generatedAt ? new Date(body.dataset.generatedAt) : null;
    if (time && at && !isNaN(at)) time.textContent = at.toLocaleString();
  }

  // --- the socket ------------------------------------------------------------------------
  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + socketPath + "?after=" + lastEventId;
  }

  function connect() {
    if (!socketPath || !("WebSocket" in window)) return;
    clearTimeout(reconnectTimer);
    setConn(attempts ? "reconnecting" : "connecting");
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      attempts = 0;
      setConn("live");
      showOfflineBanner(false);
      startPing();
    };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      onMessage(data);
    };
    socket.onclose = function (e) {
      stopPing();
      socket = null;
      if (e && e.code === 4410) {
        // the events after our cursor were pruned by retention: start again from a fresh page
        window.location.reload();
        return;
      }
      if (e && (e.code === 4401 || e.code === 4404)) {
        // signed out or no such session: retrying cannot help
        setConn("offline");
        return;
      }
      scheduleReconnect();
    };
    socket.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect() {
    attempts += 1;
    var offline = navigator.onLine === false;
    setConn(offline ? "offline" : "reconnecting");
    if (offline) showOfflineBanner(true);
    // 0.5 s, 1 s, 2 s … capped at 30 s, with jitter so many tabs do not reconnect in step
    var delay = Math.min(30000, 500 * Math.pow(2, Math.min(attempts - 1, 6)));
    delay = delay * (0.8 + Math.random() * 0.4);
    reconnectTimer = setTimeout(connect, delay);
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(function () {
      if (!socket || socket.readyState !== 1) return;
      socket.send(JSON.stringify({ type: "ping", t: Date.now() }));
      clearTimeout(pongDeadline);
      pongDeadline = setTimeout(function () { if (socket) socket.close(); }, 10000);
    }, 25000);
  }

  function stopPing() {
    clearInterval(pingTimer);
    clearTimeout(pongDeadline);
  }

  function onMessage(data) {
    if (typeof data.id === "number") {
      onEvents([data]);
      return;
    }
    if (data.type === "pong") {
      clearTimeout(pongDeadline);
    } else if (data.type === "hello") {
      setConn("live");
    } else if (data.type === "replay_done") {
      setConn("live");
      if (data.count) scheduleRefresh();
    } else if (Array.isArray(data.events)) {
      onEvents(data.events);
    }
  }

  function onEvents(events) {
    var fresh = [];
    events.forEach(function (event) {
      if (typeof event.id !== "number" || event.id <= lastEventId) return; // duplicate or replayed twice
      lastEventId = event.id;
      fresh.push(event);
    });
    if (!fresh.length) return;
    store(storageKey, String(lastEventId));
    body.dataset.lastEventId = String(lastEventId);
    fresh.forEach(addToFeeds);
    document.dispatchEvent(new CustomEvent("hive:events", { detail: fresh }));
    scheduleRefresh();
  }

  // --- feeds ----------------------------------------------------------------------------------
  function matchesFeed(feed, event) {
    var type = feed.dataset.feedFilterType;
    if (type && event.type !== type) return false;
    var agent = feed.dataset.feedFilterAgent;
    if (agent) {
      var id = parseInt(agent, 10);
      var involved = event.agent === id || (event.participants || []).some(function (p) { return p && p.id === id; });
      if (!involved) return false;
    }
    var session = feed.dataset.feedFilterSession;
    if (session && String(event.session) !== session) return false;
    var actor = feed.dataset.feedFilterActor;
    if (actor && event.actor !== actor) return false;
    return true;
  }

  function feedItem(event, showSession) {
    var li = document.createElement("li");
    li.className = "feed-item is-new ev-" + event.type;
    li.dataset.eventId = event.id;
    var type = document.createElement("span");
    type.className = "ev-type";
    type.textContent = humanType(event.type);
    var msg = document.createElement("span");
    msg.className = "ev-msg";
    msg.textContent = event.message || "";
    var meta = document.createElement("span");
    meta.className = "ev-meta";
    if (event.simulated) {
      var badge = document.createElement("span");
      badge.className = "badge badge-sim";
      badge.textContent = "simulated";
      meta.appendChild(badge);
      meta.appendChild(document.createTextNode(" "));
    }
    var time = document.createElement("time");
    var created = new Date(event.created_at);
    time.dateTime = event.created_at;
    time.textContent = isNaN(created) ? "" : clock(created);
    meta.appendChild(time);
    if (event.actor) {
      meta.appendChild(document.createTextNode(" · "));
      var who = document.createElement("span");
      who.className = "ev-actor";
      who.title = "who made this change";
      who.textContent = event.actor + (event.actorToken ? " (token “" + event.actorToken + "”)" : "");
      meta.appendChild(who);
    }
    if (showSession && event.session) {
      meta.appendChild(document.createTextNode(" · "));
      var link = document.createElement("a");
      link.href = "/sessions/" + event.session + "/";
      link.textContent = "session " + event.session;
      meta.appendChild(link);
    }
    li.appendChild(type);
    li.appendChild(meta);
    li.appendChild(msg);
    return li;
  }

  function addToFeeds(event) {
    $all("[data-feed]").forEach(function (feed) {
      if (!matchesFeed(feed, event)) return;
      if (feed.querySelector('[data-event-id="' + event.id + '"]')) return;
      var empty = $("[data-feed-empty]", feed);
      if (empty) empty.remove();
      feed.insertBefore(feedItem(event, feed.dataset.showSession === "1"), feed.firstChild);
      while (feed.children.length > MAX_FEED_ITEMS) feed.removeChild(feed.lastChild);
    });
  }

  // --- live regions: the server re-renders, we swap -----------------------------------------------
  function scheduleRefresh() {
    if (!$("[data-live-region]")) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshRegions, 350);
  }

  function refreshRegions() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("refresh " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        $all("[data-live-region][id]").forEach(function (region) {
          var fresh = doc.getElementById(region.id);
          if (!fresh) return;
          var active = document.activeElement;
          if (active && region.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName) && active.value) return;
          region.innerHTML = fresh.innerHTML;
        });
        var count = $("[data-open-decisions]");
        var freshCount = doc.querySelector("[data-open-decisions]");
        if (count && freshCount) {
          count.textContent = freshCount.textContent;
          count.className = freshCount.className;
        }
        if (doc.body && doc.body.dataset.generatedAt) body.dataset.generatedAt = doc.body.dataset.generatedAt;
        document.dispatchEvent(new CustomEvent("hive:refreshed"));
      })
      .catch(function () { /* the next event retries */ })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; scheduleRefresh(); }
      });
  }

  // --- forms that ask first (revoking a token) -----------------------------------------------------------
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) e.preventDefault();
  });

  // --- decisions: one tap, no reload ------------------------------------------------------------------
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.matches || !form.matches("[data-decision-form]") || !window.fetch) return;
    e.preventDefault();
    var submitter = e.submitter || $("button[name=option]:focus", form);
    var data = new FormData(form);
    if (submitter && submitter.name) data.set(submitter.name, submitter.value);
    var buttons = $all("button", form);
    buttons.forEach(function (b) { b.disabled = true; });
    if (submitter) submitter.setAttribute("aria-busy", "true");
    var error = $("[data-form-error]", form);
    fetch(form.action, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    })
      .then(function (response) { return response.json().then(function (json) { return { ok: response.ok, json: json }; }); })
      .then(function (result) {
        if (!result.ok) throw new Error(result.json.detail || "not answered");
        var card = form.closest("[data-decision-id]");
        if (card) card.classList.add("is-answered");
        if (error) { error.hidden = true; }
        scheduleRefresh();
      })
      .catch(function (err) {
        buttons.forEach(function (b) { b.disabled = false; });
        if (error) { error.textContent = err.message; error.hidden = false; }
      })
      .then(function () { if (submitter) submitter.removeAttribute("aria-busy"); });
  });

  // auto-submitting selects (window, session pickers)
  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (form && form.hasAttribute("data-autosubmit")) form.submit();
  });

  // --- countdowns --------------------------------------------------------------------------------------
  function tickCountdowns() {
    var now = Date.now();
    $all("[data-countdown]").forEach(function (el) {
      var deadline = Date.parse(el.dataset.countdown);
      if (isNaN(deadline)) return;
      var left = Math.round((deadline - now) / 1000);
      var abs = Math.abs(left);
      var h = Math.floor(abs / 3600), m = Math.floor((abs % 3600) / 60), s = abs % 60;
      var text = (h ? h + "h " : "") + (h || m ? pad(m) + "m " : "") + pad(s) + "s";
      el.textContent = left >= 0 ? "in " + text : "overdue " + text;
      el.classList.toggle("overdue", left < 0);
    });
  }

  // --- replay slider -----------------------------------------------------------------------------------
  function setupReplay() {
    var form = $("[data-replay-form]");
    if (!form) return;
    var slider = $("[data-replay-slider]", form);
    var output = $("[data-replay-output]", form);
    var target = $("[data-replay-target]");
    var idsNode = document.getElementById("replay-ids");
    var ids = idsNode ? JSON.parse(idsNode.textContent) : [];
    var timer = null;
    var playing = null;

    function snap(value) {
      var best = ids[0];
      for (var i = 0; i < ids.length && ids[i] <= value; i++) best = ids[i];
      return best;
    }
    function show(id) {
      slider.value = id;
      output.textContent = "#" + id;
      clearTimeout(timer);
      timer = setTimeout(function () {
        target.classList.add("is-loading");
        fetch(form.dataset.replayUrl + "?at=" + id, { credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (html) { target.innerHTML = html; })
          .catch(function () {})
          .then(function () { target.classList.remove("is-loading"); });
      }, 120);
    }
    slider.addEventListener("input", function () { show(snap(parseInt(slider.value, 10))); });
    $all("[data-replay-step]", form).forEach(function (button) {
      button.addEventListener("click", function () {
        var index = ids.indexOf(snap(parseInt(slider.value, 10)));
        var next = ids[Math.max(0, Math.min(ids.length - 1, index + parseInt(button.dataset.replayStep, 10)))];
        show(next);
      });
    });
    var play = $("[data-replay-play]", form);
    if (play) {
      play.addEventListener("click", function () {
        if (playing) { clearInterval(playing); playing = null; play.textContent = "Play"; return; }
        var index = ids.indexOf(snap(parseInt(slider.value, 10)));
        if (index >= ids.length - 1) index = -1;
        play.textContent = "Pause";
        playing = setInterval(function () {
          index += 1;
          if (index >= ids.length) { clearInterval(playing); playing = null; play.textContent = "Play"; return; }
          show(ids[index]);
        }, 450);
      });
    }
    // keep the slider's range growing as the session goes on
    document.addEventListener("hive:events", function (e) {
      var atEnd = parseInt(slider.value, 10) >= ids[ids.length - 1];
      e.detail.forEach(function (event) {
        if (String(event.session) === String(form.dataset.session || event.session) && ids.indexOf(event.id) < 0) ids.push(event.id);
      });
      slider.max = ids[ids.length - 1];
      if (atEnd && !playing) show(ids[ids.length - 1]);
    });
  }

  // --- charts ---------------------------------------------------------------------------------------------
  var charts = {};
  function chartData() {
    var node = document.getElementById("chart-data-json");
    return node ? JSON.parse(node.textContent) : null;
  }
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function bucketLabel(iso, window_) {
    var d = new Date(iso);
    if (isNaN(d)) return "";
    if (window_ === "7d" || window_ === "all") return (d.getMonth() + 1) + "/" + d.getDate() + " " + pad(d.getHours()) + "h";
    return pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function renderCharts() {
    var data = chartData();
    if (!data || !window.Chart) return;
    var Chart = window.Chart;
    Chart.defaults.color = css("--muted") || "#666";
    Chart.defaults.borderColor = css("--border") || "#ddd";
    Chart.defaults.font.family = css("--font") || "system-ui";
    Chart.defaults.animation = false;
    var labels = data.throughput.map(function (row) { return bucketLabel(row.start, data.window); });
    var completed = data.throughput.map(function (row) { return row.tasks_completed; });
    var failures = data.throughput.map(function (row) { return row.failures; });
    var workflows = data.throughput.map(function (row) { return row.workflows_completed; });
    var success = data.throughput.map(function (row) {
      var done = row.tasks_completed + row.failures;
      return done ? Math.round((1000 * row.tasks_completed) / done) / 10 : null;
    });
    var ok = css("--ok"), info = css("--link"), danger = css("--danger");
    var common = { responsive: true, maintainAspectRatio: false, plugins: { legend: { display: true, labels: { boxWidth: 10 } } } };
    upsert("throughput", "chart-throughput", {
      type: "bar",
      data: { labels: labels, datasets: [
        { label: "tasks", data: completed, backgroundColor: info },
        { label: "workflows", data: workflows, backgroundColor: ok },
        { label: "failed", data: failures, backgroundColor: danger },
      ] },
      options: Object.assign({}, common, { scales: { x: { stacked: false, ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true, ticks: { precision: 0 } } } }),
    });
    upsert("success", "chart-success", {
      type: "line",
      data: { labels: labels, datasets: [{ label: "success %", data: success, borderColor: ok, backgroundColor: ok, spanGaps: true, tension: 0.25, pointRadius: 3 }] },
      options: Object.assign({}, common, { scales: { x: { ticks: { maxTicksLimit: 6 } }, y: { min: 0, max: 100 } } }),
    });
    var roles = data.cost_by_role;
    var roleColors = roles.map(function (row) { return css("--role-" + row.role) || info; });
    upsert("cost", "chart-cost", {
      type: "bar",
      data: { labels: roles.map(function (row) { return row.label + (row.simulated_tasks ? " (sim)" : ""); }),
        datasets: [{ label: "USD", data: roles.map(function (row) { return parseFloat(row.cost_usd); }), backgroundColor: roleColors }] },
      options: Object.assign({}, common, { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } }),
    });
  }
  function upsert(key, canvasId, config) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) return;
    if (charts[key] && charts[key].canvas === canvas) {
      charts[key].data = config.data;
      charts[key].update("none");
      return;
    }
    if (charts[key]) charts[key].destroy();
    charts[key] = new window.Chart(canvas, config);
  }

  // --- offline snapshot + service worker ------------------------------------------------------------------------
  function saveSnapshot() {
    if (body.dataset.page !== "overview") return;
    var main = document.getElementById("main");
    if (!main) return;
    var copy = main.cloneNode(true);
    $all("form, script, canvas, .chart-card", copy).forEach(function (el) { el.remove(); });
    store(SNAPSHOT_KEY, JSON.stringify({ at: body.dataset.generatedAt || new Date().toISOString(), saved: new Date().toISOString(), html: copy.innerHTML }));
  }

  function showSnapshot() {
    var target = $("[data-offline-snapshot]");
    if (!target) return;
    var meta = $("[data-offline-snapshot-meta]");
    var raw = load(SNAPSHOT_KEY);
    if (!raw) return;
    try {
      var snap = JSON.parse(raw);
      target.innerHTML = snap.html;
      if (meta) meta.textContent = "Offline — last updated " + new Date(snap.at).toLocaleString() + ".";
    } catch (e) { /* a broken snapshot is no snapshot */ }
  }

  function registerServiceWorker() {
    if (!("serviceWorker" in navigator) || !body.dataset.swUrl) return;
    navigator.serviceWorker.register(body.dataset.swUrl, { scope: "/" }).then(function (reg) {
      body.dataset.swState = "registered";
      document.dispatchEvent(new CustomEvent("hive:sw-registered", { detail: reg.scope }));
    }).catch(function () { body.dataset.swState = "failed"; });
  }

  // Sign-out forgets what this browser kept of the console: cached pages and the overview snapshot.
  // The sign-out answer also carries Clear-Site-Data; this covers browsers that ignore it.
  function forgetOnSignOut() {
    document.querySelectorAll("form[data-sign-out]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.cleared) return;
        event.preventDefault();
        form.dataset.cleared = "1";
        try { window.localStorage.removeItem(SNAPSHOT_KEY); } catch (e) { /* storage may be off */ }
        if (navigator.serviceWorker && navigator.serviceWorker.controller) {
          navigator.serviceWorker.controller.postMessage({ type: "hive:signed-out" });
        }
        var cleared = window.caches ? caches.keys().then(function (keys) {
          return Promise.all(keys.filter(function (key) { return key.indexOf("hive-pages") === 0; })
            .map(function (key) { return caches.delete(key); }));
        }) : Promise.resolve();
        var timeout = new Promise(function (resolve) { setTimeout(resolve, 1000); });
        Promise.race([cleared, timeout]).catch(function () {}).then(function () { form.submit(); });
      });
    });
  }

  // --- start -------------------------------------------------------------------------------------------------------
  function start() {
    var stored = parseInt(load(storageKey) || "0", 10) || 0;
    // the page is fresh: start from what it shows, never from an older cursor
    if (!lastEventId) lastEventId = stored;
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    setupReplay();
    renderCharts();
    document.addEventListener("hive:refreshed", function () { renderCharts(); tickCountdowns(); saveSnapshot(); });
    saveSnapshot();
    showSnapshot();
    registerServiceWorker();
    forgetOnSignOut();
    if (navigator.onLine === false) showOfflineBanner(true);
    window.addEventListener("offline", function () { setConn("offline"); showOfflineBanner(true); });
    window.addEventListener("online", function () { showOfflineBanner(false); if (!socket) { attempts = 0; connect(); } });
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
