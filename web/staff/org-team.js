// Members (owners add by e-mail, change roles, remove, transfer ownership)
// and API tokens (owners create one per group, see the secret once, revoke).
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, badge, emptyState, icon, copyButton, confirmDialog,
  showFieldError, clearFieldError, chars, when,
} from './ui.js';
import { loadGroups } from './org-groups.js';

const TOKEN_NAME_MAX = 80;

function orgPath(ctx, rest) {
  return '/organizations/' + encodeURIComponent(ctx.data.org.id) + rest;
}

// ---- members ----

export async function membersScreen(ctx) {
  const { org, isOwner, me } = ctx.data;
  const res = await session.call(orgPath(ctx, '/members'), { signal: ctx.signal });
  if (ctx.signal.aborted) return;
  let members = res.items;

  const tbody = h('tbody', {});
  const tableErr = formError();
  const table = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': t('org.members.caption', { org: org.name }) },
    h('table', { class: 'data-table', id: 'member-list' },
    h('caption', { class: 'visually-hidden' }, t('org.members.caption', { org: org.name })),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('staff.email')),
      h('th', { scope: 'col' }, t('org.members.role')),
      h('th', { scope: 'col' }, t('org.members.added_at')),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('org.members.actions'))))),
    tbody));

  const countHeading = h('h2', { id: 'members-h2', class: 'section-title' });
  function draw() {
    clear(tbody);
    for (const m of members) tbody.append(memberRow(m));
    countHeading.textContent = t('org.members.list', { count: members.length });
  }

  function memberRow(m) {
    const self = m.user_id === me.id;
    const who = h('td', {}, h('span', { class: 'member-email' }, m.email), ' ',
      self ? badge(t('org.members.you')) : null, ' ',
      m.active ? null : badge(t('org.members.invited'), 'warn'));
    let roleCell;
    if (isOwner && !self) {
      const id = 'role-' + m.user_id;
      const sel = h('select', { id, class: 'role-select' },
        ['owner', 'editor'].map(r => h('option', { value: r, selected: r === m.role }, t('org.roles.' + r))));
      sel.addEventListener('change', async () => {
        const role = sel.value;
        tableErr.show(null);
        if (role === 'owner') {
          const yes = await confirmDialog({
            title: t('org.members.make_owner_title'), text: t('org.members.make_owner_text', { email: m.email }),
            confirm: t('org.members.make_owner'), confirmId: 'role-confirm',
          });
          if (!yes) { sel.value = m.role; return; }
        }
        try {
          const updated = await busy(sel, () => session.call(orgPath(ctx, '/members/' + encodeURIComponent(m.user_id)),
            { method: 'PATCH', body: { role } }));
          Object.assign(m, updated);
          announce(t('org.members.role_changed', { email: m.email, role: t('org.roles.' + role) }));
          draw();
          drawTransfer();
        } catch (e) {
          sel.value = m.role;
          reportError(e, tableErr);
        }
      });
      roleCell = h('td', {}, h('label', { for: id, class: 'visually-hidden' }, t('org.members.role_of', { email: m.email })), sel);
    } else {
      roleCell = h('td', {}, t('org.roles.' + m.role));
    }
    const actions = h('td', { class: 'cell-actions' });
    if ((isOwner && !self) || self) {
      const btn = h('button', { type: 'button', class: 'btn-quiet', dataset: { action: self ? 'leave' : 'remove' } },
        self ? t('org.members.leave') : t('org.members.remove'));
      if (!self) btn.setAttribute('aria-label', t('org.members.remove_label', { email: m.email }));
      btn.addEventListener('click', async () => {
        tableErr.show(null);
        const yes = await confirmDialog({
          title: self ? t('org.members.leave_title', { org: org.name }) : t('org.members.remove_title', { email: m.email }),
          text: self ? t('org.members.leave_text') : t('org.members.remove_text'),
          confirm: self ? t('org.members.leave') : t('org.members.remove'), danger: true, confirmId: 'member-remove-confirm',
        });
        if (!yes) return;
        try {
          await busy(btn, () => session.call(orgPath(ctx, '/members/' + encodeURIComponent(m.user_id)), { method: 'DELETE' }));
          if (self) {
            announce(t('org.members.left', { org: org.name }));
            try { localStorage.removeItem('herold.org.current'); } catch { /* ignore */ }
            ctx.state.data = null;
            ctx.go('/org');
            return;
          }
          members = members.filter(x => x.user_id !== m.user_id);
          announce(t('org.members.removed', { email: m.email }));
          draw();
          drawTransfer();
          const h1 = ctx.main.querySelector('h1');
          if (h1) h1.focus();
        } catch (e) {
          reportError(e, tableErr);
        }
      });
      actions.append(btn);
    }
    return h('tr', { dataset: { member: m.user_id } }, who, roleCell, h('td', {}, when(m.added_at)), actions);
  }

  // Transfer ownership: make another member owner, then step down to editor.
  const transferBox = h('div', {});
  function drawTransfer() {
    clear(transferBox);
    if (!isOwner) return;
    const others = members.filter(m => m.user_id !== me.id && m.active);
    const meRow = members.find(m => m.user_id === me.id);
    if (!meRow || meRow.role !== 'owner') return;
    const err = formError();
    const sel = field({ id: 'transfer-to', label: t('org.members.transfer_to'), kind: 'select',
      options: [{ value: '', label: t('org.members.transfer_choose') }, ...others.map(m => ({ value: m.user_id, label: m.email }))] });
    const btn = h('button', { type: 'submit', id: 'transfer-submit' }, t('org.members.transfer'));
    const form = h('form', { novalidate: true }, err, sel.wrap, h('div', { class: 'actions' }, btn));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      const target = others.find(m => m.user_id === sel.control.value);
      if (!target) { showFieldError(sel.control, t('org.members.transfer_missing')); sel.control.focus(); return; }
      const yes = await confirmDialog({
        title: t('org.members.transfer_title'),
        text: [t('org.members.transfer_text', { email: target.email, org: org.name }), t('org.members.transfer_text2')],
        confirm: t('org.members.transfer'), danger: true, confirmId: 'transfer-confirm',
      });
      if (!yes) return;
      try {
        await busy(btn, async () => {
          await session.call(orgPath(ctx, '/members/' + encodeURIComponent(target.user_id)), { method: 'PATCH', body: { role: 'owner' } });
          await session.call(orgPath(ctx, '/members/' + encodeURIComponent(me.id)), { method: 'PATCH', body: { role: 'editor' } });
        });
        announce(t('org.members.transferred', { email: target.email }));
        await ctx.state.reload();
      } catch (e) {
        reportError(e, err);
      }
    });
    transferBox.append(h('section', { class: 'card', 'aria-labelledby': 'transfer-h2' },
      h('h2', { id: 'transfer-h2' }, t('org.members.transfer_heading')),
      h('p', { class: 'muted' }, others.length ? t('org.members.transfer_lead') : t('org.members.transfer_none')),
      others.length ? form : null));
  }

  const side = isOwner ? addMemberForm(ctx, (added) => {
    members = members.filter(m => m.user_id !== added.user_id).concat([added]);
    draw();
    drawTransfer();
  }) : h('section', { class: 'card' }, h('h2', {}, t('org.members.editor_title')), h('p', {}, t('org.members.editor_text')));

  draw();
  drawTransfer();
  add(ctx.main, pageHead(t('org.members.title'), t('org.members.lead', { org: org.name })),
    h('div', { class: 'split' },
      h('section', { class: 'split-main', 'aria-labelledby': 'members-h2' },
        countHeading,
        tableErr, h('div', { class: 'card card-flush' }, table), transferBox),
      h('div', { class: 'split-side' }, side)));
  ctx.ready('members', t('org.members.title'));
}

function addMemberForm(ctx, onAdded) {
  const email = field({ id: 'member-email', label: t('staff.email'), type: 'email', required: true, autocomplete: 'off' });
  const role = field({ id: 'member-role', label: t('org.members.role'), kind: 'select', value: 'editor',
    options: ['editor', 'owner'].map(r => ({ value: r, label: t('org.roles.' + r) })), hint: t('org.members.roles_hint') });
  const err = formError();
  const out = h('div', { id: 'member-invite', role: 'status' });
  const btn = h('button', { type: 'submit', id: 'member-add', class: 'btn-primary' }, icon('plus'), t('org.members.add'));
  const form = h('form', { novalidate: true }, err, email.wrap, role.wrap, h('div', { class: 'actions' }, btn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clear(out);
    clearFieldError(email.control);
    const value = email.control.value.trim();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) {
      showFieldError(email.control, t('staff.errors.field.email'));
      email.control.focus();
      return;
    }
    try {
      const added = await busy(btn, () => session.call(orgPath(ctx, '/members'), {
        method: 'POST', body: { email: value, role: role.control.value },
      }));
      onAdded(added.member);
      form.reset();
      if (added.invite_token) {
        const link = location.origin + '/org/invite#' + added.invite_token;
        out.append(h('div', { class: 'notice notice-ok invite-box' },
          h('p', { class: 'title' }, t('org.members.invite_title', { email: added.member.email })),
          h('p', {}, t('org.members.invite_text')),
          h('p', { class: 'secret' }, h('code', { id: 'invite-link' }, link)),
          copyButton(link, t('org.members.invite_copy'), 'invite-copy')));
        announce(t('org.members.invite_title', { email: added.member.email }));
      } else {
        out.append(h('p', { class: 'notice notice-ok' }, t('org.members.added', { email: added.member.email })));
        announce(t('org.members.added', { email: added.member.email }));
      }
    } catch (e) {
      reportError(e, err, { email: email.control, role: role.control });
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'add-h2' },
    h('h2', { id: 'add-h2' }, t('org.members.add_title')),
    h('p', { class: 'muted' }, t('org.members.add_lead')),
    form, out);
}

// ---- API tokens ----

export async function tokensScreen(ctx) {
  const { org, isOwner } = ctx.data;
  add(ctx.main, pageHead(t('org.tokens.title'), t('org.tokens.lead')));
  if (!isOwner) {
    add(ctx.main, h('div', { class: 'notice' }, h('p', {}, t('org.tokens.owner_only'))));
    ctx.ready('tokens', t('org.tokens.title'));
    return;
  }
  const [tokens, groups] = await Promise.all([
    session.call(orgPath(ctx, '/tokens'), { signal: ctx.signal }).then(r => r.items),
    loadGroups(ctx),
  ]);
  if (ctx.signal.aborted) return;
  const activeGroups = groups.filter(g => g.status === 'active');

  const tbody = h('tbody', {});
  const listErr = formError();
  const table = h('table', { class: 'data-table', id: 'token-list' },
    h('caption', { class: 'visually-hidden' }, t('org.tokens.caption', { org: org.name })),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('org.tokens.name')),
      h('th', { scope: 'col' }, t('org.tokens.group')),
      h('th', { scope: 'col' }, t('org.tokens.usage')),
      h('th', { scope: 'col' }, t('org.tokens.state')))),
    tbody);
  const emptyBox = emptyState(t('org.tokens.none'));
  function draw() {
    clear(tbody);
    const sorted = tokens.slice().sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) || b.created_at.localeCompare(a.created_at));
    for (const tk of sorted) tbody.append(tokenRow(tk));
    table.hidden = !tokens.length;
    emptyBox.hidden = tokens.length > 0;
  }
  function tokenRow(tk) {
    const actions = h('div', { class: 'cell-action' });
    if (!tk.revoked_at) {
      const btn = h('button', { type: 'button', class: 'btn-quiet danger-text', dataset: { action: 'revoke' },
        'aria-label': t('org.tokens.revoke_label', { name: tk.name }) }, t('org.tokens.revoke'));
      btn.addEventListener('click', async () => {
        listErr.show(null);
        const yes = await confirmDialog({
          title: t('org.tokens.revoke_title', { name: tk.name }), text: t('org.tokens.revoke_text'),
          confirm: t('org.tokens.revoke'), danger: true, confirmId: 'revoke-confirm',
        });
        if (!yes) return;
        try {
          await busy(btn, () => session.call(orgPath(ctx, '/tokens/' + encodeURIComponent(tk.id)), { method: 'DELETE' }));
          tk.revoked_at = new Date().toISOString();
          announce(t('org.tokens.revoked', { name: tk.name }));
          draw();
          ctx.main.querySelector('h1').focus();
        } catch (e) {
          reportError(e, listErr);
        }
      });
      actions.append(btn);
    }
    return h('tr', { dataset: { token: tk.id }, class: tk.revoked_at ? 'revoked' : null },
      h('td', {}, h('strong', {}, tk.name), tk.created_by ? h('span', { class: 'cell-sub' }, t('org.tokens.by', { email: tk.created_by })) : null),
      h('td', {}, tk.group.name),
      h('td', {}, h('span', { class: 'cell-line' }, t('org.tokens.created'), ': ', when(tk.created_at)),
        h('span', { class: 'cell-sub' }, t('org.tokens.last_used'), ': ',
          tk.last_used_at ? when(tk.last_used_at) : t('org.tokens.never'))),
      h('td', {}, tk.revoked_at
        ? h('span', {}, badge(t('org.tokens.revoked_badge'), 'danger'), h('span', { class: 'cell-sub' }, fmtDateTime(tk.revoked_at)))
        : badge(t('org.tokens.active_badge'), 'ok'), actions));
  }

  // create
  const name = field({ id: 'token-name', label: t('org.tokens.name'), required: true, max: TOKEN_NAME_MAX,
    hint: t('org.tokens.name_hint') });
  const group = field({ id: 'token-group', label: t('org.tokens.group'), kind: 'select', required: true,
    options: activeGroups.map(g => ({ value: g.id, label: g.name })), hint: t('org.tokens.group_hint') });
  const err = formError();
  const secretBox = h('div', { id: 'token-secret-box' });
  const btn = h('button', { type: 'submit', id: 'token-create', class: 'btn-primary' }, icon('key'), t('org.tokens.create'));
  const form = h('form', { novalidate: true }, err, name.wrap, group.wrap, h('div', { class: 'actions' }, btn));
  if (!activeGroups.length) {
    btn.disabled = true;
    err.show(t('org.tokens.no_groups'));
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clear(secretBox);
    clearFieldError(name.control);
    const n = chars(name.control.value);
    if (!n) { showFieldError(name.control, t('org.tokens.name_missing')); name.control.focus(); return; }
    if (n > TOKEN_NAME_MAX) { name.control.focus(); return; }
    try {
      const created = await busy(btn, () => session.call(orgPath(ctx, '/tokens'), {
        method: 'POST', body: { name: name.control.value.trim(), group_id: group.control.value },
      }));
      const { secret, ...view } = created;
      tokens.push(view);
      draw();
      form.reset();
      name.control.refreshCounter();
      showSecret(secret, view);
    } catch (e) {
      reportError(e, err, { name: name.control, group_id: group.control });
    }
  });

  function showSecret(secret, view) {
    const example = 'curl -X POST ' + location.origin + '/api/v1/groups/' + view.group.id + '/messages \\\n'
      + '  -H "Authorization: Bearer ' + secret + '" \\\n'
      + '  -H "Content-Type: application/json" \\\n'
      + '  -d \'{"title":"…","body":"…"}\'';
    const box = h('div', { class: 'notice notice-ok secret-box', tabindex: '-1' },
      h('p', { class: 'title' }, t('org.tokens.secret_title', { name: view.name })),
      h('p', {}, t('org.tokens.secret_text')),
      h('p', { class: 'secret' }, h('code', { id: 'token-secret' }, secret)),
      copyButton(secret, t('org.tokens.copy'), 'token-copy'),
      h('details', {}, h('summary', {}, t('org.tokens.example')), h('pre', { class: 'code' }, h('code', {}, example))));
    secretBox.append(box);
    announce(t('org.tokens.secret_title', { name: view.name }));
    box.focus();
  }

  draw();
  add(ctx.main, h('div', { class: 'split' },
    h('section', { class: 'split-main', 'aria-labelledby': 'tokens-h2' },
      h('h2', { id: 'tokens-h2', class: 'section-title' }, t('org.tokens.list')),
      secretBox, listErr, h('div', { class: 'card card-flush table-wrap', tabindex: '0', role: 'region',
        'aria-label': t('org.tokens.caption', { org: org.name }) }, table, emptyBox)),
    h('section', { class: 'card split-side', 'aria-labelledby': 'token-new-h2' },
      h('h2', { id: 'token-new-h2' }, t('org.tokens.new_title')),
      h('p', { class: 'muted' }, t('org.tokens.new_lead')),
      form)));
  ctx.ready('tokens', t('org.tokens.title'));
}
