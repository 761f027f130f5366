//! Scenario 2: an organization registers in the dashboard and waits for the
//! town; the city admin approves it in the console; the organization creates
//! a group, writes a message with the live preview, sends it, and watches
//! the delivery statistics reach 100 %.

use serde_json::json;

use crate::chrome::UI_TIMEOUT;
use crate::server::{Db, ADMIN, PASSWORD, TOWN};
use crate::support::{self, shoot};

const EMAIL: &str = "info@tsv-wismar.de";
const ORG: &str = "TSV Wismar von 1860";
const TITLE: &str = "Training fällt aus";
const BODY: &str = "Wegen des Sturms fällt das Training heute aus. Nächste Woche wie gewohnt.";

fn organization_flow(db: Db) {
    let Some((herold, browser)) = support::start("organization", db) else { return };
    let origin = herold.origin();

    // Register: the organization waits for the town.
    let org = support::staff_page(&browser, "de");
    org.goto(&format!("{origin}/org/register"), "register");
    org.fill("#register-email", EMAIL);
    org.fill("#register-password", PASSWORD);
    org.fill("#register-org-name", ORG);
    org.select("#register-tenant", TOWN);
    org.select("#register-org-kind", "club");
    org.click("#register-submit");
    org.wait_screen("pending");
    org.wait_visible("#org-pending");
    shoot(&org, db, "org-pending");

    // The town hall approves it in the console's queue.
    let admin = support::staff_page(&browser, "de");
    support::staff_login(&admin, &origin, "admin", ADMIN, "queue");
    let card = admin.eval(&format!(
        "[...document.querySelectorAll('[data-organization]')].filter(li => li.textContent.includes({})).map(li => li.dataset.organization)",
        json!(ORG)
    ));
    let id =
        card.as_array().and_then(|a| a.first()).and_then(|v| v.as_str()).unwrap_or_else(|| {
            admin.fail(&format!("no [data-organization] card for {ORG} in the approval queue: {card}"))
        });
    let id = id.to_owned();
    shoot(&admin, db, "admin-queue");
    admin.click(&format!("[data-organization=\"{id}\"] button[data-action=\"approve\"]"));
    admin.wait_until(
        &format!("document.querySelector('[data-organization=\"{id}\"]').dataset.status === 'approved'"),
        "the organization shows as approved",
        UI_TIMEOUT,
    );

    // The organization sees it (the pending screen checks on request).
    org.click("#org-pending-check");
    org.wait_screen("groups");

    // Create a group.
    org.fill("#group-name", "Handball Jugend");
    org.fill("#group-description", "Trainingszeiten, Spielpläne und Ausfälle der Jugendmannschaften.");
    org.select("#group-category", "club");
    org.click("#group-create");
    org.wait_for("#group-list [data-group]");
    let group =
        org.eval("document.querySelector('#group-list [data-group]').dataset.group").as_str().unwrap().to_owned();
    shoot(&org, db, "org-groups");

    // A resident follows it (straight through the API: scenario 1 does it in the app).
    let (sub, _) = herold.device(&[&group]);

    // Compose with the live preview and the counters.
    org.click(&format!("#group-list [data-group=\"{group}\"] a"));
    org.wait_screen("compose");
    org.fill("#compose-title", TITLE);
    org.fill("#compose-body", BODY);
    org.wait_until(
        &format!("document.querySelector('#compose-preview .preview-title').textContent === {}", json!(TITLE)),
        "the preview shows the title",
        UI_TIMEOUT,
    );
    assert_eq!(org.text("#compose-preview .preview-body"), BODY, "the preview shows the body");
    let title_count = org.text("#compose-title-count");
    assert!(
        title_count.contains(&TITLE.chars().count().to_string()) && title_count.contains("120"),
        "title counter {title_count:?} should say {} of 120",
        TITLE.chars().count()
    );
    let body_count = org.text("#compose-body-count");
    assert!(
        body_count.contains(&BODY.chars().count().to_string()),
        "body counter {body_count:?} should count {} characters",
        BODY.chars().count()
    );
    shoot(&org, db, "org-compose");
    org.click("#compose-send");
    org.wait_visible("#compose-done");
    let message = org
        .eval("document.querySelector('#recent-messages li[data-message]').dataset.message")
        .as_str()
        .expect("the sent message in the recent list")
        .to_owned();

    // The push reached the resident's push service.
    let delivered = support::wait_deliveries(&herold, &sub, 1);
    assert_eq!(delivered[0].payload["notification"]["title"], TITLE);

    // The history shows the delivery complete.
    org.click(&format!("a[href=\"/org/groups/{group}/history\"]"));
    org.wait_screen("history");
    let row = format!("#history-list li[data-message=\"{message}\"]");
    org.wait_for(&row);
    org.wait_until(
        &format!("document.querySelector('{row}').dataset.complete === 'true'"),
        "the delivery statistics reach 100 % (data-complete=true)",
        UI_TIMEOUT,
    );
    let percent = org.text(&format!("{row} .delivery-percent"));
    assert!(percent.starts_with("100"), "delivery percent {percent:?}");
    assert_eq!(org.eval(&format!("document.querySelector('{row} progress').value")), json!(100));
    shoot(&org, db, "org-history");

    browser.assert_only_origin(&origin);
}

crate::both_backends!(organization_flow);
