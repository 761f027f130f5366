// Push permission, the browser's push subscription and this device's token.
import { api, ApiError } from '../common/api.js';
import * as store from './store.js';
import { localeURLs } from '../common/i18n.js';

export const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
export const permission = () => ('Notification' in window ? Notification.permission : 'unsupported');
export const isIOS = () => /iP(hone|ad|od)/.test(navigator.userAgent) || (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);
export const isStandalone = () => matchMedia('(display-mode: standalone)').matches || navigator.standalone === true;
/** iOS Safari outside the Home Screen: no push until the app is added. */
export const needsHomeScreen = () => isIOS() && !isStandalone();

let registration;
export function registerSW() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  registration ||= navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => {
    console.warn('service worker', e);
    return null;
  });
  // The strings of the language in use are not precached (only one language is
  // needed, and all of them would not fit the first-load budget): ask the
  // worker to keep this one for offline starts.
  navigator.serviceWorker.ready.then((reg) => reg.active && reg.active.postMessage({ type: 'keep', urls: localeURLs() }))
    .catch(() => {});
  return registration;
}

async function ready() {
  await registerSW();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ApiError(0, 'sw_unavailable', 'service worker not ready')), 15000);
  });
  try { return await Promise.race([navigator.serviceWorker.ready, timeout]); } finally { clearTimeout(timer); }
}

function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

const subJson = (sub) => (typeof sub.toJSON === 'function' ? sub.toJSON() : sub);

/** pushManager.subscribe with the server's key; a subscription made with another key is replaced. */
async function subscribe(reg) {
  const { public_key: key } = await api('/push/vapid-public-key');
  const opts = { userVisibleOnly: true, applicationServerKey: keyBytes(key) };
  try { return await reg.pushManager.subscribe(opts); } catch (e) {
    const old = await reg.pushManager.getSubscription();
    if (!old) throw e;
    await old.unsubscribe();
    return reg.pushManager.subscribe(opts);
  }
}

/** Asks for permission (call straight from a tap). Returns the permission state. */
export async function askPermission() {
  if (!pushSupported()) return 'unsupported';
  if (Notification.permission !== 'default') return Notification.permission;
  return Notification.requestPermission();
}

/** The device token, registering this browser's push subscription first if needed. */
export async function ensureDevice() {
  const have = store.token();
  if (have) return have;
  const sub = await subscribe(await ready());
  const { device_token: tok } = await api('/devices', { method: 'POST', body: subJson(sub) });
  await store.setToken(tok);
  return tok;
}

/** Calls `call(token)`, registering this device first if needed (a 401: the server forgot it, so again). */
export async function withDevice(call) {
  let tok = await ensureDevice();
  try { return await call(tok); } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    await store.forgetDevice(); // erased on the server (e.g. purged): start afresh
    tok = await ensureDevice();
    return call(tok);
  }
}

export async function follow(group) {
  const view = await withDevice((tok) => api('/devices/me/subscriptions/' + encodeURIComponent(group.id), { method: 'PUT', token: tok }));
  store.addFollowed(view || group);
  return view;
}

export async function unfollow(id) {
  const tok = store.token();
  if (tok) {
    try { await api('/devices/me/subscriptions/' + encodeURIComponent(id), { method: 'DELETE', token: tok }); } catch (e) {
      if (e.status !== 401) throw e;
      await store.forgetDevice();
    }
  }
  store.removeFollowed(id);
}

/** Calls the API with the device token; a 401 means the server forgot us. */
export async function deviceApi(path, opts = {}) {
  const tok = store.token();
  if (!tok) return null;
  try { return await api(path, { ...opts, token: tok }); } catch (e) {
    if (e.status === 401) { await store.forgetDevice(); return null; }
    throw e;
  }
}

export async function syncFollowed() {
  const page = await deviceApi('/devices/me/subscriptions');
  if (page) store.setFollowed(page.items);
  return page ? page.items : [];
}

/** On every start: tell the server the current subscription (it may have changed). */
export async function refreshPush() {
  if (!store.token() || !pushSupported()) return;
  await store.mirrorToken();
  if (Notification.permission !== 'granted') return;
  const reg = await ready();
  const sub = (await reg.pushManager.getSubscription()) || (await subscribe(reg));
  if (sub) await deviceApi('/devices/me/push', { method: 'PUT', body: subJson(sub) });
}

/** "Delete all my data": server, push subscription, local storage, data caches. */
export async function eraseAll() {
  const tok = store.token();
  if (tok) {
    try { await api('/devices/me', { method: 'DELETE', token: tok }); } catch (e) {
      if (e.status !== 401 && e.status !== 404) throw e;
    }
  }
  try {
    const reg = 'serviceWorker' in navigator && (await navigator.serviceWorker.getRegistration('/'));
    const sub = reg && (await reg.pushManager.getSubscription());
    if (sub) await sub.unsubscribe();
  } catch { /* nothing to unsubscribe */ }
  try { localStorage.clear(); sessionStorage.clear(); } catch { /* ignore */ }
  if ('caches' in window) {
    // The app shell holds no personal data and keeps the app working offline.
    for (const k of await caches.keys()) if (!k.startsWith('herold-shell-')) await caches.delete(k);
  }
  try { indexedDB.deleteDatabase('herold'); } catch { /* ignore */ }
}
