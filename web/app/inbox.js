// (inbox) Messages of every followed group, newest first; unread marked (read state stays on this device).
import { h, clear, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as store from './store.js';
import * as device from './device.js';
import { heading, setTitle, messageItem, empty, loadMore, icon } from './ui.js';
import { setUnread } from './main.js';

export async function render() {
  setTitle(t('resident.inbox.title'));
  const [page, issues] = await Promise.all([
    store.token() ? device.deviceApi('/devices/me/inbox?limit=30') : null,
    store.token() && store.hasIssues() ? device.deviceApi('/devices/me/issues?limit=50').catch(() => null) : null,
  ]);
  const items = page ? page.items : [];
  const read = store.readSet();
  const list = h('ol', { id: 'inbox', class: 'list' });
  const more = h('div');
  const add = (ms) => list.append(...ms.map((m) => messageItem(m, { unread: !read.has(m.id), showGroup: true })));
  add(items);
  const addMore = (next) => {
    clear(more);
    if (next) more.append(loadMore(async () => {
      const p = await device.deviceApi('/devices/me/inbox?limit=30&cursor=' + encodeURIComponent(next));
      if (p) { add(p.items); addMore(p.next); }
    }));
  };
  addMore(page && page.next);
  const unread = items.filter((m) => !read.has(m.id)).length;
  const unreadIssues = issues ? issues.items.filter((i) => store.issueUnread(i)).length : 0;
  setUnread(unread, unreadIssues);
  // This device's reports (replies to them arrive here too).
  const reports = issues && issues.items.length ? h('p', { class: unreadIssues ? 'unread' : null },
    h('a', { id: 'inbox-reports', href: '/reports', class: 'item row' }, icon('message'),
      h('span', { class: 'grow title' }, t('resident.issues.title'),
        unreadIssues ? h('span', { class: 'meta' }, t('resident.issues.unreadCount', { count: unreadIssues })) : null))) : null;

  const markAll = h('button', { type: 'button', class: 'btn btn-quiet', id: 'mark-all-read', hidden: !unread, onclick: () => {
    const ids = [...list.querySelectorAll('li.unread')].map((li) => li.dataset.message);
    store.markRead(...ids);
    for (const li of list.querySelectorAll('li.unread')) {
      li.classList.remove('unread');
      const hidden = li.querySelector('.title .visually-hidden');
      if (hidden) hidden.remove();
    }
    markAll.hidden = true;
    setUnread(0);
    announce(t('resident.inbox.allRead'));
  } }, t('resident.inbox.markAll'));

  let note = null;
  if (!items.length) {
    note = Object.keys(store.followed()).length
      ? empty('inbox', t('resident.inbox.empty'))
      : empty('bell', t('resident.inbox.noGroups'), h('p', null, h('a', { href: '/', class: 'btn btn-primary' }, t('resident.inbox.browse'))));
  }
  return h('section', null,
    h('div', { class: 'row' }, h('div', { class: 'grow' }, heading(t('resident.inbox.title'))), markAll),
    reports,
    unread ? h('p', { class: 'muted' }, t('resident.inbox.unreadCount', { count: unread })) : null,
    note, list, more);
}
