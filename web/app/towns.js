// (towns) Pick a town; the choice is remembered on this device.
import { h } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import { heading, setTitle, icon, empty } from './ui.js';

export async function render() {
  const { items } = await api('/tenants');
  setTitle(t('resident.towns.title'));
  const current = store.tenant();
  const list = h('ul', { class: 'list town-list' }, items.map((town) =>
    h('li', null, h('a', {
      class: 'item', href: '/', dataset: { tenant: town.slug },
      'aria-current': town.slug === current ? 'true' : null,
      onclick: () => store.setTenant(town.slug, town.name),
    }, h('span', null, town.name, town.slug === current ? h('span', { class: 'badge badge-ok' }, ' ', t('resident.towns.current')) : null),
    h('span', { class: 'chev' }, icon('chevron'))))));
  return h('section', null,
    h('div', { class: 'hero' },
      heading(t('resident.towns.title')),
      h('p', null, t('resident.towns.intro'))),
    items.length ? list : empty('home', t('resident.towns.none')));
}
