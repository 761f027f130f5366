// (session) /q/<id>: a question hour. Questions by votes; asking and voting
// as this device; questions, votes and answers arriving live (server-sent
// events, merged by question id); after the end, a readable record.
import { h, clear, announce } from '../common/dom.js';
import { t, lang } from '../common/i18n.js';
import { api } from '../common/api.js';
import * as store from './store.js';
import { heading, setTitle, backLink, icon, excerpt } from './ui.js';
import { enc, asDevice, deviceNote, errorText, counter, fmtRange } from './talk.js';

const tr = (k, p) => t('resident.session.' + k, p);

/** With this device's token when there is one: that adds `mine` and `voted`. */
async function load(id) {
  const path = '/sessions/' + enc(id);
  const tok = store.token();
  try { return await api(path, tok ? { token: tok } : {}); } catch (e) {
    if (e.status !== 401) throw e;
    await store.forgetDevice();
    return api(path);
  }
}

const byVotes = (a, b) => b.votes - a.votes || Date.parse(a.created_at) - Date.parse(b.created_at);

let current = null; // the session on screen: {id, refresh(), close()}

export async function render(ctx) {
  const id = ctx.param;
  let session = await load(id);
  setTitle(session.title);
  const questions = new Map(); // id → question
  const views = new Map(); // id → its list entry's parts
  let live = false; // answers that arrive after the first paint are announced
  let source = null;
  let timer = null;
  let refetch = null;

  const state = h('span', { id: 'session-state', class: 'badge' });
  const note = h('p', { id: 'session-note', class: 'notice' });
  const liveStatus = h('span', { id: 'session-live', class: 'hint live-status' });
  const fieldset = h('fieldset', { id: 'question-fieldset' });
  const form = h('form', { id: 'question-form', class: 'card', novalidate: true }, fieldset);
  const list = h('ol', { id: 'questions', class: 'list questions', 'aria-labelledby': 'questions-title' });
  const none = h('p', { id: 'questions-empty', class: 'muted' }, tr('noQuestions'));

  function paintState() {
    const s = session.state;
    state.textContent = tr('state.' + s);
    state.dataset.state = s;
    state.className = 'badge' + (s === 'open' ? ' badge-live' : s === 'cancelled' ? ' badge-danger' : '');
    note.textContent = tr('note.' + s, { time: fmtRange(session.starts_at, session.ends_at) });
    note.className = 'notice' + (s === 'open' ? ' notice-ok' : s === 'cancelled' ? ' notice-warn' : '');
    fieldset.disabled = s !== 'open';
    form.hidden = s === 'ended' || s === 'cancelled';
    for (const v of views.values()) v.vote.disabled = s !== 'open';
  }

  function entry(q) {
    const v = {
      meta: h('p'), body: h('p', { class: 'message-body' }), answer: h('div'), count: h('span', { class: 'count' }),
      vote: h('button', { type: 'button', class: 'btn vote', onclick: () => vote(q.id, v.vote) }),
    };
    v.vote.append(icon('up'), v.count);
    v.li = h('li', { class: 'item question', dataset: { question: q.id } }, h('div', { class: 'grow' }, v.meta, v.body, v.answer), v.vote);
    return v;
  }

  function answerView(a) {
    if (!a) return '';
    if (a.body == null) return h('p', { class: 'muted' }, tr('answeredPrivately'));
    return h('div', { class: 'answer' + (a.public ? '' : ' private') },
      h('p', { class: 'answer-by' }, a.public ? tr('answerBy', { organization: session.organization.name }) : tr('privateAnswer')),
      h('p', { class: 'message-body' }, a.body));
  }

  function paint() {
    const focused = document.activeElement;
    [...questions.values()].sort(byVotes).forEach((q, i) => {
      let v = views.get(q.id);
      if (!v) views.set(q.id, (v = entry(q)));
      v.li.classList.toggle('mine', !!q.mine);
      clear(v.meta).append(q.mine ? h('span', { class: 'badge badge-official' }, tr('mine')) : '');
      v.meta.hidden = !q.mine;
      v.body.textContent = q.body;
      v.count.textContent = String(q.votes);
      v.vote.setAttribute('aria-pressed', String(!!q.voted));
      v.vote.setAttribute('aria-label', tr('vote', { count: q.votes }));
      v.vote.disabled = session.state !== 'open';
      clear(v.answer).append(answerView(q.answer));
      if (list.children[i] !== v.li) list.insertBefore(v.li, list.children[i] || null);
    });
    for (const [qid, v] of views) if (!questions.has(qid)) { v.li.remove(); views.delete(qid); }
    // Re-sorting moves elements: the button just pressed keeps the focus.
    if (focused && focused.isConnected && focused !== document.activeElement) focused.focus({ preventScroll: true });
    none.hidden = questions.size > 0;
  }

  /**
   * Takes a question in. `own`: from a request with this device's token, so
   * its `mine` and `voted` are ours; the live stream is anonymous, so those
   * (and the text of a private answer to us) are kept from before.
   */
  function merge(q, own) {
    const old = questions.get(q.id);
    if (q.status === 'dismissed') { questions.delete(q.id); return; }
    if (!own) {
      q = { ...q, mine: !!(old && old.mine), voted: !!(old && old.voted) };
      if (old && old.answer && old.answer.body != null && q.answer && q.answer.body == null) q.answer = old.answer;
    }
    questions.set(q.id, q);
    const a = q.answer;
    if (live && a && a.body != null && !(old && old.answer && old.answer.body === a.body)) {
      announce(t('resident.talk.arrived', { title: excerpt(q.body, 80) }));
    }
    // A private answer to our question: only a request with our token shows its text.
    if (q.mine && a && a.body == null && !refetch) refetch = setTimeout(refresh, 300);
  }

  function setSession(s) {
    const was = session.state;
    session = { ...session, ...s };
    paintState();
    if (live && was !== session.state) announce(note.textContent);
    if (session.state === 'cancelled' && source) { source.close(); liveStatus.hidden = true; }
    // The server announces an end or a cancellation; the opening (and the end
    // when the stream was away) the page finds out itself.
    clearTimeout(timer);
    const at = Date.parse(session.state === 'scheduled' ? session.starts_at : session.ends_at);
    if (session.state !== 'ended' && session.state !== 'cancelled' && at - Date.now() < 2 ** 31) {
      timer = setTimeout(refresh, Math.max(0, at - Date.now()) + 1000);
    }
  }

  // Stream events heard so far: a fetch answered after one of them may
  // describe an older state than the page already shows (an answer fetched
  // just before the session was ended), so it is not applied but repeated.
  let heard = 0;
  async function refresh() {
    refetch = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = heard;
      let s;
      try { s = await load(id); } catch { return; /* offline: the stream catches up */ }
      if (!current || current.id !== id) return;
      if (heard !== before) continue;
      setSession(s);
      const ids = new Set(s.questions.map((q) => q.id));
      for (const qid of questions.keys()) if (!ids.has(qid)) questions.delete(qid);
      for (const q of s.questions) merge(q, true);
      paint();
      return;
    }
  }

  // --- asking and voting
  const ask = h('textarea', { id: 'question-body', name: 'body', rows: '3', maxlength: '500', required: true, 'aria-describedby': 'question-hint' });
  const askError = h('p', { id: 'question-error', class: 'error-text', role: 'alert', hidden: true });
  const askStatus = h('p', { id: 'question-status', class: 'hint', role: 'status' });
  const askButton = h('button', { type: 'submit', id: 'question-submit', class: 'btn btn-primary' }, tr('ask'));
  const fail = (text) => { askError.textContent = text; askError.hidden = false; };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    askError.hidden = true;
    askStatus.textContent = '';
    const body = ask.value.trim();
    if (!body) { fail(t('resident.talk.empty')); ask.focus(); return; }
    askButton.disabled = true;
    try {
      const q = await asDevice((tok) => api('/sessions/' + enc(id) + '/questions', { method: 'POST', body: { body, lang: lang() }, token: tok }));
      merge({ ...q, mine: true }, true);
      paint();
      ask.value = '';
      ask.dispatchEvent(new Event('input'));
      askStatus.textContent = tr('asked');
      fieldset.querySelector('#question-device-note')?.remove(); // a device now
    } catch (err) {
      fail(errorText(err));
    } finally { askButton.disabled = false; }
  });
  fieldset.append(
    h('label', { for: 'question-body' }, tr('mine')), ask,
    h('p', { class: 'row between' }, h('span', { id: 'question-hint', class: 'hint' }, tr('askHint')), counter(ask, 500)),
    deviceNote('question-device-note'), askError,
    h('div', { class: 'actions' }, askButton), askStatus);

  async function vote(qid, button) {
    const q = questions.get(qid);
    if (!q || button.getAttribute('aria-busy')) return;
    button.setAttribute('aria-busy', 'true');
    try {
      merge(await asDevice((tok) => api('/sessions/' + enc(id) + '/questions/' + enc(qid) + '/vote', { method: q.voted ? 'DELETE' : 'PUT', token: tok })), true);
      paint();
    } catch (err) {
      fail(errorText(err));
      announce(askError.textContent);
    } finally { button.removeAttribute('aria-busy'); }
  }

  for (const q of session.questions) merge(q, true);
  setSession(session);
  paint();
  // The browser retries a dropped stream itself, but gives up on a refusal
  // (a full server: 429/503); then we try again a little later.
  let retry = 0;
  const connect = () => {
    source = new EventSource('/api/v1/sessions/' + enc(id) + '/events');
    source.onopen = () => { liveStatus.textContent = tr('live'); liveStatus.classList.add('on'); };
    source.onerror = () => {
      liveStatus.textContent = tr('reconnecting');
      liveStatus.classList.remove('on');
      if (source.readyState === EventSource.CLOSED) retry = setTimeout(connect, 5000 + Math.random() * 5000);
    };
    source.addEventListener('question', (e) => { heard++; merge(JSON.parse(e.data)); paint(); });
    source.addEventListener('session', (e) => { heard++; setSession(JSON.parse(e.data)); });
  };
  if (window.EventSource && session.state !== 'cancelled') connect();
  live = true;
  if (current) current.close();
  current = {
    id, refresh,
    close() { clearTimeout(timer); clearTimeout(refetch); clearTimeout(retry); if (source) source.close(); },
  };

  return h('section', null,
    backLink('/g/' + enc(session.group.id), t('resident.talk.back', { name: session.group.name })),
    h('div', { class: 'card' },
      h('p', { class: 'message-meta' }, session.organization.name, ' · ', session.group.name),
      heading(session.title, { id: 'session-title' }),
      h('p', null, state, ' ', h('span', { id: 'session-time' }, fmtRange(session.starts_at, session.ends_at))),
      session.description ? h('p', { id: 'session-description', class: 'message-body' }, session.description) : null),
    note, form,
    h('div', { class: 'row' }, h('h2', { id: 'questions-title', class: 'grow' }, tr('questions')), liveStatus),
    none, list);
}

/** A push about the session on screen (an answer to our question): show it. */
export function onPush(d) {
  if (!current || !d || d.url !== '/q/' + current.id) return false;
  current.refresh();
  return true;
}

export function leave() {
  if (current) current.close();
  current = null;
}
