// Resident app: start-up, routing (History API), navigation, hints.
import { initI18n, t, translate } from '../common/i18n.js';
import { h, $, clear, screenBusy, screenReady, announce } from '../common/dom.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import * as device from './device.js';
import { icon, errorView } from './ui.js';
import * as towns from './towns.js';
import * as directory from './directory.js';
import * as group from './group.js';
import * as message from './message.js';
import * as inbox from './inbox.js';
import * as settings from './settings.js';
import * as newIssue from './newissue.js';
import * as issue from './issue.js';
import * as session from './session.js';

const ROUTES = [
  [/^\/towns\/?$/, 'towns', towns],
  [/^\/inbox\/?$/, 'inbox', inbox],
  [/^\/settings\/?$/, 'settings', settings],
  [/^\/g\/([^/]+)\/?$/, 'group', group],
  [/^\/m\/([^/]+)\/?$/, 'message', message],
  [/^\/g\/([^/]+)\/report\/?$/, 'new-issue', newIssue],
  [/^\/reports\/?$/, 'issues', issue.list],
  [/^\/r\/([^/]+)\/?$/, 'issue', issue],
  [/^\/q\/([^/]+)\/?$/, 'session', session],
  [/^\/$/, 'directory', directory],
];

function match(path) {
  for (const [re, name, mod] of ROUTES) {
    const m = re.exec(path);
    if (m) return { name, mod, param: m[1] && decodeURIComponent(m[1]) };
  }
  return null;
}

let seq = 0;
let first = true;
let active = null; // the screen's module: may have leave() (stop live updates) and onPush(data)

export async function route({ focus = true } = {}) {
  const my = ++seq;
  screenBusy();
  if (active && active.leave) active.leave();
  active = null;
  let r = match(location.pathname) || { name: 'notfound' };
  if (r.name === 'directory' && !store.tenant()) r = { name: 'towns', mod: towns };
  const main = $('#main');
  main.setAttribute('aria-busy', 'true');
  updateNav(r.name);
  let view;
  let name = r.name;
  try {
    if (!r.mod) throw Object.assign(new Error('not found'), { status: 404 });
    view = await r.mod.render({ param: r.param, query: new URLSearchParams(location.search), isCurrent: () => my === seq, refresh: () => route() });
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    console.warn(e);
    view = errorView(e);
    name = 'error';
  }
  if (my !== seq) { if (name !== 'error' && r.mod.leave) r.mod.leave(); return; }
  if (name !== 'error') active = r.mod;
  clear(main).append(view);
  main.removeAttribute('aria-busy');
  updateBrand();
  if (!first && focus) {
    const h1 = main.querySelector('h1');
    (h1 || main).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
  first = false;
  renderHints(name);
  screenReady(name);
}

export function navigate(url, { replace = false } = {}) {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin || !match(u.pathname)) { location.assign(u.href); return; }
  if (replace) history.replaceState(null, '', u.pathname + u.search + u.hash);
  else history.pushState(null, '', u.pathname + u.search + u.hash);
  route();
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || !match(u.pathname)) return;
  if (u.pathname === location.pathname && u.search === location.search && u.hash) return;
  e.preventDefault();
  navigate(u.href);
});
window.addEventListener('popstate', () => route());

// --- chrome: navigation, brand, footer, hints
const NAV = { directory: ['home', 'resident.nav.directory'], inbox: ['inbox', 'resident.nav.inbox'], settings: ['settings', 'resident.nav.settings'] };

function buildNav() {
  const nav = $('#main-nav');
  nav.setAttribute('aria-label', t('resident.nav.label'));
  for (const a of nav.querySelectorAll('a[data-nav]')) {
    const [ic, key] = NAV[a.dataset.nav];
    clear(a).append(icon(ic), h('span', null, t(key)));
    if (a.dataset.nav === 'inbox') {
      a.append(h('span', { class: 'nav-count', id: 'unread-count', 'aria-hidden': 'true', hidden: true }),
        h('span', { class: 'visually-hidden', id: 'unread-sr' }));
    }
  }
}

function updateNav(name) {
  // "My reports" lives in the inbox: replies come in like messages (and a
  // fourth tab would not fit a small phone's navigation in German).
  const SECTION = { group: 'directory', towns: 'directory', 'new-issue': 'directory', session: 'directory',
    message: 'inbox', issues: 'inbox', issue: 'inbox' };
  const current = SECTION[name] || name;
  for (const a of document.querySelectorAll('#main-nav a[data-nav]')) {
    if (a.dataset.nav === current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function updateBrand() {
  const el = $('#brand-town');
  const name = store.tenantName();
  if (el) el.textContent = name ? '· ' + name : '';
  const slug = store.tenant();
  if (slug && !name && !updateBrand.asked) {
    updateBrand.asked = true; // opened straight from a group link: learn the town's name once
    api('/tenants').then(({ items }) => {
      const town = items.find((x) => x.slug === slug);
      if (town) { store.setTenant(slug, town.name); updateBrand(); }
    }).catch(() => {});
  }
}

let unreadMessages = 0;
let unreadIssues = 0;

/** The inbox's count: unread messages and reports with a new reply. */
export function setUnread(messages = unreadMessages, issues = unreadIssues) {
  unreadMessages = messages;
  unreadIssues = issues;
  const el = $('#unread-count');
  if (!el) return;
  const n = messages + issues;
  el.hidden = !n;
  el.textContent = n > 99 ? '99+' : String(n);
  $('#unread-sr').textContent = [
    messages ? t('resident.inbox.unreadCount', { count: messages }) : '',
    issues ? t('resident.issues.unreadCount', { count: issues }) : '',
  ].filter(Boolean).map((s) => ', ' + s).join('');
}

function buildFooter() {
  const f = $('#footer');
  const live = $('#live');
  clear(f).append(
    h('p', null, t('resident.footer.privacy')),
    h('p', null, h('a', { href: '/org' }, t('resident.footer.org'))),
    live || '');
}

let installEvent = null;
window.addEventListener('beforeinstallprompt', (e) => {
  e.preventDefault();
  installEvent = e;
  renderHints();
});
window.addEventListener('appinstalled', () => { installEvent = null; renderHints(); });

export const canInstall = () => !!installEvent;
export async function install() {
  if (!installEvent) return false;
  const ev = installEvent;
  installEvent = null;
  ev.prompt();
  const choice = await ev.userChoice.catch(() => null);
  renderHints();
  return choice && choice.outcome === 'accepted';
}

function hint(key, title, text, action) {
  return h('div', { class: 'notice hint', dataset: { hint: key } },
    h('div', null, h('strong', { class: 'title' }, title), h('p', null, text)),
    h('button', { type: 'button', class: 'btn-quiet dismiss', 'aria-label': t('resident.hint.dismiss'),
      onclick: () => { store.dismiss(key); renderHints(); } }, icon('x')),
    action ? h('div', { class: 'actions' }, action) : null);
}

let hintScreen = '';
export function renderHints(screen = hintScreen) {
  hintScreen = screen;
  const box = $('#hints');
  if (!box) return;
  clear(box);
  // Only on the start screens: elsewhere the content comes first.
  if (screen !== 'directory' && screen !== 'towns') { box.hidden = true; return; }
  if (device.needsHomeScreen() && !store.dismissed('ios')) {
    box.append(hint('ios', t('resident.hint.iosTitle'), t('resident.hint.ios')));
  } else if (installEvent && !store.dismissed('install')) {
    box.append(hint('install', t('resident.hint.installTitle'), t('resident.hint.install'),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: install }, icon('install'), t('resident.hint.installButton'))));
  }
  box.hidden = !box.firstChild;
}

export async function refreshUnread() {
  try {
    const page = await device.deviceApi('/devices/me/inbox?limit=50');
    const read = store.readSet();
    setUnread(page ? page.items.filter((m) => !read.has(m.id)).length : 0);
  } catch { /* offline: keep the last count */ }
  try {
    const page = store.hasIssues() ? await device.deviceApi('/devices/me/issues?limit=50') : null;
    setUnread(undefined, page ? page.items.filter((i) => store.issueUnread(i)).length : 0);
  } catch { /* offline */ }
}

/** Re-draws everything after a language change. */
export async function relabel() {
  translate(document);
  buildNav();
  buildFooter();
  $('#hints').setAttribute('aria-label', t('resident.hint.label'));
  renderHints();
  await route();
  refreshUnread();
}

async function start() {
  await initI18n(['common', 'resident']);
  translate(document);
  buildNav();
  buildFooter();
  $('#hints').setAttribute('aria-label', t('resident.hint.label'));
  renderHints();
  device.registerSW();
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (e) => {
      const d = e.data || {};
      if (d.type === 'navigate' && d.url) navigate(d.url);
      else if (d.type === 'push') {
        refreshUnread();
        const screen = document.body.dataset.screen;
        // A screen showing what the push is about updates itself (and says so).
        if (active && active.onPush && active.onPush(d)) return;
        if (screen === 'inbox' || screen === 'issues') route({ focus: false });
        if (d.title) announce(t(d.kind === 'issue' || d.kind === 'answer' ? 'resident.talk.arrived' : 'resident.inbox.arrived', { title: d.title }));
      }
    });
  }
  await route();
  // Keep the server's copy of the push subscription fresh, then the unread count.
  device.refreshPush().catch((e) => console.warn('push refresh', e));
  if (store.token()) device.syncFollowed().catch(() => {});
  refreshUnread();
}

start().catch((e) => {
  console.error(e);
  const main = $('#main');
  clear(main).append(h('h1', null, 'Herold'), h('p', null, 'Die App konnte nicht starten. / The app could not start.'));
  screenReady('error');
});
