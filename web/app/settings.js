// (settings) Followed groups, test notification, language, town, install, delete all data.
import { h, announce } from '../common/dom.js';
import { t, lang, languages, setLang } from '../common/i18n.js';
import * as store from './store.js';
import * as device from './device.js';
import { heading, setTitle, officialBadge, icon, empty } from './ui.js';
import { relabel, canInstall, install, setUnread } from './main.js';

let justDeleted = false;

function section(title, ...children) {
  const id = 'h-' + Math.random().toString(36).slice(2, 8);
  return h('section', { class: 'card settings-section', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

function notificationState() {
  const perm = device.permission();
  if (!device.pushSupported()) return device.needsHomeScreen() ? 'ios' : 'unsupported';
  if (perm === 'denied') return 'denied';
  if (perm === 'granted' && store.token()) return 'on';
  return 'off';
}

export async function render(ctx) {
  setTitle(t('resident.settings.title'));
  let groups;
  try { groups = store.token() ? await device.syncFollowed() : []; } catch { groups = Object.values(store.followed()); }

  // --- notifications
  const state = notificationState();
  const testStatus = h('p', { id: 'test-status', role: 'status', class: 'small' });
  const testBtn = h('button', { type: 'button', id: 'test-notification', class: 'btn', onclick: async () => {
    if (!store.token()) { testStatus.textContent = t('resident.settings.testNeedsDevice'); return; }
    testBtn.disabled = true;
    try {
      await device.deviceApi('/devices/me/test-notification', { method: 'POST', body: { lang: lang() } });
      testStatus.textContent = store.token() ? t('resident.settings.testSent') : t('resident.settings.testNeedsDevice');
    } catch (e) {
      testStatus.textContent = e.status === 0 ? t('resident.error.offline') : t('resident.settings.testFailed');
    } finally { testBtn.disabled = false; }
  } }, icon('bell'), t('resident.settings.test'));
  const notif = section(t('resident.settings.notifications'),
    h('p', { class: state === 'on' ? 'badge badge-ok' : state === 'off' ? 'badge' : 'badge badge-warn', id: 'notification-state' },
      t('resident.settings.state.' + state)),
    h('p', null, t('resident.settings.stateText.' + state)),
    h('div', { class: 'actions' }, testBtn), testStatus);

  // --- followed groups
  const list = h('ul', { id: 'followed', class: 'list' });
  const noGroups = empty('bell', t('resident.settings.noGroups'), h('p', null, h('a', { href: '/' }, t('resident.inbox.browse'))));
  noGroups.hidden = groups.length > 0;
  for (const g of groups) {
    const li = h('li', { dataset: { group: g.id } });
    const btn = h('button', { type: 'button', class: 'btn unsubscribe', 'aria-label': t('resident.settings.unsubscribeFrom', { name: g.name }),
      onclick: async () => {
        btn.disabled = true;
        try {
          await device.unfollow(g.id);
          li.remove();
          noGroups.hidden = list.children.length > 0;
          announce(t('resident.group.unsubscribed', { name: g.name }));
          const next = list.querySelector('button.unsubscribe');
          if (next) next.focus();
          else { const h2 = followedSec.querySelector('h2'); h2.tabIndex = -1; h2.focus(); }
        } catch (e) {
          btn.disabled = false;
          announce(e.status === 0 ? t('resident.error.offline') : t('resident.error.failed'));
        }
      } }, t('resident.settings.unsubscribe'));
    li.append(h('div', { class: 'item row' },
      h('span', { class: 'grow' }, h('a', { href: '/g/' + encodeURIComponent(g.id) }, g.name), g.verified ? [' ', officialBadge()] : null), btn));
    list.append(li);
  }
  const followedSec = section(t('resident.settings.followed'), list, noGroups);

  // --- language and town
  const select = h('select', { id: 'language', name: 'language' }, languages().map((l) => h('option', { value: l.code, lang: l.code }, l.name)));
  select.value = lang();
  select.addEventListener('change', async () => {
    await setLang(select.value);
    await relabel();
    announce(t('resident.settings.languageChanged'));
    const again = document.getElementById('language');
    if (again) again.focus();
  });
  const prefs = section(t('resident.settings.preferences'),
    h('div', { class: 'field' }, h('label', { for: 'language' }, t('resident.settings.language')), select),
    h('p', null, t('resident.settings.town'), ' ', h('strong', null, store.tenantName() || store.tenant() || '–'), ' · ',
      h('a', { href: '/towns' }, t('resident.directory.changeTown'))));
  if (canInstall()) prefs.append(h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: async () => { if (await install()) ctx.refresh(); } }, icon('install'), t('resident.hint.installButton'))));
  else if (device.needsHomeScreen()) prefs.append(h('p', { class: 'hint' }, t('resident.hint.ios')));

  // --- delete all data
  const confirmBtn = h('button', { type: 'button', id: 'delete-confirm', class: 'btn btn-danger' }, icon('trash'), t('resident.settings.deleteConfirm'));
  const delError = h('p', { class: 'error-text', role: 'alert', hidden: true });
  const dialog = h('dialog', { id: 'delete-dialog', 'aria-labelledby': 'delete-heading' },
    h('h2', { id: 'delete-heading' }, t('resident.settings.deleteTitle')),
    h('p', null, t('resident.settings.deleteText')),
    delError,
    h('div', { class: 'actions' }, confirmBtn, h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, t('resident.report.cancel'))));
  confirmBtn.addEventListener('click', async () => {
    confirmBtn.disabled = true;
    delError.hidden = true;
    try {
      await device.eraseAll();
      dialog.close();
      justDeleted = true;
      setUnread(0, 0);
      ctx.refresh();
    } catch (e) {
      delError.textContent = e.status === 0 ? t('resident.settings.deleteOffline') : t('resident.error.failed');
      delError.hidden = false;
    } finally { confirmBtn.disabled = false; }
  });
  const privacy = section(t('resident.settings.privacy'),
    h('p', null, t('resident.settings.privacyServer')),
    h('p', null, t('resident.settings.privacyDevice')),
    h('p', null, h('a', { href: '/reports', id: 'settings-reports' }, t('resident.issues.title'))),
    h('div', { class: 'actions' }, h('button', { type: 'button', id: 'delete-data', class: 'btn btn-danger', onclick: () => dialog.showModal() },
      icon('trash'), t('resident.settings.delete'))),
    dialog);

  const done = justDeleted ? h('p', { id: 'delete-done', class: 'notice notice-ok', role: 'status' }, t('resident.settings.deleted')) : null;
  if (done) announce(t('resident.settings.deleted'));
  justDeleted = false;
  return h('section', null, heading(t('resident.settings.title')), done, notif, followedSec, prefs, privacy);
}
