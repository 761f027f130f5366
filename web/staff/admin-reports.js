// Residents' reports (the reported message in context; resolve by hiding it,
// dismissing the reports or suspending the group) and hidden messages (restore).
import { h, clear, announce } from '../common/dom.js';
import { t, fmtNumber } from '../common/i18n.js';
import * as session from './session.js';
import { add, formError, reportError, busy, pageHead, statusBadge, officialBadge, badge, emptyState, when, reasonDialog } from './ui.js';
import { filterBar } from './admin-orgs.js';

const REASONS = ['spam', 'offensive', 'false_information', 'other'];
const ACTIONS = ['hide_message', 'dismiss', 'suspend_group'];

/** The message as the resident saw it, with its group and organization. */
export function messageContext(m, level = 3) {
  const long = Array.from(m.body).length > 600;
  const body = h('p', { class: 'quoted-body' }, m.body);
  return h('div', { class: 'quoted-message' + (m.hidden ? ' is-hidden' : '') },
    h('p', { class: 'quoted-meta' },
      h('span', { class: 'quoted-group' }, m.group.name), ' ',
      m.group.verified ? officialBadge() : null, ' ',
      m.group.status !== 'active' ? statusBadge(m.group.status) : null, ' ',
      m.kind === 'alert' ? badge(t('admin.reports.town_alert'), 'danger') : null,
      h('span', { class: 'quoted-org' }, ' · ', m.organization.name, ' · ', when(m.published_at))),
    h('h' + level, { class: 'quoted-title' }, m.title),
    long ? h('details', { class: 'quoted-more' }, h('summary', {}, Array.from(m.body).slice(0, 280).join('') + '…'), body) : body,
    m.hidden ? h('p', { class: 'notice notice-danger small' }, t('admin.reports.hidden_note', { reason: m.hidden_reason || '–' })) : null);
}

export async function reportsScreen(ctx) {
  const town = ctx.data.town;
  const status = ctx.query.get('status') === 'resolved' ? 'resolved' : 'open';
  const slug = encodeURIComponent(town.slug);
  const list = h('ul', { class: 'report-list', id: 'report-list' });
  const err = formError();
  const more = h('button', { type: 'button', id: 'reports-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('admin.reports.empty_' + status));
  emptyBox.hidden = true;
  let cursor = null;

  add(ctx.main, 
    pageHead(t('admin.reports.title'), t('admin.reports.lead')),
    filterBar(t('admin.reports.filter'), [
      { value: 'open', label: t('admin.reports.filters.open') },
      { value: 'resolved', label: t('admin.reports.filters.resolved') },
    ], status, v => (v === 'open' ? '/admin/reports' : '/admin/reports?status=resolved')),
    err, list, emptyBox, h('div', { class: 'actions' }, more));

  async function load() {
    const q = '?limit=20&status=' + status + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await session.call('/admin/tenants/' + slug + '/reports' + q, { signal: ctx.signal });
    for (const r of page.items) list.append(card(r));
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = list.children.length > 0;
  }
  more.addEventListener('click', async () => {
    const before = list.children.length;
    await busy(more, load);
    const el = list.children[before];
    if (el) { el.tabIndex = -1; el.focus(); }
  });

  function card(r) {
    const li = h('li', { class: 'card report-card', dataset: { report: r.id, message: r.message.id } });
    fill(li, r);
    return li;
  }

  function fill(li, r) {
    clear(li);
    li.dataset.status = r.status;
    const headId = 'rep-' + r.id;
    li.setAttribute('aria-labelledby', headId);
    const reasons = h('ul', { class: 'chips' }, REASONS.filter(k => r.reasons[k]).map(k =>
      h('li', { class: 'chip' }, t('admin.reports.reasons.' + k), ' ', h('strong', {}, fmtNumber(r.reasons[k])))));
    const texts = r.texts.length ? h('section', { class: 'report-texts' },
      h('h4', {}, t('admin.reports.texts')),
      h('ul', {}, r.texts.map(x => h('li', {},
        h('blockquote', {}, x.text),
        h('p', { class: 'muted small' }, t('admin.reports.reasons.' + x.reason), ' · ', when(x.reported_at)))))) : null;
    add(li, 
      h('div', { class: 'org-card-head' },
        h('h2', { id: headId, class: 'report-count' }, t('admin.reports.count', { count: r.report_count })),
        h('div', { class: 'badges' }, statusBadge(r.status))),
      h('p', { class: 'muted small' }, t('admin.reports.first_last'), ' ', when(r.first_reported_at), ' – ', when(r.last_reported_at)),
      reasons,
      messageContext(r.message),
      texts,
      r.resolution ? h('p', { class: 'notice notice-ok small resolution' },
        t('admin.reports.resolved_as', { action: t('admin.reports.actions.' + r.resolution.action) }), ' · ',
        r.resolution.resolved_by || '', ' · ', when(r.resolution.resolved_at)) : null,
      actions(li, r));
  }

  function actions(li, r) {
    const bar = h('div', { class: 'card-actions' });
    if (r.status === 'open') {
      for (const action of ACTIONS) {
        if (action === 'suspend_group' && r.message.kind === 'alert') continue;
        const label = t('admin.reports.actions.' + action);
        const btn = h('button', {
          type: 'button', dataset: { action },
          class: action === 'hide_message' ? 'btn-danger' : action === 'dismiss' ? '' : 'btn-quiet danger-text',
        }, label);
        btn.addEventListener('click', () => resolve(li, r, action, btn));
        bar.append(btn);
      }
    } else if (r.message.hidden) {
      bar.append(restoreButton(r.message, (m) => { r.message = m; fill(li, r); }, err));
    }
    return bar;
  }

  async function resolve(li, r, action, btn) {
    err.show(null);
    const note = await reasonDialog({
      title: t('admin.reports.confirm.' + action + '_title'),
      text: t('admin.reports.confirm.' + action + '_text', { group: r.message.group.name }),
      label: t('admin.reports.confirm.' + action + '_label'),
      hint: t('admin.reports.confirm.' + action + '_hint'),
      required: false, confirm: t('admin.reports.actions.' + action), danger: action !== 'dismiss',
    });
    if (note === null) return;
    try {
      const updated = await busy(btn, () => session.call('/admin/reports/' + encodeURIComponent(r.id) + '/resolve', {
        method: 'POST', body: note ? { action, note } : { action },
      }));
      const text = t('admin.reports.done.' + action, { title: r.message.title });
      announce(text);
      if (typeof ctx.data.counts.reports === 'number') {
        ctx.data.counts.reports = Math.max(0, ctx.data.counts.reports - 1);
        ctx.refreshNav();
      }
      // Resolved: it leaves the open queue; show the outcome in its place.
      const next = li.nextElementSibling;
      li.classList.add('resolved-row');
      fill(li, updated);
      li.prepend(h('p', { class: 'notice notice-ok', role: 'status' }, text));
      (next || li).tabIndex = -1;
      (next || li).focus();
    } catch (e) {
      reportError(e, err);
    }
  }

  await load();
  ctx.ready('reports', t('admin.reports.title'));
}

/** `button[data-action=restore]` for a hidden message. */
export function restoreButton(message, onRestored, err) {
  const btn = h('button', { type: 'button', dataset: { action: 'restore' } }, t('admin.hidden.restore'));
  btn.setAttribute('aria-label', t('admin.hidden.restore_label', { title: message.title || message.id }));
  btn.addEventListener('click', async () => {
    if (err) err.show(null);
    const reason = await reasonDialog({
      title: t('admin.hidden.restore_title'), text: t('admin.hidden.restore_text'),
      label: t('admin.hidden.restore_reason'), required: false, confirm: t('admin.hidden.restore'),
    });
    if (reason === null) return;
    try {
      const m = await busy(btn, () => session.call('/admin/messages/' + encodeURIComponent(message.id) + '/restore', {
        method: 'POST', body: reason ? { reason } : undefined,
      }));
      announce(t('admin.hidden.restored', { title: m.title }));
      onRestored(m);
    } catch (e) {
      if (err) reportError(e, err); else announce(e.message);
    }
  });
  return btn;
}

/**
 * Hidden messages of the town. The API has no list of hidden messages, so
 * this page puts it together from the audit log (message.hide / .restore)
 * and the resolved reports (which carry the message in context).
 */
export async function hiddenScreen(ctx) {
  const town = ctx.data.town;
  const slug = encodeURIComponent(town.slug);
  const err = formError();
  const list = h('ul', { class: 'report-list', id: 'hidden-list' });
  add(ctx.main, pageHead(t('admin.hidden.title'), t('admin.hidden.lead')), err, list);

  const audit = async (action) => {
    const items = [];
    let cursor = null;
    for (let i = 0; i < 5; i += 1) {
      const page = await session.call('/admin/tenants/' + slug + '/audit?limit=100&action=' + action
        + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''), { signal: ctx.signal });
      items.push(...page.items);
      cursor = page.next;
      if (!cursor) break;
    }
    return items;
  };
  const [hides, restores, resolved] = await Promise.all([
    audit('message.hide'), audit('message.restore'),
    session.call('/admin/tenants/' + slug + '/reports?status=resolved&limit=100', { signal: ctx.signal })
      .then(p => p.items).catch(() => []),
  ]);
  if (ctx.signal.aborted) return;
  const known = new Map(resolved.map(r => [r.message.id, r.message]));
  const lastRestore = new Map();
  for (const e of restores) if (!lastRestore.has(e.target_id)) lastRestore.set(e.target_id, e.created_at);
  const seen = new Set();
  const items = [];
  for (const e of hides) { // newest first
    if (seen.has(e.target_id)) continue;
    seen.add(e.target_id);
    const restoredAt = lastRestore.get(e.target_id);
    if (restoredAt && restoredAt >= e.created_at) continue;
    const m = known.get(e.target_id);
    if (m && !m.hidden) continue;
    items.push({ entry: e, message: m || null });
  }
  for (const { entry, message } of items) {
    const li = h('li', { class: 'card report-card', dataset: { message: entry.target_id } });
    const draw = (m) => {
      clear(li);
      if (m && !m.hidden) {
        add(li, h('p', { class: 'notice notice-ok', role: 'status' }, t('admin.hidden.restored', { title: m.title })));
        return;
      }
      add(li, 
        h('p', { class: 'muted small' }, t('admin.hidden.by', { actor: entry.actor }), ' · ', when(entry.created_at)),
        m ? messageContext(m, 2) : h('div', { class: 'quoted-message is-hidden' },
          h('h2', { class: 'quoted-title' }, t('admin.hidden.unknown_title')),
          h('p', { class: 'muted small' }, t('admin.hidden.unknown_text', { id: entry.target_id }))),
        !m && entry.reason ? h('p', { class: 'notice notice-danger small' }, t('admin.reports.hidden_note', { reason: entry.reason })) : null,
        h('div', { class: 'card-actions' }, restoreButton(m || { id: entry.target_id, title: '' }, draw, err)));
    };
    draw(message);
    list.append(li);
  }
  if (!items.length) list.after(emptyState(t('admin.hidden.empty')));
  ctx.ready('hidden', t('admin.hidden.title'));
}
