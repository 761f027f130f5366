// The town-wide alert: a message with urgency high to every device that
// follows any of the town's groups (each once), after a confirmation step.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import * as session from './session.js';
import { add, field, formError, reportError, busy, pageHead, emptyState, icon, chars, showFieldError, clearFieldError, modal } from './ui.js';
import { messageRow, pollDelay, TITLE_MAX, BODY_MAX } from './org-messages.js';

const TTLS = [3600, 6 * 3600, 24 * 3600, 3 * 24 * 3600];
const TTL_DEFAULT = 24 * 3600;

/**
 * How many devices an alert reaches at most: the sum of the subscribers of
 * the town's groups that reach residents. A device following several groups
 * counts several times here (the alert reaches it once), so it is an upper bound.
 */
async function reachUpperBound(slug, signal) {
  let cursor = null;
  let sum = 0;
  for (let i = 0; i < 20; i += 1) {
    const page = await session.call('/admin/tenants/' + slug + '/groups?status=active&limit=100'
      + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''), { signal });
    for (const g of page.items) if (g.organization_status === 'approved') sum += Number(g.subscriber_count) || 0;
    cursor = page.next;
    if (!cursor) return sum;
  }
  return sum;
}

export async function alertScreen(ctx) {
  const town = ctx.data.town;
  const slug = encodeURIComponent(town.slug);

  const title = field({ id: 'alert-title', label: t('admin.alert.title_label'), required: true, max: TITLE_MAX });
  const body = field({ id: 'alert-body', label: t('admin.alert.body_label'), kind: 'textarea', required: true, max: BODY_MAX, rows: 6 });
  const url = field({ id: 'alert-url', label: t('admin.alert.url_label'), type: 'url', placeholder: 'https://', hint: t('org.compose.url_hint') });
  const ttl = field({ id: 'alert-ttl', label: t('admin.alert.ttl_label'), kind: 'select',
    options: TTLS.map(s => ({ value: String(s), label: t('org.ttl.' + s) })), hint: t('admin.alert.ttl_hint') });
  ttl.control.value = String(TTL_DEFAULT);
  const err = formError();
  const send = h('button', { type: 'submit', id: 'alert-send', class: 'btn-danger btn-large' }, icon('alert'), t('admin.alert.send'));
  const done = h('div', { role: 'status' });
  const form = h('form', { novalidate: true, 'aria-labelledby': 'alert-form-h2' },
    h('h2', { id: 'alert-form-h2' }, t('admin.alert.form_title')),
    err, title.wrap, body.wrap, url.wrap, ttl.wrap, h('div', { class: 'actions' }, send), done);

  const pTitle = h('p', { class: 'preview-title' });
  const pBody = h('p', { class: 'preview-body' });
  const preview = h('div', { id: 'alert-preview', class: 'notification-preview alert-preview' },
    h('div', { class: 'np-head' },
      h('span', { class: 'np-icon np-icon-alert', 'aria-hidden': 'true' }, '!'),
      h('span', { class: 'np-app' }, 'Herold · ', h('span', { class: 'np-group' }, town.name)),
      h('span', { class: 'preview-when' }, t('org.compose.now'))),
    h('div', { class: 'np-content' }, pTitle, pBody));
  const update = () => {
    pTitle.textContent = title.control.value.trim() || t('org.compose.preview_title_empty');
    pTitle.classList.toggle('placeholder', !title.control.value.trim());
    pBody.textContent = body.control.value.trim() || t('org.compose.preview_body_empty');
    pBody.classList.toggle('placeholder', !body.control.value.trim());
  };
  title.control.addEventListener('input', update);
  body.control.addEventListener('input', update);
  update();

  const history = h('ol', { class: 'message-list', id: 'alert-list' });
  const rows = new Map();
  let timer = 0;
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));
  const emptyBox = emptyState(t('admin.alert.none'));

  async function loadAlerts() {
    const page = await session.call('/admin/tenants/' + slug + '/alerts?limit=10', { signal: ctx.signal });
    for (const m of page.items.slice().reverse()) {
      const r = rows.get(m.id);
      if (r) r.update(m);
      else {
        const nr = messageRow(m);
        nr.el.dataset.alert = m.id;
        rows.set(m.id, nr);
        history.prepend(nr.el);
      }
    }
    emptyBox.hidden = rows.size > 0;
    clearTimeout(timer);
    const delays = page.items.map(pollDelay).filter(d => d !== null);
    if (delays.length) timer = setTimeout(() => loadAlerts().catch(() => {}), Math.min(...delays));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clear(done);
    for (const c of [title.control, body.control, url.control]) clearFieldError(c);
    const tt = chars(title.control.value);
    const bb = chars(body.control.value);
    if (!tt) { showFieldError(title.control, t('org.compose.title_missing')); title.control.focus(); return; }
    if (tt > TITLE_MAX) { title.control.focus(); return; }
    if (!bb) { showFieldError(body.control, t('org.compose.body_missing')); body.control.focus(); return; }
    if (bb > BODY_MAX) { body.control.focus(); return; }
    const payload = { title: title.control.value.trim(), body: body.control.value.trim() };
    const u = url.control.value.trim();
    if (u) {
      try { const p = new URL(u); if (!/^https?:$/.test(p.protocol)) throw new Error(); } catch {
        showFieldError(url.control, t('staff.errors.field.url')); url.control.focus(); return;
      }
      payload.url = u;
    }
    if (Number(ttl.control.value) !== TTL_DEFAULT) payload.ttl = Number(ttl.control.value);

    let reach = null;
    try { reach = await busy(send, () => reachUpperBound(slug, ctx.signal)); } catch { reach = null; }
    const v = await modal({
      id: 'alert-dialog',
      title: t('admin.alert.confirm_title', { town: town.name }),
      body: [
        h('p', { class: 'alert-reach', id: 'alert-reach' }, reach === null ? t('admin.alert.reach_unknown')
          : t('admin.alert.reach', { count: reach, town: town.name })),
        h('div', { class: 'quoted-message' }, h('h3', { class: 'quoted-title' }, payload.title), h('p', { class: 'quoted-body' }, payload.body)),
        h('p', { class: 'muted small' }, t('admin.alert.confirm_note')),
      ],
      buttons: [
        { label: t('staff.cancel'), value: null, id: 'alert-cancel' },
        { label: t('admin.alert.confirm'), value: 'ok', danger: true, id: 'alert-confirm' },
      ],
    });
    if (v !== 'ok') return;
    try {
      const sent = await busy(send, () => session.call('/admin/tenants/' + slug + '/alerts', { method: 'POST', body: payload }));
      form.reset();
      ttl.control.value = String(TTL_DEFAULT);
      title.control.refreshCounter();
      body.control.refreshCounter();
      update();
      const text = t('admin.alert.sent', { time: fmtDateTime(sent.published_at) });
      done.append(h('p', { class: 'notice notice-ok', id: 'alert-done' }, text));
      announce(text);
      await loadAlerts().catch(() => {});
      const row = rows.get(sent.id);
      if (row) { row.el.tabIndex = -1; row.el.focus(); }
    } catch (e) {
      reportError(e, err, { title: title.control, body: body.control, url: url.control, ttl: ttl.control });
    }
  });

  add(ctx.main, 
    pageHead(t('admin.alert.title'), t('admin.alert.lead', { town: town.name })),
    h('div', { class: 'notice notice-warn' }, h('p', {}, t('admin.alert.warning'))),
    h('div', { class: 'compose-grid' },
      h('section', { class: 'card compose-card' }, form),
      h('aside', { class: 'compose-preview-col', 'aria-labelledby': 'alert-preview-h2' },
        h('div', { class: 'preview-sticky' }, h('h2', { id: 'alert-preview-h2' }, t('org.compose.preview')), preview,
          h('p', { class: 'hint' }, t('admin.alert.preview_note'))))),
    h('section', { class: 'recent', 'aria-labelledby': 'alerts-h2' },
      h('h2', { id: 'alerts-h2' }, t('admin.alert.history')), history, emptyBox));
  try { await loadAlerts(); } catch { emptyBox.hidden = false; }
  ctx.ready('alert', t('admin.alert.title'));
}
