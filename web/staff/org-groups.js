// Groups of the current organization: the list with the create form (the
// dashboard's home), a group's header and tabs, and its settings (edit, archive).
import { h, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, statusBadge, officialBadge, emptyState, icon,
  categoryOptions, confirmDialog, clearFieldError, showFieldError, chars,
} from './ui.js';
import { intakeSection } from './org-intake.js';

export const NAME_MAX = 80;
export const DESCRIPTION_MAX = 1000;

export async function loadGroups(ctx) {
  const res = await session.call('/organizations/' + encodeURIComponent(ctx.data.org.id) + '/groups', { signal: ctx.signal });
  return res.items;
}

/** The group `ctx.params[0]` of the current organization, or null (after rendering a not-found card). */
export async function loadGroup(ctx) {
  const id = ctx.params[0];
  const groups = await loadGroups(ctx);
  const group = groups.find(g => g.id === id);
  if (!group) {
    add(ctx.main, pageHead(t('org.group_missing_title')),
      emptyState(t('org.group_missing_text'), h('a', { href: '/org' }, t('org.back_home'))));
    ctx.ready('not-found', t('org.group_missing_title'));
    return null;
  }
  return group;
}

/** Heading and tab bar of one group's pages. */
export function groupHead(ctx, group, active) {
  const base = '/org/groups/' + encodeURIComponent(group.id);
  const tabs = [
    { key: 'compose', href: base, label: t('org.tabs.compose'), icon: 'send' },
    { key: 'history', href: base + '/history', label: t('org.tabs.history'), icon: 'history' },
    { key: 'sessions', href: base + '/sessions', label: t('org.tabs.sessions'), icon: 'chat' },
    { key: 'settings', href: base + '/settings', label: t('org.tabs.settings'), icon: 'settings' },
    { key: 'poster', href: '/org/poster/' + encodeURIComponent(group.id), label: t('org.tabs.poster'), icon: 'print' },
  ];
  const lead = h('span', { class: 'lead-parts' },
    h('span', {}, t('staff.category.' + group.category)),
    h('span', { id: 'subscriber-total' }, t('org.subscribers', { count: group.subscriber_count })));
  const head = pageHead(group.name, null);
  const text = head.querySelector('.page-head-text');
  const badges = h('p', { class: 'lead' }, lead, ' ',
    group.verified ? officialBadge() : null, ' ',
    group.status !== 'active' ? statusBadge(group.status) : null);
  text.append(badges);
  const bar = h('nav', { class: 'tabs', 'aria-label': t('org.tabs.label') },
    h('ul', {}, tabs.map(tab => h('li', {}, h('a', { href: tab.href, 'aria-current': tab.key === active ? 'page' : null },
      icon(tab.icon), h('span', {}, tab.label))))));
  return h('div', { class: 'group-head-block' },
    h('p', { class: 'breadcrumb' }, h('a', { href: '/org' }, icon('back'), t('org.all_groups'))),
    head, bar);
}

/** The list of groups with the create form. `notice` is put above the list (pending, suspended). */
export async function groupsScreen(ctx, { notice, screen = 'groups' } = {}) {
  const { org, isOwner } = ctx.data;
  const groups = await loadGroups(ctx);
  if (ctx.signal.aborted) return;
  const active = groups.filter(g => g.status !== 'archived');
  const archived = groups.filter(g => g.status === 'archived');

  const list = h('ul', { class: 'group-cards', id: 'group-list' });
  for (const g of active) list.append(groupCard(g));
  const emptyBox = emptyState(isOwner ? t('org.no_groups_owner') : t('org.no_groups_editor'));
  emptyBox.hidden = active.length > 0;
  const listSection = h('section', { 'aria-labelledby': 'groups-h2' },
    h('h2', { id: 'groups-h2', class: 'section-title' }, t('org.groups_title')), list, emptyBox);

  const parts = [pageHead(org.name, t('org.home_lead', { town: ctx.data.tenantName(org.tenant) }))];
  if (notice) parts.push(notice);
  parts.push(h('div', { class: 'split' },
    h('div', { class: 'split-main' }, listSection,
      archived.length ? h('section', { 'aria-labelledby': 'archived-h2' },
        h('h2', { id: 'archived-h2', class: 'section-title' }, t('org.archived_title')),
        h('ul', { class: 'group-cards archived' }, archived.map(groupCard))) : null),
    isOwner ? createForm(ctx, list, emptyBox) : h('aside', { class: 'card split-side' },
      h('h2', {}, t('org.editor_title')), h('p', {}, t('org.editor_text')))));
  add(ctx.main, ...parts);
  ctx.ready(screen, org.name);
}

function groupCard(g) {
  const base = '/org/groups/' + encodeURIComponent(g.id);
  return h('li', { class: 'card group-card', dataset: { group: g.id } },
    h('div', { class: 'group-card-head' },
      h('span', { class: 'group-avatar', 'aria-hidden': 'true' }, initial(g.name)),
      h('div', { class: 'grow' },
        h('h3', {}, h('a', { href: base, class: 'group-link-name' }, g.name)),
        h('p', { class: 'meta' },
          t('staff.category.' + g.category), ' · ',
          h('span', { class: 'subscriber-count' }, t('org.subscribers', { count: g.subscriber_count })))),
      h('div', { class: 'badges' }, g.verified ? officialBadge() : null, g.status !== 'active' ? statusBadge(g.status) : null)),
    g.description ? h('p', { class: 'group-desc' }, g.description) : null,
    h('div', { class: 'card-actions' },
      g.status === 'active' ? h('a', { class: 'btn btn-primary', href: base }, icon('send'), t('org.write'))
        : null,
      h('a', { class: 'btn', href: base + '/history' }, icon('history'), t('org.tabs.history')),
      h('a', { class: 'btn btn-quiet', href: '/org/poster/' + encodeURIComponent(g.id) }, icon('print'), t('org.tabs.poster'))));
}

export function initial(name) {
  const c = Array.from(String(name || '?').trim())[0] || '?';
  return c.toUpperCase();
}

function createForm(ctx, list, emptyBox) {
  const name = field({ id: 'group-name', label: t('org.group_name'), required: true, max: NAME_MAX });
  const desc = field({ id: 'group-description', label: t('org.group_description'), kind: 'textarea', rows: 3,
    max: DESCRIPTION_MAX, hint: t('org.group_description_hint') });
  const cat = field({ id: 'group-category', label: t('org.group_category'), kind: 'select',
    options: categoryOptions(), value: ctx.data.org.kind || 'other' });
  const err = formError();
  const submit = h('button', { type: 'submit', id: 'group-create', class: 'btn-primary' }, icon('plus'), t('org.group_create'));
  const form = h('form', { novalidate: true }, err, name.wrap, desc.wrap, cat.wrap, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clearFieldError(name.control);
    const n = chars(name.control.value);
    if (n < 2) {
      showFieldError(name.control, t('org.group_name_short'));
      name.control.focus();
      return;
    }
    if (n > NAME_MAX || chars(desc.control.value) > DESCRIPTION_MAX) return;
    try {
      const g = await busy(submit, () => session.call('/organizations/' + encodeURIComponent(ctx.data.org.id) + '/groups', {
        method: 'POST',
        body: { name: name.control.value.trim(), description: desc.control.value.trim(), category: cat.control.value },
      }));
      emptyBox.hidden = true;
      list.append(groupCard(g));
      form.reset();
      name.control.refreshCounter();
      desc.control.refreshCounter();
      announce(t('org.group_created', { name: g.name }));
      const link = list.querySelector('[data-group="' + CSS.escape(g.id) + '"] a');
      if (link) link.focus();
    } catch (e) {
      reportError(e, err, { name: name.control, description: desc.control, category: cat.control });
    }
  });
  return h('aside', { class: 'card split-side', 'aria-labelledby': 'create-h2' },
    h('h2', { id: 'create-h2' }, t('org.group_new_title')),
    h('p', { class: 'muted' }, t('org.group_new_text')),
    form);
}

export async function groupSettingsScreen(ctx) {
  const group = await loadGroup(ctx);
  if (!group || ctx.signal.aborted) return;
  const { isOwner } = ctx.data;
  add(ctx.main, groupHead(ctx, group, 'settings'));
  const link = location.origin + '/g/' + encodeURIComponent(group.id);
  const share = h('section', { class: 'card', 'aria-labelledby': 'share-h2' },
    h('h2', { id: 'share-h2' }, t('org.share_title')),
    h('p', {}, t('org.share_text')),
    h('p', { class: 'share-link' }, h('a', { href: link, id: 'group-public-link' }, link)),
    h('div', { class: 'actions' },
      h('a', { class: 'btn', href: '/org/poster/' + encodeURIComponent(group.id) }, icon('print'), t('org.poster_open'))));
  const intake = group.status === 'archived' ? null : await intakeSection(ctx, group);
  if (ctx.signal.aborted) return;
  if (!isOwner || group.status === 'archived') {
    add(ctx.main, h('div', { class: 'split' },
      h('div', { class: 'split-main' }, intake,
        h('div', { class: 'notice' },
          h('p', {}, group.status === 'archived' ? t('org.archived_readonly') : t('org.owner_only_settings')))),
      h('div', { class: 'split-side' }, share)));
    ctx.ready('group-settings', group.name);
    return;
  }
  const name = field({ id: 'group-edit-name', label: t('org.group_name'), required: true, max: NAME_MAX, value: group.name });
  const desc = field({ id: 'group-edit-description', label: t('org.group_description'), kind: 'textarea', rows: 4,
    max: DESCRIPTION_MAX, value: group.description });
  const cat = field({ id: 'group-edit-category', label: t('org.group_category'), kind: 'select',
    options: categoryOptions(), value: group.category });
  const err = formError();
  const save = h('button', { type: 'submit', id: 'group-save', class: 'btn-primary' }, t('org.save'));
  const form = h('form', { novalidate: true }, err, name.wrap, desc.wrap, cat.wrap, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    if (chars(name.control.value) < 2) { err.show(t('org.group_name_short')); name.control.focus(); return; }
    if (chars(name.control.value) > NAME_MAX || chars(desc.control.value) > DESCRIPTION_MAX) return;
    try {
      const g = await busy(save, () => session.call('/groups/' + encodeURIComponent(group.id), {
        method: 'PATCH',
        body: { name: name.control.value.trim(), description: desc.control.value.trim(), category: cat.control.value },
      }));
      ctx.main.querySelector('h1').textContent = g.name;
      announce(t('org.saved'));
      err.show(null);
      const ok = form.querySelector('.form-ok') || h('p', { class: 'notice notice-ok form-ok', role: 'status' });
      ok.textContent = t('org.saved');
      form.prepend(ok);
    } catch (e) {
      reportError(e, err, { name: name.control, description: desc.control, category: cat.control });
    }
  });
  const archive = h('button', { type: 'button', id: 'group-archive', class: 'btn-danger' }, t('org.archive'));
  const archErr = formError();
  archive.addEventListener('click', async () => {
    const yes = await confirmDialog({
      title: t('org.archive_confirm_title', { name: group.name }),
      text: [t('org.archive_confirm_text'), t('org.archive_confirm_text2', { count: group.subscriber_count })],
      confirm: t('org.archive'), danger: true, confirmId: 'archive-confirm',
    });
    if (!yes) return;
    try {
      await busy(archive, () => session.call('/groups/' + encodeURIComponent(group.id), { method: 'DELETE' }));
      announce(t('org.archived_done', { name: group.name }));
      ctx.go('/org');
    } catch (e) {
      reportError(e, archErr);
    }
  });
  add(ctx.main, h('div', { class: 'split' },
    h('div', { class: 'split-main stack' },
      h('section', { class: 'card', 'aria-labelledby': 'edit-h2' }, h('h2', { id: 'edit-h2' }, t('org.edit_title')), form),
      intake),
    h('div', { class: 'split-side' }, share,
      h('section', { class: 'card danger-zone', 'aria-labelledby': 'archive-h2' },
        h('h2', { id: 'archive-h2' }, t('org.archive_title')),
        h('p', {}, t('org.archive_text')), archErr, archive))));
  ctx.ready('group-settings', group.name);
}
