// The audit log: who did what, when, to what, and why — filterable, paged
// ("load more"). Filters live in the address (?action=&actor=&target_type=&target_id=).
import { h, clear } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as session from './session.js';
import { add, field, formError, reportError, pageHead, emptyState, when, wireFilters } from './ui.js';

export const AUDIT_ACTIONS = [
  'organization.approve', 'organization.reject', 'organization.suspend', 'organization.reinstate',
  'group.create', 'group.update', 'group.archive', 'group.verify', 'group.unverify', 'group.suspend', 'group.reinstate',
  'message.hide', 'message.restore', 'report.resolve', 'alert.send',
  'member.add', 'member.remove', 'member.role', 'api_token.create', 'api_token.revoke',
  'city_admin.create', 'operator.create',
];
const TARGET_TYPES = ['organization', 'group', 'message', 'user', 'api_token', 'tenant'];

function label(prefix, value) {
  const key = prefix + value.replace('.', '_');
  const s = t(key);
  return s === key ? value : s;
}

export async function auditScreen(ctx) {
  const town = ctx.data.town;
  const operator = Boolean(ctx.data.me.platform_admin);
  const q = ctx.query;
  const action = field({ id: 'audit-action', label: t('admin.audit.action'), kind: 'select', value: q.get('action') || '',
    options: [{ value: '', label: t('admin.audit.any') }, ...AUDIT_ACTIONS.map(a => ({ value: a, label: label('admin.audit.actions.', a) }))] });
  const actor = field({ id: 'audit-actor', label: t('admin.audit.actor'), value: q.get('actor') || '', hint: t('admin.audit.actor_hint'), plain: true });
  const targetType = field({ id: 'audit-target-type', label: t('admin.audit.target_type'), kind: 'select', value: q.get('target_type') || '',
    options: [{ value: '', label: t('admin.audit.any') }, ...TARGET_TYPES.map(x => ({ value: x, label: label('admin.audit.targets.', x) }))] });
  const targetId = field({ id: 'audit-target-id', label: t('admin.audit.target_id'), value: q.get('target_id') || '', plain: true });
  const everywhere = h('input', { type: 'checkbox', id: 'audit-all-towns', checked: q.get('all') === '1' });
  const apply = h('button', { type: 'submit', id: 'audit-filter', class: 'btn-primary' }, t('admin.audit.apply'));
  const reset = h('button', { type: 'button', id: 'audit-reset', class: 'btn-quiet' }, t('admin.audit.reset'));
  const form = h('form', { class: 'card filters-card', role: 'search', 'aria-label': t('admin.audit.filters') },
    h('div', { class: 'filter-grid' }, action.wrap, actor.wrap, targetType.wrap, targetId.wrap),
    operator ? h('label', { class: 'choice', for: 'audit-all-towns' }, everywhere, t('admin.audit.all_towns')) : null,
    h('div', { class: 'actions' }, apply, reset));

  const err = formError();
  const tbody = h('tbody', {});
  const table = h('table', { class: 'data-table audit-table' },
    h('caption', { class: 'visually-hidden' }, t('admin.audit.caption', { town: town.name })),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('admin.audit.when')),
      h('th', { scope: 'col' }, t('admin.audit.actor')),
      h('th', { scope: 'col' }, t('admin.audit.action')),
      h('th', { scope: 'col' }, t('admin.audit.target')),
      h('th', { scope: 'col' }, t('admin.audit.reason')))),
    tbody);
  const list = h('div', { id: 'audit-list', class: 'card card-flush table-wrap', tabindex: '0', role: 'region',
    'aria-label': t('admin.audit.caption', { town: town.name }) }, table);
  const count = h('p', { class: 'muted small', role: 'status', id: 'audit-count' });
  const more = h('button', { type: 'button', id: 'audit-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('admin.audit.empty'));
  emptyBox.hidden = true;
  let cursor = null;

  add(ctx.main, pageHead(t('admin.audit.title'), t('admin.audit.lead', { town: town.name })), form, err, count, list, emptyBox,
    h('div', { class: 'actions' }, more));

  function params() {
    const p = new URLSearchParams();
    if (action.control.value) p.set('action', action.control.value);
    if (actor.control.value.trim()) p.set('actor', actor.control.value.trim());
    if (targetType.control.value) p.set('target_type', targetType.control.value);
    if (targetId.control.value.trim()) p.set('target_id', targetId.control.value.trim());
    if (operator && everywhere.checked) p.set('all', '1');
    return p;
  }

  async function load(first) {
    const p = params();
    const all = p.get('all') === '1';
    p.delete('all');
    p.set('limit', '50');
    if (cursor && !first) p.set('cursor', cursor);
    const path = all ? '/admin/audit?' + p : '/admin/tenants/' + encodeURIComponent(town.slug) + '/audit?' + p;
    const page = await session.call(path, { signal: ctx.signal });
    if (first) clear(tbody);
    for (const e of page.items) tbody.append(row(e, all));
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = tbody.children.length > 0;
    table.hidden = tbody.children.length === 0;
    count.textContent = t('admin.audit.shown', { count: tbody.children.length }) + (cursor ? ' ' + t('admin.audit.more_available') : '');
  }

  function row(e, all) {
    return h('tr', { dataset: { audit: e.id } },
      h('td', { class: 'nowrap' }, when(e.created_at)),
      h('td', {}, e.actor, h('span', { class: 'cell-sub' }, label('admin.audit.actor_types.', e.actor_type))),
      h('td', {}, label('admin.audit.actions.', e.action), h('span', { class: 'cell-sub mono' }, e.action)),
      h('td', {}, label('admin.audit.targets.', e.target_type),
        h('span', { class: 'cell-sub mono' }, e.target_id), all && e.tenant ? h('span', { class: 'cell-sub' }, e.tenant) : null),
      h('td', { class: 'pre' }, e.reason || '–'));
  }

  wireFilters({
    form, apply, reset, more, err, count, params, load,
    list: tbody,
    path: '/admin/audit',
    clearFields() {
      action.control.value = '';
      actor.control.value = '';
      targetType.control.value = '';
      targetId.control.value = '';
      everywhere.checked = false;
    },
    focus: (row) => { row.tabIndex = -1; row.focus(); },
  });

  try {
    await load(true);
  } catch (e) {
    reportError(e, err);
  }
  ctx.ready('audit', t('admin.audit.title'));
}
