// A group's page, the parts where residents talk back: "report an issue"
// when the group takes reports, its question hours, its public board.
import { h } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import { api } from '../common/api.js';
import { icon, time } from './ui.js';
import { enc, statusBadge, fmtRange } from './talk.js';

const tr = (k, p) => t('resident.groupTalk.' + k, p);
const none = { items: [], next: null };

/** What the sections need (nothing, when an older server has none of it). */
export async function load(id) {
  const base = '/groups/' + enc(id);
  const [intake, sessions] = await Promise.all([
    api(base + '/intake').catch(() => ({ open: false, board: false })),
    api(base + '/sessions?limit=20').catch(() => none),
  ]);
  return { intake, sessions, board: intake.board ? await api(base + '/board?limit=20').catch(() => none) : none };
}

const sessionList = (id, items) => h('ul', { id, class: 'list' }, items.map((s) => h('li', { dataset: { session: s.id } },
  h('a', { class: 'item', href: '/q/' + enc(s.id) },
    h('span', { class: 'title' }, s.title),
    h('span', { class: 'meta' }, fmtRange(s.starts_at, s.ends_at))))));

function sessionsSection({ items }) {
  const of = (state) => items.filter((s) => s.state === state);
  const [now, soon, past] = [of('open'), of('scheduled').reverse(), of('ended')]; // newest start first: soonest last
  if (!now.length && !soon.length && !past.length) return null;
  return h('section', { id: 'group-sessions', 'aria-labelledby': 'group-sessions-title' },
    h('h2', { id: 'group-sessions-title' }, tr('sessions')),
    now.length ? [h('h3', { class: 'section-title live' }, t('resident.session.state.open')), sessionList('sessions-live', now)] : null,
    soon.length ? [h('h3', { class: 'section-title' }, tr('upcoming')), sessionList('sessions-upcoming', soon)] : null,
    past.length ? h('details', null, h('summary', null, tr('past', { count: past.length })), sessionList('sessions-past', past)) : null);
}

const boardItem = (groupId) => (i) => h('li', { class: 'card', dataset: { boardIssue: i.id } },
  h('p', { class: 'row' }, h('strong', { class: 'grow' }, i.category), statusBadge(i.status)),
  h('p', { class: 'message-body' }, i.body),
  i.photos.length ? h('ul', { class: 'photo-grid' }, i.photos.map((p, n) => h('li', null,
    h('img', { class: 'photo', loading: 'lazy', width: p.width, height: p.height, alt: t('resident.talk.photoAlt', { n: n + 1 }),
      src: '/api/v1/groups/' + enc(groupId) + '/board/' + enc(i.id) + '/photos/' + enc(p.id) })))) : null,
  h('p', { class: 'hint' }, time(i.created_at, fmtDateTime(i.created_at))));

/** The newest twenty: a board is what is broken now, not an archive. */
function boardSection(g, page) {
  return h('section', { id: 'group-board', 'aria-labelledby': 'group-board-title' },
    h('h2', { id: 'group-board-title' }, tr('board')),
    h('p', { class: 'hint' }, tr('boardHint', { organization: g.organization.name })),
    page.items.length ? null : h('p', { class: 'muted' }, tr('boardEmpty')),
    h('ol', { id: 'board', class: 'list' }, page.items.map(boardItem(g.id))));
}

/** `top` goes above the group's messages, `bottom` below them. */
export function sections(g, { intake, sessions, board }) {
  return {
    top: [
      intake.open ? h('div', { class: 'card', id: 'group-report' },
        h('p', null, tr('reportIntro', { organization: g.organization.name })),
        h('a', { id: 'report-link', class: 'btn btn-primary', href: '/g/' + enc(g.id) + '/report' }, icon('camera'), tr('report'))) : null,
      sessionsSection(sessions),
    ],
    bottom: intake.board ? boardSection(g, board) : null,
  };
}
