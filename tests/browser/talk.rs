//! Scenario 7: residents talk back (issue 7).
//!
//! - `issue_report_flow`: a town hall opens its group for reports; a resident
//!   sends one from the PWA with a photo (a real file through the file input)
//!   and their device is registered on the way; the town hall replies through
//!   the API with a status change; the push reaches the test push service and
//!   the real service worker, "My reports" marks the report unread, the
//!   thread shows the reply; the resident answers and finally deletes it.
//! - `question_hour_live`: a session open now; two residents (two browser
//!   browsers) on its page; one asks in the UI, the other sees the question,
//!   a vote and then the town hall's public answer arrive live, without a
//!   reload; the asker gets the answer as a notification; after the end the
//!   page stays readable.
//!
//! Both audit the new screens with axe-core (WCAG 2.0/2.1 A and AA).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::chrome::{Browser, Page, UI_TIMEOUT};
use crate::server::{Db, Herold};
use crate::support::{self, shoot};

#[path = "../api/photos_fixtures.rs"]
mod photos_fixtures;

const TOWN_HALL: &str = "buergerbuero@wismar.de";

/// The town hall with an "ideas and defects" group open for reports:
/// (organization, owner's token, group).
fn town_hall(herold: &Herold) -> (String, String, String) {
    let (org, owner) = herold.approved_org(TOWN_HALL, "Hansestadt Wismar – Bürgerbüro");
    let group = herold.create_group(
        &org,
        &owner,
        "Mängelmelder",
        "Defekte Laternen, Schlaglöcher, wilder Müll: sagen Sie uns Bescheid.",
        "administration",
    );
    herold.verify_group(&group);
    (org, owner, group)
}

fn issue_report_flow(db: Db) {
    let Some((herold, browser)) = support::start("talk-report", db) else { return };
    let origin = herold.origin();
    let (org, owner, group) = town_hall(&herold);
    let intake = json!({"open": true, "categories": ["Straßenbeleuchtung", "Straßenschäden", "Müll"], "board": false});
    herold.api("PUT", &format!("/groups/{group}/intake"), Some(&owner), Some(intake), 200);

    // The resident has never subscribed to anything: no device yet.
    let sub = herold.push.new_subscription();
    let page = support::resident_page(&browser, &herold, &sub, "de");
    // The resident is at the broken light and lets the browser tell where.
    browser.call(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["notifications", "geolocation"]}),
        None,
    );
    page.call("Emulation.setGeolocationOverride", json!({"latitude": 53.89123, "longitude": 11.46512, "accuracy": 8}));
    page.goto(&format!("{origin}/g/{group}"), "group");
    page.wait_visible("#report-link");
    assert!(!page.exists("#group-board"), "no public board when the group does not publish reports");
    shoot(&page, db, "resident-group-report");
    page.click("#report-link");
    page.wait_screen("new-issue");
    assert_eq!(page.text("h1"), "Anliegen melden");
    assert_eq!(
        page.eval("[...document.querySelectorAll('#issue-category option')].map(o => o.value).filter(Boolean)"),
        json!(["Straßenbeleuchtung", "Straßenschäden", "Müll"]),
        "the categories are the group's"
    );
    assert!(page.is_visible("#issue-device-note"), "a resident without a device is told why notifications are needed");
    let mut found = axe(&page, "new report");

    // Sending without a category is refused on the phone, naming the field.
    page.fill("#issue-body", "Die Laterne vor der Lübschen Straße 12 ist seit Tagen dunkel.");
    page.click("#issue-submit");
    page.wait_visible("#issue-category-error");
    assert_eq!(page.attr("#issue-category", "aria-invalid").as_deref(), Some("true"));
    assert_eq!(page.eval("document.activeElement.id"), json!("issue-category"), "focus moves to the missing field");
    assert!(support::push_stub_state(&page).is_null(), "nothing was registered for a refused form");

    page.select("#issue-category", "Straßenbeleuchtung");
    page.click("#issue-locate");
    page.wait_visible("#issue-position-clear");
    assert_eq!(page.text("#issue-position"), "Breite 53,89123 · Länge 11,46512 (± 8 m)", "the position, as numbers");
    page.fill("#issue-address", "Lübsche Straße 12");
    let photos = tempfile::tempdir().expect("temp dir");
    let photo = photos.path().join("laterne.jpg");
    std::fs::write(&photo, photos_fixtures::jpeg(640, 480)).expect("write the photo");
    set_files(&page, "#issue-photos", &[&photo]);
    page.wait_for("#issue-photo-list li img");
    assert!(page.text("#issue-body-count").starts_with("61"), "the counter counts: {}", page.text("#issue-body-count"));
    shoot(&page, db, "resident-new-issue");
    page.click("#issue-submit");

    // The report is sent, the photo uploaded, and the thread opens.
    page.wait_screen("issue");
    let issue = page.eval("location.pathname.split('/')[2]").as_str().expect("issue id in /r/<id>").to_owned();
    assert!(page.text("#issue-flash").contains("angekommen"), "confirmation: {}", page.text("#issue-flash"));
    page.wait_until(
        "document.querySelector('#issue-photos img') && document.querySelector('#issue-photos img').naturalWidth > 0",
        "the report's photo is shown (fetched with the device token)",
        UI_TIMEOUT,
    );
    assert_eq!(page.eval("document.querySelector('#issue-status .status').dataset.status"), json!("received"));
    let stub = support::push_stub_state(&page);
    assert_eq!(stub["keys"], json!([herold.vapid]), "the device was registered with the server's key: {stub}");

    // What the town hall sees: the report with its photo, under a pseudonym.
    let seen = herold.api("GET", &format!("/issues/{issue}"), Some(&owner), None, 200);
    assert_eq!(seen["category"], "Straßenbeleuchtung");
    assert_eq!(seen["body"], "Die Laterne vor der Lübschen Straße 12 ist seit Tagen dunkel.");
    assert_eq!(seen["address"], "Lübsche Straße 12");
    let near = |v: &Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() < 1e-6);
    assert!(
        near(&seen["location"]["lat"], 53.89123) && near(&seen["location"]["lon"], 11.46512),
        "the shared position: {seen}"
    );
    assert_eq!(seen["photos"].as_array().map(Vec::len), Some(1), "the photo arrived: {seen}");
    assert!(seen["author"].as_str().is_some_and(|a| !a.is_empty()), "a pseudonym: {seen}");
    let inbox = herold.api("GET", &format!("/organizations/{org}/issues"), Some(&owner), None, 200);
    assert_eq!(inbox["items"][0]["id"], json!(issue), "the report is in the town hall's inbox: {inbox}");

    // "My reports" is in the inbox now; the report is there, read.
    page.click("#main-nav a[href=\"/inbox\"]");
    page.wait_screen("inbox");
    page.click("#inbox-reports");
    page.wait_screen("issues");
    let item = format!("#issues > li[data-issue=\"{issue}\"]");
    page.wait_for(&item);
    assert!(!page.exists(&format!("{item}.unread")), "a report just sent is not unread");
    found.extend(axe(&page, "my reports"));

    // The town hall replies and sets a status: one push, to the reporting
    // device only (not to another resident who follows the group).
    let (bystander, _) = herold.device(&[&group]);
    let reply = "Danke für den Hinweis! Die Laterne wird morgen repariert.";
    herold.api(
        "POST",
        &format!("/issues/{issue}/replies"),
        Some(&owner),
        Some(json!({"body": reply, "status": "in_progress"})),
        201,
    );
    let delivered = support::wait_deliveries(&herold, &sub, 1);
    let payload = delivered[0].payload.clone();
    assert!(herold.push.deliveries_for(&bystander.id).is_empty(), "the reply reached another device");
    assert_eq!(payload["notification"]["tag"], json!(format!("issue-{issue}")), "push: {payload}");
    assert_eq!(payload["herold"]["kind"], "issue", "push: {payload}");
    let shown = support::deliver_to_worker(&page, &origin, &payload);
    assert_eq!(shown["data"]["url"], json!(format!("/r/{issue}")), "the notification opens the thread: {shown}");
    // In the language the report was written in (the app sends its own).
    assert_eq!(shown["title"], "Ihre Meldung an Hansestadt Wismar – Bürgerbüro", "notification: {shown}");
    assert!(shown["body"].as_str().is_some_and(|b| b.contains(reply)), "notification: {shown}");

    // The open list learns of it from the worker and marks the report.
    page.wait_for(&format!("{item}.unread"));
    page.wait_until(
        "!document.querySelector('#unread-count').hidden && document.querySelector('#unread-count').textContent === '1'",
        "the inbox's count in the navigation includes the report with a new reply",
        UI_TIMEOUT,
    );
    shoot(&page, db, "resident-issues");

    // The thread: the reply and the status change.
    page.click(&format!("{item} a"));
    page.wait_screen("issue");
    let org_post = "#issue-thread > li[data-from=\"organization\"]";
    page.wait_for(org_post);
    assert!(page.text(org_post).contains(reply), "the reply in the thread: {}", page.text(org_post));
    assert!(page.text(org_post).contains("In Bearbeitung"), "the status change in the thread: {}", page.text(org_post));
    assert_eq!(page.eval("document.querySelector('#issue-status .status').dataset.status"), json!("in_progress"));
    found.extend(axe(&page, "report thread"));

    // The resident answers in the thread; the town hall sees it.
    page.fill("#issue-reply", "Vielen Dank!");
    page.click("#issue-reply-send");
    page.wait_for("#issue-thread > li[data-from=\"resident\"]");
    let thread = herold.api("GET", &format!("/issues/{issue}"), Some(&owner), None, 200);
    assert!(
        thread["posts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["from"] == "resident" && p["body"] == "Vielen Dank!"),
        "the resident's message reached the town hall: {thread}"
    );
    shoot_at(&page, db, "#issue-thread-title", "resident-issue");

    // A second reply while the thread is open shows up in place.
    herold.api("POST", &format!("/issues/{issue}/replies"), Some(&owner), Some(json!({"status": "done"})), 201);
    let delivered = support::wait_deliveries(&herold, &sub, 2);
    support::deliver_to_worker(&page, &origin, &delivered[1].payload);
    page.wait_until(
        "document.querySelector('#issue-status .status').dataset.status === 'done'",
        "the open thread shows the new status without a reload",
        UI_TIMEOUT,
    );

    // Deleting the report removes it for the town hall too.
    page.click("#issue-delete");
    page.wait_visible("dialog#issue-delete-dialog[open]");
    found.extend(axe(&page, "delete report dialog"));
    page.click("#issue-delete-confirm");
    page.wait_screen("issues");
    assert!(!page.exists(&item), "the deleted report is still listed");
    herold.api("GET", &format!("/issues/{issue}"), Some(&owner), None, 404);

    assert!(found.is_empty(), "{} accessibility problem(s):\n{}", found.len(), found.join("\n"));
    herold.push.assert_no_violations();
    browser.assert_only_origin(&origin);
}

fn question_hour_live(db: Db) {
    let Some((herold, browser)) = support::start("talk-session", db) else { return };
    let origin = herold.origin();
    let (_, owner, group) = town_hall(&herold);
    let now = SystemTime::now();
    let session = herold.api(
        "POST",
        &format!("/groups/{group}/sessions"),
        Some(&owner),
        Some(json!({
            "title": "Bürgersprechstunde mit dem Bürgermeister",
            "description": "Fragen Sie, was Sie bewegt – anonym.",
            "starts_at": rfc3339(now - Duration::from_secs(60)),
            "ends_at": rfc3339(now + Duration::from_secs(3600)),
        })),
        201,
    );
    let session = session["id"].as_str().expect("session id").to_owned();

    // The group page lists it as live now.
    let sub = herold.push.new_subscription();
    let asker = support::resident_page(&browser, &herold, &sub, "de");
    asker.goto(&format!("{origin}/g/{group}"), "group");
    asker.wait_for(&format!("#sessions-live a[href=\"/q/{session}\"]"));
    asker.click(&format!("#sessions-live a[href=\"/q/{session}\"]"));
    asker.wait_screen("session");
    assert_eq!(asker.text("#session-title"), "Bürgersprechstunde mit dem Bürgermeister");
    assert_eq!(asker.attr("#session-state", "data-state").as_deref(), Some("open"));

    // The second resident: another person's phone (a browser of its own, so
    // that each has one service worker), reading only.
    let Some(other_phone) = Browser::launch(&format!("talk-session-reader-{}", support::backend(db))) else { return };
    let reader = support::resident_page(&other_phone, &herold, &herold.push.new_subscription(), "de");
    reader.goto(&format!("{origin}/q/{session}"), "session");
    for page in [&asker, &reader] {
        page.wait_for("#session-live.on"); // the live stream is connected
    }
    reader.eval("window.__sameDocument = true");
    let mut found = axe(&reader, "question hour");

    // The asker asks in the UI (the device is registered on the way).
    let question = "Wann wird der Spielplatz am Lindengarten saniert?";
    asker.fill("#question-body", question);
    asker.click("#question-submit");
    asker.wait_for("#questions > li.mine");
    let asked =
        asker.eval("document.querySelector('#questions > li.mine').dataset.question").as_str().unwrap().to_owned();
    let asked_li = format!("#questions > li[data-question=\"{asked}\"]");
    reader.wait_for(&asked_li);
    assert!(reader.text(&asked_li).contains(question));
    assert!(!reader.exists(&format!("{asked_li}.mine")), "another resident's question is not marked as theirs");

    // Another question, from a device of its own; the asker supports it, and
    // the reader sees it move to the top.
    let (_, other_device) = herold.device(&[]);
    let other = herold.api(
        "POST",
        &format!("/sessions/{session}/questions"),
        Some(&other_device),
        Some(json!({"body": "Gibt es bald mehr Fahrradbügel am Markt?"})),
        201,
    );
    let other = other["id"].as_str().unwrap().to_owned();
    let other_li = format!("#questions > li[data-question=\"{other}\"]");
    asker.wait_for(&other_li);
    asker.click(&format!("{other_li} button.vote"));
    asker.wait_until(
        &format!("document.querySelector('{other_li} button.vote').getAttribute('aria-pressed') === 'true'"),
        "the vote is on",
        UI_TIMEOUT,
    );
    reader.wait_until(
        &format!(
            "document.querySelector('#questions > li').dataset.question === {o}
               && document.querySelector('{other_li} button.vote .count').textContent === '1'",
            o = json!(other)
        ),
        "the supported question moved to the top of the reader's list, with its vote",
        UI_TIMEOUT,
    );

    // The town hall answers publicly: it appears on the reader's open page.
    let answer = "Die Sanierung beginnt im April, die Spielgeräte werden im Mai aufgestellt.";
    herold.api(
        "POST",
        &format!("/sessions/{session}/questions/{asked}/answer"),
        Some(&owner),
        Some(json!({"body": answer, "public": true})),
        200,
    );
    reader.wait_until(
        &format!("(document.querySelector('{asked_li} .answer') || {{}}).textContent?.includes({})", json!(answer)),
        "the public answer appears on the reader's page without a reload",
        UI_TIMEOUT,
    );
    assert_eq!(reader.eval("window.__sameDocument === true"), json!(true), "the reader's page was reloaded");
    reader.wait_until(
        "document.getElementById('live').textContent.includes('Neue Antwort')",
        "the new answer is announced (aria-live)",
        UI_TIMEOUT,
    );
    shoot_at(&reader, db, "#questions-title", "resident-session");

    // The asker gets it as a notification too.
    let delivered = support::wait_deliveries(&herold, &sub, 1);
    let payload = delivered[0].payload.clone();
    assert_eq!(payload["notification"]["tag"], json!(format!("question-{asked}")), "push: {payload}");
    let shown = support::deliver_to_worker(&asker, &origin, &payload);
    assert_eq!(shown["data"]["url"], json!(format!("/q/{session}")), "the notification opens the session: {shown}");
    assert_eq!(shown["title"], "Hansestadt Wismar – Bürgerbüro hat Ihre Frage beantwortet", "notification: {shown}");
    assert_eq!(shown["body"], answer, "notification: {shown}");
    asker.wait_until(
        &format!("(document.querySelector('{asked_li} .answer') || {{}}).textContent?.includes({})", json!(answer)),
        "the asker sees the answer",
        UI_TIMEOUT,
    );

    // The end: the form goes, the record stays.
    herold.api("POST", &format!("/sessions/{session}/end"), Some(&owner), None, 200);
    for page in [&asker, &reader] {
        page.wait_until(
            "document.querySelector('#session-state').dataset.state === 'ended'
               && document.querySelector('#question-form').hidden",
            "the page shows the session ended, without the question form",
            UI_TIMEOUT,
        );
        assert!(page.text(&asked_li).contains(answer), "the answer stays readable");
    }
    reader.eval("document.body.dataset.ready = 'false'");
    reader.reload();
    reader.wait_screen("session");
    reader.wait_for(&asked_li);
    assert!(reader.text(&asked_li).contains(answer), "after the end the session is a readable record");
    found.extend(axe(&reader, "ended question hour"));
    shoot(&asker, db, "resident-session-ended");

    assert!(found.is_empty(), "{} accessibility problem(s):\n{}", found.len(), found.join("\n"));
    herold.push.assert_no_violations();
    browser.assert_only_origin(&origin);
    other_phone.assert_only_origin(&origin);
}

crate::both_backends!(issue_report_flow, question_hour_live);

// ---- helpers ----

/// Chooses files in an `<input type=file>` as the file picker would
/// (`DOM.setFileInputFiles` fires `input` and `change`).
fn set_files(page: &Page, selector: &str, files: &[&PathBuf]) {
    let node =
        page.call("Runtime.evaluate", json!({"expression": format!("document.querySelector({})", json!(selector))}));
    let object = node["result"]["objectId"].as_str().unwrap_or_else(|| page.fail(&format!("no {selector}"))).to_owned();
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    page.call("DOM.setFileInputFiles", json!({"files": files, "objectId": object}));
}

/// A screenshot (SQLite runs only, like [`shoot`]) scrolled to `selector`.
fn shoot_at(page: &Page, db: Db, selector: &str, name: &str) {
    if db == Db::Sqlite {
        page.eval(&format!("document.querySelector({}).scrollIntoView()", json!(selector)));
        page.screenshot(name);
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// axe-core (WCAG 2.0/2.1 A and AA) on the current screen, once its CSS
/// transitions have finished: one line per violation.
pub(crate) fn axe(page: &Page, what: &str) -> Vec<String> {
    page.wait_until(
        "document.getAnimations().every(a => a.playState !== 'running')",
        "CSS transitions finished",
        UI_TIMEOUT,
    );
    crate::accessibility::axe(page, what, None)
}
