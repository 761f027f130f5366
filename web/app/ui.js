// Small building blocks shared by the resident screens.
import { h } from '../common/dom.js';
import { t, fmtRelative, fmtNumber } from '../common/i18n.js';

const PATHS = {
  home: 'M3 10.5 12 3l9 7.5V20a1 1 0 0 1-1 1h-5v-6H9v6H4a1 1 0 0 1-1-1z',
  inbox: 'M22 12h-6l-2 3h-4l-2-3H2M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z',
  settings: 'M4 21v-7M4 10V3M12 21v-9M12 8V3M20 21v-5M20 12V3M1 14h6M9 8h6M17 16h6',
  bell: 'M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9M13.73 21a2 2 0 0 1-3.46 0',
  check: 'M20 6 9 17l-5-5',
  chevron: 'm9 18 6-6-6-6',
  back: 'M19 12H5M12 19l-7-7 7-7',
  external: 'M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6M15 3h6v6M10 14 21 3',
  flag: 'M4 15s1-1 4-1 5 2 8 2 4-1 4-1V3s-1 1-4 1-5-2-8-2-4 1-4 1zM4 22v-7',
  share: 'M4 12v8a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-8M16 6l-4-4-4 4M12 2v13',
  trash: 'M3 6h18M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6m3 0V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2',
  install: 'M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4M7 10l5 5 5-5M12 15V3',
  x: 'M18 6 6 18M6 6l12 12',
  message: 'M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z',
  camera: 'M23 19a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h4l2-3h6l2 3h4a2 2 0 0 1 2 2zM12 17a4 4 0 1 0 0-8 4 4 0 0 0 0 8z',
  pin: 'M21 10c0 7-9 13-9 13s-9-6-9-13a9 9 0 0 1 18 0zM12 13a3 3 0 1 0 0-6 3 3 0 0 0 0 6z',
  up: 'M12 19V5M5 12l7-7 7 7',
};

export function icon(name) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const p = document.createElementNS(NS, 'path');
  p.setAttribute('d', PATHS[name]);
  svg.append(p);
  return svg;
}

export function setTitle(text) {
  document.title = text ? text + ' – Herold' : 'Herold';
}

export const heading = (text, attrs) => h('h1', { tabindex: '-1', ...attrs }, text);

export function officialBadge() {
  return h('span', { class: 'badge badge-official' }, icon('check'), t('resident.official'));
}

export function avatar(name) {
  const letter = (name || '?').trim().charAt(0).toUpperCase() || '?';
  return h('span', { class: 'group-avatar', 'aria-hidden': 'true' }, letter);
}

export const subscribers = (n) => t('resident.subscribers', { count: n });

export function time(iso, text) {
  return h('time', { datetime: iso }, text || fmtRelative(iso));
}

/** A message as a list entry linking to /m/<id>. */
export function messageItem(m, { unread = false, showGroup = false } = {}) {
  return h('li', { dataset: { message: m.id }, class: unread ? 'unread' : null },
    h('a', { class: 'item', href: '/m/' + encodeURIComponent(m.id) },
      h('span', { class: 'title' }, unread ? h('span', { class: 'visually-hidden' }, t('resident.inbox.unread') + ': ') : null, m.title),
      h('span', { class: 'meta' },
        showGroup ? [m.group.name, m.group.verified ? [' ', officialBadge()] : null, ' · '] : null,
        m.kind === 'alert' ? [h('span', { class: 'urgent' }, t('resident.message.alert')), ' · '] : null,
        time(m.published_at)),
      h('span', { class: 'excerpt clamp' }, excerpt(m.body))));
}

export function excerpt(text, n = 160) {
  const s = String(text || '').replace(/\s+/g, ' ').trim();
  return s.length > n ? s.slice(0, n - 1).trimEnd() + '…' : s;
}

export function empty(iconName, text, ...extra) {
  return h('div', { class: 'empty' }, icon(iconName), h('p', null, text), ...extra);
}

export function backLink(href, text) {
  return h('p', { class: 'no-print' }, h('a', { href, class: 'btn btn-quiet back' }, icon('back'), text));
}

/** A failed screen load: offline, not found or other. */
export function errorView(e) {
  const key = !e || e.status === 0 ? 'offline' : e.status === 404 ? 'notFound' : 'failed';
  setTitle(t('resident.error.' + key + 'Title'));
  return h('section', { class: 'stack' },
    heading(t('resident.error.' + key + 'Title')),
    h('p', null, t('resident.error.' + key)),
    h('p', null, h('a', { href: '/', class: 'btn' }, t('resident.error.home'))));
}

export function loadMore(onClick) {
  return h('p', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: onClick }, t('resident.loadMore')));
}

export { fmtNumber };
