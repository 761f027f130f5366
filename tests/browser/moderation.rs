//! Scenario 3: a resident reports a message from its page; the city admin
//! hides it from the console's report queue; it leaves the group's feed and
//! the resident's inbox, and its page says it was removed by the town.

use crate::chrome::UI_TIMEOUT;
use crate::server::{Db, ADMIN};
use crate::support::{self, shoot};

fn moderation_flow(db: Db) {
    let Some((herold, browser)) = support::start("moderation", db) else { return };
    let origin = herold.origin();
    let (org, owner) = herold.approved_org("kontakt@wismar-angebote.de", "Wismar Angebote");
    let group = herold.create_group(&org, &owner, "Schnäppchen", "Angebote aus der Altstadt.", "business");
    let fine = herold.post(&group, &owner, "Wochenmarkt", "Frischer Fisch am Samstag.");

    // The resident follows the group in the app.
    let sub = herold.push.new_subscription();
    let page = support::resident_page(&browser, &herold, &sub, "de");
    page.goto(&format!("{origin}/g/{group}"), "group");
    page.click("#subscribe");
    page.wait_until(
        "document.querySelector('#subscribe').getAttribute('aria-pressed') === 'true'",
        "the subscribe toggle is on",
        UI_TIMEOUT,
    );
    let bad = herold.post(&group, &owner, "Wunderpillen!!!", "Jetzt kaufen: 90 % Rabatt auf Wunderpillen.");
    support::wait_deliveries(&herold, &sub, 1);

    // It shows in the feed and the inbox.
    page.goto(&format!("{origin}/inbox"), "inbox");
    page.wait_for(&format!("#inbox > li[data-message=\"{bad}\"]"));

    // The resident reports it.
    page.goto(&format!("{origin}/m/{bad}"), "message");
    page.click("#report-open");
    page.wait_visible("dialog#report-dialog[open]");
    page.click("input[name=reason][value=spam]");
    page.fill("#report-text", "Werbung für zweifelhafte Mittel.");
    shoot(&page, db, "resident-report");
    page.click("#report-submit");
    page.wait_visible("#report-done");
    assert!(!page.is_visible("dialog#report-dialog"), "the report dialog closes");

    // The town hall hides it from its report queue.
    let admin = support::staff_page(&browser, "de");
    support::staff_login(&admin, &origin, "admin", ADMIN, "queue");
    admin.click("a[href=\"/admin/reports\"]");
    admin.wait_screen("reports");
    let card = format!("[data-report][data-message=\"{bad}\"]");
    admin.wait_for(&card);
    assert!(admin.text(&card).contains("Wunderpillen!!!"), "the report shows the message in context");
    assert!(admin.text(&card).contains("Werbung für zweifelhafte Mittel."), "the report shows the resident's text");
    shoot(&admin, db, "admin-reports");
    admin.click(&format!("{card} button[data-action=\"hide_message\"]"));
    admin.wait_visible("#reason-text");
    admin.fill("#reason-text", "Irreführende Werbung");
    admin.click("#reason-confirm");
    admin.wait_until(
        &format!("document.querySelector('{card}').dataset.status === 'resolved'"),
        "the report is resolved",
        UI_TIMEOUT,
    );

    // Gone from the group's feed and the inbox; the message page says why.
    page.goto(&format!("{origin}/g/{group}"), "group");
    page.wait_for(&format!("#feed > li[data-message=\"{fine}\"]"));
    assert!(!page.exists(&format!("[data-message=\"{bad}\"]")), "the hidden message is still in the feed");
    page.goto(&format!("{origin}/inbox"), "inbox");
    assert!(!page.exists(&format!("[data-message=\"{bad}\"]")), "the hidden message is still in the inbox");
    page.goto(&format!("{origin}/m/{bad}"), "message");
    page.wait_visible("#message-removed");
    assert!(page.text("#message-removed").contains("Irreführende Werbung"), "the removal shows the town's reason");
    assert!(!page.exists("#message-body"), "the removed message's text is not shown");
    shoot(&page, db, "resident-removed");

    browser.assert_only_origin(&origin);
}

crate::both_backends!(moderation_flow);
