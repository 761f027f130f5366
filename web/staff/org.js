// The organization dashboard (/org): entry point, routes, navigation and the
// organization switcher. Screens live in org-*.js.
import { h } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as session from './session.js';
import { startApp } from './shell.js';
import { add, statusBadge, pageHead, emptyState } from './ui.js';
import { registerScreen, inviteScreen, newOrgScreen, homeScreen } from './org-account.js';
import { groupSettingsScreen } from './org-groups.js';
import { composeScreen, historyScreen } from './org-messages.js';
import { membersScreen, tokensScreen } from './org-team.js';
import { posterScreen } from './org-poster.js';
import { issuesScreen, issueScreen, blocksScreen, loadNewCount } from './org-issues.js';
import { groupSessionsScreen, sessionsScreen, sessionScreen } from './org-sessions.js';

const CURRENT = 'herold.org.current';

function remembered() {
  try { return localStorage.getItem(CURRENT); } catch { return null; }
}
export function rememberOrg(id) {
  try { localStorage.setItem(CURRENT, id); } catch { /* private mode */ }
}

async function context() {
  const [me, tenants] = await Promise.all([
    session.me(true),
    api('/tenants').then(r => r.items).catch(() => []),
  ]);
  const orgs = me.organizations || [];
  const org = orgs.find(o => o.id === remembered()) || orgs[0] || null;
  const data = {
    me, tenants, orgs, org, counts: {},
    isOwner: Boolean(org && org.role === 'owner'),
    tenantName: (slug) => (tenants.find(x => x.slug === slug) || { name: slug }).name,
  };
  await loadNewCount(data);
  return data;
}

function nav(ctx) {
  const d = ctx.data;
  const items = [];
  if (d.org) {
    items.push({
      href: '/org', label: t('org.nav.groups'), icon: 'groups',
      current: p => p === '/org' || p.startsWith('/org/groups') || p.startsWith('/org/poster'),
    });
    items.push({
      href: '/org/issues', label: t('org.nav.issues'), icon: 'inbox', count: d.counts.issues || null,
      current: p => p.startsWith('/org/issues') || p === '/org/blocks',
    });
    items.push({
      href: '/org/sessions', label: t('org.nav.sessions'), icon: 'chat',
      current: p => p.startsWith('/org/sessions'),
    });
    items.push({ href: '/org/members', label: t('org.nav.members'), icon: 'members' });
    if (d.isOwner) items.push({ href: '/org/tokens', label: t('org.nav.tokens'), icon: 'key' });
  }
  items.push({ href: '/org/new', label: t('org.nav.new_org'), icon: 'plus' });
  if (d.me.platform_admin || (d.me.city_admin_of || []).length) {
    items.push({ href: '/admin', label: t('org.nav.admin'), icon: 'building' });
  }
  return items;
}

function switcher(ctx) {
  const d = ctx.data;
  if (!d.org) return null;
  const status = d.org.status !== 'approved' ? statusBadge(d.org.status) : null;
  if (d.orgs.length < 2) {
    return h('div', { class: 'context-chip' },
      h('span', { class: 'context-name' }, d.org.name),
      h('span', { class: 'context-sub' }, d.tenantName(d.org.tenant)), status);
  }
  const sel = h('select', { id: 'org-switch' },
    d.orgs.map(o => h('option', { value: o.id, selected: o.id === d.org.id },
      o.name + ' · ' + d.tenantName(o.tenant) + (o.status !== 'approved' ? ' (' + t('staff.status.' + o.status) + ')' : ''))));
  sel.addEventListener('change', () => {
    rememberOrg(sel.value);
    ctx.state.data = null;
    ctx.go('/org');
  });
  return h('div', { class: 'context-switch' },
    h('label', { for: 'org-switch', class: 'context-label' }, t('org.switch_label')), sel, status);
}

function loginExtra() {
  return h('section', { class: 'auth-aside', 'aria-labelledby': 'register-teaser' },
    h('h2', { id: 'register-teaser' }, t('org.register_teaser_title')),
    h('p', {}, t('org.register_teaser_text')),
    h('a', { class: 'btn', href: '/org/register', id: 'register-link' }, t('org.register_link')));
}

/** Finds a group of the current organization or answers the not-found card. */
function needsOrg(screen) {
  return async (ctx) => {
    if (!ctx.data.org) {
      ctx.go('/org/new', { replace: true });
      return;
    }
    return screen(ctx);
  };
}

async function notFound(ctx) {
  add(ctx.main, pageHead(t('staff.not_found_title')),
    emptyState(t('staff.not_found_text'), h('a', { href: '/org' }, t('org.back_home'))));
  ctx.ready('not-found', t('staff.not_found_title'));
}

startApp({
  area: 'org',
  context,
  nav,
  switcher,
  loginExtra,
  notFound: { screen: notFound },
  routes: [
    { pattern: /^\/org$/, screen: homeScreen },
    { pattern: /^\/org\/register$/, screen: registerScreen, auth: false, chrome: 'bare' },
    { pattern: /^\/org\/invite$/, screen: inviteScreen, auth: false, chrome: 'bare' },
    { pattern: /^\/org\/new$/, screen: newOrgScreen },
    { pattern: /^\/org\/groups\/([^/]+)$/, screen: needsOrg(composeScreen) },
    { pattern: /^\/org\/groups\/([^/]+)\/history$/, screen: needsOrg(historyScreen) },
    { pattern: /^\/org\/groups\/([^/]+)\/settings$/, screen: needsOrg(groupSettingsScreen) },
    { pattern: /^\/org\/groups\/([^/]+)\/sessions$/, screen: needsOrg(groupSessionsScreen) },
    { pattern: /^\/org\/issues$/, screen: needsOrg(issuesScreen) },
    { pattern: /^\/org\/issues\/([^/]+)$/, screen: needsOrg(issueScreen) },
    { pattern: /^\/org\/blocks$/, screen: needsOrg(blocksScreen) },
    { pattern: /^\/org\/sessions$/, screen: needsOrg(sessionsScreen) },
    { pattern: /^\/org\/sessions\/([^/]+)$/, screen: needsOrg(sessionScreen) },
    { pattern: /^\/org\/poster\/([^/]+)$/, screen: needsOrg(posterScreen), chrome: 'print' },
    { pattern: /^\/org\/members$/, screen: needsOrg(membersScreen) },
    { pattern: /^\/org\/tokens$/, screen: needsOrg(tokensScreen) },
  ],
});
