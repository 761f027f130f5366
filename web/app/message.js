// (message) /m/<id>: full text, link, group; report dialog; removed state (410).
import { h, announce } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import { heading, setTitle, officialBadge, time, icon, backLink } from './ui.js';
import { refreshUnread } from './main.js';

const REASONS = ['spam', 'offensive', 'false_information', 'other'];

function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch { return null; }
}

function removed(e) {
  setTitle(t('resident.message.removedTitle'));
  return h('section', null,
    backLink('/inbox', t('resident.message.back')),
    h('div', { id: 'message-removed', class: 'notice notice-warn' },
      heading(t('resident.message.removedTitle')),
      h('p', null, t('resident.message.removed')),
      e.reason ? h('p', null, t('resident.message.removedReason'), ' ', h('q', null, e.reason)) : null));
}

function reportDialog(m, done, opener) {
  const error = h('p', { class: 'error-text', id: 'report-error', role: 'alert', hidden: true });
  const text = h('textarea', { id: 'report-text', name: 'text', maxlength: '500', rows: '4', 'aria-describedby': 'report-text-hint' });
  const submit = h('button', { type: 'submit', id: 'report-submit', class: 'btn btn-primary' }, t('resident.report.submit'));
  const dialog = h('dialog', { id: 'report-dialog', 'aria-labelledby': 'report-heading' });
  const fail = (msg) => { error.textContent = msg; error.hidden = false; };
  const form = h('form', { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    error.hidden = true;
    const reason = (form.querySelector('input[name=reason]:checked') || {}).value;
    if (!reason) { fail(t('resident.report.chooseReason')); form.querySelector('input[name=reason]').focus(); return; }
    const tok = store.token();
    if (!tok) { fail(t('resident.report.needsDevice')); return; }
    submit.disabled = true;
    try {
      await api('/messages/' + encodeURIComponent(m.id) + '/reports', { method: 'POST', token: tok, body: { reason, text: text.value.trim() || undefined } });
      finish(t('resident.report.done'));
    } catch (err) {
      if (err.status === 409) finish(t('resident.report.already'));
      else if (err.status === 401) { await store.forgetDevice(); fail(t('resident.report.needsDevice')); }
      else if (err.status === 429) fail(t('resident.report.tooMany'));
      else fail(err.status === 0 ? t('resident.error.offline') : t('resident.report.failed'));
    } finally { submit.disabled = false; }
  } },
  h('h2', { id: 'report-heading' }, t('resident.report.title')),
  h('p', null, t('resident.report.intro')),
  h('fieldset', null, h('legend', null, t('resident.report.reason')),
    REASONS.map((r) => h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'reason', value: r }), t('resident.report.reasons.' + r)))),
  h('div', { class: 'field' }, h('label', { for: 'report-text' }, t('resident.report.text')), text,
    h('p', { class: 'hint', id: 'report-text-hint' }, t('resident.report.textHint'))),
  error,
  h('div', { class: 'actions' }, submit,
    h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, t('resident.report.cancel'))));
  function finish(msg) {
    dialog.close();
    done.textContent = msg;
    done.hidden = false;
    opener.hidden = true;
    announce(msg);
    done.focus();
  }
  dialog.append(form);
  dialog.addEventListener('close', () => { if (!opener.hidden) opener.focus(); });
  return dialog;
}

export async function render(ctx) {
  let m;
  try { m = await api('/messages/' + encodeURIComponent(ctx.param)); } catch (e) {
    if (e.status === 410) return removed(e);
    throw e;
  }
  setTitle(m.title);
  store.markRead(m.id);
  refreshUnread();

  const url = m.url && safeUrl(m.url);
  const done = h('p', { id: 'report-done', class: 'notice notice-ok', role: 'status', tabindex: '-1', hidden: true });
  const opener = h('button', { type: 'button', id: 'report-open', class: 'btn btn-quiet' }, icon('flag'), t('resident.report.open'));
  const dialog = reportDialog(m, done, opener);
  opener.addEventListener('click', () => dialog.showModal());

  return h('section', null,
    backLink(store.isFollowing(m.group.id) ? '/inbox' : '/g/' + encodeURIComponent(m.group.id),
      t(store.isFollowing(m.group.id) ? 'resident.message.back' : 'resident.message.backGroup')),
    h('article', { class: 'card' },
      h('p', { class: 'message-meta' },
        h('a', { id: 'message-group', href: '/g/' + encodeURIComponent(m.group.id) }, m.group.name),
        m.group.verified ? [' ', officialBadge()] : null, ' · ',
        time(m.published_at, fmtDateTime(m.published_at)),
        m.kind === 'alert' ? [' · ', h('span', { class: 'urgent' }, t('resident.message.alert'))] : null),
      heading(m.title, { id: 'message-title' }),
      h('div', { id: 'message-body', class: 'message-body' }, m.body),
      url ? h('p', { class: 'actions' }, h('a', { id: 'message-link', class: 'btn', href: url.href, target: '_blank', rel: 'noopener noreferrer nofollow' },
        icon('external'), t('resident.message.openLink', { host: url.hostname }))) : null),
    h('div', { class: 'row no-print' }, opener),
    done,
    dialog);
}
