// Accounts and organizations: the dashboard's home (which depends on the
// organization's status), registration, invitations, a further organization.
import { h, announce } from '../common/dom.js';
import { t, fmtDateTime } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as session from './session.js';
import { add,
  field, formError, reportError, busy, pageHead, icon, categoryOptions, chars, showFieldError, clearFieldError,
} from './ui.js';
import { groupsScreen } from './org-groups.js';

const ORG_NAME_MAX = 120;
const ORG_DESCRIPTION_MAX = 1000;
const PASSWORD_MIN = 10;

function rememberOrg(id) {
  try { localStorage.setItem('herold.org.current', id); } catch { /* private mode */ }
}

export async function homeScreen(ctx) {
  const { org } = ctx.data;
  if (!org) return newOrgScreen(ctx, { first: true });
  if (org.status === 'pending') return groupsScreen(ctx, { notice: pendingNotice(ctx), screen: 'pending' });
  if (org.status === 'rejected') return rejectedScreen(ctx);
  if (org.status === 'suspended') {
    return groupsScreen(ctx, {
      notice: h('div', { id: 'org-suspended', class: 'notice notice-danger', role: 'status' },
        h('p', { class: 'title' }, t('org.suspended_title')),
        h('p', {}, t('org.suspended_text')),
        org.status_reason ? h('p', {}, h('strong', {}, t('org.reason') + ': '), org.status_reason) : null),
    });
  }
  return groupsScreen(ctx);
}

function declared(ctx, org) {
  const rows = [
    [t('org.fields.name'), org.name],
    [t('org.fields.town'), ctx.data.tenantName(org.tenant)],
    [t('org.fields.kind'), t('staff.category.' + org.kind)],
    [t('org.fields.contact'), ctx.data.me.email],
    [t('org.fields.registered'), fmtDateTime(org.created_at)],
  ];
  if (org.description) rows.push([t('org.fields.description'), org.description]);
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function pendingNotice(ctx) {
  const { org } = ctx.data;
  const check = h('button', { type: 'button', id: 'org-pending-check' }, t('org.pending_check'));
  const status = h('p', { class: 'muted small', role: 'status' });
  const recheck = async () => {
    const me = await session.me(true);
    const now = (me.organizations || []).find(o => o.id === org.id);
    if (now && now.status !== 'pending') {
      announce(t('org.status_changed.' + now.status));
      await ctx.state.reload();
      return true;
    }
    return false;
  };
  check.addEventListener('click', async () => {
    try {
      const changed = await busy(check, recheck);
      if (!changed) status.textContent = t('org.pending_still', { time: fmtDateTime(Date.now()) });
    } catch {
      status.textContent = t('staff.errors.network');
    }
  });
  // Look again now and then while the page is open: the approval may come any minute.
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') recheck().catch(() => {});
  }, 15000);
  ctx.signal.addEventListener('abort', () => clearInterval(timer));
  return h('section', { id: 'org-pending', class: 'card pending-card', 'aria-labelledby': 'pending-h2' },
    h('div', { class: 'pending-icon', 'aria-hidden': 'true' }, icon('clock')),
    h('div', { class: 'pending-text' },
      h('h2', { id: 'pending-h2' }, t('org.pending_title', { town: ctx.data.tenantName(org.tenant) })),
      h('p', {}, t('org.pending_text')),
      h('ol', { class: 'steps' },
        h('li', { class: 'done' }, t('org.pending_step1')),
        h('li', { class: 'current' }, t('org.pending_step2', { town: ctx.data.tenantName(org.tenant) })),
        h('li', {}, t('org.pending_step3'))),
      h('details', { class: 'declared' }, h('summary', {}, t('org.pending_declared')), declared(ctx, org)),
      h('div', { class: 'actions' }, check), status));
}

function rejectedScreen(ctx) {
  const { org } = ctx.data;
  add(ctx.main, pageHead(org.name, null),
    h('section', { id: 'org-rejected', class: 'notice notice-danger' },
      h('p', { class: 'title' }, t('org.rejected_title', { town: ctx.data.tenantName(org.tenant) })),
      org.status_reason ? h('p', {}, h('strong', {}, t('org.reason') + ': '), org.status_reason) : null,
      h('p', {}, t('org.rejected_text'))),
    h('div', { class: 'card' }, h('h2', {}, t('org.pending_declared')), declared(ctx, org)));
  ctx.ready('rejected', org.name);
}

async function tenantOptions() {
  const res = await api('/tenants');
  return res.items;
}

function orgFields(prefix, tenants) {
  const name = field({ id: prefix + '-org-name', label: t('org.fields.org_name'), required: true, max: ORG_NAME_MAX,
    autocomplete: 'organization', hint: t('org.fields.org_name_hint') });
  const opts = tenants.map(x => ({ value: x.slug, label: x.name }));
  const tenant = field({ id: prefix + '-tenant', label: t('org.fields.town'), kind: 'select', required: true,
    options: tenants.length === 1 ? opts : [{ value: '', label: t('org.fields.town_choose') }, ...opts],
    hint: t('org.fields.town_hint') });
  const kind = field({ id: prefix + '-org-kind', label: t('org.fields.kind'), kind: 'select', required: true, options: categoryOptions(), value: 'other' });
  const desc = field({ id: prefix + '-org-description', label: t('org.fields.description'), kind: 'textarea', rows: 3,
    max: ORG_DESCRIPTION_MAX, hint: t('org.fields.description_hint') });
  return { name, tenant, kind, desc };
}

function orgBody(f) {
  const body = { name: f.name.control.value.trim(), tenant: f.tenant.control.value, kind: f.kind.control.value };
  const d = f.desc.control.value.trim();
  if (d) body.description = d;
  return body;
}

function checkOrg(f) {
  for (const c of [f.name.control, f.tenant.control]) clearFieldError(c);
  if (chars(f.name.control.value) < 2) { showFieldError(f.name.control, t('staff.errors.field.name')); return f.name.control; }
  if (chars(f.name.control.value) > ORG_NAME_MAX) return f.name.control;
  if (!f.tenant.control.value) { showFieldError(f.tenant.control, t('org.fields.town_missing')); return f.tenant.control; }
  if (chars(f.desc.control.value) > ORG_DESCRIPTION_MAX) return f.desc.control;
  return null;
}

export async function registerScreen(ctx) {
  if (session.isLoggedIn()) {
    ctx.go('/org/new', { replace: true });
    return;
  }
  const tenants = await tenantOptions();
  if (ctx.signal.aborted) return;
  const email = field({ id: 'register-email', label: t('staff.email'), type: 'email', required: true, autocomplete: 'email',
    hint: t('org.register_email_hint') });
  const pw = field({ id: 'register-password', label: t('staff.password'), type: 'password', required: true,
    autocomplete: 'new-password', hint: t('org.register_password_hint', { min: PASSWORD_MIN }) });
  const f = orgFields('register', tenants);
  const err = formError();
  const submit = h('button', { type: 'submit', id: 'register-submit', class: 'btn-primary btn-block' }, t('org.register_submit'));
  const form = h('form', { class: 'auth-form', novalidate: true }, err,
    h('fieldset', {}, h('legend', {}, t('org.register_you')), email.wrap, pw.wrap),
    h('fieldset', {}, h('legend', {}, t('org.register_org')), f.name.wrap, f.tenant.wrap, f.kind.wrap, f.desc.wrap),
    h('p', { class: 'hint' }, t('org.register_privacy')),
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    clearFieldError(email.control);
    clearFieldError(pw.control);
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.control.value.trim())) {
      showFieldError(email.control, t('staff.errors.field.email'));
      email.control.focus();
      return;
    }
    if (Array.from(pw.control.value).length < PASSWORD_MIN) {
      showFieldError(pw.control, t('staff.errors.field.password'));
      pw.control.focus();
      return;
    }
    const bad = checkOrg(f);
    if (bad) { bad.focus(); return; }
    try {
      const res = await busy(submit, () => session.register({
        email: email.control.value.trim(), password: pw.control.value, organization: orgBody(f),
      }));
      rememberOrg(res.organization.id);
      ctx.state.data = null;
      announce(t('org.registered'));
      ctx.go('/org', { replace: true });
    } catch (e) {
      reportError(e, err, {
        email: email.control, password: pw.control, name: f.name.control, tenant: f.tenant.control,
        kind: f.kind.control, description: f.desc.control,
      });
    }
  });
  add(ctx.main, h('div', { class: 'auth-wrap auth-wide' },
    h('section', { class: 'card auth-card' },
      h('h1', { tabindex: '-1' }, t('org.register_title')),
      h('p', { class: 'lead' }, t('org.register_lead')),
      form,
      h('p', { class: 'auth-switch' }, t('org.have_account'), ' ', h('a', { href: '/org' }, t('staff.login'))))));
  ctx.ready('register', t('org.register_title'));
}

export async function inviteScreen(ctx) {
  const fromUrl = (location.hash || '').replace(/^#/, '') || ctx.query.get('token') || '';
  const token = field({ id: 'invite-token', label: t('org.invite_token'), required: true, value: fromUrl,
    hint: t('org.invite_token_hint') });
  const pw = field({ id: 'invite-password', label: t('org.invite_password'), type: 'password', required: true,
    autocomplete: 'new-password', hint: t('org.register_password_hint', { min: PASSWORD_MIN }) });
  if (fromUrl) token.wrap.hidden = true;
  const err = formError();
  const submit = h('button', { type: 'submit', id: 'invite-submit', class: 'btn-primary btn-block' }, t('org.invite_submit'));
  const form = h('form', { class: 'auth-form', novalidate: true }, err, token.wrap, pw.wrap, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    if (!token.control.value.trim()) { token.wrap.hidden = false; showFieldError(token.control, t('org.invite_token_missing')); token.control.focus(); return; }
    if (Array.from(pw.control.value).length < PASSWORD_MIN) {
      showFieldError(pw.control, t('staff.errors.field.password'));
      pw.control.focus();
      return;
    }
    try {
      await busy(submit, () => session.acceptInvite(token.control.value.trim(), pw.control.value));
      ctx.state.data = null;
      announce(t('org.invite_done'));
      ctx.go('/org', { replace: true });
    } catch (e) {
      if (e.status === 401) { token.wrap.hidden = false; err.show(t('org.invite_invalid')); return; }
      reportError(e, err, { password: pw.control, invite_token: token.control });
    }
  });
  add(ctx.main, h('div', { class: 'auth-wrap' },
    h('section', { class: 'card auth-card' },
      h('h1', { tabindex: '-1' }, t('org.invite_title')),
      h('p', { class: 'lead' }, t('org.invite_lead')),
      form)));
  ctx.ready('invite', t('org.invite_title'));
}

export async function newOrgScreen(ctx, { first = false } = {}) {
  const tenants = await tenantOptions();
  if (ctx.signal.aborted) return;
  const f = orgFields('new', tenants);
  const err = formError();
  const submit = h('button', { type: 'submit', id: 'new-org-submit', class: 'btn-primary' }, t('org.new_submit'));
  const form = h('form', { novalidate: true }, err, f.name.wrap, f.tenant.wrap, f.kind.wrap, f.desc.wrap,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    const bad = checkOrg(f);
    if (bad) { bad.focus(); return; }
    try {
      const org = await busy(submit, () => session.call('/organizations', { method: 'POST', body: orgBody(f) }));
      rememberOrg(org.id);
      announce(t('org.new_done', { name: org.name }));
      ctx.state.data = null;
      ctx.go('/org');
    } catch (e) {
      reportError(e, err, { name: f.name.control, tenant: f.tenant.control, description: f.desc.control });
    }
  });
  add(ctx.main, 
    pageHead(t(first ? 'org.first_title' : 'org.new_title'), t(first ? 'org.first_lead' : 'org.new_lead')),
    h('section', { class: 'card narrow' }, form));
  ctx.ready('new-org', t('org.new_title'));
}
