// Herold service worker: shows pushes, opens messages, keeps the app and the
// last inbox available offline, and follows push-subscription changes.
const VERSION = '{{version}}';
const BASE = '{{base}}';
const SHELL = {{shell}};
const SHELL_CACHE = 'herold-shell-' + VERSION;
const DATA_CACHE = 'herold-data';
const DEVICE_CACHE = 'herold-device';
const DEVICE_KEY = '/__herold/device';
const ICON = BASE + '/icons/icon-192.png';
const BADGE = BASE + '/icons/badge-96.png';

self.addEventListener('install', (event) => {
  // One missing file must not stop the worker (and with it notifications) from installing.
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => Promise.all(SHELL.map((url) =>
    fetch(url, { cache: 'no-cache' }).then((res) => (res.ok ? cache.put(url, res) : null)).catch(() => null)))));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith('herold-shell-') && key !== SHELL_CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

// --- fetch: shell offline, API data network-first with a cached fallback
const APP_ROUTE = /^\/(?:$|towns\/?$|inbox\/?$|settings\/?$|reports\/?$|g\/[^/]+(?:\/report)?\/?$|[mrq]\/[^/]+\/?$)/;
// Public reading and the device's own data (its inbox, its reports). Live
// streams, photos and anything sent with a staff token are never kept.
const CACHED_API = /^\/api\/v1\/(?:devices\/me\/(?:inbox|subscriptions|issues(?:\/[^/]+)?)|tenants(?:\/[^/]+\/groups)?|groups\/[^/]+(?:\/(?:messages|intake|sessions|board))?|messages\/[^/]+|sessions\/[^/]+)$/;

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.mode === 'navigate' && APP_ROUTE.test(url.pathname)) {
    event.respondWith(navigation(req));
  } else if (url.pathname.startsWith('/v/')) {
    event.respondWith(asset(req, url));
  } else if (CACHED_API.test(url.pathname) && residentRequest(req)) {
    event.respondWith(networkFirst(req));
  } else if (url.pathname === '/manifest.webmanifest') {
    event.respondWith(fetch(req).catch(() => caches.match(req, { ignoreSearch: true }).then((r) => r || Response.error())));
  }
});

// Only what a resident reads is kept for offline reading: anonymous requests
// and the device's own (`hdv_` token). A staff login sees members-only data
// (delivery statistics, scheduled messages) that must not land in a cache
// under the public feed's URL.
function residentRequest(req) {
  const auth = req.headers.get('Authorization');
  return !auth || auth.startsWith('Bearer hdv_');
}

async function navigation(req) {
  try {
    const res = await fetch(req);
    if (res.ok) {
      const copy = res.clone();
      caches.open(SHELL_CACHE).then((c) => c.put('/', copy)).catch(() => {});
    }
    return res;
  } catch (e) {
    const cached = (await caches.match('/', { cacheName: SHELL_CACHE })) || (await caches.match('/'));
    if (cached) return cached;
    throw e;
  }
}

// The page names versioned files it needs offline that are not precached
// (the strings of its language).
self.addEventListener('message', (event) => {
  const data = event.data || {};
  if (data.type !== 'keep' || !Array.isArray(data.urls)) return;
  event.waitUntil(caches.open(SHELL_CACHE).then((cache) => Promise.all(data.urls
    .map((u) => new URL(u, self.location.origin))
    .filter((u) => u.origin === self.location.origin && u.pathname.startsWith(BASE + '/'))
    .map(async (u) => { if (!(await cache.match(u.href))) await cache.add(u.href); }))).catch(() => {}));
});

async function asset(req, url) {
  const cached = await caches.match(req, { ignoreVary: true });
  if (cached) return cached;
  try {
    const res = await fetch(req);
    // Files of this version are immutable: keep what the app fetched.
    if (res.ok && url.pathname.startsWith(BASE + '/')) {
      const copy = res.clone();
      caches.open(SHELL_CACHE).then((c) => c.put(req, copy)).catch(() => {});
    }
    return res;
  } catch (e) {
    // An older page asking for an asset of another version: same file, today's version.
    const m = /^\/v\/[^/]+\/(.*)$/.exec(url.pathname);
    const other = m && (await caches.match(BASE + '/' + m[1]));
    if (other) return other;
    throw e;
  }
}

async function networkFirst(req) {
  const cache = await caches.open(DATA_CACHE);
  try {
    const res = await fetch(req);
    if (res.ok) await cache.put(req, res.clone());
    else if (res.status === 404 || res.status === 410 || res.status === 401) await cache.delete(req, { ignoreVary: true });
    return res;
  } catch (e) {
    const cached = await cache.match(req, { ignoreVary: true });
    if (cached) return cached;
    throw e;
  }
}

// --- push: always show a notification, whatever arrives
function parse(data) {
  if (!data) return {};
  try { return data.json() || {}; } catch {
    try { return { text: data.text() }; } catch { return {}; }
  }
}

function localPath(navigate, fallback) {
  try {
    const u = new URL(navigate, self.location.origin);
    return u.pathname + u.search + u.hash;
  } catch { return fallback; }
}

self.addEventListener('push', (event) => {
  const p = parse(event.data);
  const n = (p && typeof p.notification === 'object' && p.notification) || {};
  const herold = (p && typeof p.herold === 'object' && p.herold) || {};
  const id = herold.message_id || null;
  const kind = herold.kind || (id ? 'message' : 'other');
  const url = kind === 'message' || kind === 'alert'
    ? (id ? '/m/' + encodeURIComponent(id) : '/inbox')
    : localPath(n.navigate || '/', '/');
  const title = String(n.title || p.title || 'Herold');
  const body = String(n.body || p.body || p.text || '');
  const options = {
    body,
    icon: ICON,
    badge: BADGE,
    tag: String(n.tag || id || 'herold'),
    renotify: false,
    lang: n.lang || undefined,
    timestamp: herold.published_at ? Date.parse(herold.published_at) || Date.now() : Date.now(),
    requireInteraction: kind === 'alert' || herold.urgency === 'high',
    data: { navigate: n.navigate || url, url, message_id: id, group_id: herold.group_id || null, kind },
  };
  event.waitUntil((async () => {
    await self.registration.showNotification(title, options);
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const c of wins) c.postMessage({ type: 'push', message_id: id, title, kind, url });
  })());
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = data.url || (data.message_id ? '/m/' + encodeURIComponent(data.message_id) : localPath(data.navigate || '/', '/'));
  event.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const app = wins.find((c) => {
      const p = new URL(c.url).pathname;
      return new URL(c.url).origin === self.location.origin && !p.startsWith('/org') && !p.startsWith('/admin');
    });
    if (app) {
      try { await app.focus(); } catch { /* focus may be refused */ }
      // The page routes in place (no reload); a controlled page is also navigated by URL as a fallback.
      app.postMessage({ type: 'navigate', url });
      return;
    }
    if (self.clients.openWindow) await self.clients.openWindow(url);
  })());
});

// --- the push service replaced our subscription: tell the server
async function deviceToken() {
  try {
    const res = await caches.match(DEVICE_KEY, { cacheName: DEVICE_CACHE });
    return res ? (await res.json()).token : null;
  } catch { return null; }
}

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const token = await deviceToken();
    if (!token) return;
    let sub = event.newSubscription;
    if (!sub) {
      let options = event.oldSubscription && event.oldSubscription.options;
      if (!options || !options.applicationServerKey) {
        const res = await fetch('/api/v1/push/vapid-public-key');
        const { public_key: key } = await res.json();
        const s = atob(key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (key.length % 4)) % 4));
        options = { userVisibleOnly: true, applicationServerKey: Uint8Array.from(s, (c) => c.charCodeAt(0)) };
      }
      sub = await self.registration.pushManager.subscribe(options);
    }
    await fetch('/api/v1/devices/me/push', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
      body: JSON.stringify(sub.toJSON()),
    });
  })());
});
