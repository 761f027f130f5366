//! Scenario 6: the resident app is installable (`Page.getInstallabilityErrors`
//! is empty), and after a first visit it starts without any network — the
//! service worker serves the shell and the last inbox. And the first load's
//! weight: at most 60 KB compressed for everything the page and the service
//! worker fetch.

use serde_json::json;

use crate::chrome::UI_TIMEOUT;
use crate::server::{Db, TOWN};
use crate::support;

/// The budget of issue 5: the resident app's first load, compressed.
const FIRST_LOAD_BUDGET: f64 = 60.0 * 1024.0;

fn installable_and_offline(db: Db) {
    let Some((mut herold, browser)) = support::start("offline", db) else { return };
    let origin = herold.origin();
    let (org, owner) = herold.approved_org("buero@st-nikolai.de", "Kirchengemeinde St. Nikolai");
    let group = herold.create_group(&org, &owner, "Gemeindebrief", "Termine und Neuigkeiten.", "church");

    let sub = herold.push.new_subscription();
    let page = support::resident_page(&browser, &herold, &sub, "de");
    page.goto(&format!("{origin}/"), "towns");
    page.click(&format!("a[data-tenant=\"{TOWN}\"]"));
    page.wait_screen("directory");

    // Installable: manifest, icons, service worker with a fetch handler.
    let errors = page.call("Page.getInstallabilityErrors", json!({}));
    assert_eq!(errors["installabilityErrors"], json!([]), "the PWA is not installable: {errors}");
    let manifest = page.call("Page.getAppManifest", json!({}));
    assert_eq!(manifest["errors"], json!([]), "manifest errors: {manifest}");

    // Follow the group; a message arrives in the inbox.
    page.goto(&format!("{origin}/g/{group}"), "group");
    page.click("#subscribe");
    page.wait_until(
        "document.querySelector('#subscribe').getAttribute('aria-pressed') === 'true'",
        "the subscribe toggle is on",
        UI_TIMEOUT,
    );
    let message = herold.post(&group, &owner, "Adventskonzert", "Sonntag 17 Uhr in St. Nikolai.");
    page.goto(&format!("{origin}/inbox"), "inbox");
    page.wait_for(&format!("#inbox > li[data-message=\"{message}\"]"));

    // The shell is cached once the worker is activated.
    browser.wait_worker_activated(&format!("{origin}/"));
    page.wait_until(
        "caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys()))))
           .then(all => all.flat().map(r => new URL(r.url).pathname)).then(ps => ps.includes('/') && ps.some(p => p.endsWith('/app/main.js')))",
        "the service worker cached the app shell",
        UI_TIMEOUT,
    );
    let requests_online = browser.requests().len();

    // Offline: the network is gone for the page and the worker, and the server is down too.
    browser.set_offline(true, &[&page]);
    herold.stop();
    page.reload();
    page.wait_screen("inbox");
    page.wait_for(&format!("#inbox > li[data-message=\"{message}\"]"));
    assert!(page.text(&format!("#inbox > li[data-message=\"{message}\"]")).contains("Adventskonzert"));
    assert_eq!(page.eval("navigator.onLine"), json!(false));
    let reached: Vec<String> = browser.requests()[requests_online..]
        .iter()
        .filter(|r| !r.served_locally && r.failed.is_none() && r.encoded_length.is_some_and(|n| n > 0.0))
        .map(|r| r.url.clone())
        .collect();
    assert!(reached.is_empty(), "requests answered by the network while offline: {reached:?}");
    support::shoot(&page, db, "resident-offline");

    // A fresh start at the app's root: the app starts (the directory itself
    // is only cached once seen while the worker was in control).
    page.navigate(&format!("{origin}/"));
    page.wait_until(
        "document.body.dataset.ready === 'true' && ['directory', 'error'].includes(document.body.dataset.screen)
           && !!document.querySelector('#main-nav')",
        "the app starts offline at /",
        UI_TIMEOUT,
    );
    browser.assert_only_origin(&origin);
}

/// What a first visit to `/` transfers: the page's requests and the service
/// worker's precache, counted from the browser's own network log on both
/// targets (the worker is auto-attached before it runs). Counted per request
/// is the response body as transferred (`loadingFinished.encodedDataLength`
/// minus the header bytes `responseReceived` reported): headers depend on the
/// protocol (HTTP/2 compresses them to almost nothing), bodies do not. A
/// request answered from a cache or by the worker costs nothing; the worker's
/// revalidation of a file the page had just fetched is a bodiless 304.
/// Chromium asks for `br` here as over HTTPS, so this is what a phone would
/// transfer from a real installation.
fn first_load_budget(db: Db) {
    let Some((herold, browser)) = support::start("budget", db) else { return };
    let origin = herold.origin();
    let sub = herold.push.new_subscription();
    let page = support::resident_page(&browser, &herold, &sub, "de");
    page.goto(&format!("{origin}/"), "towns");
    browser.wait_worker_activated(&format!("{origin}/"));
    // The precache is complete when the worker is activated (install waits for it).
    let requests = browser.requests();
    let mut total = 0.0;
    let mut lines = Vec::new();
    let mut assets = std::collections::BTreeSet::new();
    for r in &requests {
        if r.url.contains("/api/") || r.served_locally {
            continue;
        }
        let body = r.body_length.unwrap_or(0.0);
        total += body;
        assets.insert(r.url.trim_start_matches(&origin).to_owned());
        lines.push(format!(
            "  {:>7.0} B  {}{}",
            body,
            r.url.trim_start_matches(&origin),
            if r.from_worker_target { "  (service worker)" } else { "" }
        ));
    }
    // The worker's own script is fetched by the browser before the worker
    // exists (so before it can be attached): fetched here as Chromium does.
    let sw =
        crate::http::request(herold.port, "GET", "/sw.js", &[("Accept-Encoding", "gzip, deflate, br, zstd")], None)
            .expect("GET /sw.js");
    assert_eq!(sw.status, 200, "/sw.js");
    total += sw.body.len() as f64;
    assets.insert("/sw.js".to_owned());
    lines.push(format!("  {:>7} B  /sw.js  ({})", sw.body.len(), sw.header("content-encoding").unwrap_or("identity")));
    let report =
        format!("first load of / : {:.1} KB in {} requests\n{}", total / 1024.0, lines.len(), lines.join("\n"));
    eprintln!("{report}");
    for must in ["/", "/sw.js", "/manifest.webmanifest"] {
        assert!(assets.contains(must), "{must} not among the first load's requests:\n{report}");
    }
    assert!(total <= FIRST_LOAD_BUDGET, "the resident app's first load exceeds 60 KB:\n{report}");
    browser.assert_only_origin(&origin);
}

crate::both_backends!(installable_and_offline, first_load_budget);
