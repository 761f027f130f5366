// Safe DOM helpers: untrusted text only ever becomes text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let value;
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class' || k === 'className') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'value') value = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value; // after children, so a <select> finds its option
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function $(sel, root) { return (root || document).querySelector(sel); }
export function $$(sel, root) { return Array.from((root || document).querySelectorAll(sel)); }

export function clear(el) {
  while (el && el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let live;
export function announce(text) {
  if (!live) {
    live = document.getElementById('live') || document.body.appendChild(
      h('div', { id: 'live', class: 'visually-hidden', 'aria-live': 'polite', role: 'status' }));
  }
  live.textContent = '';
  // a tick later so screen readers notice a repeated message
  setTimeout(() => { live.textContent = text; }, 50);
}

export function screenBusy() {
  document.body.dataset.ready = 'false';
}

export function screenReady(name) {
  document.body.dataset.screen = name;
  document.body.dataset.ready = 'true';
}
