// The frame both staff apps share: header (brand, context switcher, language,
// user, logout), side navigation, History-API router with focus management,
// and the login screen.
import { h, clear, announce, screenBusy, screenReady } from '../common/dom.js';
import { t, initI18n, languages, lang, setLang } from '../common/i18n.js';
import * as session from './session.js';
import { add, field, formError, reportError, busy, logo, icon, failure } from './ui.js';

/**
 * Starts an app. `area`: 'org' | 'admin'. `routes`: [{pattern: RegExp,
 * screen(ctx), auth (default true), chrome: 'full' | 'bare' | 'print'}].
 * `context()` loads what every screen needs after login (may throw);
 * `nav(ctx)` → [{href, label, icon, current(path)}]; `switcher(ctx)` → node for the header.
 */
export async function startApp(app) {
  await initI18n(['staff', app.area, ...(app.namespaces || [])]);
  const state = { app, ctrl: null, first: true, data: null };
  const root = document.getElementById('app');
  const skip = h('a', { class: 'skip-link', href: '#main' }, t('staff.skip'));
  const headerSlot = h('div', { class: 'header-slot' });
  const userBox = h('div', { class: 'header-user' });
  const langSel = h('select', { id: 'staff-lang', class: 'lang-select' },
    languages().map(l => h('option', { value: l.code, selected: l.code === lang() }, l.name)));
  const langLabel = h('label', { for: 'staff-lang', class: 'visually-hidden' }, t('staff.language'));
  const brand = h('a', { class: 'brand', href: '/' + app.area }, logo(),
    h('span', { class: 'brand-text' }, h('span', { class: 'brand-name' }, 'Herold'),
      h('span', { class: 'brand-area' }, t(app.area + '.area'))));
  const header = h('header', { class: 'staff-header' },
    h('div', { class: 'inner' }, brand, headerSlot, h('div', { class: 'header-tools' }, langLabel, langSel, userBox)));
  const nav = h('nav', { id: 'staff-nav', class: 'staff-nav', 'aria-label': t('staff.nav_label') });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const frame = h('div', { class: 'staff-frame' }, nav, main);
  clear(root);
  root.append(skip, header, frame);

  langSel.addEventListener('change', async () => {
    await setLang(langSel.value);
    skip.textContent = t('staff.skip');
    langLabel.textContent = t('staff.language');
    brand.querySelector('.brand-area').textContent = t(app.area + '.area');
    nav.setAttribute('aria-label', t('staff.nav_label'));
    await render({ keepFocus: true });
    langSel.focus();
  });

  const go = (path, { replace = false } = {}) => {
    if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
    render();
  };
  state.go = go;

  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.pathname !== '/' + app.area && !url.pathname.startsWith('/' + app.area + '/')) return;
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    ev.preventDefault();
    go(url.pathname + url.search + url.hash);
  });
  window.addEventListener('popstate', () => render());
  session.onExpired(() => {
    state.data = null;
    announce(t('staff.session_ended'));
    render();
  });

  function setChrome(kind, loggedIn) {
    document.body.dataset.chrome = kind;
    nav.hidden = kind !== 'full' || !loggedIn;
    header.hidden = kind === 'print';
    skip.hidden = kind === 'print';
  }

  function renderUser(me) {
    clear(userBox);
    if (!me) return;
    const out = h('button', { type: 'button', id: 'logout', class: 'btn-quiet' }, icon('logout'),
      h('span', { class: 'logout-label' }, t('staff.logout')));
    out.addEventListener('click', async () => {
      await busy(out, () => session.logout());
      state.data = null;
      announce(t('staff.logged_out'));
      go('/' + app.area, { replace: true });
    });
    userBox.append(h('span', { class: 'header-email', title: me.email }, me.email), out);
  }

  function renderNav(ctx, path) {
    clear(nav);
    const items = app.nav(ctx) || [];
    const ul = h('ul', {});
    for (const it of items) {
      if (it.heading) {
        ul.append(h('li', { class: 'nav-heading', 'aria-hidden': 'true' }, it.heading));
        continue;
      }
      const current = it.current ? it.current(path) : path === it.href;
      ul.append(h('li', {}, h('a', { href: it.href, 'aria-current': current ? 'page' : null },
        icon(it.icon), h('span', {}, it.label), it.count ? h('span', { class: 'staff-count' }, h('span', { class: 'visually-hidden' }, ' ('), String(it.count),
          h('span', { class: 'visually-hidden' }, ' ' + t('staff.open_items') + ')')) : null)));
    }
    nav.append(ul);
    // In the narrow layout the navigation scrolls sideways: keep the current entry in view.
    const cur = ul.querySelector('[aria-current="page"]');
    if (cur && ul.scrollWidth > ul.clientWidth) ul.scrollLeft = Math.max(0, cur.offsetLeft - 16);
  }

  async function render({ keepFocus = false } = {}) {
    if (state.ctrl) state.ctrl.abort();
    const ctrl = new AbortController();
    state.ctrl = ctrl;
    screenBusy();
    const path = location.pathname.replace(/\/+$/, '') || '/';
    let route = null;
    let params = [];
    for (const r of app.routes) {
      const m = path.match(r.pattern);
      if (m) { route = r; params = m.slice(1).map(decodeURIComponent); break; }
    }
    if (!route) route = app.notFound;
    const ctx = {
      main, params, path, signal: ctrl.signal, go, state, app,
      query: new URLSearchParams(location.search),
      refreshNav: () => renderNav(ctx, path),
      rerender: () => render({ keepFocus: true }),
      ready: (name, title) => {
        if (ctrl.signal.aborted) return;
        document.title = (title ? title + ' · ' : '') + t(app.area + '.title');
        if (!state.first && !keepFocus) {
          const h1 = main.querySelector('h1');
          (h1 || main).focus();
        }
        state.first = false;
        screenReady(name);
      },
    };
    const needsAuth = route.auth !== false;
    let loggedIn = false;
    try {
      loggedIn = await session.resume();
    } catch (e) {
      setChrome('bare', false);
      clear(main).append(failure(e, () => render()));
      ctx.ready('error');
      return;
    }
    if (ctrl.signal.aborted) return;
    if (loggedIn && !state.data) {
      try {
        state.data = await app.context(ctx);
      } catch (e) {
        if (ctrl.signal.aborted) return;
        if (!session.isLoggedIn()) return render();
        setChrome('bare', true);
        clear(main).append(failure(e, () => render()));
        ctx.ready('error');
        return;
      }
      if (ctrl.signal.aborted) return;
    }
    ctx.data = state.data;
    if (needsAuth && !loggedIn) {
      setChrome('bare', false);
      renderUser(null);
      clear(headerSlot);
      clear(main);
      loginScreen(ctx);
      return;
    }
    setChrome(route.chrome || 'full', loggedIn);
    renderUser(loggedIn && state.data ? state.data.me : null);
    clear(headerSlot);
    if (loggedIn && app.switcher) {
      const sw = app.switcher(ctx);
      if (sw) headerSlot.append(sw);
    }
    if (loggedIn) renderNav(ctx, path); else clear(nav);
    clear(main);
    try {
      await route.screen(ctx);
    } catch (e) {
      if (ctrl.signal.aborted || (e && e.name === 'AbortError')) return;
      if (!session.isLoggedIn() && needsAuth) return render();
      clear(main).append(failure(e, () => render()));
      ctx.ready('error');
    }
  }

  /** Reload what `context()` loaded (after joining/creating an org, …). */
  state.reload = async () => {
    state.data = null;
    await render({ keepFocus: true });
  };

  function loginScreen(ctx) {
    const email = field({ id: 'login-email', label: t('staff.email'), type: 'email', required: true, autocomplete: 'username' });
    const pw = field({ id: 'login-password', label: t('staff.password'), type: 'password', required: true, autocomplete: 'current-password' });
    const err = formError();
    const submit = h('button', { type: 'submit', id: 'login-submit', class: 'btn-primary btn-block' }, t('staff.login'));
    const form = h('form', { class: 'auth-form', novalidate: true }, err, email.wrap, pw.wrap, submit);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      if (!email.control.value.trim() || !pw.control.value) {
        err.show(t('staff.login_missing'));
        (email.control.value.trim() ? pw.control : email.control).focus();
        return;
      }
      try {
        await busy(submit, () => session.login(email.control.value.trim(), pw.control.value));
      } catch (e) {
        reportError(e, err);
        pw.control.value = '';
        pw.control.focus();
        return;
      }
      state.data = null;
      announce(t('staff.logged_in'));
      render();
    });
    const extra = app.loginExtra ? app.loginExtra(ctx) : null;
    add(ctx.main, h('div', { class: 'auth-wrap' },
      h('section', { class: 'card auth-card', 'aria-labelledby': 'login-h1' },
        h('h1', { id: 'login-h1', tabindex: '-1' }, t(app.area + '.login_title')),
        h('p', { class: 'lead' }, t(app.area + '.login_lead')),
        form),
      extra));
    ctx.ready('login', t('staff.login'));
  }

  await render();
}

/** Fetches one namespace of a language (the bilingual poster needs both). */
export async function loadLocale(code, namespace = 'org') {
  const res = await fetch(new URL('../locales/' + code + '/' + namespace + '.json', import.meta.url));
  if (!res.ok) throw new Error('locale ' + code);
  return res.json();
}
