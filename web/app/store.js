// What the resident app keeps on this device. Nothing here leaves the device
// except the device token (as a bearer token to this server).
const P = 'herold.';
const DEVICE_CACHE = 'herold-device';
const DEVICE_KEY = '/__herold/device';

function raw(k) { try { return localStorage.getItem(P + k); } catch { return null; } }
function setRaw(k, v) {
  try { if (v == null) localStorage.removeItem(P + k); else localStorage.setItem(P + k, v); } catch { /* private mode */ }
}
function json(k, d) { try { return JSON.parse(raw(k)) ?? d; } catch { return d; } }
function setJson(k, v) { setRaw(k, JSON.stringify(v)); }

// --- town
export const tenant = () => raw('tenant');
export const tenantName = () => raw('tenantName');
export function setTenant(slug, name) {
  if (slug !== tenant()) setRaw('tenantName', null);
  setRaw('tenant', slug);
  if (name) setRaw('tenantName', name);
}

// --- device token (also in the Cache API, where the service worker can read it)
export const token = () => raw('device');
export async function setToken(tok) {
  setRaw('device', tok);
  await mirrorToken(tok);
}
export async function mirrorToken(tok = token()) {
  if (!('caches' in window)) return;
  try {
    const c = await caches.open(DEVICE_CACHE);
    if (tok) await c.put(DEVICE_KEY, new Response(JSON.stringify({ token: tok }), { headers: { 'Content-Type': 'application/json' } }));
    else await c.delete(DEVICE_KEY);
  } catch { /* storage unavailable */ }
}
export async function forgetDevice() {
  setRaw('device', null);
  setRaw('followed', null);
  setRaw('issues', null); // a forgotten device's reports are gone with it
  setRaw('issueSeen', null);
  await mirrorToken(null);
}

// --- followed groups: {id: {id, name, tenant, verified}}
export const followed = () => json('followed', {});
export const isFollowing = (id) => Object.prototype.hasOwnProperty.call(followed(), id);
export function addFollowed(g) {
  const f = followed();
  f[g.id] = { id: g.id, name: g.name, tenant: g.tenant, verified: !!g.verified };
  setJson('followed', f);
}
export function removeFollowed(id) {
  const f = followed();
  delete f[id];
  setJson('followed', f);
}
export function setFollowed(list) {
  const f = {};
  for (const g of list) f[g.id] = { id: g.id, name: g.name, tenant: g.tenant, verified: !!g.verified };
  setJson('followed', f);
}

// --- read state (local only)
const MAX_READ = 1000;
export const readSet = () => new Set(json('read', []));
export function markRead(...ids) {
  const list = json('read', []).filter((x) => !ids.includes(x));
  list.push(...ids);
  setJson('read', list.slice(-MAX_READ));
}

// --- issue reports: which reports this device has, and when each was last seen
export const hasIssues = () => raw('issues') === '1';
export const setHasIssues = (yes) => setRaw('issues', yes ? '1' : null);
const issueSeen = () => json('issueSeen', {});
/** Unread: the report changed (the organization wrote) after it was last opened here. */
export const issueUnread = (issue) => !(issueSeen()[issue.id] >= issue.updated_at);
/** `at`: the report's `updated_at` (times are all RFC 3339 UTC with millis, so they sort as text). */
export function markIssueSeen(id, at) {
  const seen = issueSeen();
  if (at) seen[id] = at; else delete seen[id];
  setJson('issueSeen', seen);
}

// --- dismissed hints
export const dismissed = (k) => raw('hint.' + k) === '1';
export const dismiss = (k) => setRaw('hint.' + k, '1');
