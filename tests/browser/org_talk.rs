//! Scenario: residents talk back, seen from the organization's dashboard.
//!
//! The town hall opens its group for reports in the group settings (the
//! category editor's suggestion), a resident's device files a report with a
//! photo straight through the API, and the member finds it in the report
//! inbox (navigation badge, pseudonym, photo count), opens it, sees the photo
//! load through the staff token, and replies with status "in progress" —
//! which the device then reads from its own API. In a question hour, a
//! question posted by a device appears on the staff's session page without a
//! reload and is answered publicly there; a question hour scheduled through
//! the form is cancelled again.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use serde_json::{json, Value};

use crate::chrome::UI_TIMEOUT;
use crate::http;
use crate::server::{Db, Herold};
use crate::support::{self, shoot};

const OWNER: &str = "buergerservice@wismar.de";
const ORG: &str = "Stadtverwaltung Wismar";
const GROUP: &str = "Bürgerservice";
const CATEGORY: &str = "Straßenschäden";
const REPORT: &str = "Tiefes Schlagloch vor der Hausnummer 12, Radfahrer weichen auf den Gehweg aus.";
const REPLY: &str = "Danke! Der Bauhof schaut sich das Schlagloch morgen an.";
const QUESTION: &str = "Wann wird der Spielplatz am Lindengarten wieder geöffnet?";
const ANSWER: &str = "Nach der Prüfung der Geräte, voraussichtlich am Freitag.";

/// A small JPEG (as a phone camera would send, only smaller).
fn photo() -> Vec<u8> {
    let (w, h) = (96, 64);
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 120]));
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85).write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8).expect("jpeg");
    out
}

/// A screenshot with `selector` scrolled to the top (SQLite runs only, like [`shoot`]).
fn shoot_at(page: &crate::chrome::Page, db: Db, name: &str, selector: &str) {
    if db == Db::Sqlite {
        // Below the sticky header.
        page.eval(&format!(
            "window.scrollTo(0, document.querySelector({}).getBoundingClientRect().top + window.scrollY - 80)",
            json!(selector)
        ));
        page.screenshot(name);
    }
}

/// The device files a report with one photo; returns the report's id.
fn file_report(herold: &Herold, group: &str, device: &str) -> String {
    let body = json!({"category": CATEGORY, "body": REPORT, "lat": 53.89261, "lon": 11.46522,
                      "address": "Lübsche Straße 12", "lang": "de"});
    let issue = herold.api("POST", &format!("/groups/{group}/issues"), Some(device), Some(body), 201);
    let id = issue["id"].as_str().expect("issue id").to_owned();
    let auth = format!("Bearer {device}");
    let res = http::request(
        herold.port,
        "POST",
        &format!("/api/v1/devices/me/issues/{id}/photos"),
        &[("Authorization", &auth), ("Content-Type", "image/jpeg"), ("Accept", "application/json")],
        Some(&photo()),
    )
    .expect("upload photo");
    assert_eq!(res.status, 201, "photo upload: {}", String::from_utf8_lossy(&res.body));
    id
}

fn org_talk_flow(db: Db) {
    let Some((herold, browser)) = support::start("org-talk", db) else { return };
    let origin = herold.origin();
    let (org, owner) = herold.approved_org(OWNER, ORG);
    let group = herold.create_group(&org, &owner, GROUP, "Anliegen an die Stadtverwaltung.", "administration");
    let (sub, device) = herold.device(&[&group]);
    // axe-core (WCAG 2.0/2.1 A and AA) on each new screen.
    let mut found: Vec<String> = Vec::new();

    let page = support::staff_page(&browser, "de");
    support::staff_login(&page, &origin, "org", OWNER, "groups");

    // ---- open the group for reports in its settings ----
    page.goto(&format!("{origin}/org/groups/{group}/settings"), "group-settings");
    page.wait_visible("#intake-form");
    assert_eq!(
        page.eval("document.querySelector('#intake-open').checked"),
        json!(false),
        "a new group takes no reports"
    );
    page.click("#intake-suggest");
    page.wait_until(
        "document.querySelectorAll('#intake-categories li').length === 4",
        "the suggestion fills in four categories",
        UI_TIMEOUT,
    );
    // Move "Sonstiges" (last) one up, and check the order the editor keeps.
    page.click("#intake-categories li:nth-child(4) [data-action=\"up\"]");
    page.click("#intake-open");
    page.click("#intake-save");
    page.wait_visible("#intake-saved");
    let intake = herold.api("GET", &format!("/groups/{group}/intake"), None, None, 200);
    assert_eq!(
        intake,
        json!({"open": true, "categories": ["Straßenschäden", "Straßenbeleuchtung", "Sonstiges", "Müll"], "board": false}),
        "the intake as saved from the settings"
    );
    shoot_at(&page, db, "org-intake", "#intake");
    found.extend(crate::talk::axe(&page, "group intake settings"));

    // ---- a resident reports; the inbox shows it ----
    let issue = file_report(&herold, &group, &device);
    page.goto(&format!("{origin}/org"), "groups");
    let nav = "#staff-nav a[href=\"/org/issues\"]";
    let count = page.text(&format!("{nav} .staff-count"));
    assert_eq!(
        count.chars().filter(char::is_ascii_digit).collect::<String>(),
        "1",
        "one new report in the navigation: {count:?}"
    );
    page.click(nav);
    page.wait_screen("issues");
    let row = format!("#issue-list li[data-issue=\"{issue}\"]");
    page.wait_for(&row);
    let text = page.text(&row);
    for expected in [CATEGORY, "Anwohner:in ", GROUP, "1 Foto", "Eingegangen"] {
        assert!(text.contains(expected), "the inbox row should show {expected:?}: {text:?}");
    }
    let author = page.text(&format!("{row} .issue-author"));
    let pseudonym = author.trim_start_matches("Anwohner:in ").to_owned();
    let shape = pseudonym.len() == 9
        && pseudonym.char_indices().all(|(i, c)| if i == 4 { c == '-' } else { c.is_ascii_alphanumeric() });
    assert!(shape, "the resident shows as a pseudonym like K7QM-2XTP: {author:?}");
    // The status filter: nothing is done yet.
    page.select("#issues-status", "done");
    page.click("#issues-filter");
    page.wait_visible("#issues-empty");
    page.select("#issues-status", "received");
    page.click("#issues-filter");
    page.wait_for(&row);
    shoot(&page, db, "org-issues");
    found.extend(crate::talk::axe(&page, "report inbox"));

    // ---- the report: photo, location, reply with a status ----
    page.click(&format!("{row} a"));
    page.wait_screen("issue");
    assert_eq!(page.text("#issue-body"), REPORT);
    assert!(page.text("#issue-author").contains(&pseudonym), "the detail shows the same pseudonym");
    assert!(page.text("#issue-address").contains("Lübsche Straße 12"));
    assert_eq!(page.text("#issue-coords"), "53.89261, 11.46522");
    assert!(
        page.attr("#issue-geo", "href").as_deref() == Some("geo:53.89261,11.46522"),
        "a geo: link for the device's map app (no map site named or loaded)"
    );
    page.wait_until(
        "(() => { const i = document.querySelector('#issue-photos img'); return i && i.complete && i.naturalWidth > 0; })()",
        "the photo loads through the staff token (naturalWidth > 0)",
        UI_TIMEOUT,
    );
    assert!(
        page.attr("#issue-photos img", "src").is_some_and(|s| s.starts_with("blob:")),
        "the photo is shown from a blob URL"
    );
    // The board is off for this group: publishing is disabled, with the way to switch it on.
    assert_eq!(page.eval("document.querySelector('#issue-publish').disabled"), json!(true));
    page.wait_visible("#issue-board-settings");

    page.fill("#issue-reply-body", REPLY);
    page.select("#issue-reply-status", "in_progress");
    assert!(
        page.text("#issue-reply-send").contains("In Bearbeitung"),
        "the button says it sets the status: {:?}",
        page.text("#issue-reply-send")
    );
    shoot(&page, db, "org-issue");
    found.extend(crate::talk::axe(&page, "report detail"));
    page.click("#issue-reply-send");
    page.wait_for("#issue-thread li[data-from=\"organization\"]");
    page.wait_until(
        "document.querySelector('#issue-status-now .issue-status').dataset.status === 'in_progress'",
        "the status shows in progress",
        UI_TIMEOUT,
    );
    assert!(page.text("#issue-thread li[data-from=\"organization\"]").contains(REPLY));

    // The device reads the reply and the new status.
    let mine = herold.api("GET", &format!("/devices/me/issues/{issue}"), Some(&device), None, 200);
    assert_eq!(mine["status"], "in_progress", "the device sees the new status: {mine}");
    let posts = mine["posts"].as_array().cloned().unwrap_or_default();
    assert!(
        posts.iter().any(|p| p["from"] == "organization" && p["body"] == REPLY && p["status"] == "in_progress"),
        "the device sees the reply with its status: {mine}"
    );
    // …and was notified (one push to the reporting device).
    let pushed = support::wait_deliveries(&herold, &sub, 1);
    assert!(
        pushed.iter().any(|d| d.payload["notification"]["tag"] == format!("issue-{issue}")),
        "a push about the report reached the device: {:?}",
        pushed.iter().map(|d| d.payload.to_string()).collect::<Vec<_>>()
    );
    // The navigation count follows: nothing is waiting any more.
    page.wait_until(
        &format!("!document.querySelector('{nav} .staff-count')"),
        "the new-report count is gone from the navigation",
        UI_TIMEOUT,
    );

    // ---- a question hour, live ----
    let now: DateTime<Utc> = SystemTime::now().into();
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let session = herold.api(
        "POST",
        &format!("/groups/{group}/sessions"),
        Some(&owner),
        Some(json!({"title": "Bürgersprechstunde", "description": "Die Bürgermeisterin antwortet.",
                    "starts_at": rfc3339(now), "ends_at": rfc3339(now + chrono::Duration::hours(1))})),
        201,
    );
    let sid = session["id"].as_str().expect("session id").to_owned();
    page.goto(&format!("{origin}/org/sessions/{sid}"), "session");
    page.wait_until(
        "document.querySelector('#session-live').dataset.live === 'on'",
        "the session page is connected to the live events",
        UI_TIMEOUT,
    );
    let question = herold.api(
        "POST",
        &format!("/sessions/{sid}/questions"),
        Some(&device),
        Some(json!({"body": QUESTION, "lang": "de"})),
        201,
    );
    let qid = question["id"].as_str().expect("question id").to_owned();
    let qrow = format!("#questions-open li[data-question=\"{qid}\"]");
    page.wait_for(&qrow);
    let qtext = page.text(&qrow);
    assert!(qtext.contains(QUESTION), "the question appears without a reload: {qtext:?}");
    assert!(qtext.contains(&pseudonym), "staff see who asked (the same pseudonym): {qtext:?}");
    page.click(&format!("{qrow} [data-action=\"answer\"]"));
    page.fill(&format!("#answer-{qid}"), ANSWER);
    shoot(&page, db, "org-session");
    found.extend(crate::talk::axe(&page, "live question hour"));
    page.click(&format!("{qrow} [data-action=\"send-answer\"]"));
    page.wait_for(&format!("#questions-answered li[data-question=\"{qid}\"]"));
    let public = herold.api("GET", &format!("/sessions/{sid}"), None, None, 200);
    let answered: Vec<&Value> =
        public["questions"].as_array().into_iter().flatten().filter(|q| q["id"] == json!(qid)).collect();
    assert_eq!(answered.len(), 1, "the question is in the public session: {public}");
    assert_eq!(answered[0]["answer"]["body"], ANSWER, "the public answer is visible to all: {public}");
    assert_eq!(answered[0]["answer"]["public"], true);

    // ---- schedule one with the form, then cancel it ----
    page.goto(&format!("{origin}/org/groups/{group}/sessions"), "group-sessions");
    page.fill("#session-title", "Sprechstunde zum Haushalt");
    page.click("#session-create");
    page.wait_visible("#session-created");
    let scheduled = page
        .eval("document.querySelector('#session-list li[data-state=\"scheduled\"]').dataset.session")
        .as_str()
        .expect("the scheduled session in the list")
        .to_owned();
    shoot(&page, db, "org-sessions");
    found.extend(crate::talk::axe(&page, "question hours"));
    page.click(&format!("#session-list li[data-session=\"{scheduled}\"] a"));
    page.wait_screen("session");
    page.click("#session-cancel");
    page.click("#session-cancel-confirm");
    page.wait_until(
        "document.querySelector('.session-state').dataset.state === 'cancelled'",
        "the session shows as cancelled",
        UI_TIMEOUT,
    );
    let listed = herold.api("GET", &format!("/groups/{group}/sessions"), None, None, 200);
    assert!(
        listed["items"].as_array().into_iter().flatten().all(|s| s["id"] != json!(scheduled)),
        "a cancelled session is gone from the group's list: {listed}"
    );
    browser.assert_only_origin(&origin);
    assert!(found.is_empty(), "accessibility violations:\n{}", found.join("\n"));
}

crate::both_backends!(org_talk_flow);
