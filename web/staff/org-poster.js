// A printable A4 poster for a group: name, QR code to /g/<id>, the link and
// short instructions in German and English (whatever the dashboard's language).
import { h } from '../common/dom.js';
import { t } from '../common/i18n.js';
import { loadLocale } from './shell.js';
import { add, icon, logo } from './ui.js';
import { loadGroup } from './org-groups.js';

function pick(strings, key, params) {
  let v = strings;
  for (const part of key.split('.')) v = v && typeof v === 'object' ? v[part] : undefined;
  if (typeof v !== 'string') return '';
  return params ? v.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : v;
}

function block(strings, code, group) {
  const p = (k) => pick(strings, 'org.poster.' + k, { group: group.name });
  return h('section', { class: 'poster-lang', lang: code },
    h('h2', {}, p('how')),
    h('ol', { class: 'poster-steps' }, h('li', {}, p('step1')), h('li', {}, p('step2')), h('li', {}, p('step3'))),
    h('p', { class: 'poster-free' }, p('free')));
}

export async function posterScreen(ctx) {
  const group = await loadGroup(ctx);
  if (!group || ctx.signal.aborted) return;
  const [de, en] = await Promise.all([loadLocale('de').catch(() => ({})), loadLocale('en').catch(() => ({}))]);
  if (ctx.signal.aborted) return;
  const link = location.origin + '/g/' + encodeURIComponent(group.id);
  const display = link.replace(/^https?:\/\//, '');
  const printBtn = h('button', { type: 'button', id: 'poster-print', class: 'btn-primary' }, icon('print'), t('org.poster.print'));
  printBtn.addEventListener('click', () => window.print());
  const toolbar = h('div', { class: 'poster-toolbar no-print' },
    h('a', { class: 'btn', href: '/org/groups/' + encodeURIComponent(group.id) + '/settings' }, icon('back'), t('org.poster.back')),
    h('p', { class: 'muted small' }, t('org.poster.hint')),
    printBtn);
  const town = ctx.data.tenantName(group.tenant);
  const sheet = h('article', { class: 'poster-sheet', 'aria-label': t('org.poster.label') },
    h('header', { class: 'poster-top' },
      h('span', { class: 'poster-brand' }, logo(), 'Herold'),
      h('span', { class: 'poster-town' }, town)),
    h('p', { class: 'poster-kicker' }, h('span', { lang: 'de' }, pick(de, 'org.poster.kicker')), ' · ',
      h('span', { lang: 'en' }, pick(en, 'org.poster.kicker'))),
    h('h1', { class: 'poster-name', tabindex: '-1' }, group.name),
    h('p', { class: 'poster-org' }, group.organization.name),
    h('div', { class: 'poster-qr-wrap' },
      h('img', {
        class: 'poster-qr', id: 'poster-qr', width: 320, height: 320,
        src: '/api/v1/groups/' + encodeURIComponent(group.id) + '/qr.svg',
        alt: t('org.poster.qr_alt', { link: display }),
      })),
    h('p', { class: 'poster-link' }, display),
    h('div', { class: 'poster-langs' }, block(de, 'de', group), block(en, 'en', group)),
    h('footer', { class: 'poster-foot' },
      h('span', { lang: 'de' }, pick(de, 'org.poster.privacy')),
      h('span', { lang: 'en' }, pick(en, 'org.poster.privacy'))));
  add(ctx.main, toolbar, sheet);
  ctx.ready('poster', t('org.poster.title', { name: group.name }));
}
