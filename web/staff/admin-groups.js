// Every group of the town: verify/unverify (official badge), suspend with a
// reason, reinstate, rename or re-categorize.
import { h, clear, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, statusBadge, officialBadge, badge, emptyState, reasonDialog, modal,
  categoryOptions, chars, showFieldError,
} from './ui.js';
import { filterBar } from './admin-orgs.js';

const FILTERS = ['all', 'active', 'suspended', 'archived'];
const NAME_MAX = 80;
const DESCRIPTION_MAX = 1000;

export async function groupsScreen(ctx) {
  const town = ctx.data.town;
  const status = FILTERS.includes(ctx.query.get('status')) ? ctx.query.get('status') : 'all';
  const slug = encodeURIComponent(town.slug);
  const list = h('ul', { class: 'admin-group-list', id: 'admin-group-list' });
  const err = formError();
  const more = h('button', { type: 'button', id: 'groups-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('admin.groups.empty'));
  emptyBox.hidden = true;
  const search = h('input', { type: 'search', id: 'group-filter', autocomplete: 'off' });
  const shown = h('p', { class: 'muted small', role: 'status', id: 'group-filter-count' });
  let cursor = null;
  let total = 0;

  add(ctx.main, 
    pageHead(t('admin.groups.title'), t('admin.groups.lead', { town: town.name })),
    h('div', { class: 'toolbar' },
      filterBar(t('admin.groups.filter'), FILTERS.map(f => ({ value: f, label: t('admin.groups.filters.' + f) })), status,
        v => (v === 'all' ? '/admin/groups' : '/admin/groups?status=' + v)),
      h('div', { class: 'search-box', role: 'search' },
        h('label', { for: 'group-filter' }, t('admin.groups.search')), search)),
    shown, err, list, emptyBox, h('div', { class: 'actions' }, more));

  function applyFilter() {
    const q = search.value.trim().toLowerCase();
    let n = 0;
    for (const li of list.children) {
      const hit = !q || (li.dataset.search || '').includes(q);
      li.hidden = !hit;
      if (hit) n += 1;
    }
    shown.textContent = q ? t('admin.groups.shown', { count: n, total }) : '';
  }
  search.addEventListener('input', applyFilter);

  async function load() {
    const q = '?limit=50' + (status !== 'all' ? '&status=' + status : '') + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await session.call('/admin/tenants/' + slug + '/groups' + q, { signal: ctx.signal });
    for (const g of page.items) list.append(row(g));
    total = list.children.length;
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = total > 0;
    applyFilter();
  }
  more.addEventListener('click', async () => {
    const before = list.children.length;
    await busy(more, load);
    const el = list.children[before];
    if (el) { el.tabIndex = -1; el.focus(); }
  });

  function row(g) {
    const li = h('li', { class: 'card admin-group', dataset: { group: g.id } });
    fill(li, g);
    return li;
  }

  function fill(li, g) {
    clear(li);
    li.dataset.status = g.status;
    li.dataset.verified = String(g.verified);
    li.dataset.search = (g.name + ' ' + g.organization.name).toLowerCase();
    const nameId = 'g-' + g.id + '-name';
    li.setAttribute('aria-labelledby', nameId);
    add(li, 
      h('div', { class: 'org-card-head' },
        h('div', { class: 'grow' },
          h('h2', { id: nameId, class: 'group-title' }, g.name),
          h('p', { class: 'meta' }, g.organization.name, ' · ', t('staff.category.' + g.category), ' · ',
            t('admin.groups.subscribers', { count: g.subscriber_count }))),
        h('div', { class: 'badges' },
          g.verified ? officialBadge() : null, ' ',
          statusBadge(g.status), ' ',
          g.organization_status !== 'approved'
            ? badge(t('admin.groups.org_status', { status: t('staff.status.' + g.organization_status) }), 'warn') : null)),
      g.description ? h('p', { class: 'group-desc' }, g.description) : null,
      g.status === 'suspended' && g.suspension_reason
        ? h('p', { class: 'notice notice-danger small' }, h('strong', {}, t('admin.queue.reason') + ': '), g.suspension_reason) : null,
      h('p', { class: 'small' }, h('a', { href: '/g/' + encodeURIComponent(g.id), target: '_blank', rel: 'noopener' }, t('admin.groups.public_page'))),
      actions(li, g));
  }

  function actions(li, g) {
    const bar = h('div', { class: 'card-actions' });
    if (g.status === 'archived') {
      bar.append(h('p', { class: 'muted small' }, t('admin.groups.archived_note')));
      return bar;
    }
    const add = (action, label, cls, fn) => {
      const btn = h('button', { type: 'button', class: cls || '', dataset: { action } }, label);
      btn.setAttribute('aria-label', t('admin.queue.action_label', { action: label, name: g.name }));
      btn.addEventListener('click', () => fn(btn));
      bar.append(btn);
    };
    if (g.verified) add('unverify', t('admin.groups.unverify'), '', b => act(li, g, 'unverify', b));
    else add('verify', t('admin.groups.verify'), 'btn-primary', b => act(li, g, 'verify', b));
    if (g.status === 'suspended') add('reinstate', t('admin.groups.reinstate'), '', b => act(li, g, 'reinstate', b));
    else add('suspend', t('admin.groups.suspend'), 'btn-danger', b => act(li, g, 'suspend', b, true));
    add('edit', t('admin.groups.edit'), 'btn-quiet', b => edit(li, g, b));
    return bar;
  }

  async function act(li, g, action, btn, needsReason) {
    err.show(null);
    let body;
    if (needsReason) {
      const reason = await reasonDialog({
        title: t('admin.groups.suspend_title', { name: g.name }), text: t('admin.groups.suspend_text'),
        label: t('admin.queue.reason_label'), hint: t('admin.groups.suspend_hint'), required: true,
        confirm: t('admin.groups.suspend'), danger: true,
      });
      if (reason === null) return;
      body = { reason };
    }
    try {
      const updated = await busy(btn, () => session.call('/admin/groups/' + encodeURIComponent(g.id) + '/' + action,
        { method: 'POST', body }));
      // The answer is a plain group view; keep the console's extra fields.
      const merged = { ...g, ...updated, organization_status: g.organization_status,
        suspension_reason: action === 'suspend' ? body.reason : action === 'reinstate' ? null : g.suspension_reason };
      fill(li, merged);
      announce(t('admin.groups.done.' + action, { name: g.name }));
      const next = li.querySelector('button');
      if (next) next.focus();
    } catch (e) {
      reportError(e, err);
    }
  }

  async function edit(li, g, btn) {
    const name = field({ id: 'edit-group-name', label: t('org.group_name'), required: true, max: NAME_MAX, value: g.name });
    const cat = field({ id: 'edit-group-category', label: t('org.group_category'), kind: 'select', options: categoryOptions(), value: g.category });
    const desc = field({ id: 'edit-group-description', label: t('org.group_description'), kind: 'textarea', rows: 4,
      max: DESCRIPTION_MAX, value: g.description });
    const v = await modal({
      id: 'group-edit-dialog', title: t('admin.groups.edit_title', { name: g.name }),
      body: [h('p', { class: 'muted' }, t('admin.groups.edit_text')), name.wrap, cat.wrap, desc.wrap],
      buttons: [
        { label: t('staff.cancel'), value: null, id: 'group-edit-cancel' },
        { label: t('org.save'), value: 'ok', primary: true, id: 'group-edit-save' },
      ],
      onOpen: () => name.control.focus(),
      validate: () => {
        if (chars(name.control.value) < 2) { showFieldError(name.control, t('org.group_name_short')); name.control.focus(); return false; }
        return chars(name.control.value) <= NAME_MAX && chars(desc.control.value) <= DESCRIPTION_MAX;
      },
    });
    if (v !== 'ok') return;
    const body = {};
    if (name.control.value.trim() !== g.name) body.name = name.control.value.trim();
    if (cat.control.value !== g.category) body.category = cat.control.value;
    if (desc.control.value.trim() !== g.description) body.description = desc.control.value.trim();
    if (!Object.keys(body).length) return;
    try {
      const updated = await busy(btn, () => session.call('/groups/' + encodeURIComponent(g.id), { method: 'PATCH', body }));
      fill(li, { ...g, ...updated, organization_status: g.organization_status, suspension_reason: g.suspension_reason });
      announce(t('admin.groups.done.edit', { name: updated.name }));
      const b = li.querySelector('[data-action="edit"]');
      if (b) b.focus();
    } catch (e) {
      reportError(e, err);
    }
  }

  await load();
  ctx.ready('groups', t('admin.groups.title'));
}
