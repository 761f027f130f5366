//! Residents flag messages; the town works the queue of reported messages
//! (most reports first, then the longest waiting) and resolves each one by
//! hiding the message, dismissing the reports or suspending the group. The
//! town never learns which device reported.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Device, Owner, Res, TestApp, User};

const SECOND: i64 = 1000;

struct Town {
    admin: User,
    stranger: User,
    operator: User,
    owner: Owner,
    group: String,
    other_group: String,
    other: Owner,
}

async fn town(app: &TestApp) -> Town {
    app.with_tenant("wismar").await;
    app.with_tenant("strausberg").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let stranger = app.city_admin("strausberg", "rathaus@strausberg.de").await;
    let operator = app.operator("betrieb@herold.example").await;
    let owner = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
    let group = app.group(&owner, "Spielplan", "club").await;
    let other = app.approved_org(&stranger, "strausberg", "wehr@feuerwehr-strausberg.de", "Feuerwehr").await;
    let other_group = app.group(&other, "Einsatzinfo", "administration").await;
    Town { admin, stranger, operator, owner, group, other_group, other }
}

async fn report(app: &TestApp, device: &Device, message: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/messages/{message}/reports"), Some(&device.token), body).await
}

async fn queue(app: &TestApp, who: &User, query: &str) -> Res {
    app.get(&format!("/api/v1/admin/tenants/wismar/reports{query}"), Some(&who.access)).await
}

async fn resolve(app: &TestApp, who: &User, report: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/admin/reports/{report}/resolve"), Some(&who.access), body).await
}

fn message_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["message"]["id"].as_str().expect("message id").to_owned())
        .collect()
}

/// Every device id in the database: none may appear in a report view.
async fn device_ids(app: &TestApp) -> Vec<String> {
    use herold::db::schema::devices;
    app.with_conn(|c| devices::table.select(devices::id).load(c).expect("devices")).await
}

/// (status, resolution, resolved_at, resolved_by) of every report of a message.
type ReportState = (String, Option<String>, Option<i64>, Option<String>);

async fn report_states(app: &TestApp, message: &str) -> Vec<ReportState> {
    use herold::db::schema::reports as r;
    let id = message.to_owned();
    app.with_conn(move |c| {
        r::table
            .filter(r::message_id.eq(&id))
            .order(r::created_at.asc())
            .select((r::status, r::resolution, r::resolved_at, r::resolved_by))
            .load(c)
            .expect("reports")
    })
    .await
}

both_backends!(
    async fn a_device_reports_a_message_it_can_see_once(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.owner.user, &t.group, "Wettbüro").await;
        let device = app.device().await;

        let receipt = report(&app, &device, &id, json!({"reason": "spam", "text": "  Werbung  "})).await.expect(201);
        assert_eq!(receipt["message_id"], id.as_str());
        assert_eq!(receipt["reason"], "spam");
        assert_eq!(receipt["text"], "Werbung");
        assert_eq!(receipt["created_at"], "2026-11-26T12:00:00.000Z");
        assert!(receipt["id"].is_string());
        for secret in device_ids(&app).await.iter().chain([&device.token]) {
            assert!(!receipt.to_string().contains(secret.as_str()), "{receipt}");
        }
        // Once per device and message, whatever the reason.
        report(&app, &device, &id, json!({"reason": "offensive"})).await.expect_error(409, "already_reported");
        // Another device, or another message: fine. Any town's message.
        report(&app, &app.device().await, &id, json!({"reason": "other"})).await.expect(201);
        let theirs = app.message(&t.other.user, &t.other_group, "Sirenenprobe").await;
        report(&app, &device, &theirs, json!({"reason": "false_information"})).await.expect(201);

        // Bad input: 422, and nothing stored.
        let fresh = app.device().await;
        let long = "x".repeat(501);
        let body = report(&app, &fresh, &id, json!({"reason": "spam", "text": long})).await.expect(422);
        assert_eq!(body["field"], "text");
        let body = report(&app, &fresh, &id, json!({"reason": "boring"})).await.expect(422);
        assert_eq!(body["field"], "reason");
        report(&app, &fresh, &id, json!({"text": "kein Grund"})).await.expect(422);
        report(&app, &fresh, &id, json!({"reason": "spam", "device": "x"})).await.expect(422);
        report(&app, &fresh, &id, json!({"reason": "spam", "text": "a\u{0}b"})).await.expect(422);
        // Exactly 500 characters (not bytes) is fine.
        report(&app, &fresh, &id, json!({"reason": "other", "text": "ä".repeat(500)})).await.expect(201);

        // Only devices: no token, a member's JWT, an unknown device token.
        app.post(&format!("/api/v1/messages/{id}/reports"), None, json!({"reason": "spam"}))
            .await
            .expect_error(401, "unauthenticated");
        app.post(&format!("/api/v1/messages/{id}/reports"), Some(&t.admin.access), json!({"reason": "spam"}))
            .await
            .expect_error(401, "unauthenticated");

        // Only what a resident can see: not unknown, scheduled, hidden, or suspended messages.
        let other = app.device().await;
        report(&app, &other, "no-such-message", json!({"reason": "spam"})).await.expect_error(404, "not_found");
        let scheduled = app
            .post(
                &format!("/api/v1/groups/{}/messages", t.group),
                Some(&t.owner.user.access),
                json!({"title": "Später", "body": "x", "publish_at": "2026-12-24T18:00:00+01:00"}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .expect("id")
            .to_owned();
        report(&app, &other, &scheduled, json!({"reason": "spam"})).await.expect_error(404, "not_found");
        let hidden = app.message(&t.owner.user, &t.group, "Versteckt").await;
        app.post(&format!("/api/v1/admin/messages/{hidden}/hide"), Some(&t.admin.access), json!({"reason": "x"}))
            .await
            .expect(200);
        report(&app, &other, &hidden, json!({"reason": "spam"})).await.expect_error(404, "not_found");
        app.post(&format!("/api/v1/admin/groups/{}/suspend", t.group), Some(&t.admin.access), json!({"reason": "x"}))
            .await
            .expect(200);
        report(&app, &other, &id, json!({"reason": "spam"})).await.expect_error(404, "not_found");

        use herold::db::schema::reports;
        let stored: i64 = app.with_conn(|c| reports::table.count().get_result(c).expect("count")).await;
        assert_eq!(stored, 4);
    }
);

both_backends!(
    async fn the_queue_puts_the_most_reported_first_then_the_oldest(app: TestApp) {
        let t = town(&app).await;
        let quiet = app.message(&t.owner.user, &t.group, "Einmal gemeldet, früh").await;
        let loud = app.message(&t.owner.user, &t.group, "Oft gemeldet").await;
        let late = app.message(&t.owner.user, &t.group, "Einmal gemeldet, spät").await;
        let fine = app.message(&t.owner.user, &t.group, "Nie gemeldet").await;
        let devices = [app.device().await, app.device().await, app.device().await];

        report(&app, &devices[0], &quiet, json!({"reason": "spam"})).await.expect(201);
        app.advance(SECOND);
        report(&app, &devices[0], &loud, json!({"reason": "offensive", "text": "beleidigend"})).await.expect(201);
        app.advance(SECOND);
        report(&app, &devices[1], &loud, json!({"reason": "offensive"})).await.expect(201);
        app.advance(SECOND);
        report(&app, &devices[2], &loud, json!({"reason": "false_information", "text": "stimmt nicht"}))
            .await
            .expect(201);
        report(&app, &devices[1], &late, json!({"reason": "other"})).await.expect(201);
        // Another town's reports stay in that town's queue.
        let theirs = app.message(&t.other.user, &t.other_group, "Sirenenprobe").await;
        report(&app, &devices[0], &theirs, json!({"reason": "spam"})).await.expect(201);

        let page = queue(&app, &t.admin, "").await.expect(200);
        assert_eq!(message_ids(&page), vec![loud.clone(), quiet.clone(), late.clone()]);
        assert!(!message_ids(&page).contains(&fine));
        assert_eq!(page["next"], Value::Null);
        let top = &page["items"][0];
        assert_eq!(top["status"], "open");
        assert_eq!(top["report_count"], 3);
        assert_eq!(top["reasons"], json!({"spam": 0, "offensive": 2, "false_information": 1, "other": 0}));
        assert_eq!(
            top["texts"],
            json!([
                {"reason": "offensive", "text": "beleidigend", "reported_at": "2026-11-26T12:00:01.000Z"},
                {"reason": "false_information", "text": "stimmt nicht", "reported_at": "2026-11-26T12:00:03.000Z"},
            ])
        );
        assert_eq!(top["first_reported_at"], "2026-11-26T12:00:01.000Z");
        assert_eq!(top["last_reported_at"], "2026-11-26T12:00:03.000Z");
        assert_eq!(top["resolution"], Value::Null);
        let message = &top["message"];
        assert_eq!(message["title"], "Oft gemeldet");
        assert_eq!(message["body"], "Oft gemeldet: Text");
        assert_eq!(
            message["group"],
            json!({"id": t.group, "name": "Spielplan", "verified": false, "status": "active"})
        );
        assert_eq!(message["organization"], json!({"id": t.owner.org_id, "name": "SV Wismar"}));
        assert_eq!(message["hidden"], false);
        assert_eq!(message["tenant"], "wismar");
        // Who reported stays unknown: no device id, no token, anywhere.
        let text = page.to_string();
        for id in device_ids(&app).await {
            assert!(!text.contains(&id), "device id in the queue: {text}");
        }
        for device in &devices {
            assert!(!text.contains(&device.token));
        }
        assert!(!text.contains("device"), "{text}");

        // Pages of one.
        let first = queue(&app, &t.admin, "?limit=1").await.expect(200);
        assert_eq!(message_ids(&first), vec![loud.clone()]);
        let mut seen = message_ids(&first);
        let mut next = first["next"].as_str().map(str::to_owned);
        while let Some(cursor) = next {
            let page = queue(&app, &t.admin, &format!("?limit=1&cursor={cursor}")).await.expect(200);
            seen.extend(message_ids(&page));
            next = page["next"].as_str().map(str::to_owned);
        }
        assert_eq!(seen, vec![loud, quiet, late]);
        assert_eq!(queue(&app, &t.admin, "?status=resolved").await.expect(200), json!({"items": [], "next": null}));
        queue(&app, &t.admin, "?status=closed").await.expect(422);

        // The town's city admins and the operator; nobody else.
        assert_eq!(message_ids(&queue(&app, &t.operator, "").await.expect(200)).len(), 3);
        for who in [&t.stranger, &t.owner.user, &t.other.user] {
            queue(&app, who, "").await.expect_error(403, "city_admin_required");
        }
        app.get("/api/v1/admin/tenants/wismar/reports", Some(&devices[0].token))
            .await
            .expect_error(401, "unauthenticated");
        let theirs_queue =
            app.get("/api/v1/admin/tenants/strausberg/reports", Some(&t.stranger.access)).await.expect(200);
        assert_eq!(message_ids(&theirs_queue), vec![theirs]);
    }
);

both_backends!(
    async fn dismissing_keeps_the_message_and_records_the_outcome(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.owner.user, &t.group, "Heimspiel").await;
        let (one, two) = (app.device().await, app.device().await);
        let first = report(&app, &one, &id, json!({"reason": "spam"})).await.expect(201);
        app.advance(SECOND);
        report(&app, &two, &id, json!({"reason": "other", "text": "gefällt mir nicht"})).await.expect(201);
        let handle = first["id"].as_str().expect("report id").to_owned();
        let item_id = queue(&app, &t.admin, "").await.expect(200)["items"][0]["id"].as_str().expect("id").to_owned();
        assert_eq!(item_id, handle, "the queue item is named by its first report");

        // Another town's admin, the owner: the report does not exist for them.
        for who in [&t.stranger, &t.owner.user, &t.other.user] {
            resolve(&app, who, &handle, json!({"action": "dismiss"})).await.expect_error(404, "not_found");
        }
        app.post(&format!("/api/v1/admin/reports/{handle}/resolve"), Some(&one.token), json!({"action": "dismiss"}))
            .await
            .expect_error(401, "unauthenticated");
        resolve(&app, &t.admin, "no-such-report", json!({"action": "dismiss"})).await.expect_error(404, "not_found");
        let body = resolve(&app, &t.admin, &handle, json!({"action": "ignore"})).await.expect(422);
        assert_eq!(body["field"], "action");
        resolve(&app, &t.admin, &handle, json!({"note": "x"})).await.expect(422);
        assert!(report_states(&app, &id).await.iter().all(|s| s.0 == "open"));

        app.advance(SECOND);
        let done = resolve(&app, &t.admin, &handle, json!({"action": "dismiss", "note": "harmlos"})).await.expect(200);
        assert_eq!(done["status"], "resolved");
        assert_eq!(done["report_count"], 2);
        assert_eq!(
            done["resolution"],
            json!({"action": "dismiss", "resolved_at": "2026-11-26T12:00:02.000Z", "resolved_by": "rathaus@wismar.de"})
        );
        assert_eq!(done["message"]["hidden"], false);
        let states = report_states(&app, &id).await;
        let resolved_at = crate::harness::T0 + 2 * SECOND;
        let by = format!("user:{}", t.admin.id);
        assert_eq!(
            states,
            vec![
                ("resolved".into(), Some("dismiss".into()), Some(resolved_at), Some(by.clone())),
                ("resolved".into(), Some("dismiss".into()), Some(resolved_at), Some(by)),
            ]
        );
        // The message stays; the queue is empty; the resolved list has it.
        app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200);
        assert_eq!(queue(&app, &t.admin, "").await.expect(200)["items"], json!([]));
        let resolved = queue(&app, &t.admin, "?status=resolved").await.expect(200);
        assert_eq!(message_ids(&resolved), vec![id.clone()]);
        // Once.
        resolve(&app, &t.admin, &handle, json!({"action": "hide_message"})).await.expect_error(409, "already_resolved");
        let log = app
            .get(
                &format!("/api/v1/admin/tenants/wismar/audit?action=report.resolve&target_id={id}"),
                Some(&t.admin.access),
            )
            .await
            .expect(200);
        assert_eq!(log["items"][0]["reason"], "dismiss: harmlos");
        assert_eq!(log["items"][0]["actor"], "rathaus@wismar.de");

        // Reported again by a third device: a new open item; one of the old devices still cannot.
        report(&app, &one, &id, json!({"reason": "spam"})).await.expect_error(409, "already_reported");
        report(&app, &app.device().await, &id, json!({"reason": "spam"})).await.expect(201);
        let again = queue(&app, &t.admin, "").await.expect(200);
        assert_eq!(again["items"][0]["report_count"], 1);
    }
);

both_backends!(
    async fn hiding_through_a_report_removes_the_message_with_the_note(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.owner.user, &t.group, "Falschmeldung").await;
        let device = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{}", t.group), Some(&device.token), Value::Null)
            .await
            .expect(200);
        let handle = report(&app, &device, &id, json!({"reason": "false_information"})).await.expect(201)["id"]
            .as_str()
            .expect("id")
            .to_owned();

        let done = resolve(&app, &t.admin, &handle, json!({"action": "hide_message", "note": "Termin ist falsch"}))
            .await
            .expect(200);
        assert_eq!(done["resolution"]["action"], "hide_message");
        assert_eq!(done["message"]["hidden"], true);
        assert_eq!(done["message"]["hidden_reason"], "Termin ist falsch");
        let gone = app.get(&format!("/api/v1/messages/{id}"), None).await.expect(410);
        assert_eq!(gone["reason"], "Termin ist falsch");
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(inbox["items"], json!([]));
        let log = app
            .get(&format!("/api/v1/admin/tenants/wismar/audit?target_id={id}"), Some(&t.admin.access))
            .await
            .expect(200);
        let actions: Vec<(&str, &str)> = log["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| (e["action"].as_str().expect("action"), e["reason"].as_str().expect("reason")))
            .collect();
        assert_eq!(actions.iter().map(|a| a.0).collect::<Vec<_>>().iter().filter(|a| **a == "message.hide").count(), 1);
        assert!(actions.contains(&("message.hide", "Termin ist falsch")));
        assert!(actions.contains(&("report.resolve", "hide_message: Termin ist falsch")));

        // Without a note, the message is hidden with a default reason.
        let other = app.message(&t.owner.user, &t.group, "Noch eine").await;
        let handle = report(&app, &device, &other, json!({"reason": "spam"})).await.expect(201)["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let done = resolve(&app, &t.admin, &handle, json!({"action": "hide_message"})).await.expect(200);
        assert!(done["message"]["hidden_reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
);

both_backends!(
    async fn suspending_through_a_report_takes_the_group_away(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.owner.user, &t.group, "Glücksspiel").await;
        let device = app.device().await;
        let handle = report(&app, &device, &id, json!({"reason": "spam"})).await.expect(201)["id"]
            .as_str()
            .expect("id")
            .to_owned();
        // The operator may resolve any town's reports.
        let done = resolve(&app, &t.operator, &handle, json!({"action": "suspend_group", "note": "Wettanbieter"}))
            .await
            .expect(200);
        assert_eq!(done["resolution"]["action"], "suspend_group");
        assert_eq!(done["resolution"]["resolved_by"], "betrieb@herold.example");
        assert_eq!(done["message"]["group"]["status"], "suspended");
        let directory = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert_eq!(directory["items"], json!([]));
        app.post(
            &format!("/api/v1/groups/{}/messages", t.group),
            Some(&t.owner.user.access),
            json!({"title": "x", "body": "y"}),
        )
        .await
        .expect_error(403, "group_suspended");
        let groups = app.get("/api/v1/admin/tenants/wismar/groups", Some(&t.admin.access)).await.expect(200);
        assert_eq!(groups["items"][0]["suspension_reason"], "Wettanbieter");
        let log = app
            .get(
                &format!("/api/v1/admin/tenants/wismar/audit?action=group.suspend&target_id={}", t.group),
                Some(&t.admin.access),
            )
            .await
            .expect(200);
        assert_eq!(log["items"][0]["reason"], "Wettanbieter");
        assert_eq!(log["items"][0]["actor"], "betrieb@herold.example");

        // Reports survive the reporting device's erasure.
        let other = app.message(&t.other.user, &t.other_group, "Sirenenprobe").await;
        let gone_device = app.device().await;
        let h = report(&app, &gone_device, &other, json!({"reason": "other", "text": "zu laut"})).await.expect(201)
            ["id"]
            .as_str()
            .expect("id")
            .to_owned();
        app.delete("/api/v1/devices/me", Some(&gone_device.token)).await.expect(204);
        let theirs = app.get("/api/v1/admin/tenants/strausberg/reports", Some(&t.stranger.access)).await.expect(200);
        assert_eq!(theirs["items"][0]["report_count"], 1);
        assert_eq!(theirs["items"][0]["texts"][0]["text"], "zu laut");
        resolve(&app, &t.admin, &h, json!({"action": "dismiss"})).await.expect_error(404, "not_found");
        resolve(&app, &t.stranger, &h, json!({"action": "dismiss"})).await.expect(200);
    }
);
