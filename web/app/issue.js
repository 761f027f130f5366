// (issue) /r/<id>: one of this device's reports — what was sent, the
// conversation (replies; status changes as events), adding a message,
// deleting it. (issues) /reports: the list, marked where the organization
// wrote since the report was last opened here.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import * as device from './device.js';
import { heading, setTitle, backLink, icon, time, excerpt, empty, loadMore, errorView } from './ui.js';
import { enc, asDevice, errorText, statusBadge, counter, privatePhoto, takeFlash, setFlash, fmtCoord } from './talk.js';
import { navigate, refreshUnread } from './main.js';

const tr = (k, p) => t('resident.issue.' + k, p);
const mine = (path = '') => device.deviceApi('/devices/me/issues' + path);

function postItem(p, org) {
  const fromOrg = p.from === 'organization';
  return h('li', { class: 'item post from-' + p.from + (p.status && !p.body ? ' event' : ''), dataset: { post: p.id, from: p.from } },
    h('p', { class: 'post-meta' }, h('strong', null, fromOrg ? org : tr('you')), ' · ', time(p.created_at, fmtDateTime(p.created_at))),
    p.status ? h('p', null, tr('statusChanged'), ' ', statusBadge(p.status)) : null,
    p.body ? h('p', { class: 'message-body' }, p.body) : null);
}

let current = null; // the report on screen: {id, refresh()}

export async function render(ctx) {
  const id = ctx.param;
  const issue = store.token() ? await mine('/' + enc(id)) : null;
  if (!issue) return errorView({ status: 404 }); // another device's report, or this one was forgotten
  const org = issue.organization.name;
  setTitle(issue.category);
  store.setHasIssues(true);

  const status = h('span', { id: 'issue-status' });
  const thread = h('ol', { id: 'issue-thread', class: 'thread', 'aria-labelledby': 'issue-thread-title' });
  const none = h('p', { id: 'issue-thread-empty', class: 'muted' }, tr('noReplies'));
  const publicNote = h('p', { id: 'issue-public', class: 'hint' }, tr('public'));
  let shown;
  /** Shows what is new in `next`; returns the new posts. */
  function update(next) {
    shown = next;
    clear(status).append(statusBadge(next.status));
    publicNote.hidden = !next.public;
    const have = new Set([...thread.children].map((li) => li.dataset.post));
    const fresh = next.posts.filter((p) => !have.has(p.id));
    thread.append(...fresh.map((p) => postItem(p, org)));
    none.hidden = next.posts.length > 0;
    store.markIssueSeen(next.id, next.updated_at);
    return fresh;
  }
  update(issue);
  refreshUnread();
  current = {
    id,
    async refresh() {
      const next = await mine('/' + enc(id)).catch(() => null);
      if (!next || !current || current.id !== id) return;
      if (update(next).some((p) => p.from === 'organization')) announce(t('resident.talk.arrived', { title: org }));
      refreshUnread();
    },
  };

  // --- adding a message
  const reply = h('textarea', { id: 'issue-reply', name: 'body', rows: '3', maxlength: '1000', required: true });
  const replyError = h('p', { id: 'issue-reply-error', class: 'error-text', role: 'alert', hidden: true });
  const send = h('button', { type: 'submit', id: 'issue-reply-send', class: 'btn btn-primary' }, tr('send'));
  const form = h('form', { id: 'issue-reply-form', class: 'card', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    replyError.hidden = true;
    const body = reply.value.trim();
    if (!body) { replyError.textContent = t('resident.talk.empty'); replyError.hidden = false; reply.focus(); return; }
    send.disabled = true;
    try {
      const post = await asDevice((tok) => api('/devices/me/issues/' + enc(id) + '/posts', { method: 'POST', body: { body }, token: tok }));
      update({ ...shown, updated_at: post.created_at > shown.updated_at ? post.created_at : shown.updated_at, posts: [...shown.posts, post] });
      reply.value = '';
      reply.dispatchEvent(new Event('input'));
      announce(tr('sent'));
    } catch (err) {
      replyError.textContent = errorText(err);
      replyError.hidden = false;
    } finally { send.disabled = false; }
  } },
  h('label', { for: 'issue-reply' }, tr('reply')), reply,
  h('p', { class: 'row between' }, counter(reply, 1000)),
  replyError,
  h('div', { class: 'actions' }, send));

  // --- deleting
  const delError = h('p', { class: 'error-text', role: 'alert', hidden: true });
  const dialog = h('dialog', { id: 'issue-delete-dialog', 'aria-labelledby': 'issue-delete-heading' },
    h('h2', { id: 'issue-delete-heading' }, tr('deleteTitle')),
    h('p', null, tr('deleteText', { organization: org })),
    delError,
    h('div', { class: 'actions' },
      h('button', { type: 'button', id: 'issue-delete-confirm', class: 'btn btn-danger', onclick: async (e) => {
        const btn = e.currentTarget;
        btn.disabled = true;
        try {
          await device.deviceApi('/devices/me/issues/' + enc(id), { method: 'DELETE' });
          store.markIssueSeen(id, null);
          dialog.close();
          setFlash('ok', [tr('deleted')]);
          navigate('/reports', { replace: true });
        } catch (err) {
          delError.textContent = errorText(err);
          delError.hidden = false;
          btn.disabled = false;
        }
      } }, icon('trash'), tr('deleteConfirm')),
      h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, t('common.cancel'))));
  const opener = h('button', { type: 'button', id: 'issue-delete', class: 'btn btn-quiet danger-text', onclick: () => dialog.showModal() },
    icon('trash'), tr('delete'));
  dialog.addEventListener('close', () => opener.isConnected && opener.focus());

  const where = [];
  if (issue.location) where.push(h('p', { id: 'issue-location' }, icon('pin'), ' ', tr('coordinates', { lat: fmtCoord(issue.location.lat), lon: fmtCoord(issue.location.lon) })));
  if (issue.address) where.push(h('p', { id: 'issue-address-text' }, icon('pin'), ' ', issue.address));
  return h('section', null,
    backLink('/reports', t('resident.issues.title')),
    takeFlash('issue-flash'),
    h('article', { class: 'card', id: 'issue-sent' },
      h('p', { class: 'message-meta' },
        h('a', { href: '/g/' + enc(issue.group.id) }, issue.group.name), ' · ', org, ' · ', time(issue.created_at, fmtDateTime(issue.created_at))),
      heading(issue.category, { id: 'issue-title' }),
      h('p', null, status),
      h('div', { id: 'issue-body-text', class: 'message-body' }, issue.body),
      issue.photos.length ? h('ul', { id: 'issue-photos', class: 'photo-grid', 'aria-label': tr('photos') },
        issue.photos.map((p, i) => privatePhoto(issue.id, p, i + 1))) : null,
      where,
      publicNote),
    h('h2', { id: 'issue-thread-title' }, tr('thread')),
    thread, none, form,
    h('p', { class: 'no-print' }, opener),
    dialog);
}

/** A push about the report on screen: fetch what is new. */
export function onPush(d) {
  if (!current || !d || d.url !== '/r/' + current.id) return false;
  current.refresh();
  return true;
}

export function leave() { current = null; }

function issueItem(i) {
  const unread = store.issueUnread(i);
  return h('li', { dataset: { issue: i.id }, class: unread ? 'unread' : null },
    h('a', { class: 'item', href: '/r/' + enc(i.id) },
      h('span', { class: 'title' }, unread ? h('span', { class: 'visually-hidden' }, t('resident.issues.unread') + ': ') : null, i.category),
      h('span', { class: 'meta' }, statusBadge(i.status), ' ', i.group.name, ' · ', time(i.updated_at)),
      h('span', { class: 'excerpt clamp' }, excerpt(i.body))));
}

/** /reports */
export const list = {
  async render() {
    setTitle(t('resident.issues.title'));
    const page = store.token() ? await mine('?limit=30') : null;
    const items = page ? page.items : [];
    store.setHasIssues(items.length > 0);
    const ol = h('ol', { id: 'issues', class: 'list' }, items.map(issueItem));
    const more = h('div');
    const addMore = (next) => {
      clear(more);
      if (next) more.append(loadMore(async () => {
        const p = await mine('?limit=30&cursor=' + enc(next));
        if (p) { ol.append(...p.items.map(issueItem)); addMore(p.next); }
      }));
    };
    addMore(page && page.next);
    return h('section', null,
      backLink('/inbox', t('resident.message.back')),
      heading(t('resident.issues.title')),
      takeFlash('issues-flash'),
      items.length ? null : empty('message', t('resident.issues.empty')),
      ol, more);
  },
};
