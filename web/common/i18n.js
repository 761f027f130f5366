// Strings from locales/<lang>.json, Intl formatting. German first.
let strings = {};
let current = 'de';
let names = {};

function available() {
  const m = document.querySelector('meta[name="herold-locales"]');
  const list = (m && m.content && !m.content.includes('{{') ? m.content : 'de,en').split(',').map(s => s.trim()).filter(Boolean);
  return list.length ? list : ['de'];
}

function pick() {
  const avail = available();
  let stored = null;
  try { stored = localStorage.getItem('herold.lang'); } catch { /* private mode */ }
  if (stored && avail.includes(stored)) return stored;
  for (const l of navigator.languages || [navigator.language || '']) {
    const base = String(l).toLowerCase().split('-')[0];
    if (avail.includes(base)) return base;
  }
  return avail.includes('de') ? 'de' : avail[0];
}

// Translators keep one file per language, locales/<lang>.json, with a
// namespace per app (common, resident, org, admin, staff). The server splits
// it into locales/<lang>/<namespace>.json, so a resident's phone loads only
// the strings of the resident app; a namespace missing in a language falls
// back to German.
let wanted = ['common'];
const fetched = new Set();

function partURL(code, ns) {
  return new URL('../locales/' + code + '/' + ns + '.json', import.meta.url).href;
}

async function part(code, ns) {
  for (const c of code === 'de' ? ['de'] : [code, 'de']) {
    const url = partURL(c, ns);
    const res = await fetch(url).catch(() => null);
    if (res && res.ok) { fetched.add(url); return res.json(); }
  }
  throw new Error('locale ' + code + '/' + ns + ' unavailable');
}

async function load(code) {
  const parts = await Promise.all(wanted.map((ns) => part(code, ns)));
  return Object.assign({}, ...parts);
}

/** The string files in use (the service worker keeps them for offline starts). */
export function localeURLs() { return [...fetched]; }

export async function initI18n(namespaces) {
  wanted = ['common', ...(Array.isArray(namespaces) ? namespaces : []).filter((ns) => ns !== 'common')];
  current = pick();
  try { strings = await load(current); } catch (e) {
    if (current !== 'de') { current = 'de'; strings = await load('de'); } else throw e;
  }
  if (strings.meta && strings.meta.name) names[current] = strings.meta.name;
  document.documentElement.lang = current;
  return current;
}

export function lang() { return current; }

const KNOWN = { de: 'Deutsch', en: 'English', fr: 'Français', pl: 'Polski', tr: 'Türkçe', uk: 'Українська', ar: 'العربية', ru: 'Русский' };
export function languages() {
  return available().map(code => ({ code, name: names[code] || KNOWN[code] || code }));
}

export async function setLang(code) {
  const next = await load(code);
  strings = next;
  current = code;
  if (next.meta && next.meta.name) names[code] = next.meta.name;
  try { localStorage.setItem('herold.lang', code); } catch { /* ignore */ }
  document.documentElement.lang = code;
}

function lookup(key) {
  let v = strings;
  for (const part of key.split('.')) {
    if (v == null || typeof v !== 'object') return undefined;
    v = v[part];
  }
  return v;
}

export function t(key, params) {
  let v = lookup(key);
  if (v === undefined) return key;
  if (v && typeof v === 'object') {
    const n = params && typeof params.count === 'number' ? params.count : 0;
    let cat = 'other';
    try { cat = new Intl.PluralRules(current).select(n); } catch { /* ignore */ }
    v = v[n === 0 && 'zero' in v ? 'zero' : cat] ?? v.other ?? key;
  }
  if (typeof v !== 'string') return key;
  if (!params) return v;
  return v.replace(/\{(\w+)\}/g, (m, name) => {
    if (!(name in params)) return m;
    const p = params[name];
    return typeof p === 'number' ? fmtNumber(p) : String(p);
  });
}

function toDate(x) { return x instanceof Date ? x : new Date(typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : x); }

export function fmtDate(x) {
  return new Intl.DateTimeFormat(current, { dateStyle: 'medium' }).format(toDate(x));
}
export function fmtDateTime(x) {
  return new Intl.DateTimeFormat(current, { dateStyle: 'medium', timeStyle: 'short' }).format(toDate(x));
}
export function fmtNumber(n) {
  return new Intl.NumberFormat(current).format(n);
}
export function fmtRelative(x) {
  const ms = toDate(x).getTime();
  const diff = (ms - Date.now()) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(current, { numeric: 'auto' });
  if (abs < 60) return rtf.format(Math.round(diff), 'second');
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour');
  if (abs < 86400 * 7) return rtf.format(Math.round(diff / 86400), 'day');
  return fmtDate(ms);
}

export function translate(root) {
  const r = root || document;
  for (const el of r.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of r.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const i = pair.indexOf(':');
      if (i > 0) el.setAttribute(pair.slice(0, i).trim(), t(pair.slice(i + 1).trim()));
    }
  }
}
