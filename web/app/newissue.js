// (new-issue) /g/<id>/report: a report to the group's organization — category,
// text, up to three photos, and if the resident wants, their position
// (numbers, no map) or a typed address.
import { h, clear, announce } from '../common/dom.js';
import { t, lang, fmtNumber } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import { heading, setTitle, backLink, icon } from './ui.js';
import { enc, asDevice, deviceNote, errorText, counter, uploadPhoto, shrink, setFlash, fmtCoord } from './talk.js';
import { navigate } from './main.js';

const MAX_PHOTOS = 3;
const TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const tr = (k, p) => t('resident.newIssue.' + k, p);

export async function render(ctx) {
  const [g, intake] = await Promise.all([api('/groups/' + enc(ctx.param)), api('/groups/' + enc(ctx.param) + '/intake')]);
  if (!store.tenant()) store.setTenant(g.tenant);
  setTitle(tr('title'));
  const top = [backLink('/g/' + enc(g.id), t('resident.talk.back', { name: g.name })), heading(tr('title'))];
  if (!intake.open) return h('section', null, top, h('p', { id: 'issue-closed', class: 'notice notice-warn' }, t('resident.talk.error.intake_closed')));

  // --- fields; a field's error shows under it until it is changed
  const errors = {};
  const field = (name, el) => {
    errors[name] = h('p', { id: el.id + '-error', class: 'error-text', hidden: true });
    el.setAttribute('aria-describedby', ((el.getAttribute('aria-describedby') || '') + ' ' + el.id + '-error').trim());
    el.addEventListener(el.tagName === 'SELECT' ? 'change' : 'input', () => { el.removeAttribute('aria-invalid'); errors[name].hidden = true; });
    return el;
  };
  const category = field('category', h('select', { id: 'issue-category', name: 'category', required: true },
    h('option', { value: '' }, tr('choose')), intake.categories.map((c) => h('option', { value: c }, c))));
  if (intake.categories.length === 1) category.value = intake.categories[0];
  const text = field('body', h('textarea', { id: 'issue-body', name: 'body', rows: '6', maxlength: '1000', required: true, 'aria-describedby': 'issue-body-hint' }));
  const address = field('address', h('input', { id: 'issue-address', name: 'address', maxlength: '200', autocomplete: 'off', 'aria-describedby': 'issue-address-hint' }));
  const fields = { category, body: text, address };

  // --- photos: collected here; the input is emptied after each choice, so it can add more
  const photos = [];
  const input = field('photos', h('input', { type: 'file', id: 'issue-photos', class: 'file-input', accept: TYPES.join(','),
    capture: 'environment', multiple: true, 'aria-describedby': 'issue-photos-hint' }));
  const previews = h('ul', { id: 'issue-photo-list', class: 'photo-grid' });
  function paintPhotos() {
    clear(previews).append(...photos.map((p, i) => h('li', null,
      h('img', { src: p.url, alt: t('resident.talk.photoAlt', { n: i + 1 }), class: 'photo' }),
      h('button', { type: 'button', class: 'btn btn-quiet remove-photo', onclick: () => {
        URL.revokeObjectURL(p.url);
        photos.splice(i, 1);
        paintPhotos();
        input.focus();
      } }, icon('x'), tr('removePhoto', { n: i + 1 })))));
    input.disabled = photos.length >= MAX_PHOTOS;
  }
  input.addEventListener('change', () => {
    const problems = [];
    for (const file of input.files) {
      // An empty type (some cameras) is left to the server, which reads the bytes.
      if (file.type && !TYPES.includes(file.type)) problems.push(tr('photoType', { name: file.name }));
      else if (file.size > 10 * 1024 * 1024) problems.push(tr('photoSize', { name: file.name }));
      else if (photos.length >= MAX_PHOTOS) problems.push(t('resident.talk.error.too_many_photos'));
      else photos.push({ file, url: URL.createObjectURL(file) });
    }
    input.value = '';
    errors.photos.textContent = problems.join(' ');
    errors.photos.hidden = !problems.length;
    paintPhotos();
    announce([tr('photoCount', { count: photos.length, max: MAX_PHOTOS }), ...problems].join(' '));
  });

  // --- position: only when the resident asks for it
  let position = null;
  const posStatus = h('p', { id: 'issue-position', role: 'status' });
  const posClear = h('button', { type: 'button', id: 'issue-position-clear', class: 'btn btn-quiet', hidden: true, onclick: () => setPosition(null) },
    icon('x'), tr('positionClear'));
  const locate = h('button', { type: 'button', id: 'issue-locate', class: 'btn', onclick: () => {
    if (!navigator.geolocation) { posStatus.textContent = tr('positionFailed'); return; }
    posStatus.textContent = tr('locating');
    navigator.geolocation.getCurrentPosition(
      (p) => setPosition({ lat: Math.round(p.coords.latitude * 1e5) / 1e5, lon: Math.round(p.coords.longitude * 1e5) / 1e5, accuracy: p.coords.accuracy }),
      () => { posStatus.textContent = tr('positionFailed'); },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 });
  } }, icon('pin'), tr('locate'));
  function setPosition(p) {
    position = p;
    posStatus.textContent = p ? tr('position', { lat: fmtCoord(p.lat), lon: fmtCoord(p.lon), accuracy: fmtNumber(Math.round(p.accuracy || 0)) }) : '';
    posClear.hidden = !p;
    if (!p) locate.focus();
  }

  // --- sending
  const error = h('div', { id: 'issue-error', class: 'notice notice-danger', role: 'alert', hidden: true });
  const progress = h('p', { id: 'issue-progress', class: 'hint', role: 'status' });
  const submit = h('button', { type: 'submit', id: 'issue-submit', class: 'btn btn-primary' }, tr('submit'));
  function invalid(name, message) {
    fields[name].setAttribute('aria-invalid', 'true');
    errors[name].textContent = message;
    errors[name].hidden = false;
    fields[name].focus();
  }

  async function send(e) {
    e.preventDefault();
    if (submit.disabled) return;
    error.hidden = true;
    if (!category.value) return invalid('category', tr('categoryMissing'));
    if (!text.value.trim()) return invalid('body', t('resident.talk.empty'));
    submit.disabled = true;
    progress.textContent = tr('sending');
    const body = { category: category.value, body: text.value.trim(), lang: lang() };
    if (position) Object.assign(body, { lat: position.lat, lon: position.lon });
    if (address.value.trim()) body.address = address.value.trim();
    let issue;
    try {
      issue = await asDevice((tok) => api('/groups/' + enc(g.id) + '/issues', { method: 'POST', body, token: tok }));
    } catch (err) {
      submit.disabled = false;
      progress.textContent = '';
      error.textContent = errorText(err);
      error.hidden = false;
      if (fields[err.field]) invalid(err.field, errorText(err));
      return;
    }
    store.setHasIssues(true);
    // The report exists now: a photo that fails is named on the next screen.
    const failed = [];
    for (const [i, p] of photos.entries()) {
      progress.textContent = tr('uploading', { n: i + 1, count: photos.length });
      try { await uploadPhoto(issue.id, await shrink(p.file)); } catch (err) {
        failed.push(tr('photoFailed', { n: i + 1, reason: errorText(err) }));
      }
      URL.revokeObjectURL(p.url);
    }
    setFlash(failed.length ? 'warn' : 'ok', [tr('sent', { name: issue.organization.name }), ...failed]);
    navigate('/r/' + enc(issue.id), { replace: true });
  }

  const hint = (id, text) => h('p', { id, class: 'hint' }, text);
  return h('section', null, top,
    h('p', null, tr('intro', { organization: g.organization.name })),
    h('form', { id: 'issue-form', novalidate: true, onsubmit: send },
      h('div', { class: 'field' }, h('label', { for: 'issue-category' }, tr('category')), category, errors.category),
      h('div', { class: 'field' }, h('label', { for: 'issue-body' }, tr('body')), text,
        h('p', { class: 'row between' }, h('span', { id: 'issue-body-hint', class: 'hint' }, tr('bodyHint')), counter(text, 1000)),
        errors.body),
      h('div', { class: 'field', role: 'group', 'aria-labelledby': 'issue-photos-title' },
        h('span', { class: 'label', id: 'issue-photos-title' }, tr('photos')),
        hint('issue-photos-hint', tr('photosHint', { max: MAX_PHOTOS })),
        previews,
        h('span', { class: 'file-pick' }, input, h('label', { for: 'issue-photos', class: 'btn' }, icon('camera'), tr('addPhotos'))),
        errors.photos),
      h('fieldset', { class: 'field' },
        h('legend', null, tr('where')),
        h('p', { class: 'hint' }, tr('whereHint')),
        h('div', { class: 'row' }, locate, posClear),
        posStatus,
        h('label', { for: 'issue-address' }, tr('address')), address,
        hint('issue-address-hint', tr('addressHint')), errors.address),
      deviceNote('issue-device-note'),
      error,
      h('div', { class: 'actions' }, submit),
      progress));
}
