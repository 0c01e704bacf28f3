/* Agent Hive service worker (served at /sw.js with scope "/").
 * Shell and static files: cache first. Pages: network first, the last good copy when offline,
 * else the offline page (which shows the overview snapshot kept in localStorage).
 * Never cached: the API, sockets, the admin, sign-in, API tokens and anything that is not a GET.
 * Sign-out (a message from the page, or a page answered by the sign-in form) empties the page cache. */
"use strict";

var VERSION = "__VERSION__";
var SHELL = __SHELL__;
var SHELL_CACHE = "hive-shell-" + VERSION;
var PAGE_CACHE = "hive-pages-v1";
var OFFLINE_URL = SHELL[0];
var BYPASS = /^\/(api|ws|admin|accounts|tokens|metrics|health|schema)(\/|$)/;
var SIGN_IN = /^\/accounts\/login\//;

function forgetPages() {
  return caches.delete(PAGE_CACHE);
}

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "hive:signed-out") event.waitUntil(forgetPages());
});

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL_CACHE).then(function (cache) { return cache.addAll(SHELL); }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (key) {
        return key.indexOf("hive-shell-") === 0 && key !== SHELL_CACHE;
      }).map(function (key) { return caches.delete(key); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin || BYPASS.test(url.pathname)) return;

  if (request.mode === "navigate") {
    event.respondWith(
      fetch(request).then(function (response) {
        if (response.redirected && SIGN_IN.test(new URL(response.url).pathname)) {
          forgetPages();  // signed out (or the sign-in ended elsewhere): keep no page of the console
          return response;
        }
        if (response.ok && !response.redirected) {
          var copy = response.clone();
          caches.open(PAGE_CACHE).then(function (cache) { cache.put(request, copy); });
        }
        return response;
      }).catch(function () {
        return caches.match(request, { cacheName: PAGE_CACHE }).then(function (hit) {
          return hit || caches.match(OFFLINE_URL);
        });
      })
    );
    return;
  }

  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(
      caches.match(request).then(function (hit) {
        var network = fetch(request).then(function (response) {
          if (response.ok) {
            var copy = response.clone();
            caches.open(SHELL_CACHE).then(function (cache) { cache.put(request, copy); });
          }
          return response;
        }).catch(function () { return hit; });
        return hit || network;
      })
    );
  }
});
