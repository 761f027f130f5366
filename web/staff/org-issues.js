// Residents' reports to the organization ("Meldungen"): the inbox across the
// organization's groups (filters in the address, paged), one report with its
// photos, location and thread (reply, status, public board, block), and the
// list of blocked residents. Residents appear only by their pseudonym.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime, fmtRelative, fmtNumber } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, badge, emptyState, icon, chars, showFieldError, clearFieldError,
  confirmDialog, reasonDialog, copyButton, when, wireFilters,
} from './ui.js';
import { loadGroups } from './org-groups.js';
import { loadIntake } from './org-intake.js';

export const STATUSES = ['received', 'in_progress', 'done', 'rejected'];
const STATUS_TONE = { received: 'warn', in_progress: 'official', done: 'ok', rejected: 'danger' };
/** The server's limits (contract of issue 7). */
export const REPLY_MAX = 2000;
const BLOCK_REASON_MAX = 500;
const EXCERPT = 160;
const PAGE = 20;

function orgPath(ctx, rest) {
  return '/organizations/' + encodeURIComponent(ctx.data.org.id) + rest;
}
function issuePath(id, rest = '') {
  return '/issues/' + encodeURIComponent(id) + rest;
}

export function issueBadge(status) {
  return h('span', { class: 'badge badge-' + (STATUS_TONE[status] || 'warn') + ' issue-status', dataset: { status } },
    t('org.issues.status.' + status));
}

/** "Anwohner:in K7QM-2XTP" */
export function residentName(author) {
  return t('org.issues.resident', { author });
}

/** A relative age with the exact time in the `datetime` attribute and as a tooltip. */
function age(iso) {
  return h('time', { datetime: iso, title: fmtDateTime(iso) }, fmtRelative(iso));
}

function excerpt(text) {
  const c = Array.from(String(text || ''));
  return c.length > EXCERPT ? c.slice(0, EXCERPT).join('').trimEnd() + '…' : c.join('');
}

/** Reports waiting for a first answer (status "received"), for the navigation badge. */
export async function loadNewCount(data) {
  data.counts = data.counts || {};
  if (!data.org) return 0;
  try {
    const page = await session.call('/organizations/' + encodeURIComponent(data.org.id) + '/issues?status=received&limit=100');
    data.counts.issues = page.next ? '99+' : page.items.length;
  } catch {
    data.counts.issues = 0;
  }
  return data.counts.issues;
}

async function refreshCount(ctx) {
  await loadNewCount(ctx.data);
  if (!ctx.signal.aborted) ctx.refreshNav();
}

/** Categories of all groups' intakes (for the filter), without repeats, in order. */
async function allCategories(groups, signal) {
  const intakes = await Promise.allSettled(groups.map(g => loadIntake(g.id, signal)));
  const seen = new Set();
  const out = [];
  for (const r of intakes) {
    if (r.status !== 'fulfilled') continue;
    for (const c of r.value.categories || []) if (!seen.has(c)) { seen.add(c); out.push(c); }
  }
  return out;
}

// ---- inbox ----

export async function issuesScreen(ctx) {
  const { org } = ctx.data;
  const q = ctx.query;
  const groups = await loadGroups(ctx);
  const categories = await allCategories(groups, ctx.signal);
  if (ctx.signal.aborted) return;
  const category = q.get('category') || '';
  if (category && !categories.includes(category)) categories.push(category);

  const status = field({ id: 'issues-status', label: t('org.issues.filter_status'), kind: 'select', value: q.get('status') || '',
    options: [{ value: '', label: t('org.issues.any_status') }, ...STATUSES.map(s => ({ value: s, label: t('org.issues.status.' + s) }))] });
  const cat = field({ id: 'issues-category', label: t('org.issues.filter_category'), kind: 'select', value: category,
    options: [{ value: '', label: t('org.issues.any_category') }, ...categories.map(c => ({ value: c, label: c }))] });
  const grp = field({ id: 'issues-group', label: t('org.issues.filter_group'), kind: 'select', value: q.get('group') || '',
    options: [{ value: '', label: t('org.issues.any_group') }, ...groups.map(g => ({ value: g.id, label: g.name }))] });
  const apply = h('button', { type: 'submit', id: 'issues-filter', class: 'btn-primary' }, t('org.issues.apply'));
  const reset = h('button', { type: 'button', id: 'issues-reset', class: 'btn-quiet' }, t('org.issues.reset'));
  const form = h('form', { class: 'card filters-card', role: 'search', 'aria-label': t('org.issues.filters') },
    h('div', { class: 'filter-grid filter-grid-3' }, status.wrap, cat.wrap, grp.wrap),
    h('div', { class: 'actions' }, apply, reset));

  const err = formError();
  const list = h('ul', { class: 'issue-list', id: 'issue-list', 'aria-labelledby': 'issues-count' });
  const count = h('p', { class: 'muted small', role: 'status', id: 'issues-count' });
  const more = h('button', { type: 'button', id: 'issues-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('org.issues.empty'));
  emptyBox.id = 'issues-empty';
  emptyBox.hidden = true;
  let cursor = null;

  const noIntake = h('div', { class: 'notice', id: 'issues-no-intake', hidden: true },
    h('p', {}, t('org.issues.no_intake')),
    groups.length ? h('p', {}, h('a', { href: '/org/groups/' + encodeURIComponent(groups[0].id) + '/settings#intake' },
      t('org.issues.no_intake_link'))) : null);

  add(ctx.main,
    pageHead(t('org.issues.title'), t('org.issues.lead', { org: org.name }),
      h('a', { class: 'btn btn-quiet', href: '/org/blocks', id: 'blocks-link' }, icon('ban'), t('org.blocks.title'))),
    noIntake, form, err, count, list, emptyBox, h('div', { class: 'actions' }, more));

  function params() {
    const p = new URLSearchParams();
    if (status.control.value) p.set('status', status.control.value);
    if (cat.control.value) p.set('category', cat.control.value);
    if (grp.control.value) p.set('group', grp.control.value);
    return p;
  }

  async function load(first) {
    const p = params();
    p.set('limit', String(PAGE));
    if (cursor && !first) p.set('cursor', cursor);
    const page = await session.call(orgPath(ctx, '/issues?' + p), { signal: ctx.signal });
    if (first) clear(list);
    for (const issue of page.items) list.append(issueRow(issue));
    cursor = page.next;
    more.hidden = !cursor;
    emptyBox.hidden = list.children.length > 0;
    list.hidden = list.children.length === 0;
    count.textContent = t('org.issues.shown', { count: list.children.length }) + (cursor ? ' ' + t('org.issues.more_available') : '');
  }

  wireFilters({
    form, apply, reset, more, err, count, list, params, load,
    path: '/org/issues',
    clearFields() { status.control.value = ''; cat.control.value = ''; grp.control.value = ''; },
    focus: (entry) => entry.querySelector('a').focus(),
  });

  try {
    await load(true);
  } catch (e) {
    if (ctx.signal.aborted) return;
    reportError(e, err);
  }
  // No group takes reports yet: say where to switch it on.
  if (!categories.length && !list.children.length) noIntake.hidden = false;
  refreshCount(ctx);
  ctx.ready('issues', t('org.issues.title'));
}

function issueRow(issue) {
  const href = '/org/issues/' + encodeURIComponent(issue.id);
  const photos = (issue.photos || []).length;
  const titleId = 'issue-' + issue.id + '-title';
  return h('li', { class: 'card issue-row', dataset: { issue: issue.id, status: issue.status } },
    h('div', { class: 'issue-row-head' },
      h('h2', { class: 'issue-row-title', id: titleId },
        h('a', { href }, issue.category, h('span', { class: 'visually-hidden' }, ' – ' + residentName(issue.author)))),
      issueBadge(issue.status)),
    h('p', { class: 'issue-excerpt' }, excerpt(issue.body)),
    h('p', { class: 'issue-meta' },
      h('span', { class: 'issue-author' }, residentName(issue.author)),
      h('span', {}, issue.group.name),
      photos ? h('span', { class: 'issue-photos' }, icon('camera'), t('org.issues.photos', { count: photos })) : null,
      issue.location || issue.address ? h('span', {}, icon('pin'), t('org.issues.has_location')) : null,
      issue.public ? h('span', {}, t('org.issues.on_board')) : null,
      issue.blocked ? h('span', { class: 'danger-text' }, t('org.issues.blocked_badge')) : null,
      h('span', {}, t('org.issues.activity'), ' ', age(issue.updated_at))));
}

// ---- one report ----

export async function issueScreen(ctx) {
  const id = ctx.params[0];
  let issue;
  try {
    issue = await session.call(issuePath(id), { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) return;
    if (e.status === 404) {
      add(ctx.main, pageHead(t('org.issues.missing_title')),
        emptyState(t('org.issues.missing_text'), h('a', { href: '/org/issues' }, t('org.issues.back'))));
      ctx.ready('not-found', t('org.issues.missing_title'));
      return;
    }
    throw e;
  }
  let intake = { open: false, categories: [], board: false };
  try { intake = await loadIntake(issue.group.id, ctx.signal); } catch (e) { if (ctx.signal.aborted) return; }
  if (ctx.signal.aborted) return;

  // Object URLs of the photos live as long as the screen.
  const urls = [];
  ctx.signal.addEventListener('abort', () => { for (const u of urls) URL.revokeObjectURL(u); });

  const head = h('div', { class: 'issue-head-block' });
  const reportBox = h('section', { class: 'card issue-card', id: 'issue-report', 'aria-labelledby': 'issue-report-h2' });
  const thread = h('ol', { class: 'issue-thread', id: 'issue-thread' });
  const threadBox = h('section', { class: 'thread-box', 'aria-labelledby': 'thread-h2' },
    h('h2', { id: 'thread-h2', class: 'section-title' }, t('org.issues.thread')), thread);
  const side = h('div', { class: 'split-side stack-side' });

  // ---- reply ----
  const replyBody = field({ id: 'issue-reply-body', label: t('org.issues.reply'), kind: 'textarea', rows: 5, max: REPLY_MAX,
    hint: t('org.issues.reply_hint'), plain: true });
  const replyStatus = field({ id: 'issue-reply-status', label: t('org.issues.reply_status'), kind: 'select', value: '',
    options: [] });
  const replyErr = formError();
  const replySend = h('button', { type: 'submit', id: 'issue-reply-send', class: 'btn-primary' }, icon('send'), h('span', {}));
  const replyForm = h('form', { id: 'issue-reply-form', class: 'card', novalidate: true, 'aria-labelledby': 'reply-h2' },
    h('h2', { id: 'reply-h2' }, t('org.issues.reply_title')),
    replyErr, replyBody.wrap, replyStatus.wrap,
    h('p', { class: 'hint', id: 'issue-reply-push' }, t('org.issues.reply_push')),
    h('div', { class: 'actions' }, replySend));
  replySend.setAttribute('aria-describedby', 'issue-reply-push');

  function sendLabel() {
    const s = replyStatus.control.value;
    const status = s ? t('org.issues.status.' + s) : '';
    const text = replyBody.control.value.trim();
    replySend.lastChild.textContent = !s ? t('org.issues.reply_send')
      : text ? t('org.issues.reply_and_set', { status }) : t('org.issues.set_only', { status });
  }
  replyStatus.control.addEventListener('change', sendLabel);
  replyBody.control.addEventListener('input', sendLabel);

  replyForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replyErr.show(null);
    clearFieldError(replyBody.control);
    const text = replyBody.control.value.trim();
    const next = replyStatus.control.value;
    if (!text && !next) {
      showFieldError(replyBody.control, t('org.issues.reply_missing'));
      replyBody.control.focus();
      return;
    }
    if (chars(text) > REPLY_MAX) { replyBody.control.focus(); return; }
    const body = {};
    if (text) body.body = text;
    if (next) body.status = next;
    try {
      const updated = await busy(replySend, () => session.call(issuePath(issue.id, '/replies'), { method: 'POST', body }));
      replyForm.reset();
      replyBody.control.refreshCounter();
      show(updated);
      announce(next ? t('org.issues.replied_status', { status: t('org.issues.status.' + updated.status) }) : t('org.issues.replied'));
      const last = thread.lastElementChild;
      if (last) { last.tabIndex = -1; last.focus(); }
      if (next) refreshCount(ctx);
    } catch (e) {
      reportError(e, replyErr, { body: replyBody.control, status: replyStatus.control },
        { body: t('org.issues.reply_invalid', { max: fmtNumber(REPLY_MAX) }) });
    }
  });

  // ---- status ----
  const statusErr = formError();
  const statusNow = h('p', { class: 'status-now', id: 'issue-status-now', tabindex: '-1' });
  const statusButtons = h('div', { class: 'status-buttons', role: 'group', 'aria-labelledby': 'status-h2' });
  const statusCard = h('section', { class: 'card', id: 'issue-status-card', 'aria-labelledby': 'status-h2' },
    h('h2', { id: 'status-h2' }, t('org.issues.status_title')), statusErr, statusNow, statusButtons,
    h('p', { class: 'hint' }, t('org.issues.status_hint')));

  async function setStatus(next, button) {
    statusErr.show(null);
    let reason = '';
    if (next === 'rejected') {
      reason = await reasonDialog({
        title: t('org.issues.reject_title'), text: t('org.issues.reject_text'), label: t('org.issues.reject_reason'),
        hint: t('org.issues.reject_hint'), required: false, confirm: t('org.issues.reject'), danger: true, max: REPLY_MAX,
      });
      if (reason === null) return;
    }
    try {
      const updated = await busy(button, () => (reason
        ? session.call(issuePath(issue.id, '/replies'), { method: 'POST', body: { body: reason, status: next } })
        : session.call(issuePath(issue.id), { method: 'PATCH', body: { status: next } })));
      // PATCH need not answer with the thread: fetch it again for the new status post.
      show(updated.posts && updated.posts.length ? updated : await session.call(issuePath(issue.id), { signal: ctx.signal }));
      announce(t('org.issues.status_set', { status: t('org.issues.status.' + next) }));
      statusNow.focus();
      refreshCount(ctx);
    } catch (e) {
      reportError(e, statusErr);
    }
  }

  // ---- public board ----
  const boardErr = formError();
  const boardState = h('p', { id: 'issue-board-state' });
  const boardNote = h('p', { class: 'hint', id: 'issue-board-note' });
  const publish = h('button', { type: 'button', id: 'issue-publish', 'aria-describedby': 'issue-board-note' });
  const boardCard = h('section', { class: 'card', id: 'issue-board-card', 'aria-labelledby': 'board-h2' },
    h('h2', { id: 'board-h2' }, t('org.issues.board_title')), boardErr, boardState, h('div', { class: 'actions' }, publish), boardNote);
  publish.addEventListener('click', async () => {
    boardErr.show(null);
    const next = !issue.public;
    if (next) {
      const yes = await confirmDialog({
        title: t('org.issues.publish_title'),
        text: [t('org.issues.publish_text'), t('org.issues.publish_text2')],
        confirm: t('org.issues.publish'), confirmId: 'publish-confirm', id: 'publish-dialog',
      });
      if (!yes) return;
    }
    try {
      const updated = await busy(publish, () => session.call(issuePath(issue.id), { method: 'PATCH', body: { public: next } }));
      show({ ...issue, ...updated, posts: issue.posts });
      announce(t(next ? 'org.issues.published' : 'org.issues.unpublished'));
      publish.focus();
    } catch (e) {
      reportError(e, boardErr);
    }
  });

  // ---- block ----
  const blockErr = formError();
  const blockBody = h('div', {});
  const blockCard = h('section', { class: 'card danger-zone', id: 'issue-block-card', 'aria-labelledby': 'block-h2' },
    h('h2', { id: 'block-h2' }, t('org.issues.block_title')), blockErr, blockBody);

  async function block(button) {
    blockErr.show(null);
    const reason = await reasonDialog({
      title: t('org.issues.block_confirm_title', { author: issue.author }),
      text: t('org.issues.block_confirm_text', { org: ctx.data.org.name }),
      label: t('org.issues.block_reason'), hint: t('org.issues.block_reason_hint'), required: true,
      confirm: t('org.issues.block'), danger: true, max: BLOCK_REASON_MAX,
    });
    if (reason === null) return;
    try {
      await busy(button, () => session.call(issuePath(issue.id, '/block'), { method: 'POST', body: { reason } }));
      show({ ...issue, blocked: true });
      announce(t('org.issues.blocked_done', { author: issue.author }));
      const link = blockCard.querySelector('a');
      (link || blockCard).focus();
    } catch (e) {
      reportError(e, blockErr);
    }
  }

  function drawReport() {
    clear(head);
    const ph = pageHead(issue.category, null);
    ph.querySelector('.page-head-text').append(h('p', { class: 'lead lead-parts' },
      h('span', { id: 'issue-author' }, residentName(issue.author)),
      h('span', {}, issue.group.name),
      h('span', {}, t('org.issues.received_at', { time: fmtDateTime(issue.created_at) }))));
    add(head,
      h('p', { class: 'breadcrumb' }, h('a', { href: '/org/issues' }, icon('back'), t('org.issues.back'))),
      ph);
    head.querySelector('.page-head').append(h('div', { class: 'page-head-actions' }, issueBadge(issue.status),
      issue.public ? badge(t('org.issues.on_board'), 'ok') : null,
      issue.blocked ? badge(t('org.issues.blocked_badge'), 'danger') : null));

    clear(reportBox);
    const facts = [
      [t('org.issues.category'), issue.category],
      [t('org.issues.group'), issue.group.name],
      [t('org.issues.reported_by'), residentName(issue.author)],
      [t('org.issues.created'), when(issue.created_at)],
    ];
    add(reportBox,
      h('h2', { id: 'issue-report-h2' }, t('org.issues.report_title')),
      h('p', { class: 'issue-body pre', id: 'issue-body' }, issue.body),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      locationBlock(issue),
      photosBlock(issue));
  }

  function locationBlock(i) {
    if (!i.location && !i.address) return h('p', { class: 'muted small', id: 'issue-location' }, t('org.issues.no_location'));
    const parts = [h('h3', {}, icon('pin'), t('org.issues.location'))];
    if (i.address) parts.push(h('p', { id: 'issue-address' }, i.address));
    if (i.location) {
      const lat = Number(i.location.lat).toFixed(5);
      const lon = Number(i.location.lon).toFixed(5);
      const text = lat + ', ' + lon;
      // A `geo:` link (RFC 5870): the device's own map app opens it; the
      // dashboard names no map site and loads nothing from one.
      const geo = 'geo:' + lat + ',' + lon;
      parts.push(h('p', { class: 'coords' },
        h('span', { id: 'issue-coords', class: 'mono' }, text), ' ',
        copyButton(text, t('org.issues.copy_coords'), 'issue-coords-copy')),
      h('p', {}, h('a', { href: geo, id: 'issue-geo' }, t('org.issues.open_map'))),
      h('p', { class: 'hint' }, t('org.issues.map_hint')));
    }
    return h('div', { class: 'issue-location', id: 'issue-location' }, parts);
  }

  function photosBlock(i) {
    const photos = i.photos || [];
    if (!photos.length) return null;
    const ul = h('ul', { class: 'issue-photo-grid', id: 'issue-photos' });
    photos.forEach((p, n) => {
      const img = h('img', { alt: t('org.issues.photo_alt', { n: n + 1, count: photos.length, category: i.category }),
        width: p.width, height: p.height, dataset: { photo: p.id }, decoding: 'async' });
      const li = h('li', { class: 'issue-photo', dataset: { photo: p.id } }, h('span', { class: 'issue-photo-loading' }, t('staff.loading')));
      ul.append(li);
      session.blob(issuePath(i.id, '/photos/' + encodeURIComponent(p.id)), { signal: ctx.signal }).then((b) => {
        if (ctx.signal.aborted) return;
        const url = URL.createObjectURL(b);
        urls.push(url);
        img.src = url;
        clear(li).append(h('a', { href: url, target: '_blank', class: 'issue-photo-link' }, img,
          h('span', { class: 'visually-hidden' }, ' ' + t('org.issues.new_window'))));
      }).catch((e) => {
        if (ctx.signal.aborted) return;
        clear(li).append(h('p', { class: 'notice notice-danger small' }, t('org.issues.photo_failed')));
        li.dataset.failed = e && e.code ? e.code : 'error';
      });
    });
    return h('div', { class: 'issue-photos' }, h('h3', {}, icon('camera'), t('org.issues.photos', { count: photos.length })), ul);
  }

  function drawThread() {
    clear(thread);
    thread.append(h('li', { class: 'thread-post thread-post-resident', dataset: { post: 'report' } },
      h('p', { class: 'thread-post-meta' }, h('strong', {}, residentName(issue.author)), ' · ', when(issue.created_at)),
      h('p', { class: 'thread-post-text' }, t('org.issues.thread_reported', { category: issue.category }))));
    for (const p of issue.posts || []) {
      const fromOrg = p.from === 'organization';
      thread.append(h('li', { class: 'thread-post ' + (fromOrg ? 'thread-post-org' : 'thread-post-resident'), dataset: { post: p.id, from: p.from } },
        h('p', { class: 'thread-post-meta' },
          h('strong', {}, fromOrg ? ctx.data.org.name : residentName(issue.author)), ' · ', when(p.created_at)),
        p.status ? h('p', { class: 'thread-post-status' }, t('org.issues.status_changed'), ' ', issueBadge(p.status)) : null,
        p.body ? h('p', { class: 'thread-post-text pre' }, p.body) : null));
    }
  }

  function drawStatus() {
    clear(statusNow).append(t('org.issues.status_now'), ' ', issueBadge(issue.status));
    clear(statusButtons);
    for (const s of STATUSES) {
      if (s === issue.status) continue;
      const b = h('button', { type: 'button', class: s === 'rejected' ? 'btn-quiet' : '', dataset: { status: s } },
        t('org.issues.set.' + s));
      b.addEventListener('click', () => setStatus(s, b));
      statusButtons.append(b);
    }
    const current = replyStatus.control.value;
    clear(replyStatus.control);
    replyStatus.control.append(h('option', { value: '' }, t('org.issues.keep_status', { status: t('org.issues.status.' + issue.status) })));
    for (const s of STATUSES) {
      if (s !== issue.status) replyStatus.control.append(h('option', { value: s }, t('org.issues.status.' + s)));
    }
    replyStatus.control.value = current && current !== issue.status ? current : '';
    sendLabel();
  }

  function drawBoard() {
    boardState.textContent = issue.public ? t('org.issues.board_public') : t('org.issues.board_private');
    publish.textContent = issue.public ? t('org.issues.unpublish') : t('org.issues.publish');
    // Unpublishing stays possible after the board was switched off.
    const off = !intake.board && !issue.public;
    publish.disabled = off;
    publish.className = issue.public ? '' : 'btn-primary';
    clear(boardNote);
    if (off) {
      boardNote.append(t('org.issues.board_off'), ' ',
        h('a', { href: '/org/groups/' + encodeURIComponent(issue.group.id) + '/settings#intake', id: 'issue-board-settings' },
          t('org.issues.board_off_link')));
    } else {
      boardNote.append(t('org.issues.board_hint'));
    }
  }

  function drawBlock() {
    clear(blockBody);
    if (issue.blocked) {
      add(blockBody,
        h('p', { id: 'issue-blocked' }, t('org.issues.blocked_text', { author: issue.author })),
        h('p', {}, h('a', { href: '/org/blocks' }, t('org.issues.blocks_manage'))));
      return;
    }
    const b = h('button', { type: 'button', id: 'issue-block', class: 'btn-danger' }, icon('ban'), t('org.issues.block'));
    b.addEventListener('click', () => block(b));
    add(blockBody, h('p', {}, t('org.issues.block_text', { org: ctx.data.org.name })), b);
  }

  function show(next) {
    issue = next;
    drawReport();
    drawThread();
    drawStatus();
    drawBoard();
    drawBlock();
  }

  add(side, statusCard, boardCard, blockCard);
  add(ctx.main, head, h('div', { class: 'split' },
    h('div', { class: 'split-main stack-main' }, reportBox, threadBox, replyForm), side));
  show(issue);
  ctx.ready('issue', issue.category);
}

// ---- blocked residents ----

export async function blocksScreen(ctx) {
  const { org } = ctx.data;
  const err = formError();
  const tbody = h('tbody', {});
  const table = h('div', { class: 'card card-flush table-wrap', tabindex: '0', role: 'region',
    'aria-label': t('org.blocks.caption', { org: org.name }) },
  h('table', { class: 'data-table', id: 'block-list' },
    h('caption', { class: 'visually-hidden' }, t('org.blocks.caption', { org: org.name })),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('org.blocks.who')),
      h('th', { scope: 'col' }, t('org.blocks.reason')),
      h('th', { scope: 'col' }, t('org.blocks.since')),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('org.blocks.actions'))))),
    tbody));
  const more = h('button', { type: 'button', id: 'blocks-more', hidden: true }, t('staff.load_more'));
  const emptyBox = emptyState(t('org.blocks.empty'));
  emptyBox.hidden = true;
  let cursor = null;

  add(ctx.main,
    h('p', { class: 'breadcrumb' }, h('a', { href: '/org/issues' }, icon('back'), t('org.issues.title'))),
    pageHead(t('org.blocks.title'), t('org.blocks.lead', { org: org.name })),
    err, table, emptyBox, h('div', { class: 'actions' }, more));

  function sync() {
    emptyBox.hidden = tbody.children.length > 0;
    table.hidden = tbody.children.length === 0;
  }

  function row(b) {
    const un = h('button', { type: 'button', class: 'btn-quiet', dataset: { action: 'unblock' },
      'aria-label': t('org.blocks.unblock_label', { author: b.author }) }, t('org.blocks.unblock'));
    const tr = h('tr', { dataset: { block: b.id } },
      h('td', {}, residentName(b.author)),
      h('td', { class: 'pre' }, b.reason || '–'),
      h('td', { class: 'nowrap' }, when(b.created_at)),
      h('td', { class: 'cell-actions' }, un));
    un.addEventListener('click', async () => {
      err.show(null);
      const yes = await confirmDialog({
        title: t('org.blocks.unblock_title', { author: b.author }), text: t('org.blocks.unblock_text', { org: org.name }),
        confirm: t('org.blocks.unblock'), confirmId: 'unblock-confirm',
      });
      if (!yes) return;
      try {
        await busy(un, () => session.call(orgPath(ctx, '/blocks/' + encodeURIComponent(b.id)), { method: 'DELETE' }));
        const next = tr.nextElementSibling || tr.previousElementSibling;
        tr.remove();
        sync();
        announce(t('org.blocks.unblocked', { author: b.author }));
        const focus = next && next.querySelector('button');
        (focus || ctx.main.querySelector('h1')).focus();
      } catch (e) {
        reportError(e, err);
      }
    });
    return tr;
  }

  async function load() {
    const page = await session.call(orgPath(ctx, '/blocks?limit=50' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '')),
      { signal: ctx.signal });
    for (const b of page.items) tbody.append(row(b));
    cursor = page.next;
    more.hidden = !cursor;
    sync();
  }
  more.addEventListener('click', async () => {
    const before = tbody.children.length;
    try { await busy(more, load); } catch (e) { reportError(e, err); return; }
    const r = tbody.children[before];
    if (r) r.querySelector('button').focus();
  });
  try {
    await load();
  } catch (e) {
    if (ctx.signal.aborted) return;
    reportError(e, err);
  }
  ctx.ready('blocks', t('org.blocks.title'));
}
