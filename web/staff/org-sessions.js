// Question hours ("Bürgersprechstunde"): a group's sessions with the form to
// schedule one, all sessions of the organization, and one session for the
// staff — questions arriving live, answered publicly or privately,
// dismissed, their authors blocked; ending it early or cancelling it.
//
// Live: the public event stream (`/sessions/{id}/events`) only says *that*
// something changed, as the public sees it. Staff need more (authors,
// dismissed questions, private answers), so every event triggers a fresh
// `GET /sessions/{id}` with the staff token; bursts are coalesced.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime, fmtNumber, lang } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, badge, emptyState, icon, chars, showFieldError, clearFieldError,
  confirmDialog, reasonDialog, copyButton, when, uid,
} from './ui.js';
import { loadGroup, loadGroups, groupHead } from './org-groups.js';
import { residentName } from './org-issues.js';

/** The server's limits (contract of issue 7). */
export const TITLE_MAX = 120;
export const DESCRIPTION_MAX = 1000;
export const ANSWER_MAX = 2000;
const REASON_MAX = 500;
const LONGEST_MS = 12 * 3600 * 1000;
const AHEAD_MS = 365 * 24 * 3600 * 1000;
const STATE_TONE = { scheduled: 'warn', open: 'ok', ended: null, cancelled: 'danger' };

function sessionPath(id, rest = '') {
  return '/sessions/' + encodeURIComponent(id) + rest;
}

export function stateBadge(state) {
  return h('span', { class: 'badge' + (STATE_TONE[state] ? ' badge-' + STATE_TONE[state] : '') + ' session-state', dataset: { state } },
    t('org.sessions.state.' + state));
}

/** "27.11.2026, 18:00 – 19:00" (the end's date only when it differs). */
export function timeRange(startIso, endIso) {
  const a = new Date(startIso);
  const b = new Date(endIso);
  const sameDay = a.toDateString() === b.toDateString();
  const end = sameDay ? new Intl.DateTimeFormat(lang(), { timeStyle: 'short' }).format(b) : fmtDateTime(b);
  return fmtDateTime(a) + ' – ' + end;
}

/** A `<input type=datetime-local>` value for `d` in the browser's time zone. */
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
}

/**
 * The instant a datetime-local value means in the browser's time zone, as
 * RFC 3339 with that zone's offset ("2026-11-27T18:00:00+01:00"); null when empty or invalid.
 */
export function rfc3339Local(value) {
  if (!value) return null;
  const d = new Date(value); // no zone in the string: local time
  if (Number.isNaN(d.getTime())) return null;
  const p = (n) => String(Math.abs(n)).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : (off > 0 ? '+' : '-') + p(Math.trunc(off / 60)) + ':' + p(off % 60);
  return localInput(d) + ':' + p(d.getSeconds()) + zone;
}

function sessionRow(s, { showGroup = true } = {}) {
  const href = '/org/sessions/' + encodeURIComponent(s.id);
  return h('li', { class: 'card session-row', dataset: { session: s.id, state: s.state } },
    h('div', { class: 'session-row-head' },
      h('h3', { class: 'session-row-title' }, h('a', { href }, s.title)),
      stateBadge(s.state)),
    h('p', { class: 'session-meta' }, icon('clock'),
      h('span', {}, timeRange(s.starts_at, s.ends_at)),
      showGroup && s.group ? h('span', { class: 'session-group' }, ' · ', s.group.name) : null),
    s.description ? h('p', { class: 'session-desc' }, s.description) : null);
}

// ---- a group's sessions + schedule form ----

export async function groupSessionsScreen(ctx) {
  const group = await loadGroup(ctx);
  if (!group || ctx.signal.aborted) return;
  add(ctx.main, groupHead(ctx, group, 'sessions'));

  const list = h('ol', { class: 'session-list', id: 'session-list' });
  const more = h('button', { type: 'button', id: 'sessions-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('org.sessions.none'));
  emptyBox.id = 'sessions-empty';
  emptyBox.hidden = true;
  const listErr = formError();
  let cursor = null;

  const form = group.status === 'active' ? scheduleForm(ctx, group, (s) => {
    list.prepend(sessionRow(s, { showGroup: false }));
    emptyBox.hidden = true;
  }) : h('div', { class: 'notice' }, h('p', {}, t('org.sessions.group_inactive')));

  add(ctx.main, h('div', { class: 'split' },
    h('section', { class: 'split-main', 'aria-labelledby': 'sessions-h2' },
      h('h2', { id: 'sessions-h2', class: 'section-title' }, t('org.sessions.list_title')),
      h('p', { class: 'muted' }, t('org.sessions.list_lead')),
      listErr, list, emptyBox, h('div', { class: 'actions' }, more)),
    form));

  async function load() {
    const q = '?limit=20' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const page = await session.call('/groups/' + encodeURIComponent(group.id) + '/sessions' + q, { signal: ctx.signal });
    for (const s of page.items) list.append(sessionRow(s, { showGroup: false }));
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = list.children.length > 0;
  }
  more.addEventListener('click', async () => {
    const before = list.children.length;
    try { await busy(more, load); } catch (e) { reportError(e, listErr); return; }
    const r = list.children[before];
    if (r) r.querySelector('a').focus();
  });
  try {
    await load();
  } catch (e) {
    if (ctx.signal.aborted) return;
    reportError(e, listErr);
  }
  ctx.ready('group-sessions', group.name);
}

function scheduleForm(ctx, group, created) {
  const title = field({ id: 'session-title', label: t('org.sessions.title_label'), required: true, max: TITLE_MAX,
    hint: t('org.sessions.title_hint') });
  const desc = field({ id: 'session-description', label: t('org.sessions.description'), kind: 'textarea', rows: 4,
    max: DESCRIPTION_MAX, hint: t('org.sessions.description_hint') });
  const starts = field({ id: 'session-starts', label: t('org.sessions.starts'), type: 'datetime-local', required: true });
  const ends = field({ id: 'session-ends', label: t('org.sessions.ends'), type: 'datetime-local', required: true,
    hint: t('org.sessions.ends_hint') });
  const zone = (() => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone; } catch { return ''; } })();
  const zoneNote = h('p', { class: 'hint', id: 'session-zone' }, t('org.sessions.zone', { zone: zone || '–' }));

  const defaults = () => {
    const start = new Date();
    start.setMinutes(0, 0, 0);
    start.setHours(start.getHours() + 1);
    starts.control.value = localInput(start);
    ends.control.value = localInput(new Date(start.getTime() + 3600 * 1000));
  };
  defaults();
  starts.control.min = localInput(new Date());
  // Moving the start moves the end along (same length), as calendars do.
  let length = 3600 * 1000;
  starts.control.addEventListener('focus', () => {
    const a = new Date(starts.control.value);
    const b = new Date(ends.control.value);
    if (!Number.isNaN(a.getTime()) && !Number.isNaN(b.getTime()) && b > a) length = b - a;
  });
  starts.control.addEventListener('change', () => {
    const a = new Date(starts.control.value);
    if (!Number.isNaN(a.getTime())) ends.control.value = localInput(new Date(a.getTime() + length));
  });

  const err = formError();
  const done = h('div', { class: 'sent-box', role: 'status', id: 'session-created-box' });
  const submit = h('button', { type: 'submit', id: 'session-create', class: 'btn-primary' }, icon('plus'), t('org.sessions.create'));
  const form = h('form', { id: 'session-form', novalidate: true }, err, title.wrap, desc.wrap,
    starts.wrap, ends.wrap, zoneNote,
    h('p', { class: 'hint', id: 'session-push-hint' }, t('org.sessions.push_hint', { count: group.subscriber_count })),
    h('div', { class: 'actions' }, submit), done);
  submit.setAttribute('aria-describedby', 'session-push-hint');

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clear(done);
    for (const c of [title.control, desc.control, starts.control, ends.control]) clearFieldError(c);
    const tt = chars(title.control.value);
    if (tt === 0) { showFieldError(title.control, t('org.sessions.title_missing')); title.control.focus(); return; }
    if (tt > TITLE_MAX) { title.control.focus(); return; }
    if (chars(desc.control.value) > DESCRIPTION_MAX) { desc.control.focus(); return; }
    const a = rfc3339Local(starts.control.value);
    const b = rfc3339Local(ends.control.value);
    if (!a) { showFieldError(starts.control, t('org.sessions.starts_missing')); starts.control.focus(); return; }
    if (!b) { showFieldError(ends.control, t('org.sessions.ends_missing')); ends.control.focus(); return; }
    const ta = Date.parse(a);
    const tb = Date.parse(b);
    if (ta > Date.now() + AHEAD_MS) { showFieldError(starts.control, t('org.sessions.starts_far')); starts.control.focus(); return; }
    if (tb <= Math.max(ta, Date.now())) { showFieldError(ends.control, t('org.sessions.ends_before')); ends.control.focus(); return; }
    if (tb - Math.max(ta, Date.now()) > LONGEST_MS) { showFieldError(ends.control, t('org.sessions.too_long')); ends.control.focus(); return; }
    const body = { title: title.control.value.trim(), starts_at: a, ends_at: b };
    const d = desc.control.value.trim();
    if (d) body.description = d;
    try {
      const s = await busy(submit, () => session.call('/groups/' + encodeURIComponent(group.id) + '/sessions', { method: 'POST', body }));
      created(s);
      form.reset();
      defaults();
      title.control.refreshCounter();
      desc.control.refreshCounter();
      const text = s.state === 'open' ? t('org.sessions.created_open') : t('org.sessions.created', { time: fmtDateTime(s.starts_at) });
      done.append(h('div', { class: 'notice notice-ok', id: 'session-created' },
        h('p', {}, text, ' ', h('a', { href: '/org/sessions/' + encodeURIComponent(s.id) }, t('org.sessions.open_page')))));
      announce(text);
      title.control.focus();
    } catch (e) {
      reportError(e, err, { title: title.control, description: desc.control, starts_at: starts.control, ends_at: ends.control }, {
        title: t('org.sessions.title_invalid', { max: TITLE_MAX }),
        description: t('org.sessions.description_invalid', { max: fmtNumber(DESCRIPTION_MAX) }),
        starts_at: t('org.sessions.starts_invalid'),
        ends_at: t('org.sessions.ends_invalid'),
      });
    }
  });
  return h('section', { class: 'card split-side', 'aria-labelledby': 'schedule-h2' },
    h('h2', { id: 'schedule-h2' }, t('org.sessions.schedule')),
    h('p', { class: 'muted' }, t('org.sessions.schedule_lead')),
    form);
}

// ---- all sessions of the organization ----

export async function sessionsScreen(ctx) {
  const { org } = ctx.data;
  const groups = (await loadGroups(ctx)).filter(g => g.status !== 'archived');
  const pages = await Promise.allSettled(groups.map(g =>
    session.call('/groups/' + encodeURIComponent(g.id) + '/sessions?limit=20', { signal: ctx.signal })));
  if (ctx.signal.aborted) return;
  const all = [];
  let failed = false;
  for (const p of pages) {
    if (p.status === 'fulfilled') all.push(...p.value.items); else failed = true;
  }
  const by = (state) => all.filter(s => s.state === state);
  const open = by('open').sort((a, b) => Date.parse(a.ends_at) - Date.parse(b.ends_at));
  const scheduled = by('scheduled').sort((a, b) => Date.parse(a.starts_at) - Date.parse(b.starts_at));
  const ended = by('ended').sort((a, b) => Date.parse(b.starts_at) - Date.parse(a.starts_at)).slice(0, 20);

  const section = (key, items, empty) => h('section', { class: 'sessions-section', 'aria-labelledby': 'sessions-' + key + '-h2' },
    h('h2', { id: 'sessions-' + key + '-h2', class: 'section-title' }, t('org.sessions.section.' + key, { count: items.length })),
    items.length ? h('ol', { class: 'session-list', id: 'sessions-' + key }, items.map(x => sessionRow(x))) : (empty ? emptyState(empty) : null));

  const where = groups.length
    ? h('details', { class: 'more-options' }, h('summary', {}, t('org.sessions.schedule_in')),
      h('ul', { class: 'plain-links' }, groups.filter(g => g.status === 'active').map(g =>
        h('li', {}, h('a', { href: '/org/groups/' + encodeURIComponent(g.id) + '/sessions' }, g.name)))))
    : emptyState(t('org.sessions.no_groups'));

  add(ctx.main,
    pageHead(t('org.sessions.title'), t('org.sessions.lead', { org: org.name })),
    failed ? h('div', { class: 'notice notice-danger', role: 'alert' }, h('p', {}, t('org.sessions.partly_failed'))) : null,
    where,
    section('open', open, null),
    section('scheduled', scheduled, t('org.sessions.none_scheduled')),
    ended.length ? section('ended', ended, null) : null);
  ctx.ready('sessions', t('org.sessions.title'));
}

// ---- one session, live ----

export async function sessionScreen(ctx) {
  const id = ctx.params[0];
  let s;
  try {
    s = await session.call(sessionPath(id), { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) return;
    if (e.status === 404) {
      add(ctx.main, pageHead(t('org.sessions.missing_title')),
        emptyState(t('org.sessions.missing_text'), h('a', { href: '/org/sessions' }, t('org.sessions.back'))));
      ctx.ready('not-found', t('org.sessions.missing_title'));
      return;
    }
    throw e;
  }
  if (ctx.signal.aborted) return;
  if (s.organization && s.organization.id !== ctx.data.org.id) {
    // A session of another of the person's organizations: answering needs that one chosen.
    add(ctx.main, pageHead(s.title),
      h('div', { class: 'notice' }, h('p', {}, t('org.sessions.other_org', { org: s.organization.name }))));
    ctx.ready('not-found', s.title);
    return;
  }

  const head = h('div', {});
  const info = h('section', { class: 'card', id: 'session-info', 'aria-labelledby': 'session-info-h2' });
  const controls = h('section', { class: 'card', id: 'session-controls', 'aria-labelledby': 'session-controls-h2' });
  const controlsErr = formError();
  const live = h('p', { class: 'live-state', id: 'session-live' });
  const listErr = formError();

  const sections = {};
  for (const key of ['open', 'answered', 'dismissed']) {
    const ol = h('ol', { class: 'question-list', id: 'questions-' + key });
    const heading = h('h2', { id: 'questions-' + key + '-h2', class: 'questions-title' });
    const empty = h('p', { class: 'empty small' }, t('org.sessions.questions_none.' + key));
    const box = key === 'dismissed'
      ? h('details', { class: 'question-section', id: 'questions-' + key + '-box' }, h('summary', {}, heading), ol, empty)
      : h('section', { class: 'question-section', 'aria-labelledby': 'questions-' + key + '-h2' }, heading, ol, empty);
    sections[key] = { ol, heading, empty, box, pending: false };
    ol.addEventListener('focusout', () => {
      // A reorder waited for the person to leave the list (moving focused nodes loses focus).
      if (sections[key].pending) setTimeout(() => place(key), 0);
    });
  }
  const rows = new Map();
  let first = true;

  function drawHead() {
    clear(head);
    const ph = pageHead(s.title, null);
    ph.querySelector('.page-head-text').append(h('p', { class: 'lead lead-parts' },
      h('span', {}, s.group.name), h('span', { id: 'session-time' }, timeRange(s.starts_at, s.ends_at))));
    ph.append(h('div', { class: 'page-head-actions' }, stateBadge(s.state)));
    add(head,
      h('p', { class: 'breadcrumb' },
        h('a', { href: '/org/groups/' + encodeURIComponent(s.group.id) + '/sessions' }, icon('back'), t('org.sessions.back_group', { group: s.group.name }))),
      ph);
  }

  function drawInfo() {
    clear(info);
    const link = location.origin + '/q/' + encodeURIComponent(s.id);
    add(info,
      h('h2', { id: 'session-info-h2' }, t('org.sessions.about')),
      s.description ? h('p', { class: 'pre' }, s.description) : h('p', { class: 'muted' }, t('org.sessions.no_description')),
      h('p', { class: 'muted small' }, t('org.sessions.public_link')),
      h('p', { class: 'share-link' }, h('a', { href: link, id: 'session-public-link' }, link)),
      h('div', { class: 'actions' }, copyButton(link, t('org.sessions.copy_link'), 'session-copy-link')));
  }

  function drawControls() {
    clear(controls);
    add(controls, h('h2', { id: 'session-controls-h2' }, t('org.sessions.controls')), controlsErr, live);
    if (s.state === 'open') {
      const end = h('button', { type: 'button', id: 'session-end' }, t('org.sessions.end'));
      end.addEventListener('click', async () => {
        controlsErr.show(null);
        const yes = await confirmDialog({ title: t('org.sessions.end_title'), text: t('org.sessions.end_text'),
          confirm: t('org.sessions.end'), confirmId: 'session-end-confirm', id: 'session-end-dialog' });
        if (!yes) return;
        try {
          await busy(end, () => session.call(sessionPath(s.id, '/end'), { method: 'POST' }));
          await refetch();
          announce(t('org.sessions.ended_done'));
          controls.querySelector('h2').focus();
        } catch (e) {
          reportError(e, controlsErr);
        }
      });
      add(controls, h('p', {}, t('org.sessions.end_hint', { time: fmtDateTime(s.ends_at) })), end);
    } else if (s.state === 'scheduled') {
      const cancel = h('button', { type: 'button', id: 'session-cancel', class: 'btn-danger' }, t('org.sessions.cancel'));
      cancel.addEventListener('click', async () => {
        controlsErr.show(null);
        const yes = await confirmDialog({ title: t('org.sessions.cancel_title', { title: s.title }),
          text: [t('org.sessions.cancel_text'), t('org.sessions.cancel_text2')],
          confirm: t('org.sessions.cancel'), danger: true, confirmId: 'session-cancel-confirm', id: 'session-cancel-dialog' });
        if (!yes) return;
        try {
          await busy(cancel, () => session.call(sessionPath(s.id), { method: 'DELETE' }));
          // Fetched again rather than patched here: a fetch still in flight from
          // before the cancellation would otherwise draw the old state over it.
          await refetch().catch(() => {});
          if (s.state !== 'cancelled') {
            s = { ...s, state: 'cancelled' };
            drawAll();
          }
          stopLive();
          announce(t('org.sessions.cancelled_done'));
          controls.querySelector('h2').focus();
        } catch (e) {
          if (e.code === 'session_started') await refetch().catch(() => {});
          reportError(e, controlsErr);
        }
      });
      add(controls, h('p', {}, t('org.sessions.scheduled_hint', { time: fmtDateTime(s.starts_at) })), cancel);
    } else {
      add(controls, h('p', {}, t('org.sessions.over.' + s.state)));
    }
    controls.querySelector('h2').tabIndex = -1;
  }

  function drawAll() {
    drawHead();
    drawInfo();
    drawControls();
    drawQuestions(s.questions || []);
  }

  // ---- questions ----

  function drawQuestions(questions) {
    const seen = new Set();
    const fresh = [];
    for (const q of questions) {
      seen.add(q.id);
      let r = rows.get(q.id);
      if (!r) {
        r = questionRow(q);
        rows.set(q.id, r);
        if (!first && q.status === 'open') fresh.push(q);
      } else {
        r.update(q);
      }
      r.order = questions.indexOf(q);
    }
    for (const [qid, r] of rows) if (!seen.has(qid)) { r.el.remove(); rows.delete(qid); }
    for (const key of Object.keys(sections)) place(key);
    if (fresh.length === 1) announce(t('org.sessions.new_question', { author: fresh[0].author || '' }));
    else if (fresh.length > 1) announce(t('org.sessions.new_questions', { count: fresh.length }));
    first = false;
  }

  /** Puts the rows of one status into their list in the server's order (votes, then age). */
  function place(key) {
    const sec = sections[key];
    const want = [...rows.values()].filter(r => r.q.status === key).sort((a, b) => a.order - b.order);
    const active = document.activeElement;
    const focusInside = active && active !== document.body && sec.ol.contains(active);
    const moving = want.some(r => r.el.parentNode !== sec.ol);
    if (focusInside && !moving) {
      const current = [...sec.ol.children];
      const same = current.length === want.length && current.every((el, i) => el === want[i].el);
      if (!same) { sec.pending = true; updateHeading(key, want.length); return; }
    }
    sec.pending = false;
    want.forEach((r, i) => {
      if (sec.ol.children[i] !== r.el) sec.ol.insertBefore(r.el, sec.ol.children[i] || null);
    });
    updateHeading(key, want.length);
  }

  function updateHeading(key, n) {
    const sec = sections[key];
    sec.heading.textContent = t('org.sessions.questions.' + key, { count: n });
    sec.empty.hidden = n > 0;
  }

  function questionRow(q0) {
    const qid = q0.id;
    const bodyEl = h('p', { class: 'question-body pre' });
    const meta = h('p', { class: 'question-meta' });
    const answerEl = h('div', { class: 'question-answer' });
    const rowErr = formError();
    const tools = h('div', { class: 'question-tools' });
    const formId = uid('answer');
    const text = field({ id: 'answer-' + qid, label: t('org.sessions.answer_label'), kind: 'textarea', rows: 3, max: ANSWER_MAX, plain: true });
    const pub = h('input', { type: 'radio', name: 'answer-public-' + qid, value: 'public', id: formId + '-public', checked: true });
    const priv = h('input', { type: 'radio', name: 'answer-public-' + qid, value: 'private', id: formId + '-private' });
    const send = h('button', { type: 'submit', class: 'btn-primary', dataset: { action: 'send-answer' } }, t('org.sessions.answer_send'));
    const close = h('button', { type: 'button', class: 'btn-quiet', dataset: { action: 'close-answer' } }, t('staff.cancel'));
    const form = h('form', { class: 'answer-form', id: formId, novalidate: true, hidden: true },
      text.wrap,
      h('fieldset', {},
        h('legend', {}, t('org.sessions.answer_who')),
        h('label', { class: 'choice', for: formId + '-public' }, pub, t('org.sessions.answer_public')),
        h('label', { class: 'choice', for: formId + '-private' }, priv, t('org.sessions.answer_private'))),
      h('div', { class: 'actions' }, send, close));
    const el = h('li', { class: 'card staff-question', dataset: { question: qid } },
      bodyEl, meta, answerEl, rowErr, tools, form);
    const r = { el, q: q0, order: 0, update };

    const answerBtn = h('button', { type: 'button', class: 'btn-primary', dataset: { action: 'answer' }, 'aria-expanded': 'false',
      'aria-controls': formId });
    const dismissBtn = h('button', { type: 'button', class: 'btn-quiet', dataset: { action: 'dismiss' } }, icon('eyeoff'), t('org.sessions.dismiss'));
    const blockBtn = h('button', { type: 'button', class: 'btn-quiet danger-text', dataset: { action: 'block' } }, icon('ban'), t('org.sessions.block'));

    answerBtn.addEventListener('click', () => {
      const opening = form.hidden;
      form.hidden = !opening;
      answerBtn.setAttribute('aria-expanded', String(opening));
      if (opening) text.control.focus();
    });
    close.addEventListener('click', () => {
      form.hidden = true;
      answerBtn.setAttribute('aria-expanded', 'false');
      answerBtn.focus();
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      rowErr.show(null);
      clearFieldError(text.control);
      const n = chars(text.control.value);
      if (n === 0) { showFieldError(text.control, t('org.sessions.answer_missing')); text.control.focus(); return; }
      if (n > ANSWER_MAX) { text.control.focus(); return; }
      const isPublic = pub.checked;
      try {
        const updated = await busy(send, () => session.call(sessionPath(s.id, '/questions/' + encodeURIComponent(qid) + '/answer'),
          { method: 'POST', body: { body: text.control.value.trim(), public: isPublic } }));
        text.control.value = '';
        text.control.refreshCounter();
        form.hidden = true;
        answerBtn.setAttribute('aria-expanded', 'false');
        update({ ...r.q, ...updated, author: r.q.author });
        place('open');
        place('answered');
        announce(t(isPublic ? 'org.sessions.answered_public' : 'org.sessions.answered_private'));
        el.tabIndex = -1;
        el.focus();
        refetch().catch(() => {});
      } catch (e) {
        reportError(e, rowErr, { body: text.control }, { body: t('org.sessions.answer_invalid', { max: fmtNumber(ANSWER_MAX) }) });
      }
    });
    dismissBtn.addEventListener('click', async () => {
      rowErr.show(null);
      const reason = await reasonDialog({ title: t('org.sessions.dismiss_title'), text: t('org.sessions.dismiss_text'),
        label: t('org.sessions.dismiss_reason'), required: false, confirm: t('org.sessions.dismiss'), max: REASON_MAX });
      if (reason === null) return;
      try {
        const body = reason ? { reason } : {};
        const updated = await busy(dismissBtn, () => session.call(sessionPath(s.id, '/questions/' + encodeURIComponent(qid) + '/dismiss'),
          { method: 'POST', body }));
        update({ ...r.q, ...updated, author: r.q.author });
        place('open');
        place('answered');
        place('dismissed');
        announce(t('org.sessions.dismissed_done'));
        sections.open.heading.tabIndex = -1;
        sections.open.heading.focus();
      } catch (e) {
        reportError(e, rowErr);
      }
    });
    blockBtn.addEventListener('click', async () => {
      rowErr.show(null);
      const reason = await reasonDialog({
        title: t('org.sessions.block_title', { author: r.q.author || '' }),
        text: t('org.issues.block_confirm_text', { org: ctx.data.org.name }),
        label: t('org.issues.block_reason'), hint: t('org.issues.block_reason_hint'), required: true,
        confirm: t('org.issues.block'), danger: true, max: REASON_MAX,
      });
      if (reason === null) return;
      try {
        await busy(blockBtn, () => session.call(sessionPath(s.id, '/questions/' + encodeURIComponent(qid) + '/block'),
          { method: 'POST', body: { reason } }));
        announce(t('org.issues.blocked_done', { author: r.q.author || '' }));
        r.blocked = true;
        update(r.q);
        blockBtn.blur();
        el.tabIndex = -1;
        el.focus();
      } catch (e) {
        reportError(e, rowErr);
      }
    });

    function update(q) {
      r.q = q;
      el.dataset.status = q.status;
      bodyEl.textContent = q.body;
      add(clear(meta),
        h('span', { class: 'question-author' }, q.author ? residentName(q.author) : t('org.sessions.anonymous')),
        h('span', { class: 'question-votes' }, t('org.sessions.votes', { count: q.votes || 0 })),
        when(q.created_at),
        r.blocked ? badge(t('org.issues.blocked_badge'), 'danger') : null);
      clear(answerEl);
      if (q.answer) {
        add(answerEl, h('p', { class: 'answer-head' },
          badge(t(q.answer.public ? 'org.sessions.answer_is_public' : 'org.sessions.answer_is_private'), q.answer.public ? 'ok' : null),
          ' ', when(q.answer.answered_at)),
        q.answer.body ? h('p', { class: 'answer-body pre' }, q.answer.body) : null);
      }
      // Tools for what can still be done; an unsent draft stays.
      clear(tools);
      const cancelled = s.state === 'cancelled';
      if (q.status === 'open' && !cancelled) {
        answerBtn.textContent = t('org.sessions.answer');
        answerBtn.setAttribute('aria-label', t('org.sessions.answer_label_for', { text: shortText(q.body) }));
        tools.append(answerBtn);
      } else if (!text.control.value.trim()) {
        form.hidden = true;
        answerBtn.setAttribute('aria-expanded', 'false');
      }
      if (q.status !== 'dismissed' && !cancelled) tools.append(dismissBtn);
      if (q.author && !r.blocked) tools.append(blockBtn);
    }
    update(q0);
    return r;
  }

  function shortText(x) {
    const c = Array.from(String(x || ''));
    return c.length > 60 ? c.slice(0, 60).join('') + '…' : c.join('');
  }

  // ---- live updates ----

  let source = null;
  let inflight = null;
  let again = false;
  let timers = [];

  async function refetch() {
    if (inflight) { again = true; return inflight; }
    inflight = (async () => {
      do {
        again = false;
        const next = await session.call(sessionPath(s.id), { signal: ctx.signal });
        if (ctx.signal.aborted) return;
        const changed = next.state !== s.state;
        s = next;
        if (changed) { drawHead(); drawControls(); }
        drawQuestions(s.questions || []);
        if (changed && (s.state === 'ended' || s.state === 'cancelled')) stopLive();
        schedule();
      } while (again && !ctx.signal.aborted);
    })().finally(() => { inflight = null; });
    return inflight;
  }

  function setLive(state) {
    if (live.dataset.live === state) return;
    const was = live.dataset.live;
    live.dataset.live = state;
    live.textContent = t('org.sessions.live.' + state);
    if (state === 'lost' || (state === 'on' && was === 'lost')) announce(live.textContent);
  }

  function startLive() {
    if (source || !window.EventSource) return;
    setLive('connecting');
    source = new EventSource('/api/v1' + sessionPath(s.id, '/events'));
    const changed = () => { refetch().catch(() => {}); };
    source.addEventListener('question', changed);
    source.addEventListener('session', changed);
    source.addEventListener('open', () => {
      setLive('on');
      // Whatever happened while disconnected.
      changed();
    });
    source.addEventListener('error', () => {
      if (source && source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. an HTTP error): try again in a while.
        source = null;
        setLive('lost');
        timers.push(setTimeout(() => { if (!ctx.signal.aborted) startLive(); }, 5000));
      } else {
        setLive('lost');
      }
    });
  }

  function stopLive() {
    if (source) { source.close(); source = null; }
    setLive('off');
  }

  /** The server opens and ends sessions by the clock: look again at those moments. */
  function schedule() {
    for (const x of timers) clearTimeout(x);
    timers = [];
    const now = Date.now();
    for (const at of [Date.parse(s.starts_at), Date.parse(s.ends_at)]) {
      const d = at - now;
      if (d > 0 && d < 24 * 3600 * 1000) timers.push(setTimeout(() => { refetch().catch(() => {}); }, d + 1000));
    }
  }

  ctx.signal.addEventListener('abort', () => {
    if (source) source.close();
    source = null;
    for (const x of timers) clearTimeout(x);
  });

  add(ctx.main, head, h('div', { class: 'split' },
    h('div', { class: 'split-main' }, listErr, sections.open.box, sections.answered.box, sections.dismissed.box),
    h('div', { class: 'split-side stack-side' }, controls, info)));
  drawAll();
  if (s.state === 'scheduled' || s.state === 'open') startLive(); else setLive('off');
  schedule();
  ctx.ready('session', s.title);
}
