// (directory) The town's groups by category, with search; official groups first.
import { h, clear, screenBusy, screenReady, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import { heading, setTitle, officialBadge, avatar, subscribers, excerpt, empty, loadMore } from './ui.js';

export const CATEGORIES = ['administration', 'church', 'club', 'business', 'school', 'culture', 'other'];

function groupItem(g) {
  return h('li', null, h('a', { class: 'item group-link', href: '/g/' + encodeURIComponent(g.id), dataset: { group: g.id } },
    avatar(g.name),
    h('span', { class: 'grow' },
      h('span', { class: 'title' }, g.name, g.verified ? [' ', officialBadge()] : null,
        store.isFollowing(g.id) ? [' ', h('span', { class: 'badge badge-ok' }, t('resident.directory.following'))] : null),
      h('span', { class: 'meta' }, g.organization.name, ' · ', t('resident.category.' + g.category), ' · ', subscribers(g.subscriber_count)),
      g.description ? h('span', { class: 'excerpt clamp' }, excerpt(g.description)) : null)));
}

async function townName(slug) {
  let name = store.tenantName();
  if (name) return name;
  const { items } = await api('/tenants');
  const town = items.find((x) => x.slug === slug);
  if (!town) return null;
  store.setTenant(slug, town.name);
  return town.name;
}

export async function render(ctx) {
  const slug = store.tenant();
  const name = await townName(slug);
  if (!name) { store.setTenant(null); location.replace('/towns'); return h('p'); }
  setTitle(name);

  const search = h('input', { id: 'search', type: 'search', name: 'q', autocomplete: 'off', enterkeyhint: 'search', value: ctx.query.get('q') || '' });
  const category = h('select', { id: 'category', name: 'category' },
    h('option', { value: '' }, t('resident.directory.allCategories')),
    CATEGORIES.map((c) => h('option', { value: c }, t('resident.category.' + c))));
  category.value = CATEGORIES.includes(ctx.query.get('category')) ? ctx.query.get('category') : '';
  const list = h('ul', { class: 'list', id: 'groups' });
  const status = h('p', { class: 'muted small', id: 'result-count' });
  const more = h('div');

  let req = 0;
  async function load(cursor) {
    const my = ++req;
    const q = new URLSearchParams();
    if (search.value.trim()) q.set('q', search.value.trim());
    if (category.value) q.set('category', category.value);
    if (!cursor && location.pathname === '/') history.replaceState(null, '', '/' + (q.toString() ? '?' + q : ''));
    q.set('limit', '50');
    if (cursor) q.set('cursor', cursor);
    const page = await api('/tenants/' + encodeURIComponent(slug) + '/groups?' + q);
    if (my !== req) return null;
    if (!cursor) clear(list);
    list.append(...page.items.map(groupItem));
    clear(more);
    if (page.next) more.append(loadMore(() => load(page.next).catch(() => {})));
    const n = list.children.length;
    const filtered = search.value.trim() || category.value;
    status.textContent = n ? (filtered ? t('resident.directory.found', { count: n }) : '') : '';
    return { n, filtered };
  }

  function showEmpty(r) {
    const old = document.getElementById('groups-empty');
    if (old) old.remove();
    if (r && !r.n) list.after(h('div', { id: 'groups-empty' }, empty('home', t(r.filtered ? 'resident.directory.noResults' : 'resident.directory.none'))));
  }

  let timer;
  async function update() {
    screenBusy();
    try {
      const r = await load();
      if (r) { showEmpty(r); announce(r.n ? t('resident.directory.found', { count: r.n }) : t('resident.directory.noResults')); }
    } catch (e) { status.textContent = t('resident.error.failed'); } finally { screenReady('directory'); }
  }
  search.addEventListener('input', () => { screenBusy(); clearTimeout(timer); timer = setTimeout(update, 250); });
  category.addEventListener('change', update);

  const form = h('form', { role: 'search', class: 'filters', onsubmit: (e) => { e.preventDefault(); clearTimeout(timer); update(); } },
    h('div', { class: 'field' }, h('label', { for: 'search' }, t('resident.directory.search')), search),
    h('div', { class: 'field' }, h('label', { for: 'category' }, t('resident.directory.category')), category));

  const first = await load();
  const view = h('section', null,
    h('div', { class: 'hero' },
      heading(t('resident.directory.title', { town: name })),
      h('p', null, t('resident.directory.intro')),
      h('p', null, h('a', { href: '/towns' }, t('resident.directory.changeTown')))),
    form, status, list, more);
  if (first && !first.n) view.append(h('div', { id: 'groups-empty' }, empty('home', t(first.filtered ? 'resident.directory.noResults' : 'resident.directory.none'))));
  return view;
}
