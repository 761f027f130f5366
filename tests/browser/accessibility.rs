//! Scenario 4: every main screen of the three apps has no axe-core
//! violation of WCAG 2.0/2.1 A and AA, in German and in English (chosen by
//! the browser's language), and no colour-contrast violation in dark mode.
//!
//! axe-core is the npm package pinned in `tests/browser/package-lock.json`;
//! when `tests/browser/node_modules` is missing the test runs
//! `npm ci --prefix tests/browser` itself. The script is injected with
//! `Runtime.evaluate` (DevTools evaluation is not subject to the page's CSP).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;

use crate::chrome::{Page, UI_TIMEOUT};
use crate::server::{Db, Herold, ADMIN};
use crate::support;

const OWNER: &str = "buero@st-nikolai.de";

/// axe-core's source, installed with `npm ci` if needed (once per run).
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let script = dir.join("node_modules/axe-core/axe.min.js");
        if !script.exists() {
            crate::say_once("npm", "axe-core missing: running npm ci --prefix tests/browser");
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .status()
                .unwrap_or_else(|e| panic!("cannot run npm (needed for axe-core): {e}"));
            assert!(status.success(), "npm ci --prefix tests/browser failed: {status}");
        }
        std::fs::read_to_string(&script).unwrap_or_else(|e| panic!("read {}: {e}", script.display()))
    })
}

/// Runs axe on the current document; returns one line per violation.
pub(crate) fn axe(page: &Page, what: &str, rules: Option<&[&str]>) -> Vec<String> {
    if page.eval("typeof window.axe") != json!("object") {
        page.eval(axe_source());
    }
    let options = match rules {
        Some(rules) => json!({"runOnly": {"type": "rule", "values": rules}}),
        None => json!({"runOnly": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"], "resultTypes": ["violations"]}),
    };
    let result = page.eval(&format!(
        "axe.run(document, {options}).then(r => r.violations.map(v => ({{id: v.id, impact: v.impact, help: v.help,
           nodes: v.nodes.slice(0, 5).map(n => ({{target: n.target.join(' '), summary: n.failureSummary}}))}})))"
    ));
    let mut out = Vec::new();
    for v in result.as_array().into_iter().flatten() {
        let nodes: Vec<String> = v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                format!(
                    "      {}: {}",
                    n["target"].as_str().unwrap_or(""),
                    n["summary"].as_str().unwrap_or("").replace('\n', " / ")
                )
            })
            .collect();
        out.push(format!(
            "{what}: [{}] {} ({})\n{}",
            v["id"].as_str().unwrap_or(""),
            v["help"].as_str().unwrap_or(""),
            v["impact"].as_str().unwrap_or(""),
            nodes.join("\n")
        ));
    }
    out
}

/// Proves axe is loaded and finds what it should: an image without `alt`.
fn axe_self_test(page: &Page) {
    page.eval("(() => { const img = document.createElement('img'); img.id = 'axe-self-test'; img.src = 'data:,'; document.body.append(img); })()");
    let found = axe(page, "self-test", Some(&["image-alt"]));
    page.eval("document.getElementById('axe-self-test').remove()");
    assert!(
        found.len() == 1 && found[0].contains("#axe-self-test"),
        "axe-core did not report an image without alt text: {found:?}"
    );
}

/// Audits the screen the page shows: the WCAG rules in the light scheme,
/// and (when `dark`) colour contrast in the dark scheme too.
fn audit(page: &Page, lang: &str, what: &str, dark: bool, found: &mut Vec<String>) {
    let html_lang = page.eval("document.documentElement.lang");
    if html_lang != json!(lang) {
        found.push(format!("{what} ({lang}): <html lang> is {html_lang}, expected {lang:?}"));
    }
    settle(page);
    found.extend(axe(page, &format!("{what} ({lang})"), None));
    if dark {
        page.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        );
        settle(page);
        found.extend(axe(page, &format!("{what} ({lang}, dark)"), Some(&["color-contrast"])));
        page.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "light"}]}),
        );
        settle(page);
    }
}

/// Waits until no CSS transition or animation runs: colours measured in the
/// middle of a switch to the dark scheme would be neither scheme's.
fn settle(page: &Page) {
    page.wait_until(
        "document.getAnimations().every(a => a.playState !== 'running')",
        "CSS transitions and animations finished",
        UI_TIMEOUT,
    );
}

/// The town's content every screen needs to show something.
struct Content {
    group: String,
    message: String,
    hidden: String,
}

fn content(herold: &Herold) -> Content {
    let (org, owner) = herold.approved_org(OWNER, "Kirchengemeinde St. Nikolai");
    let group = herold.create_group(&org, &owner, "Gemeindebrief", "Termine und Neuigkeiten der Gemeinde.", "church");
    herold.verify_group(&group);
    herold.create_group(&org, &owner, "Chor", "Proben und Auftritte.", "culture");
    herold.register_org("info@tsv-wismar.de", "TSV Wismar"); // waits in the approval queue
    let message = herold.post(&group, &owner, "Adventskonzert", "Sonntag 17 Uhr in St. Nikolai.");
    let hidden = herold.post(&group, &owner, "Versehentlich", "Diese Nachricht war ein Fehler.");
    let reported = herold.post(&group, &owner, "Flohmarkt", "Samstag auf dem Marktplatz.");
    let (_, device) = herold.device(&[&group]);
    herold.api("POST", &format!("/messages/{reported}/reports"), Some(&device), Some(json!({"reason": "spam"})), 201);
    let admin = herold.login(ADMIN);
    herold.api("POST", &format!("/admin/messages/{hidden}/hide"), Some(&admin), Some(json!({"reason": "Fehler"})), 200);
    Content { group, message, hidden }
}

fn accessibility(db: Db) {
    let Some((herold, browser)) = support::start("accessibility", db) else { return };
    let origin = herold.origin();
    let c = content(&herold);
    let mut found = Vec::new();

    let sub = herold.push.new_subscription();
    let resident = support::resident_page(&browser, &herold, &sub, "de");
    let org = support::staff_page(&browser, "de");
    let admin = support::staff_page(&browser, "de");

    for lang in ["de", "en"] {
        let dark = lang == "de";
        for page in [&resident, &org, &admin] {
            page.set_language(lang);
        }

        // The resident app (the first pass also follows the group).
        resident.goto(&format!("{origin}/towns"), "towns");
        if lang == "de" {
            axe_self_test(&resident);
        }
        audit(&resident, lang, "resident towns", dark, &mut found);
        resident.click("a[data-tenant]");
        resident.wait_screen("directory");
        audit(&resident, lang, "resident directory", dark, &mut found);
        resident.goto(&format!("{origin}/g/{}", c.group), "group");
        if resident.attr("#subscribe", "aria-pressed").as_deref() == Some("false") {
            resident.click("#subscribe");
            resident.wait_until(
                "document.querySelector('#subscribe').getAttribute('aria-pressed') === 'true'",
                "subscribed",
                UI_TIMEOUT,
            );
        }
        audit(&resident, lang, "resident group", dark, &mut found);
        resident.goto(&format!("{origin}/inbox"), "inbox");
        resident.wait_for("#inbox > li[data-message]");
        audit(&resident, lang, "resident inbox", dark, &mut found);
        resident.goto(&format!("{origin}/m/{}", c.message), "message");
        audit(&resident, lang, "resident message", dark, &mut found);
        resident.click("#report-open");
        resident.wait_visible("dialog#report-dialog[open]");
        audit(&resident, lang, "resident report dialog", false, &mut found);
        resident.press("Escape");
        resident.goto(&format!("{origin}/m/{}", c.hidden), "message");
        resident.wait_visible("#message-removed");
        audit(&resident, lang, "resident removed message", false, &mut found);
        resident.goto(&format!("{origin}/settings"), "settings");
        audit(&resident, lang, "resident settings", dark, &mut found);

        // The organization dashboard (logged out, the German pass only: see the end).
        if lang == "de" {
            org.goto(&format!("{origin}/org/register"), "register");
            audit(&org, lang, "org register", dark, &mut found);
            support::staff_login(&org, &origin, "org", OWNER, "groups");
        } else {
            org.goto(&format!("{origin}/org"), "groups");
        }
        audit(&org, lang, "org groups", dark, &mut found);
        org.goto(&format!("{origin}/org/groups/{}", c.group), "compose");
        audit(&org, lang, "org compose", dark, &mut found);
        org.goto(&format!("{origin}/org/groups/{}/history", c.group), "history");
        audit(&org, lang, "org history", dark, &mut found);
        org.goto(&format!("{origin}/org/new"), "new-org");
        audit(&org, lang, "org new organization", dark, &mut found);

        // The city-admin console.
        if lang == "de" {
            admin.goto(&format!("{origin}/admin"), "login");
            audit(&admin, lang, "admin login", dark, &mut found);
            support::staff_login(&admin, &origin, "admin", ADMIN, "queue");
        } else {
            admin.goto(&format!("{origin}/admin"), "queue");
        }
        admin.wait_for("[data-organization]");
        audit(&admin, lang, "admin queue", dark, &mut found);
        for (path, screen) in
            [("groups", "groups"), ("reports", "reports"), ("hidden", "hidden"), ("alert", "alert"), ("audit", "audit")]
        {
            admin.goto(&format!("{origin}/admin/{path}"), screen);
            audit(&admin, lang, &format!("admin {screen}"), dark, &mut found);
        }
    }
    // Logged out, in English: the dashboard's log-in and registration.
    org.click("#logout");
    org.wait_screen("login");
    audit(&org, "en", "org login", false, &mut found);
    org.goto(&format!("{origin}/org/register"), "register");
    audit(&org, "en", "org register", false, &mut found);

    assert!(found.is_empty(), "{} accessibility problem(s):\n{}", found.len(), found.join("\n"));
    browser.assert_only_origin(&origin);
}

crate::both_backends!(accessibility);
