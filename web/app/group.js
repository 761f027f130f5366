// (group) /g/<id>: description, organization, badge, subscriber count, feed, and the one subscribe toggle.
import { h, clear, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import * as device from './device.js';
import { heading, setTitle, officialBadge, avatar, subscribers, messageItem, empty, backLink, icon, loadMore } from './ui.js';
import * as talk from './grouptalk.js';

export async function render(ctx) {
  const id = ctx.param;
  const [g, feed, talkData] = await Promise.all([
    api('/groups/' + encodeURIComponent(id)),
    api('/groups/' + encodeURIComponent(id) + '/messages?limit=20').catch(() => ({ items: [], next: null })),
    talk.load(id),
  ]);
  const talkParts = talk.sections(g, talkData);
  if (!store.tenant()) store.setTenant(g.tenant); // opened from a poster's QR code
  setTitle(g.name);

  let following = store.isFollowing(g.id);
  let count = g.subscriber_count;
  let busy = false;
  const label = h('span', null, t('resident.group.subscribe'));
  const stateIcon = h('span', { class: 'state-icon' });
  const btn = h('button', { type: 'button', id: 'subscribe', class: 'btn btn-primary', 'aria-describedby': 'subscribe-state' }, stateIcon, label);
  const countEl = h('span', { id: 'subscriber-count', class: 'muted' });
  const stateEl = h('p', { id: 'subscribe-state', class: 'small' });
  const problem = h('div', { id: 'subscribe-problem', class: 'notice notice-warn', role: 'alert', hidden: true });

  function paint() {
    btn.setAttribute('aria-pressed', String(following));
    btn.classList.toggle('btn-primary', !following);
    stateIcon.replaceChildren(icon(following ? 'check' : 'bell'));
    label.textContent = t(following ? 'resident.group.subscribedLabel' : 'resident.group.subscribe');
    countEl.textContent = subscribers(count);
    stateEl.textContent = t(following ? 'resident.group.stateOn' : 'resident.group.stateOff');
  }

  function showProblem(kind, e) {
    clear(problem).append(h('strong', { class: 'title' }, t('resident.problem.' + kind + 'Title')), h('p', null, t('resident.problem.' + kind)));
    if (e && e.code) problem.append(h('p', { class: 'small' }, t('resident.problem.code', { code: e.code })));
    problem.hidden = false;
  }

  async function toggle() {
    if (busy) return;
    busy = true;
    btn.setAttribute('aria-busy', 'true');
    problem.hidden = true;
    try {
      if (following) {
        await device.unfollow(g.id);
        following = false;
        count = Math.max(0, count - 1);
        announce(t('resident.group.unsubscribed', { name: g.name }));
      } else {
        if (!device.pushSupported()) return showProblem(device.needsHomeScreen() ? 'ios' : 'unsupported');
        const perm = await device.askPermission(); // straight from the tap
        if (perm !== 'granted') return showProblem(perm === 'denied' ? 'denied' : 'dismissed');
        const view = await device.follow(g);
        following = true;
        count = view && typeof view.subscriber_count === 'number' ? view.subscriber_count : count + 1;
        announce(t('resident.group.subscribed', { name: g.name }));
      }
    } catch (e) {
      console.warn(e);
      showProblem(e && e.status === 0 ? 'offline' : 'failed', e);
    } finally {
      busy = false;
      btn.removeAttribute('aria-busy');
      paint();
    }
  }
  btn.addEventListener('click', toggle);
  paint();
  if (device.permission() === 'denied') showProblem('denied');
  else if (!following && device.needsHomeScreen()) showProblem('ios');

  const url = location.origin + '/g/' + encodeURIComponent(g.id);
  const share = h('button', { type: 'button', class: 'btn btn-quiet', onclick: async () => {
    try {
      if (navigator.share) await navigator.share({ title: g.name, url });
      else { await navigator.clipboard.writeText(url); announce(t('resident.group.copied')); }
    } catch { /* cancelled */ }
  } }, icon('share'), t('resident.group.share'));

  const list = h('ol', { id: 'feed', class: 'list' }, feed.items.map((m) => messageItem(m)));
  const more = h('div');
  const addMore = (next) => {
    clear(more);
    if (next) more.append(loadMore(async () => {
      const page = await api('/groups/' + encodeURIComponent(id) + '/messages?limit=20&cursor=' + encodeURIComponent(next));
      list.append(...page.items.map((m) => messageItem(m)));
      addMore(page.next);
    }));
  };
  addMore(feed.next);

  return h('section', null,
    backLink('/', t('resident.group.back')),
    h('div', { class: 'group-head' }, avatar(g.name),
      h('div', null,
        heading(g.name),
        h('p', { class: 'meta muted' }, g.verified ? [officialBadge(), ' '] : null,
          g.organization.name, ' · ', t('resident.category.' + g.category)))),
    g.description ? h('p', { class: 'description message-body' }, g.description) : null,
    h('div', { class: 'card' },
      h('div', { class: 'subscribe-box' }, btn, countEl),
      stateEl,
      h('p', { class: 'hint' }, t('resident.group.privacy'))),
    problem,
    talkParts.top,
    h('div', { class: 'row' }, h('h2', { class: 'grow' }, t('resident.group.messages')), share),
    feed.items.length ? null : empty('inbox', t('resident.group.noMessages')),
    list, more,
    talkParts.bottom);
}
