//! Scenario 1: a resident follows two groups from the PWA; an organization
//! posts through its dashboard; Herold's push reaches the test push service,
//! is decrypted there and handed to the PWA's real service worker, which
//! shows the notification; the inbox lists the message; after unfollowing a
//! group its next message is not sent to this device.

use serde_json::json;

use crate::server::{Db, TOWN};
use crate::support::{self, shoot};

const OWNER: &str = "buero@st-nikolai.de";

fn resident_push_flow(db: Db) {
    let Some((herold, browser)) = support::start("resident", db) else { return };
    let origin = herold.origin();

    // The town's groups (set up with the API: not what this test is about).
    let (org, owner) = herold.approved_org(OWNER, "Kirchengemeinde St. Nikolai");
    let letter = herold.create_group(
        &org,
        &owner,
        "Gemeindebrief",
        "Termine, Gottesdienste und Neuigkeiten der Gemeinde.",
        "church",
    );
    let concerts = herold.create_group(&org, &owner, "Konzerte", "Orgel- und Chorkonzerte in St. Nikolai.", "culture");
    let (club, club_owner) = herold.approved_org("vorstand@tsv-wismar.de", "TSV Wismar");
    herold.create_group(&club, &club_owner, "Abteilung Handball", "Spielpläne und Trainingszeiten.", "club");
    herold.verify_group(&letter);
    herold.post(&letter, &owner, "Willkommen", "Schön, dass Sie dabei sind.");

    // The resident picks the town, then a group.
    let sub = herold.push.new_subscription();
    let page = support::resident_page(&browser, &herold, &sub, "de");
    page.goto(&format!("{origin}/"), "towns");
    page.click(&format!("a[data-tenant=\"{TOWN}\"]"));
    page.wait_screen("directory");
    assert_eq!(
        page.eval("document.querySelector('a[data-group]').dataset.group"),
        json!(letter),
        "the official (verified) group comes first in the directory"
    );
    assert!(
        page.exists(&format!("a[data-group=\"{letter}\"] .badge-official")),
        "official badge on the verified group"
    );
    shoot(&page, db, "resident-directory");

    page.click(&format!("a[data-group=\"{letter}\"]"));
    page.wait_screen("group");
    assert_eq!(page.text("h1"), "Gemeindebrief");
    assert_eq!(page.attr("#subscribe", "aria-pressed").as_deref(), Some("false"));
    page.click("#subscribe");
    page.wait_until(
        "document.querySelector('#subscribe').getAttribute('aria-pressed') === 'true'",
        "the subscribe toggle is on",
        crate::chrome::UI_TIMEOUT,
    );
    shoot(&page, db, "resident-group");

    // The app subscribed with the server's VAPID key and asked for nothing else.
    let stub = support::push_stub_state(&page);
    assert_eq!(stub["keys"], json!([herold.vapid]), "applicationServerKey passed to subscribe(): {stub}");
    assert_eq!(stub["userVisibleOnly"], true);

    // The second group, through the directory's search.
    page.click("#main-nav a[href=\"/\"]");
    page.wait_screen("directory");
    page.fill("#search", "Konzert");
    page.wait_until(
        &format!(
            "document.querySelector('a[data-group=\"{concerts}\"]') && !document.querySelector('a[data-group=\"{letter}\"]')"
        ),
        "search for 'Konzert' lists only the concerts",
        crate::chrome::UI_TIMEOUT,
    );
    page.click(&format!("a[data-group=\"{concerts}\"]"));
    page.wait_screen("group");
    page.click("#subscribe");
    page.wait_until(
        "document.querySelector('#subscribe').getAttribute('aria-pressed') === 'true'",
        "the second subscribe toggle is on",
        crate::chrome::UI_TIMEOUT,
    );
    assert_eq!(support::push_stub_state(&page)["keys"].as_array().map(Vec::len), Some(1), "one subscription, reused");

    // The organization posts through its dashboard.
    let staff = support::staff_page(&browser, "de");
    support::staff_login(&staff, &origin, "org", OWNER, "groups");
    staff.goto(&format!("{origin}/org/groups/{letter}"), "compose");
    staff.fill("#compose-title", "Adventskonzert");
    staff.fill("#compose-body", "Sonntag um 17 Uhr in St. Nikolai. Eintritt frei.");
    staff.click("#compose-send");
    staff.wait_visible("#compose-done");
    let message = staff
        .eval("document.querySelector('#recent-messages li[data-message]').dataset.message")
        .as_str()
        .expect("the sent message in the recent list")
        .to_owned();

    // Herold pushes it to the test push service, which decrypts it.
    let delivered = support::wait_deliveries(&herold, &sub, 1);
    let payload = delivered[0].payload.clone();
    assert_eq!(payload["notification"]["title"], "Adventskonzert");
    assert_eq!(payload["notification"]["tag"], json!(message));

    // The real service worker shows it.
    let shown = support::deliver_to_worker(&page, &origin, &payload);
    assert_eq!(shown["title"], "Adventskonzert", "notification: {shown}");
    assert_eq!(shown["body"], "Sonntag um 17 Uhr in St. Nikolai. Eintritt frei.", "notification: {shown}");
    assert_eq!(shown["tag"], json!(message), "notification: {shown}");
    assert_eq!(shown["data"]["url"], json!(format!("/m/{message}")), "notification opens the message: {shown}");

    // The inbox lists it, unread.
    page.click("#main-nav a[href=\"/inbox\"]");
    page.wait_screen("inbox");
    let item = format!("#inbox > li[data-message=\"{message}\"]");
    page.wait_for(&item);
    assert!(page.text(&item).contains("Adventskonzert"));
    assert!(
        page.eval(&format!("document.querySelector('{item}').classList.contains('unread')")) == true,
        "unread mark"
    );
    shoot(&page, db, "resident-inbox");

    // Tapping the notification opens the message (a synthetic notificationclick
    // in the worker: headless Chromium has no notification to click).
    let clicked = browser.worker_sessions().into_iter().rev().any(|s| {
        browser
            .try_call(
                "Runtime.evaluate",
                json!({"expression": format!(
                    "self.registration.getNotifications({{tag: {m}}}).then(ns => {{
                       try {{ self.dispatchEvent(new NotificationEvent('notificationclick', {{notification: ns[0]}})); }}
                       catch (e) {{ /* waitUntil refuses untrusted events; the handler has run */ }}
                       return ns.length; }})", m = json!(message)),
                       "awaitPromise": true, "returnByValue": true}),
                Some(&s),
            )
            .is_ok_and(|r| r["result"]["value"] == 1)
    });
    assert!(clicked, "no running service worker took the synthetic notificationclick");
    page.wait_screen("message");
    assert_eq!(page.text("#message-title"), "Adventskonzert");
    assert_eq!(page.text("#message-body"), "Sonntag um 17 Uhr in St. Nikolai. Eintritt frei.");

    // Unfollow the parish letter in the settings.
    page.click("#main-nav a[href=\"/settings\"]");
    page.wait_screen("settings");
    page.wait_for(&format!("#followed > li[data-group=\"{concerts}\"]"));
    page.click(&format!("#followed > li[data-group=\"{letter}\"] button.unsubscribe"));
    page.wait_gone(&format!("#followed > li[data-group=\"{letter}\"]"));

    // Its next message is not sent to this device; the concerts' still is.
    let token = herold.login(OWNER);
    let skipped = herold.post(&letter, &token, "Bibelkreis", "Donnerstag 19 Uhr im Gemeindehaus.");
    herold.wait_fanned_out(&skipped, &token);
    let concert = herold.post(&concerts, &token, "Orgelvesper", "Samstag 18 Uhr.");
    let delivered = support::wait_deliveries(&herold, &sub, 2);
    assert_eq!(delivered.len(), 2, "only the concert's message arrived after unfollowing");
    assert_eq!(delivered[1].payload["herold"]["message_id"], json!(concert));
    herold.wait_fanned_out(&concert, &token);
    assert!(
        herold.push.deliveries_for(&sub.id).iter().all(|d| d.payload["herold"]["message_id"] != json!(skipped)),
        "a message of an unfollowed group reached the device"
    );
    herold.push.assert_no_violations();

    browser.assert_only_origin(&origin);
}

crate::both_backends!(resident_push_flow);
