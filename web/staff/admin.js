// The city-admin console (/admin): entry point, town choice, navigation.
// Screens live in admin-*.js.
import { h } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as session from './session.js';
import { startApp } from './shell.js';
import { add, pageHead, emptyState, icon } from './ui.js';
import { queueScreen } from './admin-orgs.js';
import { groupsScreen } from './admin-groups.js';
import { reportsScreen, hiddenScreen } from './admin-reports.js';
import { alertScreen } from './admin-alert.js';
import { auditScreen } from './admin-audit.js';

const TOWN = 'herold.admin.tenant';

function remembered() {
  try { return localStorage.getItem(TOWN); } catch { return null; }
}
function remember(slug) {
  try { localStorage.setItem(TOWN, slug); } catch { /* private mode */ }
}

async function context() {
  const [me, tenants] = await Promise.all([session.me(true), api('/tenants').then(r => r.items)]);
  const mine = me.city_admin_of || [];
  const towns = me.platform_admin ? tenants : tenants.filter(x => mine.includes(x.slug));
  // A town administered but not listed publicly (should not happen) still counts.
  for (const slug of mine) if (!towns.some(x => x.slug === slug)) towns.push({ slug, name: slug });
  const saved = towns.find(x => x.slug === remembered());
  const town = saved || (towns.length === 1 || !me.platform_admin ? towns[0] || null : null);
  const data = { me, tenants, towns, town, admin: Boolean(me.platform_admin || mine.length), counts: {} };
  if (town) await loadCounts(data);
  return data;
}

/** Open items for the navigation badges (pending organizations, open reports). */
export async function loadCounts(data) {
  const slug = encodeURIComponent(data.town.slug);
  const [orgs, reports] = await Promise.allSettled([
    session.call('/admin/tenants/' + slug + '/organizations?status=pending&limit=100'),
    session.call('/admin/tenants/' + slug + '/reports?status=open&limit=100'),
  ]);
  const count = (r) => (r.status === 'fulfilled' ? (r.value.next ? '99+' : r.value.items.length) : 0);
  data.counts = { pending: count(orgs), reports: count(reports) };
}

function nav(ctx) {
  const d = ctx.data;
  if (!d.admin) return [{ href: '/org', label: t('admin.nav.org'), icon: 'groups' }];
  const items = [];
  if (d.town) {
    items.push(
      { href: '/admin', label: t('admin.nav.queue'), icon: 'building', count: d.counts.pending || null },
      { href: '/admin/groups', label: t('admin.nav.groups'), icon: 'groups' },
      { href: '/admin/reports', label: t('admin.nav.reports'), icon: 'flag', count: d.counts.reports || null },
      { href: '/admin/hidden', label: t('admin.nav.hidden'), icon: 'eyeoff' },
      { href: '/admin/alert', label: t('admin.nav.alert'), icon: 'alert' },
      { href: '/admin/audit', label: t('admin.nav.audit'), icon: 'list' },
    );
  }
  if (d.me.platform_admin || d.towns.length > 1) items.push({ href: '/admin/towns', label: t('admin.nav.towns'), icon: 'map' });
  items.push({ href: '/org', label: t('admin.nav.org'), icon: 'send' });
  return items;
}

function switcher(ctx) {
  const d = ctx.data;
  if (!d.town) return null;
  if (d.towns.length < 2) {
    return h('div', { class: 'context-chip' }, h('span', { class: 'context-sub' }, t('admin.town')),
      h('span', { class: 'context-name' }, d.town.name));
  }
  const sel = h('select', { id: 'town-switch' },
    d.towns.map(x => h('option', { value: x.slug, selected: x.slug === d.town.slug }, x.name)));
  sel.addEventListener('change', () => {
    remember(sel.value);
    ctx.state.data = null;
    ctx.go(location.pathname === '/admin/towns' ? '/admin' : location.pathname);
  });
  return h('div', { class: 'context-switch' }, h('label', { for: 'town-switch', class: 'context-label' }, t('admin.town')), sel);
}

/** Wraps a screen: no admin rights → explanation; no town chosen → the town list. */
function guarded(screen) {
  return async (ctx) => {
    if (!ctx.data.admin) return noAccess(ctx);
    if (!ctx.data.town) return townsScreen(ctx);
    return screen(ctx);
  };
}

async function noAccess(ctx) {
  add(ctx.main, pageHead(t('admin.no_access_title'), null),
    h('div', { class: 'notice notice-warn', id: 'admin-no-access' },
      h('p', {}, t('admin.no_access_text', { email: ctx.data.me.email })),
      h('p', {}, h('a', { href: '/org' }, t('admin.no_access_org')))));
  ctx.ready('no-access', t('admin.no_access_title'));
}

async function townsScreen(ctx) {
  if (!ctx.data.admin) return noAccess(ctx);
  const d = ctx.data;
  const list = h('ul', { class: 'town-cards' }, d.towns.map(x => h('li', {},
    h('a', { href: '/admin', class: 'card town-card', dataset: { tenant: x.slug }, 'aria-current': d.town && d.town.slug === x.slug ? 'true' : null },
      icon('map'), h('span', { class: 'town-name' }, x.name), h('span', { class: 'muted small' }, x.slug)))));
  list.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[data-tenant]');
    if (!a) return;
    remember(a.dataset.tenant);
    ctx.state.data = null;
  });
  add(ctx.main, pageHead(t('admin.towns_title'), t('admin.towns_lead')),
    d.towns.length ? list : emptyState(t('admin.towns_none')));
  ctx.ready('towns', t('admin.towns_title'));
}

async function notFound(ctx) {
  add(ctx.main, pageHead(t('staff.not_found_title')),
    emptyState(t('staff.not_found_text'), h('a', { href: '/admin' }, t('admin.back_home'))));
  ctx.ready('not-found', t('staff.not_found_title'));
}

startApp({
  area: 'admin',
  // The console shows message rows, group forms and previews whose strings live with the dashboard's.
  namespaces: ['org'],
  context,
  nav,
  switcher,
  notFound: { screen: notFound },
  routes: [
    { pattern: /^\/admin$/, screen: guarded(queueScreen) },
    { pattern: /^\/admin\/towns$/, screen: townsScreen },
    { pattern: /^\/admin\/groups$/, screen: guarded(groupsScreen) },
    { pattern: /^\/admin\/reports$/, screen: guarded(reportsScreen) },
    { pattern: /^\/admin\/hidden$/, screen: guarded(hiddenScreen) },
    { pattern: /^\/admin\/alert$/, screen: guarded(alertScreen) },
    { pattern: /^\/admin\/audit$/, screen: guarded(auditScreen) },
  ],
});
