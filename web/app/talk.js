// Shared by the screens where residents talk back (reports, question hours).
import { h } from '../common/dom.js';
import { t, lang } from '../common/i18n.js';
import { ApiError } from '../common/api.js';
import * as store from './store.js';
import * as device from './device.js';

export const enc = encodeURIComponent;

/**
 * Calls `call(token)` as this device. Replies arrive by push, so a browser
 * without a device asks for the notification permission first: call this
 * straight from the tap.
 */
export async function asDevice(call) {
  if (!store.token()) {
    if (!device.pushSupported()) throw new ApiError(0, device.needsHomeScreen() ? 'ios' : 'unsupported');
    const perm = await device.askPermission();
    if (perm !== 'granted') throw new ApiError(0, perm === 'denied' ? 'denied' : 'permission');
  }
  return device.withDevice(call);
}

export const deviceNote = (id) => (store.token() ? null : h('p', { id, class: 'hint' }, t('resident.talk.deviceNote')));

const OTHER = { ios: 'hint.ios', unsupported: 'problem.unsupported', denied: 'problem.denied', not_found: 'error.notFound',
  session_cancelled: 'session.note.cancelled', sw_unavailable: 'error.failed' };
const BY_STATUS = { 0: 'error.offline', 404: 'error.notFound', 413: 'talk.error.payload_too_large', 429: 'talk.error.rate_limited' };

/** A sentence for an API error, by its code. */
export function errorText(e) {
  const c = e && e.code;
  const own = 'resident.talk.error.' + c;
  const key = OTHER[c] ? 'resident.' + OTHER[c] : t(own) !== own ? own : e && BY_STATUS[e.status] && 'resident.' + BY_STATUS[e.status];
  return key ? t(key) : t('resident.error.failed') + (c ? ' ' + t('resident.problem.code', { code: c }) : '');
}

export function statusBadge(status) {
  const tone = { in_progress: ' badge-official', done: ' badge-ok', rejected: ' badge-danger' }[status] || '';
  return h('span', { class: 'badge status' + tone, dataset: { status } }, t('resident.issueStatus.' + status));
}

/** "27.11.2026, 18:00–19:00 Uhr" */
export const fmtRange = (from, to) => new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'short' }).formatRange(new Date(from), new Date(to));

/** Latitude or longitude to about a metre. */
export const fmtCoord = (x) => new Intl.NumberFormat(lang(), { maximumFractionDigits: 5 }).format(x);

/** "123 / 1000" under a text field, named in its aria-describedby. */
export function counter(field, max) {
  const el = h('span', { id: field.id + '-count', class: 'counter hint' });
  const paint = () => {
    el.textContent = t('resident.talk.count', { count: field.value.length, max });
    el.classList.toggle('near', field.value.length > max * 0.9);
  };
  field.addEventListener('input', paint);
  paint();
  field.setAttribute('aria-describedby', ((field.getAttribute('aria-describedby') || '') + ' ' + el.id).trim());
  return el;
}

const photoPath = (issueId) => '/api/v1/devices/me/issues/' + enc(issueId) + '/photos';
const auth = () => ({ Authorization: 'Bearer ' + store.token() });

/** A report's photo: its URL needs the device token, so it is fetched and shown from a blob. */
export function privatePhoto(issueId, photo, n) {
  const img = h('img', { alt: t('resident.talk.photoAlt', { n }), width: photo.width, height: photo.height, class: 'photo' });
  fetch(photoPath(issueId) + '/' + enc(photo.id), { headers: auth() })
    .then((res) => (res.ok ? res.blob() : null))
    .then((blob) => {
      if (!blob) return;
      img.src = URL.createObjectURL(blob);
      img.onload = () => URL.revokeObjectURL(img.src);
    })
    .catch(() => {});
  return h('li', { dataset: { photo: photo.id } }, img);
}

/** Sends one photo as raw bytes; the server detects the format and re-encodes it. */
export async function uploadPhoto(issueId, blob) {
  let res;
  try {
    res = await fetch(photoPath(issueId), { method: 'POST', body: blob, headers: { ...auth(), 'Content-Type': blob.type || 'application/octet-stream' } });
  } catch {
    throw new ApiError(0, 'network');
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, data.code, data.message);
  return data;
}

/**
 * Scales a large photo down on the phone (at most 2048 px, as the server
 * keeps it): a fraction of the upload on a slow connection, and the camera's
 * GPS tags never leave the device. On any failure the original is sent.
 */
export async function shrink(file) {
  if (file.size < 1.5e6 || !window.createImageBitmap) return file;
  try {
    const bmp = await createImageBitmap(file);
    const k = Math.min(1, 2048 / Math.max(bmp.width, bmp.height));
    const c = h('canvas', { width: Math.round(bmp.width * k), height: Math.round(bmp.height * k) });
    c.getContext('2d').drawImage(bmp, 0, 0, c.width, c.height);
    const blob = await new Promise((resolve) => c.toBlob(resolve, 'image/jpeg', 0.85));
    return blob && blob.size < file.size ? blob : file;
  } catch {
    return file;
  }
}

// A note for the next screen ("sent", "deleted").
let flash = null;
export function setFlash(kind, lines) { flash = { kind, lines }; }
export function takeFlash(id) {
  const f = flash;
  flash = null;
  return f && h('div', { id, class: 'notice notice-' + f.kind, role: 'status' }, f.lines.map((l) => h('p', null, l)));
}
