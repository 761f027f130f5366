// A group's "Reports from residents" settings (intake): open or closed,
// the categories residents choose from (an ordered list the staff edit),
// and whether reports may be shown on the group's public board.
// Shown on the group's settings tab to owners and editors alike (the API lets both).
import { h, clear, announce } from '../common/dom.js';
import { t } from '../common/i18n.js';
import * as session from './session.js';
import { add, formError, reportError, busy, icon, chars, showFieldError, clearFieldError, uid } from './ui.js';

/** The server's limits (contract of issue 7). */
export const CATEGORIES_MAX = 12;
export const CATEGORY_MAX = 40;

export function loadIntake(groupId, signal) {
  return session.call('/groups/' + encodeURIComponent(groupId) + '/intake', { signal });
}

/** The suggested categories of the UI language ("A; B; C"). */
function suggestion() {
  return t('org.intake.suggested').split(';').map(s => s.trim()).filter(Boolean);
}

/** The intake card; `intake` is what the server answered (or the "never configured" default). */
export function intakeCard(ctx, group, intake) {
  let categories = [...(intake.categories || [])];
  const err = formError();
  const ok = h('p', { class: 'notice notice-ok', role: 'status', id: 'intake-saved', hidden: true });

  const openBox = h('input', { type: 'checkbox', id: 'intake-open', checked: intake.open, 'aria-describedby': 'intake-open-hint' });
  const boardBox = h('input', { type: 'checkbox', id: 'intake-board', checked: intake.board, 'aria-describedby': 'intake-board-hint' });

  const list = h('ol', { class: 'category-list', id: 'intake-categories' });
  const listErr = h('p', { id: 'intake-categories-error', class: 'error-text', hidden: true });
  const countText = h('p', { class: 'muted small', id: 'intake-categories-count' });
  const newInput = h('input', { type: 'text', id: 'intake-new-category', maxlength: CATEGORY_MAX * 2,
    'aria-describedby': 'intake-new-category-hint intake-new-category-error' });
  const newErr = h('p', { id: 'intake-new-category-error', class: 'error-text', hidden: true });
  const addBtn = h('button', { type: 'button', id: 'intake-add-category' }, icon('plus'), t('org.intake.add'));
  const suggestBtn = h('button', { type: 'button', id: 'intake-suggest', class: 'btn-quiet' },
    t('org.intake.use_suggestion', { list: suggestion().join(', ') }));

  function draw(focusIndex, focusWhat) {
    clear(list);
    categories.forEach((name, i) => list.append(row(name, i)));
    countText.textContent = t('org.intake.count', { count: categories.length, max: CATEGORIES_MAX });
    addBtn.disabled = categories.length >= CATEGORIES_MAX;
    newInput.disabled = categories.length >= CATEGORIES_MAX;
    suggestBtn.hidden = categories.length > 0;
    if (focusIndex !== undefined) {
      const li = list.children[Math.min(focusIndex, list.children.length - 1)];
      const target = li && (li.querySelector('[data-action="' + focusWhat + '"]:not(:disabled)') || li.querySelector('input'));
      (target || newInput).focus();
    }
  }

  function row(name, i) {
    const id = uid('intake-cat');
    const input = h('input', { type: 'text', id, value: name, class: 'category-input', dataset: { index: String(i) },
      'aria-describedby': id + '-error' });
    input.addEventListener('input', () => {
      categories[i] = input.value;
      clearFieldError(input);
    });
    const label = h('label', { for: id, class: 'visually-hidden' }, t('org.intake.category_n', { n: i + 1, count: categories.length }));
    const up = h('button', { type: 'button', class: 'btn-quiet btn-icon', dataset: { action: 'up' }, disabled: i === 0,
      'aria-label': t('org.intake.move_up', { name }) }, icon('up'));
    const down = h('button', { type: 'button', class: 'btn-quiet btn-icon', dataset: { action: 'down' }, disabled: i === categories.length - 1,
      'aria-label': t('org.intake.move_down', { name }) }, icon('down'));
    const remove = h('button', { type: 'button', class: 'btn-quiet btn-icon', dataset: { action: 'remove' },
      'aria-label': t('org.intake.remove', { name }) }, icon('x'));
    const move = (to, what) => {
      const [x] = categories.splice(i, 1);
      categories.splice(to, 0, x);
      draw(to, what);
      announce(t('org.intake.moved', { name: x, n: to + 1, count: categories.length }));
    };
    up.addEventListener('click', () => move(i - 1, 'up'));
    down.addEventListener('click', () => move(i + 1, 'down'));
    remove.addEventListener('click', () => {
      const [x] = categories.splice(i, 1);
      draw(i, 'remove');
      if (!categories.length) newInput.focus();
      announce(t('org.intake.removed', { name: x }));
    });
    return h('li', { class: 'category-row', dataset: { category: name } },
      h('span', { class: 'category-pos', 'aria-hidden': 'true' }, String(i + 1)),
      label, h('div', { class: 'category-field' }, input, h('p', { id: id + '-error', class: 'error-text', hidden: true })),
      h('span', { class: 'category-tools' }, up, down, remove));
  }

  function addCategory() {
    clearFieldError(newInput);
    const name = newInput.value.trim();
    if (!name) { showFieldError(newInput, t('org.intake.name_missing')); newInput.focus(); return; }
    if (chars(name) > CATEGORY_MAX) { showFieldError(newInput, t('org.intake.name_long', { max: CATEGORY_MAX })); newInput.focus(); return; }
    if (categories.some(c => c.trim() === name)) { showFieldError(newInput, t('org.intake.name_twice', { name })); newInput.focus(); return; }
    if (categories.length >= CATEGORIES_MAX) return;
    categories.push(name);
    newInput.value = '';
    draw();
    newInput.focus();
    announce(t('org.intake.added', { name, count: categories.length }));
  }
  addBtn.addEventListener('click', addCategory);
  // Enter in the "new category" box adds it instead of saving the whole form.
  newInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); addCategory(); }
  });
  suggestBtn.addEventListener('click', () => {
    categories = suggestion().slice(0, CATEGORIES_MAX);
    draw(0, 'input');
    announce(t('org.intake.suggestion_used', { count: categories.length }));
  });

  const save = h('button', { type: 'submit', id: 'intake-save', class: 'btn-primary' }, t('org.intake.save'));
  const form = h('form', { id: 'intake-form', novalidate: true },
    err, ok,
    h('label', { class: 'choice', for: 'intake-open' }, openBox, t('org.intake.open')),
    h('p', { class: 'hint', id: 'intake-open-hint' }, t('org.intake.open_hint')),
    h('fieldset', { class: 'category-editor', 'aria-describedby': 'intake-categories-hint intake-categories-count intake-categories-error' },
      h('legend', {}, t('org.intake.categories')),
      h('p', { class: 'hint', id: 'intake-categories-hint' }, t('org.intake.categories_hint', { max: CATEGORIES_MAX, chars: CATEGORY_MAX })),
      list, countText, listErr, suggestBtn,
      h('div', { class: 'field category-new' },
        h('label', { for: 'intake-new-category' }, t('org.intake.new_category')),
        h('div', { class: 'inline-add' }, newInput, addBtn),
        h('p', { class: 'hint', id: 'intake-new-category-hint' }, t('org.intake.new_category_hint', { max: CATEGORY_MAX })),
        newErr)),
    h('label', { class: 'choice', for: 'intake-board' }, boardBox, t('org.intake.board')),
    h('p', { class: 'hint', id: 'intake-board-hint' }, t('org.intake.board_hint')),
    h('div', { class: 'actions' }, save));

  function showListError(text) {
    listErr.textContent = text || '';
    listErr.hidden = !text;
    if (text) announce(text);
  }

  /** Checks as the server will; returns the first control to fix, or null. */
  function check() {
    showListError(null);
    for (const input of list.querySelectorAll('input')) clearFieldError(input);
    const inputs = [...list.querySelectorAll('input')];
    const seen = new Set();
    for (const [i, c] of categories.entries()) {
      const n = chars(c);
      if (n === 0) { showFieldError(inputs[i], t('org.intake.name_missing')); return inputs[i]; }
      if (n > CATEGORY_MAX) { showFieldError(inputs[i], t('org.intake.name_long', { max: CATEGORY_MAX })); return inputs[i]; }
      if (seen.has(c.trim())) { showFieldError(inputs[i], t('org.intake.name_twice', { name: c.trim() })); return inputs[i]; }
      seen.add(c.trim());
    }
    if (openBox.checked && categories.length === 0) {
      showListError(t('org.intake.needs_category'));
      return newInput;
    }
    return null;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.show(null);
    ok.hidden = true;
    const bad = check();
    if (bad) { bad.focus(); return; }
    try {
      const saved = await busy(save, () => session.call('/groups/' + encodeURIComponent(group.id) + '/intake', {
        method: 'PUT',
        body: { open: openBox.checked, categories: categories.map(c => c.trim()), board: boardBox.checked },
      }));
      categories = [...saved.categories];
      openBox.checked = saved.open;
      boardBox.checked = saved.board;
      draw();
      ok.textContent = t(saved.open ? 'org.intake.saved_open' : 'org.intake.saved_closed');
      ok.hidden = false;
      announce(ok.textContent);
    } catch (e) {
      if (e.field === 'categories') {
        showListError(t('org.intake.invalid_categories', { max: CATEGORIES_MAX, chars: CATEGORY_MAX }));
        (list.querySelector('input') || newInput).focus();
        return;
      }
      reportError(e, err, { open: openBox, board: boardBox });
    }
  });

  draw();
  const link = location.origin + '/g/' + encodeURIComponent(group.id) + '/report';
  return h('section', { class: 'card intake-card', id: 'intake', 'aria-labelledby': 'intake-h2' },
    h('h2', { id: 'intake-h2' }, icon('inbox'), t('org.intake.title')),
    h('p', {}, t('org.intake.lead')),
    intake.open ? h('p', { class: 'muted small' }, t('org.intake.link'), ' ', h('a', { href: link }, link)) : null,
    form);
}

/** The intake card for a settings screen: loads, then renders (or a small failure note). */
export async function intakeSection(ctx, group) {
  try {
    const intake = await loadIntake(group.id, ctx.signal);
    return intakeCard(ctx, group, intake);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    return add(h('section', { class: 'card intake-card', id: 'intake', 'aria-labelledby': 'intake-h2' },
      h('h2', { id: 'intake-h2' }, t('org.intake.title'))),
    h('p', { class: 'notice notice-danger' }, t('staff.load_failed')));
  }
}
