// A small line chart of a group's subscribers per day, as inline SVG built
// through the DOM (no library, no innerHTML), with a table for screen readers.
import { h } from '../common/dom.js';
import { t, fmtNumber, fmtDate } from '../common/i18n.js';

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

function niceMax(v) {
  if (v <= 4) return 4;
  const pow = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= v) return m * pow;
  return 10 * pow;
}

function dayDate(day) {
  // "2026-11-20" is a calendar day: show it as such, whatever the time zone.
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d, 12);
}

function shortDay(day, lang) {
  return new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'short' }).format(dayDate(day));
}

/** `items`: [{day: "YYYY-MM-DD", subscribers}], oldest first. */
export function subscriberChart(items, { lang }) {
  const W = 360, H = 180, L = 34, R = 10, T = 10, B = 24;
  const n = items.length;
  const values = items.map(i => Number(i.subscribers) || 0);
  const max = niceMax(Math.max(...values, 1));
  const x = (i) => L + (n < 2 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const first = values[0];
  const last = values[n - 1];
  const summary = t('org.chart.summary', {
    days: n, from: fmtNumber(first), to: fmtNumber(last),
    start: fmtDate(dayDate(items[0].day)), end: fmtDate(dayDate(items[n - 1].day)),
  });
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': summary });
  const grid = s('g', { class: 'chart-grid' });
  for (let k = 0; k <= 4; k += 1) {
    const v = (max * k) / 4;
    const yy = y(v);
    grid.append(s('line', { x1: L, x2: W - R, y1: yy, y2: yy }));
    grid.append(s('text', { x: L - 8, y: yy + 4, 'text-anchor': 'end', class: 'chart-label' }, fmtNumber(Math.round(v))));
  }
  svg.append(grid);
  if (n) {
    const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const area = `M${x(0).toFixed(1)},${y(0).toFixed(1)} L${pts.join(' L')} L${x(n - 1).toFixed(1)},${y(0).toFixed(1)} Z`;
    svg.append(s('path', { d: area, class: 'chart-area' }));
    svg.append(s('polyline', { points: pts.join(' '), class: 'chart-line' }));
    svg.append(s('circle', { cx: x(n - 1), cy: y(last), r: 4, class: 'chart-dot' }));
    const labels = s('g', { class: 'chart-x' });
    const marks = n > 1 ? [0, Math.floor((n - 1) / 2), n - 1] : [0];
    for (const i of marks) {
      const anchor = i === 0 && n > 1 ? 'start' : i === n - 1 && n > 1 ? 'end' : 'middle';
      labels.append(s('text', { x: x(i), y: H - 6, 'text-anchor': anchor, class: 'chart-label' }, shortDay(items[i].day, lang)));
    }
    svg.append(labels);
  }
  const delta = last - first;
  const deltaText = delta === 0 ? t('org.chart.flat')
    : t(delta > 0 ? 'org.chart.up' : 'org.chart.down', { count: Math.abs(delta) });
  const table = h('table', { class: 'chart-table' },
    h('caption', { class: 'visually-hidden' }, t('org.chart.title')),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('org.chart.day')), h('th', { scope: 'col' }, t('org.chart.subscribers')))),
    h('tbody', {}, items.slice().reverse().map(i =>
      h('tr', {}, h('td', {}, fmtDate(dayDate(i.day))), h('td', { class: 'num' }, fmtNumber(i.subscribers))))));
  return h('figure', { class: 'chart-figure' },
    h('div', { class: 'chart-now' },
      h('span', { class: 'chart-big' }, fmtNumber(last)),
      h('span', { class: 'chart-delta' + (delta > 0 ? ' up' : delta < 0 ? ' down' : '') }, deltaText)),
    svg,
    h('details', { class: 'chart-details' }, h('summary', {}, t('org.chart.as_table')), table),
    h('figcaption', { class: 'visually-hidden' }, summary));
}
