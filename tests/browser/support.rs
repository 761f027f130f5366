//! What the scenarios share: starting an installation and a browser, the
//! push stub, handing a push to the real service worker, staff log-in.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chrome::{Browser, Page, UI_TIMEOUT};
use crate::push_service::{Delivery, Subscription};
use crate::server::{Db, Herold, PASSWORD};

/// A phone (the resident app) and a desktop (organizations, the town hall).
pub const PHONE: (u32, u32) = (412, 900);
pub const DESKTOP: (u32, u32) = (1280, 900);

/// A fresh installation and browser for test `name`; `None` when the
/// backend or the browser is not available (each says so, loudly).
pub fn start(name: &str, db: Db) -> Option<(Herold, Browser)> {
    let browser = Browser::launch(&format!("{name}-{}", backend(db)))?;
    let herold = Herold::start(db)?;
    Some((herold, browser))
}

pub fn backend(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}

/// Screenshots are taken on SQLite only (the screens are the same on both).
pub fn shoot(page: &Page, db: Db, name: &str) {
    if db == Db::Sqlite {
        page.eval("window.scrollTo(0, 0)");
        page.screenshot(name);
    }
}

/// A resident's phone: notifications allowed for the server's origin, and
/// `PushManager` answering with `sub` (the browser vendor's push service is
/// the one thing replaced; see BROWSER-TESTS.md).
pub fn resident_page<'b>(browser: &'b Browser, herold: &Herold, sub: &Subscription, lang: &str) -> Page<'b> {
    browser.grant_notifications(&herold.origin());
    let page = browser.new_page(PHONE.0, PHONE.1, true);
    page.set_language(lang);
    page.add_init_script(&push_stub(sub));
    page
}

/// A staff member's desktop: a browser context of its own, since the
/// dashboard and the console share one session per profile.
pub fn staff_page<'b>(browser: &'b Browser, lang: &str) -> Page<'b> {
    let page = browser.new_isolated_page(DESKTOP.0, DESKTOP.1, false);
    page.set_language(lang);
    page
}

/// Replaces `PushManager.prototype.subscribe` / `getSubscription` /
/// `permissionState` in the page: `subscribe()` refuses without the
/// notification permission (as Chromium does), records the
/// `applicationServerKey` it was given (base64url) and answers a real
/// `PushSubscription`-shaped object with `sub`'s endpoint and keys. The
/// state lives in `localStorage` (`__herold_test_push`), so it survives
/// reloads like a real subscription — and "delete all my data" clears it.
pub fn push_stub(sub: &Subscription) -> String {
    let sub = json!({"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}});
    format!(
        r#"(() => {{
  if (typeof PushManager === 'undefined') return;
  const SUB = {sub};
  const KEY = '__herold_test_push';
  const read = () => {{ try {{ return JSON.parse(localStorage.getItem(KEY)) || {{subscribed: false, keys: []}}; }}
                       catch (e) {{ return {{subscribed: false, keys: []}}; }} }};
  const save = s => localStorage.setItem(KEY, JSON.stringify(s));
  const b64url = bytes => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const bytes = s => {{ s = s.replace(/-/g, '+').replace(/_/g, '/'); while (s.length % 4) s += '=';
                        return Uint8Array.from(atob(s), c => c.charCodeAt(0)); }};
  const keyText = k => k == null ? null : typeof k === 'string' ? k.replace(/=+$/, '')
      : b64url(ArrayBuffer.isView(k) ? new Uint8Array(k.buffer, k.byteOffset, k.byteLength) : new Uint8Array(k));
  const make = key => {{
    const s = Object.create(PushSubscription.prototype);
    Object.defineProperties(s, {{
      endpoint: {{value: SUB.endpoint}},
      expirationTime: {{value: null}},
      options: {{value: {{userVisibleOnly: true, applicationServerKey: key ? bytes(key).buffer : null}}}},
      getKey: {{value: name => SUB.keys[name] ? bytes(SUB.keys[name]).buffer : null}},
      toJSON: {{value: () => ({{endpoint: SUB.endpoint, expirationTime: null, keys: {{...SUB.keys}}}})}},
      unsubscribe: {{value: () => {{ const st = read(); st.subscribed = false; save(st); return Promise.resolve(true); }}}},
    }});
    return s;
  }};
  PushManager.prototype.subscribe = function (options) {{
    if (Notification.permission !== 'granted') {{
      return Promise.reject(new DOMException('Registration failed - permission denied', 'NotAllowedError'));
    }}
    const st = read();
    const key = keyText(options && options.applicationServerKey);
    st.subscribed = true; st.keys.push(key); st.userVisibleOnly = !!(options && options.userVisibleOnly);
    st.key = key;
    save(st);
    return Promise.resolve(make(key));
  }};
  PushManager.prototype.getSubscription = function () {{
    const st = read();
    return Promise.resolve(st.subscribed ? make(st.key) : null);
  }};
  PushManager.prototype.permissionState = function () {{
    return Promise.resolve(Notification.permission === 'granted' ? 'granted' : 'prompt');
  }};
}})();"#
    )
}

/// What the stub recorded: `{subscribed, keys: [applicationServerKey…], userVisibleOnly}`.
pub fn push_stub_state(page: &Page) -> Value {
    page.eval("JSON.parse(localStorage.getItem('__herold_test_push') || 'null')")
}

/// Waits until the test push service has received `n` deliveries for `sub`.
#[track_caller]
pub fn wait_deliveries(herold: &Herold, sub: &Subscription, n: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = herold.push.deliveries_for(&sub.id);
        if got.len() >= n {
            herold.push.assert_no_violations();
            return got;
        }
        if Instant::now() > deadline {
            panic!(
                "the test push service got {} of {n} pushes for the resident's subscription in 20 s \
                 (violations: {:?}); herold log:\n{}",
                got.len(),
                herold.push.violations(),
                herold.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hands a decrypted push payload to the page's real service worker (as the
/// browser does when its push service delivers) and returns the
/// notification it shows with that `tag`: `{title, body, tag, data, icon, badge}`.
#[track_caller]
pub fn deliver_to_worker(page: &Page, origin: &str, payload: &Value) -> Value {
    let registration = page.browser.wait_worker_activated(&format!("{origin}/"));
    page.call(
        "ServiceWorker.deliverPushMessage",
        json!({"origin": origin, "registrationId": registration, "data": payload.to_string()}),
    );
    let tag = payload["notification"]["tag"].as_str().unwrap_or_default().to_owned();
    let expr = format!(
        "navigator.serviceWorker.ready.then(r => r.getNotifications({{tag: {t}}})).then(ns => ns.filter(n => n.tag === {t})
           .map(n => ({{title: n.title, body: n.body, tag: n.tag, data: n.data, icon: n.icon, badge: n.badge, lang: n.lang}})))",
        t = json!(tag)
    );
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        let shown = page.eval(&expr);
        if let Some(n) = shown.as_array().and_then(|a| a.first()) {
            return n.clone();
        }
        if Instant::now() > deadline {
            page.fail(&format!("the service worker showed no notification with tag {tag:?} for push {payload}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs in at `/org` or `/admin` through the form; waits for `screen`.
#[track_caller]
pub fn staff_login(page: &Page, origin: &str, app: &str, email: &str, screen: &str) {
    page.goto(&format!("{origin}/{app}"), "login");
    page.fill("#login-email", email);
    page.fill("#login-password", PASSWORD);
    page.click("#login-submit");
    page.wait_screen(screen);
}
