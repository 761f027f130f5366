// Building blocks of the staff screens: form fields with counters, error
// messages from the API's `code`, dialogs, badges, copy buttons.
import { h, clear, announce } from '../common/dom.js';
import { t, fmtDateTime, fmtNumber } from '../common/i18n.js';
import { ApiError } from '../common/api.js';

let seq = 0;
export function uid(prefix = 'f') {
  seq += 1;
  return prefix + '-' + seq;
}

/** Characters as the server counts them: Unicode scalar values of the trimmed text. */
export function chars(s) {
  return Array.from(String(s || '').trim()).length;
}

function has(key) {
  return t(key) !== key;
}

/** A human sentence for an error, chosen by the API's stable `code` (and `field`). */
export function errorText(e) {
  if (!(e instanceof ApiError)) return t('staff.errors.unexpected');
  if (e.field) {
    const field = String(e.field).replace(/^organization\./, '');
    if (has('staff.errors.field.' + field)) return t('staff.errors.field.' + field);
    const label = has('staff.fields.' + field) ? t('staff.fields.' + field) : field;
    return t('staff.errors.invalid_field', { field: label });
  }
  if (has('staff.errors.' + e.code)) return t('staff.errors.' + e.code);
  if (e.status >= 500) return t('staff.errors.internal');
  if (e.status === 404) return t('staff.errors.not_found');
  if (e.status === 403) return t('staff.errors.forbidden');
  return t('staff.errors.unexpected');
}

/**
 * A labelled form control. `kind`: input (default), textarea or select.
 * `max` adds a live character counter (`#<id>-count`) that flags overflow.
 */
export function field({ id, label, kind = 'input', type = 'text', hint, required, max, min, value, options,
  autocomplete, placeholder, rows, inputmode, extra, plain }) {
  const hintId = hint ? id + '-hint' : null;
  const countId = max ? id + '-count' : null;
  const errId = id + '-error';
  const describedby = [hintId, countId, errId].filter(Boolean).join(' ');
  let control;
  if (kind === 'select') {
    control = h('select', { id, name: id, required, 'aria-describedby': describedby },
      (options || []).map(o => h('option', { value: o.value, selected: o.value === value }, o.label)));
  } else if (kind === 'textarea') {
    control = h('textarea', { id, name: id, required, rows: rows || 5, placeholder, 'aria-describedby': describedby });
    if (value) control.value = value;
  } else {
    control = h('input', { id, name: id, type, required, autocomplete, placeholder, inputmode,
      minlength: min, 'aria-describedby': describedby });
    if (value !== undefined && value !== null) control.value = value;
  }
  if (extra) for (const [k, v] of Object.entries(extra)) control.setAttribute(k, v);
  const labelEl = h('label', { for: id }, label,
    required || plain || kind === 'select' ? null : h('span', { class: 'optional' }, ' ' + t('staff.optional')));
  const counter = max ? h('span', { id: countId, class: 'counter', 'aria-live': 'off' }) : null;
  const err = h('p', { id: errId, class: 'error-text', hidden: true });
  const wrap = h('div', { class: 'field' },
    h('div', { class: 'field-head' }, labelEl, counter),
    control,
    hint ? h('p', { id: hintId, class: 'hint' }, hint) : null,
    err);
  if (max) {
    const update = () => {
      const n = chars(control.value);
      counter.textContent = t('staff.counter', { count: n, max: fmtNumber(max) });
      const over = n > max;
      counter.classList.toggle('over', over);
      if (over) showFieldError(control, t('staff.too_long', { count: n - max }));
      else if (control.dataset.counterError) clearFieldError(control);
      control.dataset.counterError = over ? '1' : '';
    };
    control.addEventListener('input', update);
    update();
    control.refreshCounter = update;
  }
  return { wrap, control, counter };
}

export function showFieldError(control, text) {
  const err = document.getElementById(control.id + '-error');
  control.setAttribute('aria-invalid', 'true');
  if (err) { err.textContent = text; err.hidden = false; }
}

export function clearFieldError(control) {
  const err = document.getElementById(control.id + '-error');
  control.removeAttribute('aria-invalid');
  if (err) { err.textContent = ''; err.hidden = true; }
}

/** A form-level error box (role=alert); `null` hides it. */
export function formError() {
  const box = h('div', { class: 'notice notice-danger form-error', role: 'alert', hidden: true });
  box.show = (text) => {
    clear(box);
    if (!text) { box.hidden = true; return; }
    box.append(h('p', {}, text));
    box.hidden = false;
  };
  return box;
}

/**
 * Shows an API error in the form: on the named field when the server names
 * one the form has (`fields` maps API field → control), else in `box`.
 * `texts` maps an API field to a sentence of the screen's own (its limits
 * differ from the generic `staff.errors.field.*` wording).
 */
export function reportError(e, box, fields = {}, texts = {}) {
  const key = e instanceof ApiError && e.field ? String(e.field).replace(/^organization\./, '') : null;
  const text = key && texts[key] ? texts[key] : errorText(e);
  const control = key && (fields[key] || fields[e.field]);
  if (control) {
    showFieldError(control, text);
    control.focus();
    if (box) box.show(null);
  } else if (box) {
    box.show(text);
  }
  announce(text);
}

/** Disables `button` while `work` runs; returns its result. */
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

/** A screen's heading block: one h1 (focus target after navigation), a lead, actions. */
/**
 * Wires a filtered, paged list: submitting the filter form puts the filters
 * into the address and reloads the list, `reset` clears them, `more` appends
 * the next page and moves focus to its first entry (`focus(entry)`).
 * `load(first)` fetches and renders; `count` is announced after a filter.
 */
export function wireFilters({ form, apply, reset, more, err, count, list, path, params, load, clearFields, focus }) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    const p = params().toString();
    history.replaceState(null, '', path + (p ? '?' + p : ''));
    try {
      await busy(apply, () => load(true));
      announce(count.textContent);
    } catch (e) {
      reportError(e, err);
    }
  });
  reset.addEventListener('click', () => {
    clearFields();
    form.requestSubmit();
  });
  more.addEventListener('click', async () => {
    const before = list.children.length;
    try {
      await busy(more, () => load(false));
    } catch (e) {
      reportError(e, err);
      return;
    }
    const next = list.children[before];
    if (next) focus(next);
  });
}

export function pageHead(title, lead, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'page-head-text' },
      h('h1', { tabindex: '-1' }, title),
      lead ? h('p', { class: 'lead' }, lead) : null),
    actions.length ? h('div', { class: 'page-head-actions' }, actions) : null);
}

export function badge(text, tone) {
  return h('span', { class: 'badge' + (tone ? ' badge-' + tone : '') }, text);
}

const STATUS_TONE = {
  pending: 'warn', approved: 'ok', rejected: 'danger', suspended: 'danger',
  active: 'ok', archived: null, scheduled: 'warn', published: 'ok', hidden: 'danger',
  open: 'warn', resolved: 'ok',
};

/** A status badge with the translated word (`staff.status.<status>`). */
export function statusBadge(status) {
  return badge(t('staff.status.' + status), STATUS_TONE[status]);
}

export function officialBadge() {
  return h('span', { class: 'badge badge-official' }, icon('check'), t('staff.official'));
}

export function when(iso) {
  return iso ? h('time', { datetime: iso }, fmtDateTime(iso)) : '–';
}

export function emptyState(text, ...more) {
  return h('div', { class: 'empty' }, h('p', {}, text), more);
}

export function loading() {
  return h('p', { class: 'spinner', role: 'status' }, t('staff.loading'));
}

/** A failure card for a whole screen, with a retry button. */
export function failure(e, retry) {
  return h('div', { class: 'notice notice-danger', role: 'alert' },
    h('p', { class: 'title' }, t('staff.load_failed')),
    h('p', {}, errorText(e)),
    retry ? h('button', { type: 'button', onclick: retry }, t('staff.retry')) : null);
}

/** A button that copies `text()` to the clipboard and says so. */
export function copyButton(getText, label, id) {
  const btn = h('button', { type: 'button', class: 'btn-quiet', id }, icon('copy'), label || t('staff.copy'));
  btn.addEventListener('click', async () => {
    const text = typeof getText === 'function' ? getText() : getText;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // Fallback: select a temporary textarea (no clipboard permission, http).
      const ta = h('textarea', { class: 'visually-hidden', readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      ta.remove();
    }
    announce(ok ? t('staff.copied') : t('staff.copy_failed'));
    if (ok) {
      const old = btn.lastChild.textContent;
      btn.lastChild.textContent = t('staff.copied');
      setTimeout(() => { btn.lastChild.textContent = old; }, 2000);
    }
  });
  return btn;
}

// ---- dialogs ----

/**
 * A modal <dialog> labelled by its heading. `body` is a node or list;
 * `buttons` [{label, value, primary, danger, id}]. Resolves with the value
 * of the button pressed (or null on Escape/cancel); focus returns to the opener.
 */
export function modal({ id, title, body, buttons, onOpen, validate }) {
  const opener = document.activeElement;
  const titleId = uid('dlg-title');
  const descId = uid('dlg-desc');
  const old = id && document.getElementById(id);
  if (old) old.remove();
  const form = h('form', { method: 'dialog', class: 'dialog-form', novalidate: true });
  const footer = h('div', { class: 'actions dialog-actions' });
  const dlg = h('dialog', { id, 'aria-labelledby': titleId, 'aria-describedby': descId },
    form);
  form.append(h('h2', { id: titleId }, title), h('div', { id: descId, class: 'dialog-body' }, body), footer);
  return new Promise((resolve) => {
    let result = null;
    for (const b of buttons) {
      const btn = h('button', {
        type: b.value === null ? 'button' : 'submit', id: b.id, value: b.value === null ? '' : b.value,
        class: b.danger ? 'btn-danger' : b.primary ? 'btn-primary' : '',
      }, b.label);
      if (b.value === null) btn.addEventListener('click', () => dlg.close());
      footer.append(btn);
    }
    form.addEventListener('submit', (ev) => {
      const value = ev.submitter ? ev.submitter.value : null;
      if (validate && value && !validate(value)) {
        ev.preventDefault();
        return;
      }
      result = value || null;
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
    if (onOpen) onOpen(dlg);
  });
}

/** Asks "are you sure?"; resolves true/false. */
export async function confirmDialog({ title, text, confirm, danger, confirmId, id }) {
  const body = Array.isArray(text) ? text.map(p => (p instanceof Node ? p : h('p', {}, p))) : h('p', {}, text);
  const v = await modal({
    id: id || 'confirm-dialog', title, body,
    buttons: [
      { label: t('staff.cancel'), value: null, id: (confirmId || 'confirm') + '-cancel' },
      { label: confirm, value: 'ok', primary: !danger, danger, id: confirmId || 'confirm-ok' },
    ],
  });
  return v === 'ok';
}

/**
 * Asks for a reason (`textarea#reason-text`, confirm `button#reason-confirm`).
 * Resolves with the trimmed text ('' when optional and empty) or null when cancelled.
 */
export async function reasonDialog({ title, text, label, hint, required, confirm, danger, max = 500 }) {
  const f = field({ id: 'reason-text', label, kind: 'textarea', hint, required, max, rows: 4 });
  const body = [text ? h('p', {}, text) : null, f.wrap].filter(Boolean);
  const v = await modal({
    id: 'reason-dialog', title, body,
    buttons: [
      { label: t('staff.cancel'), value: null, id: 'reason-cancel' },
      { label: confirm, value: 'ok', primary: !danger, danger, id: 'reason-confirm' },
    ],
    onOpen: () => f.control.focus(),
    validate: () => {
      const n = chars(f.control.value);
      if (required && n === 0) { showFieldError(f.control, t('staff.reason_required')); f.control.focus(); return false; }
      if (n > max) { f.control.focus(); return false; }
      return true;
    },
  });
  return v === 'ok' ? f.control.value.trim() : null;
}

// ---- icons (inline SVG built through the DOM; stroke icons, 24×24) ----

const PATHS = {
  groups: 'M16 20v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2M9 10a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM22 20v-2a4 4 0 0 0-3-3.87M16 2.13a4 4 0 0 1 0 7.75',
  members: 'M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z',
  key: 'M21 2l-2 2m-7.6 7.6a5.5 5.5 0 1 1-7.78 7.78 5.5 5.5 0 0 1 7.78-7.78zm0 0L15.5 7.5m0 0l3 3L22 7l-3-3m-3.5 3.5L19 4',
  send: 'M22 2L11 13M22 2l-7 20-4-9-9-4 20-7z',
  history: 'M3 3v5h5M3.05 13A9 9 0 1 0 6 5.3L3 8M12 7v5l4 2',
  print: 'M6 9V2h12v7M6 18H4a2 2 0 0 1-2-2v-5a2 2 0 0 1 2-2h16a2 2 0 0 1 2 2v5a2 2 0 0 1-2 2h-2M6 14h12v8H6z',
  settings: 'M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19.4 15a1.65 1.65 0 0 0 .33 1.82l.06.06a2 2 0 1 1-2.83 2.83l-.06-.06a1.65 1.65 0 0 0-1.82-.33 1.65 1.65 0 0 0-1 1.51V21a2 2 0 0 1-4 0v-.09A1.65 1.65 0 0 0 9 19.4a1.65 1.65 0 0 0-1.82.33l-.06.06a2 2 0 1 1-2.83-2.83l.06-.06a1.65 1.65 0 0 0 .33-1.82 1.65 1.65 0 0 0-1.51-1H3a2 2 0 0 1 0-4h.09A1.65 1.65 0 0 0 4.6 9a1.65 1.65 0 0 0-.33-1.82l-.06-.06a2 2 0 1 1 2.83-2.83l.06.06a1.65 1.65 0 0 0 1.82.33H9a1.65 1.65 0 0 0 1-1.51V3a2 2 0 0 1 4 0v.09a1.65 1.65 0 0 0 1 1.51 1.65 1.65 0 0 0 1.82-.33l.06-.06a2 2 0 1 1 2.83 2.83l-.06.06a1.65 1.65 0 0 0-.33 1.82V9a1.65 1.65 0 0 0 1.51 1H21a2 2 0 0 1 0 4h-.09a1.65 1.65 0 0 0-1.51 1z',
  inbox: 'M22 12h-6l-2 3h-4l-2-3H2M5.45 5.11L2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z',
  flag: 'M4 15s1-1 4-1 5 2 8 2 4-1 4-1V3s-1 1-4 1-5-2-8-2-4 1-4 1zM4 22v-7',
  eyeoff: 'M17.94 17.94A10.07 10.07 0 0 1 12 20c-7 0-11-8-11-8a18.45 18.45 0 0 1 5.06-5.94M9.9 4.24A9.12 9.12 0 0 1 12 4c7 0 11 8 11 8a18.5 18.5 0 0 1-2.16 3.19m-6.72-1.07a3 3 0 1 1-4.24-4.24M1 1l22 22',
  alert: 'M10.29 3.86L1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0zM12 9v4M12 17h.01',
  list: 'M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01',
  building: 'M3 21h18M5 21V7l7-4 7 4v14M9 21v-6h6v6M9 10h.01M15 10h.01',
  check: 'M20 6L9 17l-5-5',
  copy: 'M20 9h-9a2 2 0 0 0-2 2v9a2 2 0 0 0 2 2h9a2 2 0 0 0 2-2v-9a2 2 0 0 0-2-2zM5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1',
  plus: 'M12 5v14M5 12h14',
  logout: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9',
  clock: 'M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20zM12 6v6l4 2',
  back: 'M19 12H5M12 19l-7-7 7-7',
  bell: 'M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9M13.73 21a2 2 0 0 1-3.46 0',
  link: 'M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71',
  map: 'M1 6v16l7-4 8 4 7-4V2l-7 4-8-4-7 4zM8 2v16M16 6v16',
  chat: 'M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z',
  ban: 'M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20zM4.93 4.93l14.14 14.14',
  camera: 'M23 19a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h4l2-3h6l2 3h4a2 2 0 0 1 2 2zM12 17a4 4 0 1 0 0-8 4 4 0 0 0 0 8z',
  pin: 'M21 10c0 7-9 13-9 13s-9-6-9-13a9 9 0 0 1 18 0zM12 13a3 3 0 1 0 0-6 3 3 0 0 0 0 6z',
  up: 'M18 15l-6-6-6 6',
  down: 'M6 9l6 6 6-6',
  x: 'M18 6L6 18M6 6l12 12',
};

const NS = 'http://www.w3.org/2000/svg';
export function icon(name) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  const p = document.createElementNS(NS, 'path');
  p.setAttribute('d', PATHS[name] || PATHS.list);
  svg.append(p);
  return svg;
}

/** The Herold mark: a speech bubble with a bell-ish dot, in the accent colour. */
export function logo() {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'logo');
  const bg = document.createElementNS(NS, 'rect');
  for (const [k, v] of Object.entries({ x: 0, y: 0, width: 32, height: 32, rx: 8, class: 'logo-bg' })) bg.setAttribute(k, v);
  const p = document.createElementNS(NS, 'path');
  p.setAttribute('d', 'M9 8h14a3 3 0 0 1 3 3v8a3 3 0 0 1-3 3h-7l-5 4v-4H9a3 3 0 0 1-3-3v-8a3 3 0 0 1 3-3z');
  p.setAttribute('class', 'logo-fg');
  const d = document.createElementNS(NS, 'path');
  d.setAttribute('d', 'M11 13h10M11 17h6');
  d.setAttribute('class', 'logo-line');
  svg.append(bg, p, d);
  return svg;
}

/** Category / kind choices as the API names them. */
export const CATEGORIES = ['administration', 'church', 'club', 'business', 'school', 'culture', 'other'];
export function categoryOptions(withEmpty) {
  const list = CATEGORIES.map(c => ({ value: c, label: t('staff.category.' + c) }));
  return withEmpty ? [{ value: '', label: withEmpty }, ...list] : list;
}

/** `parent.append(...)` that skips null/false and flattens arrays (native append would print "null"). */
export function add(parent, ...kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    parent.append(k);
  }
  return parent;
}
