// The approval queue and every organization of the town: approve, reject
// (with a reason), suspend (with a reason), reinstate.
import { h, clear, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as session from './session.js';
import { add, formError, reportError, busy, pageHead, statusBadge, badge, emptyState, when, reasonDialog } from './ui.js';

const FILTERS = ['pending', 'approved', 'suspended', 'rejected', 'all'];

/** Status filter links (`?status=`), shared by the console's lists. */
export function filterBar(label, options, current, hrefOf) {
  return h('nav', { class: 'filter-bar', 'aria-label': label },
    h('ul', {}, options.map(o => h('li', {},
      h('a', { href: hrefOf(o.value), 'aria-current': o.value === current ? 'page' : null, dataset: { filter: o.value } }, o.label)))));
}

export async function queueScreen(ctx) {
  const town = ctx.data.town;
  const status = FILTERS.includes(ctx.query.get('status')) ? ctx.query.get('status') : 'pending';
  const slug = encodeURIComponent(town.slug);
  const list = h('ul', { class: 'org-list', id: 'org-list' });
  const err = formError();
  const more = h('button', { type: 'button', id: 'orgs-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('admin.queue.empty_' + status));
  emptyBox.hidden = true;
  let cursor = null;

  add(ctx.main, 
    pageHead(t('admin.queue.title'), t('admin.queue.lead', { town: town.name })),
    filterBar(t('admin.queue.filter'), FILTERS.map(f => ({ value: f, label: t('admin.queue.filters.' + f) })), status,
      v => (v === 'pending' ? '/admin' : '/admin?status=' + v)),
    err, list, emptyBox, h('div', { class: 'actions' }, more));

  async function load() {
    const q = '?limit=25' + (status !== 'all' ? '&status=' + status : '') + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await session.call('/admin/tenants/' + slug + '/organizations' + q, { signal: ctx.signal });
    for (const o of page.items) list.append(card(o));
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = list.children.length > 0;
  }
  more.addEventListener('click', async () => {
    const before = list.children.length;
    await busy(more, load);
    focusItem(list.children[before]);
  });

  function card(o) {
    const li = h('li', { class: 'card org-card', dataset: { organization: o.id, status: o.status } });
    fill(li, o);
    return li;
  }

  function fill(li, o) {
    clear(li);
    li.dataset.status = o.status;
    const headingId = 'org-' + o.id + '-name';
    li.setAttribute('aria-labelledby', headingId);
    const contacts = (o.contacts || []);
    add(li, 
      h('div', { class: 'org-card-head' },
        h('h2', { id: headingId, class: 'org-name' }, o.name),
        h('div', { class: 'badges' }, statusBadge(o.status), ' ', badge(t('staff.category.' + o.kind)))),
      h('dl', { class: 'facts' },
        h('div', {}, h('dt', {}, t('admin.queue.contact')), h('dd', {},
          contacts.length ? contacts.map((c, i) => [i ? ', ' : '', h('a', { href: 'mailto:' + c }, c)]) : '–')),
        h('div', {}, h('dt', {}, t('admin.queue.registered')), h('dd', {}, when(o.created_at))),
        h('div', {}, h('dt', {}, t('admin.queue.kind')), h('dd', {}, t('staff.category.' + o.kind))),
        h('div', { class: 'wide' }, h('dt', {}, t('admin.queue.description')),
          h('dd', { class: 'pre' }, o.description || t('admin.queue.no_description')))),
      o.status_reason ? h('p', { class: 'notice notice-warn small' }, h('strong', {}, t('admin.queue.reason') + ': '), o.status_reason) : null,
      actions(li, o));
  }

  function actions(li, o) {
    const bar = h('div', { class: 'card-actions' });
    const add = (action, label, cls, needsReason) => {
      const btn = h('button', { type: 'button', class: cls || '', dataset: { action } }, label);
      btn.setAttribute('aria-label', t('admin.queue.action_label', { action: label, name: o.name }));
      btn.addEventListener('click', () => decide(li, o, action, btn, needsReason));
      bar.append(btn);
    };
    if (o.status === 'pending') {
      add('approve', t('admin.queue.approve'), 'btn-primary');
      add('reject', t('admin.queue.reject'), 'btn-danger', true);
    } else if (o.status === 'approved') {
      add('suspend', t('admin.queue.suspend'), 'btn-danger', true);
    } else if (o.status === 'suspended') {
      add('reinstate', t('admin.queue.reinstate'), 'btn-primary');
    } else if (o.status === 'rejected') {
      add('approve', t('admin.queue.approve_after_all'), '');
    }
    return bar;
  }

  async function decide(li, o, action, btn, needsReason) {
    err.show(null);
    let body;
    if (needsReason) {
      const reason = await reasonDialog({
        title: t('admin.queue.' + action + '_title', { name: o.name }),
        text: t('admin.queue.' + action + '_text'),
        label: t('admin.queue.reason_label'), hint: t('admin.queue.reason_hint'),
        required: true, confirm: t('admin.queue.' + action), danger: true,
      });
      if (reason === null) return;
      body = { reason };
    }
    try {
      const updated = await busy(btn, () => session.call('/admin/organizations/' + encodeURIComponent(o.id) + '/' + action,
        { method: 'POST', body }));
      const text = t('admin.queue.done.' + action, { name: o.name });
      announce(text);
      if (o.status === 'pending' && ctx.data.counts && typeof ctx.data.counts.pending === 'number') {
        ctx.data.counts.pending = Math.max(0, ctx.data.counts.pending - 1);
        ctx.refreshNav();
      }
      if (status !== 'all' && updated.status !== status) {
        // It leaves this list: say what happened where it was, then move on.
        const next = li.nextElementSibling || li.previousElementSibling;
        li.replaceWith(h('li', { class: 'notice notice-ok done-row', role: 'status', dataset: { organization: o.id, status: updated.status } }, text));
        focusItem(next);
      } else {
        fill(li, updated);
        const first = li.querySelector('button');
        if (first) first.focus();
      }
    } catch (e) {
      reportError(e, err);
    }
  }

  function focusItem(el) {
    if (!el) { const h1 = ctx.main.querySelector('h1'); if (h1) h1.focus(); return; }
    el.tabIndex = -1;
    el.focus();
  }

  await load();
  ctx.ready('queue', t('admin.queue.title'));
}
