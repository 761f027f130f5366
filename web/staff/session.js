// The staff session shared by /org and /admin: the access token lives in
// memory only, the rotating refresh token in localStorage. Refreshes are
// serialised across tabs (Web Locks) and always use the newest stored refresh
// token, so two tabs never present the same (already rotated) token — the
// server would treat that as reuse and end the whole session.
import { api, ApiError } from '../common/api.js';

const KEY = 'herold.staff.refresh';
const LOCK = 'herold.staff.refresh';
/** Refresh this long before the access token expires. */
const EARLY_MS = 60_000;

let access = null;
let expiresAt = 0;
let timer = 0;
let inflight = null;
let meCache = null;
const expiredListeners = new Set();

function stored() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}
function store(token) {
  try {
    if (token) localStorage.setItem(KEY, token); else localStorage.removeItem(KEY);
  } catch { /* private mode: the session lasts as long as the tab */ }
}

function withLock(fn) {
  if (navigator.locks && navigator.locks.request) return navigator.locks.request(LOCK, fn);
  return fn();
}

function accept(pair) {
  access = pair.access_token;
  expiresAt = Date.now() + Math.max(30, Number(pair.expires_in) || 900) * 1000;
  if (pair.refresh_token) store(pair.refresh_token);
  clearTimeout(timer);
  timer = setTimeout(() => { refresh().catch(() => {}); }, Math.max(5_000, expiresAt - Date.now() - EARLY_MS));
}

function drop() {
  access = null;
  expiresAt = 0;
  meCache = null;
  clearTimeout(timer);
}

function expired() {
  drop();
  for (const fn of expiredListeners) {
    try { fn(); } catch { /* a listener's problem */ }
  }
}

/** Called when the session ended on its own (refresh refused, logged out in another tab). */
export function onExpired(fn) {
  expiredListeners.add(fn);
  return () => expiredListeners.delete(fn);
}

/** Exchanges the stored refresh token for a new pair; one at a time per browser. */
export function refresh() {
  if (inflight) return inflight;
  inflight = withLock(async () => {
    const token = stored();
    if (!token) throw new ApiError(401, 'unauthenticated', 'no session');
    try {
      accept(await api('/auth/refresh', { method: 'POST', body: { refresh_token: token } }));
      return access;
    } catch (e) {
      // Refused (expired, revoked, reused): the session is over. A network
      // error leaves the token for a later try.
      if (e instanceof ApiError && (e.status === 401 || e.status === 400 || e.status === 422)) {
        if (stored() === token) store(null);
        expired();
      }
      throw e;
    }
  }).finally(() => { inflight = null; });
  return inflight;
}

/** True when a session could be resumed (access token present or refreshable). */
export async function resume() {
  if (access && Date.now() < expiresAt - 5_000) return true;
  if (!stored()) return false;
  try {
    await refresh();
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'network') throw e;
    return false;
  }
}

export function isLoggedIn() {
  return Boolean(access);
}

export async function login(email, password) {
  const pair = await api('/auth/login', { method: 'POST', body: { email, password } });
  meCache = null;
  accept(pair);
  return pair.user;
}

/** Registers a person with a new organization (pending the town's approval). */
export async function register({ email, password, organization }) {
  const res = await api('/auth/register', { method: 'POST', body: { email, password, organization } });
  meCache = null;
  accept(res);
  return res;
}

/** An invited member sets a password with the invitation token and is logged in. */
export async function acceptInvite(inviteToken, password) {
  const previous = stored();
  const pair = await api('/auth/accept-invite', { method: 'POST', body: { invite_token: inviteToken, password } });
  meCache = null;
  accept(pair);
  // Someone else was logged in in this browser: end that session on the server.
  if (previous) api('/auth/logout', { method: 'POST', body: { refresh_token: previous } }).catch(() => {});
  return pair.user;
}

export async function logout() {
  const token = stored();
  store(null);
  drop();
  if (token) {
    try { await api('/auth/logout', { method: 'POST', body: { refresh_token: token } }); } catch { /* gone anyway */ }
  }
}

async function token() {
  if (access && Date.now() < expiresAt - 15_000) return access;
  return refresh();
}

/**
 * An authenticated API call: refreshes first when the access token is about
 * to expire, and once more (then retries) when the server answers 401.
 */
export async function call(path, opts = {}) {
  let t = await token();
  try {
    return await api(path, { ...opts, token: t });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    t = await refresh();
    return api(path, { ...opts, token: t });
  }
}

/**
 * An authenticated GET of binary content (photos need the Authorization
 * header, so an `<img src>` cannot load them): resolves with a Blob.
 */
export async function blob(path, { signal } = {}) {
  const get = async (tok) => {
    let res;
    try {
      res = await fetch('/api/v1' + path, { headers: { Authorization: 'Bearer ' + tok }, signal, credentials: 'same-origin' });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', e && e.message);
    }
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch { data = null; }
      const err = data || {};
      throw new ApiError(res.status, err.code, err.message || res.statusText, { field: err.field });
    }
    return res.blob();
  };
  let tok = await token();
  try {
    return await get(tok);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    tok = await refresh();
    return get(tok);
  }
}

/** `GET /me`: {id, email, platform_admin, organizations[], city_admin_of[]}; cached until `force`. */
export async function me(force = false) {
  if (!meCache || force) meCache = await call('/me');
  return meCache;
}

// Another tab logged out (removed the refresh token): end this tab's session too.
window.addEventListener('storage', (ev) => {
  if (ev.key === KEY && !ev.newValue && access) expired();
});

// Timers are throttled in background tabs: check again when the tab comes back.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && access && Date.now() > expiresAt - EARLY_MS) {
    refresh().catch(() => {});
  }
});
