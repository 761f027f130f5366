// Writing to a group (with a live notification preview and counters matching
// the server's limits) and the group's history: delivery statistics that
// update live while the fan-out runs, and the subscriber chart.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime, fmtNumber, lang } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, statusBadge, emptyState, icon, chars, showFieldError, clearFieldError, uid,
} from './ui.js';
import { loadGroup, groupHead, initial } from './org-groups.js';
import { subscriberChart } from './chart.js';

/** The server's limits (server/messages.rs). */
export const TITLE_MAX = 120;
export const BODY_MAX = 4000;
const URL_MAX = 2048;
const URGENCIES = ['very-low', 'low', 'normal', 'high'];
const TTLS = [3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600, 30 * 24 * 3600];
const TTL_DEFAULT = 3 * 24 * 3600;

export async function composeScreen(ctx) {
  const group = await loadGroup(ctx);
  if (!group || ctx.signal.aborted) return;
  const { org } = ctx.data;
  add(ctx.main, groupHead(ctx, group, 'compose'));

  const blocked = org.status !== 'approved' ? 'org_' + org.status : group.status !== 'active' ? 'group_' + group.status : null;

  const title = field({ id: 'compose-title', label: t('org.compose.title'), required: true, max: TITLE_MAX });
  const body = field({ id: 'compose-body', label: t('org.compose.body'), kind: 'textarea', required: true, max: BODY_MAX,
    rows: 7, hint: t('org.compose.body_hint') });
  const url = field({ id: 'compose-url', label: t('org.compose.url'), type: 'url', inputmode: 'url',
    placeholder: 'https://', hint: t('org.compose.url_hint') });
  const urgency = field({ id: 'compose-urgency', label: t('org.compose.urgency'), kind: 'select', value: 'normal',
    options: URGENCIES.map(u => ({ value: u, label: t('org.urgency.' + u) })), hint: t('org.compose.urgency_hint') });
  const publishAt = field({ id: 'compose-publish-at', label: t('org.compose.publish_at'), type: 'datetime-local',
    hint: t('org.compose.publish_at_hint') });
  publishAt.control.min = localInput(new Date(Date.now() + 60_000));
  const ttl = field({ id: 'compose-ttl', label: t('org.compose.ttl'), kind: 'select', value: TTL_DEFAULT,
    options: TTLS.map(s => ({ value: String(s), label: t('org.ttl.' + s) })), hint: t('org.compose.ttl_hint') });
  ttl.control.value = String(TTL_DEFAULT);

  const err = formError();
  const sent = h('div', { class: 'sent-box', role: 'status' });
  const send = h('button', { type: 'submit', id: 'compose-send', class: 'btn-primary btn-large' }, icon('send'),
    h('span', {}, t('org.compose.send_now')));
  const sendLabel = send.lastChild;

  const form = h('form', { id: 'compose-form', novalidate: true, 'aria-labelledby': 'compose-h2' },
    h('h2', { id: 'compose-h2' }, t('org.compose.heading')),
    blocked ? h('div', { class: 'notice notice-warn', id: 'compose-blocked' }, h('p', {}, t('org.compose.blocked.' + blocked))) : null,
    err, title.wrap, body.wrap, url.wrap,
    h('div', { class: 'field-row' }, urgency.wrap, publishAt.wrap),
    h('details', { class: 'more-options' }, h('summary', {}, t('org.compose.more')), ttl.wrap),
    h('div', { class: 'actions compose-actions' }, send,
      h('span', { class: 'hint', id: 'compose-send-hint' }, t('org.compose.send_hint', { count: group.subscriber_count }))),
    sent);
  send.setAttribute('aria-describedby', 'compose-send-hint');

  // ---- live preview ----
  const pTitle = h('p', { class: 'preview-title' });
  const pBody = h('p', { class: 'preview-body' });
  const pUrl = h('p', { class: 'preview-url' });
  const pWhen = h('span', { class: 'preview-when' });
  const pUrgent = h('span', { class: 'badge badge-danger preview-urgent', hidden: true }, t('org.urgency.high'));
  const preview = h('div', { id: 'compose-preview', class: 'notification-preview' },
    h('div', { class: 'np-head' },
      h('span', { class: 'np-icon', 'aria-hidden': 'true' }, initial(group.name)),
      h('span', { class: 'np-app' }, 'Herold · ', h('span', { class: 'np-group' }, group.name)),
      pWhen),
    h('div', { class: 'np-content' }, pTitle, pBody, pUrl, pUrgent));
  const phoneBody = h('p', { class: 'phone-body' });
  const phoneTitle = h('p', { class: 'phone-title' });
  const phone = h('div', { class: 'phone-preview', 'aria-hidden': 'true' },
    h('div', { class: 'phone-app' },
      h('p', { class: 'phone-group' }, group.name, group.verified ? h('span', { class: 'phone-official' }, ' ✓') : null),
      phoneTitle, phoneBody));
  const aside = h('aside', { class: 'compose-preview-col', 'aria-labelledby': 'preview-h2' },
    h('div', { class: 'preview-sticky' },
      h('h2', { id: 'preview-h2' }, t('org.compose.preview')),
      h('p', { class: 'muted small' }, t('org.compose.preview_lock')),
      preview,
      h('p', { class: 'muted small' }, t('org.compose.preview_app')),
      phone,
      h('p', { class: 'hint' }, t('org.compose.preview_note'))));

  const updatePreview = () => {
    const tt = title.control.value.trim();
    const bb = body.control.value.trim();
    pTitle.textContent = tt || t('org.compose.preview_title_empty');
    pTitle.classList.toggle('placeholder', !tt);
    pBody.textContent = bb || t('org.compose.preview_body_empty');
    pBody.classList.toggle('placeholder', !bb);
    phoneTitle.textContent = pTitle.textContent;
    phoneBody.textContent = pBody.textContent;
    let host = '';
    try { host = url.control.value.trim() ? new URL(url.control.value.trim()).host : ''; } catch { host = ''; }
    clear(pUrl);
    if (host) add(pUrl, icon('link'), host);
    pUrl.hidden = !host;
    pUrgent.hidden = urgency.control.value !== 'high';
    const at = publishAt.control.value ? new Date(publishAt.control.value) : null;
    const future = at && !Number.isNaN(at.getTime()) && at.getTime() > Date.now();
    pWhen.textContent = future ? fmtDateTime(at) : t('org.compose.now');
    sendLabel.textContent = future ? t('org.compose.schedule', { time: fmtDateTime(at) }) : t('org.compose.send_now');
  };
  for (const c of [title.control, body.control, url.control, urgency.control, publishAt.control]) {
    c.addEventListener('input', updatePreview);
    c.addEventListener('change', updatePreview);
  }
  updatePreview();

  // ---- recent messages with live statistics ----
  const recent = h('ol', { class: 'message-list', id: 'recent-messages' });
  const tracker = deliveryTracker(ctx);
  const recentSection = h('section', { class: 'recent', 'aria-labelledby': 'recent-h2' },
    h('div', { class: 'section-head' },
      h('h2', { id: 'recent-h2' }, t('org.compose.recent')),
      h('a', { href: '/org/groups/' + encodeURIComponent(group.id) + '/history' }, t('org.compose.all_history'))),
    recent);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clear(sent);
    for (const c of [title.control, body.control, url.control, publishAt.control]) clearFieldError(c);
    const payload = collect();
    if (!payload) return;
    try {
      const msg = await busy(send, () => session.call('/groups/' + encodeURIComponent(group.id) + '/messages',
        { method: 'POST', body: payload }));
      const empty = recent.parentElement.querySelector('.empty');
      if (empty) empty.remove();
      recent.prepend(tracker.row(msg));
      while (recent.children.length > 5) recent.lastElementChild.remove();
      form.reset();
      ttl.control.value = String(TTL_DEFAULT);
      urgency.control.value = 'normal';
      title.control.refreshCounter();
      body.control.refreshCounter();
      updatePreview();
      const text = msg.status === 'scheduled'
        ? t('org.compose.scheduled_done', { time: fmtDateTime(msg.published_at) })
        : t('org.compose.sent_done');
      sent.append(h('div', { class: 'notice notice-ok', id: 'compose-done' },
        h('p', {}, text, ' ', h('a', { href: '#msg-' + msg.id }, t('org.compose.see_delivery')))));
      announce(text);
      title.control.focus();
    } catch (e) {
      reportError(e, err, {
        title: title.control, body: body.control, url: url.control, publish_at: publishAt.control,
        urgency: urgency.control, ttl: ttl.control,
      });
    }
  });

  function collect() {
    const tt = chars(title.control.value);
    const bb = chars(body.control.value);
    if (tt === 0) { showFieldError(title.control, t('org.compose.title_missing')); title.control.focus(); return null; }
    if (tt > TITLE_MAX) { title.control.focus(); return null; }
    if (bb === 0) { showFieldError(body.control, t('org.compose.body_missing')); body.control.focus(); return null; }
    if (bb > BODY_MAX) { body.control.focus(); return null; }
    const payload = { title: title.control.value.trim(), body: body.control.value.trim(), urgency: urgency.control.value };
    const u = url.control.value.trim();
    if (u) {
      let ok = false;
      try { const p = new URL(u); ok = (p.protocol === 'https:' || p.protocol === 'http:') && u.length <= URL_MAX; } catch { ok = false; }
      if (!ok) { showFieldError(url.control, t('staff.errors.field.url')); url.control.focus(); return null; }
      payload.url = u;
    }
    if (publishAt.control.value) {
      const at = new Date(publishAt.control.value);
      if (Number.isNaN(at.getTime())) {
        showFieldError(publishAt.control, t('staff.errors.field.publish_at'));
        publishAt.control.focus();
        return null;
      }
      if (at.getTime() > Date.now()) payload.publish_at = at.toISOString();
    }
    const ttlValue = Number(ttl.control.value);
    if (ttlValue && ttlValue !== TTL_DEFAULT) payload.ttl = ttlValue;
    return payload;
  }

  add(ctx.main, h('div', { class: 'compose-grid' }, h('section', { class: 'card compose-card' }, form), aside), recentSection);

  try {
    const page = await session.call('/groups/' + encodeURIComponent(group.id) + '/messages?limit=5', { signal: ctx.signal });
    if (ctx.signal.aborted) return;
    if (page.items.length) for (const m of page.items) recent.append(tracker.row(m));
    else recent.after(emptyState(t('org.compose.no_messages')));
  } catch (e) {
    if (ctx.signal.aborted) return;
    recent.after(emptyState(t('staff.load_failed')));
  }
  ctx.ready('compose', group.name);
}

/** A `<input type=datetime-local>` value for `d` in local time. */
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
}

// ---- delivery rows ----

/** Finished: the fan-out is done and no device is waiting for a retry. */
export function isComplete(stats) {
  return stats.fanout === 'done' && !stats.pending;
}

function percentOf(stats) {
  if (isComplete(stats)) return 100;
  if (!stats.recipients) return 0;
  const processed = stats.delivered + stats.gone + stats.failed;
  return Math.min(99, Math.floor((processed / stats.recipients) * 100));
}

/** How soon a message's statistics are worth asking for again (ms), or null. */
export function pollDelay(m) {
  const s = m.stats;
  if (m.status === 'hidden' || isComplete(s)) return null;
  if (s.fanout === 'pending' || s.fanout === 'running') return 1000;
  if (s.fanout === 'scheduled') return Math.max(1000, Date.parse(m.published_at) - Date.now());
  return 10000; // fanned out; a few devices wait for a retry with back-off
}

/**
 * Rows for messages, and one poller (about once a second) that refreshes
 * every row whose fan-out is still running, until all are done or the
 * screen is left.
 */
export function deliveryTracker(ctx) {
  const rows = new Map();
  let timer = 0;
  let running = false;

  function schedule() {
    if (timer || ctx.signal.aborted) return;
    timer = setTimeout(tick, 1000);
  }

  function due(r, now) {
    const d = pollDelay(r.msg);
    if (d === null) return false;
    if (r.msg.stats.fanout === 'scheduled') return Date.parse(r.msg.published_at) <= now;
    return now - (r.polled || 0) >= d - 50;
  }

  async function tick() {
    timer = 0;
    if (ctx.signal.aborted || running) return;
    const now = Date.now();
    const list = [...rows.values()].filter(r => r.el.isConnected && due(r, now)).slice(0, 10);
    if (list.length) {
      running = true;
      await Promise.all(list.map(async (r) => {
        r.polled = now;
        try {
          const m = await session.call('/messages/' + encodeURIComponent(r.msg.id) + '/stats', { signal: ctx.signal });
          r.update(m);
        } catch { /* next tick */ }
      }));
      running = false;
    }
    if ([...rows.values()].some(r => r.el.isConnected && pollDelay(r.msg) !== null)) schedule();
  }

  ctx.signal.addEventListener('abort', () => clearTimeout(timer));

  return {
    row(msg) {
      const r = messageRow(msg);
      rows.set(msg.id, r);
      if (pollDelay(msg) !== null) schedule();
      return r.el;
    },
  };
}

export function messageRow(initialMsg) {
  const id = initialMsg.id;
  const progressId = uid('prog');
  const titleEl = h('h3', { class: 'msg-title' });
  const badges = h('span', { class: 'msg-badges' });
  const meta = h('p', { class: 'msg-meta' });
  const bodyEl = h('p', { class: 'msg-body' });
  const progress = h('progress', { max: 100, value: 0, id: progressId });
  const percent = h('span', { class: 'delivery-percent' });
  const label = h('label', { for: progressId, class: 'delivery-label' });
  const statsList = h('dl', { class: 'delivery-stats' });
  const failure = h('p', { class: 'msg-failure small', hidden: true });
  const hiddenNote = h('p', { class: 'notice notice-danger small msg-hidden', hidden: true });
  const delivery = h('div', { class: 'delivery' },
    h('div', { class: 'delivery-bar' }, label, percent), progress, statsList, failure);
  const el = h('li', { class: 'message-row card', id: 'msg-' + id, dataset: { message: id } },
    h('div', { class: 'msg-head' }, titleEl, badges), meta, bodyEl, hiddenNote, delivery);

  const r = { el, msg: initialMsg, update };
  function update(m) {
    r.msg = m;
    titleEl.textContent = m.title;
    add(clear(badges), statusBadge(m.status), ' ',
      m.urgency === 'high' ? h('span', { class: 'badge badge-danger' }, t('org.urgency.high')) : null);
    clear(meta);
    if (m.status === 'scheduled') meta.append(icon('clock'), t('org.history.scheduled_for', { time: fmtDateTime(m.published_at) }));
    else meta.append(t('org.history.published_at', { time: fmtDateTime(m.published_at) }));
    if (m.url) meta.append(' · ', h('a', { href: m.url, rel: 'noopener noreferrer', target: '_blank' }, t('org.history.link')));
    const b = Array.from(m.body);
    bodyEl.textContent = b.length > 220 ? b.slice(0, 220).join('') + '…' : m.body;
    hiddenNote.hidden = m.status !== 'hidden';
    hiddenNote.textContent = m.status === 'hidden'
      ? t('org.history.hidden', { reason: m.hidden_reason || t('org.history.no_reason') }) : '';
    const s = m.stats;
    const p = percentOf(s);
    const scheduled = s.fanout === 'scheduled';
    delivery.hidden = scheduled;
    progress.value = p;
    progress.setAttribute('aria-valuetext', t('org.history.percent', { percent: fmtNumber(p) }));
    percent.textContent = fmtNumber(p) + '\u00a0%';
    percent.dataset.value = String(p);
    label.textContent = isComplete(s) ? t('org.history.delivery_done')
      : s.fanout === 'done' ? t('org.history.delivery_retrying', { count: s.pending }) : t('org.history.delivery_running');
    clear(statsList);
    for (const [k, v] of [['recipients', s.recipients], ['delivered', s.delivered], ['gone', s.gone],
      ['failed', s.failed], ['pending', s.pending]]) {
      if ((k === 'gone' || k === 'failed' || k === 'pending') && !v) continue;
      statsList.append(h('div', { class: 'stat stat-' + k }, h('dt', {}, t('org.history.stats.' + k)), h('dd', {}, fmtNumber(v))));
    }
    failure.hidden = !(s.failed && s.last_failure);
    failure.textContent = s.failed && s.last_failure ? t('org.history.last_failure', { reason: s.last_failure }) : '';
    const complete = isComplete(s);
    const was = el.dataset.complete === 'true';
    el.dataset.complete = complete ? 'true' : 'false';
    el.dataset.fanout = s.fanout;
    if (complete && !was && el.dataset.watched === 'true') {
      announce(t('org.history.finished', { title: m.title, delivered: fmtNumber(s.delivered) }));
    }
    el.dataset.watched = complete ? 'false' : 'true';
  }
  update(initialMsg);
  return r;
}

// ---- history ----

export async function historyScreen(ctx) {
  const group = await loadGroup(ctx);
  if (!group || ctx.signal.aborted) return;
  add(ctx.main, groupHead(ctx, group, 'history'));

  const chartBox = h('section', { class: 'card chart-card', 'aria-labelledby': 'chart-h2' },
    h('h2', { id: 'chart-h2' }, t('org.chart.title')),
    h('p', { class: 'muted small' }, t('org.chart.lead')));
  const list = h('ol', { class: 'message-list', id: 'history-list' });
  const more = h('button', { type: 'button', id: 'history-more', hidden: true }, t('staff.load_more'));
  const listSection = h('section', { 'aria-labelledby': 'history-h2' },
    h('h2', { id: 'history-h2', class: 'section-title' }, t('org.history.title')), list, h('div', { class: 'actions' }, more));
  add(ctx.main, h('div', { class: 'history-grid' }, listSection, chartBox));

  const tracker = deliveryTracker(ctx);
  let cursor = null;
  const load = async () => {
    const q = '?limit=20' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await session.call('/groups/' + encodeURIComponent(group.id) + '/messages' + q, { signal: ctx.signal });
    for (const m of page.items) list.append(tracker.row(m));
    cursor = page.next;
    more.hidden = !cursor;
    return page.items.length;
  };
  more.addEventListener('click', async () => {
    const before = list.children.length;
    await busy(more, load);
    const first = list.children[before];
    if (first) { first.tabIndex = -1; first.focus(); }
  });

  const [msgs, hist] = await Promise.allSettled([
    load(),
    session.call('/groups/' + encodeURIComponent(group.id) + '/subscriber-history', { signal: ctx.signal }),
  ]);
  if (ctx.signal.aborted) return;
  if (msgs.status === 'rejected') list.after(emptyState(t('staff.load_failed')));
  else if (!msgs.value) list.after(emptyState(t('org.compose.no_messages')));
  if (hist.status === 'fulfilled' && hist.value && hist.value.items && hist.value.items.length) {
    chartBox.append(subscriberChart(hist.value.items, { lang: lang() }));
  } else {
    chartBox.append(h('p', { class: 'empty' }, t('org.chart.none', { count: group.subscriber_count })));
  }
  ctx.ready('history', group.name);
}
