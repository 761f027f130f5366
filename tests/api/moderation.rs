//! The town moderates: organizations declare a kind, city admins verify,
//! suspend and reinstate groups, hide and restore messages, and read the
//! audit log of their town (the operator: of every town). Another town's
//! city admin, organization members and devices can do none of it.

use actix_web::http::Method;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Device, Owner, Res, TestApp, User, PASSWORD};

const SECOND: i64 = 1000;

/// Wismar with its city admin, an approved organization with an owner and
/// an editor, a group followed by a device; Strausberg with its own admin
/// and organization; the operator.
struct Town {
    admin: User,
    stranger: User,
    operator: User,
    owner: Owner,
    editor: User,
    group: String,
    device: Device,
    other: Owner,
    other_group: String,
}

async fn town(app: &TestApp) -> Town {
    app.with_tenant("wismar").await;
    app.with_tenant("strausberg").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let stranger = app.city_admin("strausberg", "rathaus@strausberg.de").await;
    let operator = app.operator("betrieb@herold.example").await;
    let owner = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
    let editor = app.invited_editor(&owner, "presse@sv-wismar.de").await;
    let group = app.group(&owner, "Spielplan", "club").await;
    let device = app.device().await;
    follow(app, &device, &group).await;
    let other = app.approved_org(&stranger, "strausberg", "wehr@feuerwehr-strausberg.de", "Feuerwehr").await;
    let other_group = app.group(&other, "Einsatzinfo", "administration").await;
    Town { admin, stranger, operator, owner, editor, group, device, other, other_group }
}

async fn follow(app: &TestApp, device: &Device, group: &str) {
    app.put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device.token), Value::Null).await.expect(200);
}

async fn group_action(app: &TestApp, who: Option<&User>, group: &str, action: &str, reason: Option<&str>) -> Res {
    let body = reason.map(|r| json!({ "reason": r })).unwrap_or(Value::Null);
    app.post(&format!("/api/v1/admin/groups/{group}/{action}"), who.map(|u| u.access.as_str()), body).await
}

async fn message_action(app: &TestApp, who: Option<&User>, message: &str, action: &str, reason: Option<&str>) -> Res {
    let body = reason.map(|r| json!({ "reason": r })).unwrap_or(Value::Null);
    app.post(&format!("/api/v1/admin/messages/{message}/{action}"), who.map(|u| u.access.as_str()), body).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|o| o["id"].as_str().expect("id").to_owned()).collect()
}

async fn directory(app: &TestApp) -> Vec<String> {
    ids(&app.get("/api/v1/tenants/wismar/groups", None).await.expect(200))
}

async fn inbox(app: &TestApp, device: &Device) -> Vec<String> {
    ids(&app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200))
}

async fn feed(app: &TestApp, group: &str) -> Res {
    app.get(&format!("/api/v1/groups/{group}/messages"), None).await
}

/// (verified, status) of a group, straight from the database.
async fn group_state(app: &TestApp, group: &str) -> (bool, String) {
    use herold::db::schema::broadcast_groups as g;
    let id = group.to_owned();
    app.with_conn(move |c| g::table.find(&id).select((g::verified, g::status)).first(c).expect("group")).await
}

/// (hidden, hidden_reason) of a message.
async fn message_state(app: &TestApp, message: &str) -> (bool, Option<String>) {
    use herold::db::schema::messages as m;
    let id = message.to_owned();
    app.with_conn(move |c| m::table.find(&id).select((m::hidden, m::hidden_reason)).first(c).expect("message")).await
}

async fn audit_count(app: &TestApp) -> i64 {
    use herold::db::schema::audit_log as a;
    app.with_conn(|c| a::table.count().get_result(c).expect("count")).await
}

// ---- organization kind ----

both_backends!(
    async fn organizations_declare_a_kind_shown_in_the_queue(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let registered = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": "buero@st-nikolai.de", "password": PASSWORD,
                       "organization": {"name": "St. Nikolai", "tenant": "wismar", "kind": "church",
                                        "description": "Evangelische Kirchengemeinde"}}),
            )
            .await
            .expect(201);
        assert_eq!(registered["organization"]["kind"], "church");
        let owner = User::from_tokens(&registered);
        app.advance(SECOND);

        // Without a kind: other. Unknown kinds are refused, naming the field.
        let plain = app
            .post("/api/v1/organizations", Some(&owner.access), json!({"name": "Kirchenchor", "tenant": "wismar"}))
            .await
            .expect(201);
        assert_eq!(plain["kind"], "other");
        app.advance(SECOND);
        let school = app
            .post(
                "/api/v1/organizations",
                Some(&owner.access),
                json!({"name": "Kirchschule", "tenant": "wismar", "kind": "school"}),
            )
            .await
            .expect(201);
        assert_eq!(school["kind"], "school");
        for kind in ["sect", "system", "Church"] {
            let res = app
                .post(
                    "/api/v1/organizations",
                    Some(&owner.access),
                    json!({"name": "Irgendwas", "tenant": "wismar", "kind": kind}),
                )
                .await;
            let body = res.expect(422);
            assert_eq!(body["field"], "organization.kind", "{body}");
        }
        let body = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": "x@example.org", "password": PASSWORD,
                       "organization": {"name": "Laden", "tenant": "wismar", "kind": "shop"}}),
            )
            .await
            .expect(422);
        assert_eq!(body["field"], "organization.kind");
        // The refused registration left no account behind.
        app.post("/api/v1/auth/login", None, json!({"email": "x@example.org", "password": PASSWORD}))
            .await
            .expect_error(401, "bad_credentials");

        // The town's queue shows what was declared: name, kind, contact, description.
        let queue = app.get("/api/v1/admin/tenants/wismar/organizations?status=pending", Some(&admin.access)).await;
        let queue = queue.expect(200);
        let first = &queue["items"][0];
        assert_eq!(first["name"], "St. Nikolai");
        assert_eq!(first["kind"], "church");
        assert_eq!(first["description"], "Evangelische Kirchengemeinde");
        assert_eq!(first["contacts"], json!(["buero@st-nikolai.de"]));
        assert_eq!(queue["items"][1]["kind"], "other");
        // And the member's own view.
        let mine = app.get("/api/v1/organizations/mine", Some(&owner.access)).await.expect(200);
        assert_eq!(mine["items"][0]["kind"], "church");
    }
);

// ---- groups ----

both_backends!(
    async fn verified_groups_get_the_badge_and_lead_the_directory(app: TestApp) {
        let t = town(&app).await;
        let other = app.group(&t.owner, "Aalfang", "club").await;
        assert_eq!(directory(&app).await, vec![other.clone(), t.group.clone()]);

        let verified = group_action(&app, Some(&t.admin), &t.group, "verify", None).await.expect(200);
        assert_eq!(verified["verified"], true);
        assert_eq!(verified["status"], "active");
        assert_eq!(directory(&app).await, vec![t.group.clone(), other.clone()]);
        let page = app.get(&format!("/api/v1/groups/{}", t.group), None).await.expect(200);
        assert_eq!(page["verified"], true);
        // Messages carry the badge too.
        let id = app.message(&t.editor, &t.group, "Heimspiel").await;
        assert_eq!(app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200)["group"]["verified"], true);

        group_action(&app, Some(&t.admin), &t.group, "verify", None).await.expect_error(409, "invalid_transition");
        let unverified = group_action(&app, Some(&t.admin), &t.group, "unverify", None).await.expect(200);
        assert_eq!(unverified["verified"], false);
        group_action(&app, Some(&t.admin), &t.group, "unverify", None).await.expect_error(409, "invalid_transition");
        assert_eq!(directory(&app).await, vec![other, t.group.clone()]);
        // Unknown actions are no route.
        group_action(&app, Some(&t.admin), &t.group, "promote", None).await.expect_error(404, "not_found");
        group_action(&app, Some(&t.admin), "no-such-group", "verify", None).await.expect_error(404, "not_found");
    }
);

both_backends!(
    async fn a_suspended_group_vanishes_and_returns_with_its_subscribers(app: TestApp) {
        let t = town(&app).await;
        let posted = app.message(&t.editor, &t.group, "Heimspiel").await;
        assert_eq!(inbox(&app, &t.device).await, vec![posted.clone()]);

        // A reason is required; blank is none.
        group_action(&app, Some(&t.admin), &t.group, "suspend", None).await.expect(422);
        group_action(&app, Some(&t.admin), &t.group, "suspend", Some("   ")).await.expect(422);
        assert_eq!(group_state(&app, &t.group).await.1, "active");

        let suspended = group_action(&app, Some(&t.admin), &t.group, "suspend", Some("Wettwerbung")).await.expect(200);
        assert_eq!(suspended["status"], "suspended");
        assert_eq!(suspended["subscriber_count"], 1);
        // Gone from directory, group page, feed, inbox; nobody new can follow; nobody posts.
        assert!(directory(&app).await.is_empty());
        app.get(&format!("/api/v1/groups/{}", t.group), None).await.expect_error(404, "not_found");
        feed(&app, &t.group).await.expect_error(404, "not_found");
        assert!(inbox(&app, &t.device).await.is_empty());
        let newcomer = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{}", t.group), Some(&newcomer.token), Value::Null)
            .await
            .expect_error(404, "not_found");
        for poster in [&t.editor, &t.owner.user] {
            app.post(
                &format!("/api/v1/groups/{}/messages", t.group),
                Some(&poster.access),
                json!({"title": "Trotzdem", "body": "x"}),
            )
            .await
            .expect_error(403, "group_suspended");
        }
        // The members still see their group, suspended.
        let own =
            app.get(&format!("/api/v1/organizations/{}/groups", t.owner.org_id), Some(&t.owner.user.access)).await;
        assert_eq!(own.expect(200)["items"][0]["status"], "suspended");
        group_action(&app, Some(&t.admin), &t.group, "suspend", Some("nochmal"))
            .await
            .expect_error(409, "invalid_transition");
        // The console lists it with the reason.
        let list = app.get("/api/v1/admin/tenants/wismar/groups?status=suspended", Some(&t.admin.access)).await;
        let list = list.expect(200);
        assert_eq!(ids(&list), vec![t.group.clone()]);
        assert_eq!(list["items"][0]["suspension_reason"], "Wettwerbung");
        assert_eq!(list["items"][0]["organization_status"], "approved");

        // Reinstated: back everywhere, with its follower.
        let back = group_action(&app, Some(&t.admin), &t.group, "reinstate", None).await.expect(200);
        assert_eq!(back["status"], "active");
        assert_eq!(back["subscriber_count"], 1);
        assert_eq!(directory(&app).await, vec![t.group.clone()]);
        assert_eq!(inbox(&app, &t.device).await, vec![posted.clone()]);
        assert_eq!(ids(&feed(&app, &t.group).await.expect(200)), vec![posted]);
        group_action(&app, Some(&t.admin), &t.group, "reinstate", None).await.expect_error(409, "invalid_transition");
        app.message(&t.editor, &t.group, "Wieder da").await;

        // An archived group is past moderating.
        app.delete(&format!("/api/v1/groups/{}", t.group), Some(&t.owner.user.access)).await.expect(204);
        for action in ["verify", "suspend", "reinstate"] {
            group_action(&app, Some(&t.admin), &t.group, action, Some("x"))
                .await
                .expect_error(409, "invalid_transition");
        }
    }
);

both_backends!(
    async fn group_moderation_is_the_towns_alone(app: TestApp) {
        let t = town(&app).await;
        let before = audit_count(&app).await;
        for (action, reason) in [("verify", None), ("suspend", Some("nein")), ("unverify", None), ("reinstate", None)] {
            // Another town's admin, the owner, the editor: the group does not exist for them.
            for who in [&t.stranger, &t.owner.user, &t.editor] {
                group_action(&app, Some(who), &t.group, action, reason).await.expect_error(404, "not_found");
            }
            group_action(&app, None, &t.group, action, reason).await.expect_error(401, "unauthenticated");
            app.post(
                &format!("/api/v1/admin/groups/{}/{action}", t.group),
                Some(&t.device.token),
                json!({"reason": "x"}),
            )
            .await
            .expect_error(401, "unauthenticated");
            // Strausberg's admin cannot touch Wismar's, Wismar's cannot touch Strausberg's.
            group_action(&app, Some(&t.admin), &t.other_group, action, reason).await.expect_error(404, "not_found");
        }
        assert_eq!(group_state(&app, &t.group).await, (false, "active".to_owned()));
        assert_eq!(group_state(&app, &t.other_group).await, (false, "active".to_owned()));
        assert_eq!(audit_count(&app).await, before);

        // The operator acts in every town.
        group_action(&app, Some(&t.operator), &t.other_group, "verify", None).await.expect(200);
        group_action(&app, Some(&t.stranger), &t.other_group, "unverify", None).await.expect(200);

        // The console list: the town's city admins and the operator; others 403.
        let extra = app.group(&t.owner, "Aalfang", "club").await;
        let list = app.get("/api/v1/admin/tenants/wismar/groups", Some(&t.admin.access)).await.expect(200);
        assert_eq!(ids(&list), vec![extra.clone(), t.group.clone()]);
        assert_eq!(list["items"][0]["status"], "active");
        let list = app.get("/api/v1/admin/tenants/strausberg/groups", Some(&t.operator.access)).await.expect(200);
        assert_eq!(ids(&list), vec![t.other_group.clone()]);
        for who in [&t.stranger, &t.owner.user, &t.editor] {
            app.get("/api/v1/admin/tenants/wismar/groups", Some(&who.access))
                .await
                .expect_error(403, "city_admin_required");
        }
        app.get("/api/v1/admin/tenants/wismar/groups", Some(&t.device.token))
            .await
            .expect_error(401, "unauthenticated");
        app.get("/api/v1/admin/tenants/atlantis/groups", Some(&t.admin.access)).await.expect_error(404, "not_found");
        app.get("/api/v1/admin/tenants/wismar/groups?status=gone", Some(&t.admin.access)).await.expect(422);
        app.get("/api/v1/admin/tenants/wismar/groups?status=system", Some(&t.admin.access)).await.expect(422);
        // Paginated, every group once.
        let first = app.get("/api/v1/admin/tenants/wismar/groups?limit=1", Some(&t.admin.access)).await.expect(200);
        assert_eq!(ids(&first), vec![extra]);
        let next = first["next"].as_str().expect("next page");
        let second = app
            .get(&format!("/api/v1/admin/tenants/wismar/groups?limit=1&cursor={next}"), Some(&t.admin.access))
            .await
            .expect(200);
        assert_eq!(ids(&second), vec![t.group.clone()]);
        assert_eq!(second["next"], Value::Null);
    }
);

// ---- messages ----

both_backends!(
    async fn a_hidden_message_leaves_feed_and_inbox_and_answers_410(app: TestApp) {
        let t = town(&app).await;
        let kept = app.message(&t.editor, &t.group, "Heimspiel").await;
        app.advance(SECOND);
        let bad = app.message(&t.editor, &t.group, "Wettbüro-Werbung").await;
        assert_eq!(inbox(&app, &t.device).await, vec![bad.clone(), kept.clone()]);

        // A reason is required.
        message_action(&app, Some(&t.admin), &bad, "hide", None).await.expect(422);
        message_action(&app, Some(&t.admin), &bad, "hide", Some("  ")).await.expect(422);
        assert_eq!(message_state(&app, &bad).await, (false, None));

        let hidden = message_action(&app, Some(&t.admin), &bad, "hide", Some("Werbung für Glücksspiel")).await;
        let hidden = hidden.expect(200);
        assert_eq!(hidden["hidden"], true);
        assert_eq!(hidden["hidden_reason"], "Werbung für Glücksspiel");
        assert_eq!(hidden["group"]["id"], t.group.as_str());
        assert_eq!(hidden["organization"]["name"], "SV Wismar");

        assert_eq!(inbox(&app, &t.device).await, vec![kept.clone()]);
        assert_eq!(ids(&feed(&app, &t.group).await.expect(200)), vec![kept.clone()]);
        // A delivered notification opened later: removed, and why.
        let gone = app.get(&format!("/api/v1/messages/{bad}"), None).await;
        let body = gone.expect(410);
        assert_eq!(body["code"], "message_removed");
        assert_eq!(body["reason"], "Werbung für Glücksspiel");
        assert!(body.get("title").is_none(), "{body}");
        // The organization still sees it, hidden, with the reason.
        let own = app.get(&format!("/api/v1/groups/{}/messages", t.group), Some(&t.editor.access)).await.expect(200);
        let item = own["items"].as_array().expect("items").iter().find(|m| m["id"] == bad.as_str()).expect("own");
        assert_eq!(item["status"], "hidden");
        assert_eq!(item["hidden_reason"], "Werbung für Glücksspiel");
        message_action(&app, Some(&t.admin), &bad, "hide", Some("nochmal"))
            .await
            .expect_error(409, "invalid_transition");

        // Restored: back in feed, inbox and on its page.
        let restored = message_action(&app, Some(&t.admin), &bad, "restore", None).await.expect(200);
        assert_eq!(restored["hidden"], false);
        assert_eq!(restored["hidden_reason"], Value::Null);
        assert_eq!(inbox(&app, &t.device).await, vec![bad.clone(), kept.clone()]);
        app.get(&format!("/api/v1/messages/{bad}"), None).await.expect(200);
        message_action(&app, Some(&t.admin), &bad, "restore", None).await.expect_error(409, "invalid_transition");
        message_action(&app, Some(&t.admin), &bad, "delete", None).await.expect_error(404, "not_found");
        message_action(&app, Some(&t.admin), "no-such-message", "hide", Some("x")).await.expect_error(404, "not_found");
    }
);

both_backends!(
    async fn hiding_is_the_towns_alone(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.editor, &t.group, "Heimspiel").await;
        let theirs = app.message(&t.other.user, &t.other_group, "Sirenenprobe").await;
        let before = audit_count(&app).await;
        for who in [&t.stranger, &t.owner.user, &t.editor] {
            message_action(&app, Some(who), &id, "hide", Some("x")).await.expect_error(404, "not_found");
        }
        message_action(&app, None, &id, "hide", Some("x")).await.expect_error(401, "unauthenticated");
        app.post(&format!("/api/v1/admin/messages/{id}/hide"), Some(&t.device.token), json!({"reason": "x"}))
            .await
            .expect_error(401, "unauthenticated");
        message_action(&app, Some(&t.admin), &theirs, "hide", Some("x")).await.expect_error(404, "not_found");
        assert_eq!(message_state(&app, &id).await, (false, None));
        assert_eq!(message_state(&app, &theirs).await, (false, None));

        // Restoring, likewise.
        message_action(&app, Some(&t.admin), &id, "hide", Some("Prüfung")).await.expect(200);
        for who in [&t.stranger, &t.owner.user, &t.editor] {
            message_action(&app, Some(who), &id, "restore", None).await.expect_error(404, "not_found");
        }
        assert!(message_state(&app, &id).await.0);
        assert_eq!(audit_count(&app).await, before + 1);

        // The operator, anywhere.
        message_action(&app, Some(&t.operator), &theirs, "hide", Some("Falsch")).await.expect(200);
        message_action(&app, Some(&t.operator), &id, "restore", None).await.expect(200);
        assert_eq!(message_state(&app, &theirs).await, (true, Some("Falsch".into())));
        assert_eq!(message_state(&app, &id).await, (false, None));
    }
);

// ---- audit log ----

both_backends!(
    async fn every_action_of_admins_and_owners_is_in_the_audit_log(app: TestApp) {
        let t = town(&app).await;
        let id = app.message(&t.editor, &t.group, "Heimspiel").await;
        app.advance(SECOND);
        app.patch(
            &format!("/api/v1/groups/{}", t.group),
            Some(&t.owner.user.access),
            json!({"name": "Spielplan 1. Herren"}),
        )
        .await
        .expect(200);
        app.advance(SECOND);
        group_action(&app, Some(&t.admin), &t.group, "verify", None).await.expect(200);
        app.advance(SECOND);
        group_action(&app, Some(&t.admin), &t.group, "suspend", Some("Prüfung")).await.expect(200);
        app.advance(SECOND);
        group_action(&app, Some(&t.admin), &t.group, "reinstate", None).await.expect(200);
        app.advance(SECOND);
        message_action(&app, Some(&t.admin), &id, "hide", Some("Falsch")).await.expect(200);
        app.advance(SECOND);
        message_action(&app, Some(&t.operator), &id, "restore", Some("doch richtig")).await.expect(200);
        app.advance(SECOND);
        // Something the CLI did (the operator), installation-wide and in the town.
        let now = app.state.now_ms();
        let wismar_id = {
            use herold::db::schema::tenants;
            app.with_conn(|c| tenants::table.filter(tenants::slug.eq("wismar")).select(tenants::id).first::<String>(c))
                .await
                .expect("tenant")
        };
        app.with_conn(move |c| {
            herold::audit::record(
                c,
                herold::audit::Entry {
                    tenant_id: Some(&wismar_id),
                    actor: "operator".into(),
                    action: "city_admin.create",
                    target_type: "user",
                    target_id: "someone",
                    reason: None,
                },
                now,
            )
        })
        .await
        .expect("record");
        let get = |path: String, who: &User| {
            let token = who.access.clone();
            let app = &app;
            async move { app.get(&path, Some(&token)).await }
        };

        let log = get("/api/v1/admin/tenants/wismar/audit".into(), &t.admin).await.expect(200);
        let mut actions: Vec<&str> =
            log["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("action")).collect();
        // The town was set up within one millisecond: those three in any order.
        actions[7..].sort();
        assert_eq!(
            actions,
            vec![
                "city_admin.create",
                "message.restore",
                "message.hide",
                "group.reinstate",
                "group.suspend",
                "group.verify",
                "group.update",
                "group.create",
                "member.add",
                "organization.approve",
            ],
            "{log}"
        );
        let first = &log["items"][0];
        assert_eq!(first["actor"], "operator");
        assert_eq!(first["actor_type"], "operator");
        let restore = &log["items"][1];
        assert_eq!(restore["actor"], "betrieb@herold.example");
        assert_eq!(restore["actor_type"], "user");
        assert_eq!(restore["tenant"], "wismar");
        assert_eq!(restore["target_type"], "message");
        assert_eq!(restore["target_id"], id.as_str());
        assert_eq!(restore["reason"], "doch richtig");
        let suspend = &log["items"][4];
        assert_eq!(suspend["actor"], "rathaus@wismar.de");
        assert_eq!(suspend["reason"], "Prüfung");
        assert_eq!(suspend["target_id"], t.group.as_str());
        assert_eq!(log["items"][6]["actor"], "info@sv-wismar.de");
        assert!(suspend["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
        // Strausberg's own actions are not in Wismar's log.
        assert!(!log.to_string().contains(&t.other_group), "{log}");

        // Filters.
        let only = |q: &str| get(format!("/api/v1/admin/tenants/wismar/audit?{q}"), &t.admin);
        let by_action = only("action=group.suspend").await.expect(200);
        assert_eq!(by_action["items"].as_array().map(Vec::len), Some(1));
        let by_actor = only("actor=RATHAUS@wismar.de").await.expect(200);
        assert_eq!(by_actor["items"].as_array().map(Vec::len), Some(5), "{by_actor}");
        assert!(by_actor["items"].as_array().expect("items").iter().all(|e| e["actor"] == "rathaus@wismar.de"));
        let by_operator = only("actor=operator").await.expect(200);
        assert_eq!(by_operator["items"].as_array().map(Vec::len), Some(1));
        let nobody = only("actor=niemand@example.org").await.expect(200);
        assert_eq!(nobody, json!({"items": [], "next": null}));
        let by_target = only(&format!("target_type=message&target_id={id}")).await.expect(200);
        let actions: Vec<&str> =
            by_target["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("a")).collect();
        assert_eq!(actions, vec!["message.restore", "message.hide"]);
        let by_type = only("target_type=group&action=group.create").await.expect(200);
        assert_eq!(by_type["items"].as_array().map(Vec::len), Some(1));

        // Pages of three, newest first, nothing twice, nothing lost.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = only(&format!("limit=3{cursor}")).await.expect(200);
            let items = ids(&page);
            assert!(items.len() <= 3);
            seen.extend(items);
            match page["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ids(&log));
        only("limit=0").await.expect(422);
        only("cursor=garbage!").await.expect(422);
        only("tenant=strausberg").await.expect(422);
    }
);

both_backends!(
    async fn the_audit_log_is_readable_by_its_town_and_the_operator_and_append_only(app: TestApp) {
        let t = town(&app).await;
        group_action(&app, Some(&t.admin), &t.group, "verify", None).await.expect(200);
        group_action(&app, Some(&t.stranger), &t.other_group, "verify", None).await.expect(200);

        // The town's log: its city admins and the operator; nobody else.
        for who in [&t.stranger, &t.owner.user, &t.editor, &t.other.user] {
            app.get("/api/v1/admin/tenants/wismar/audit", Some(&who.access))
                .await
                .expect_error(403, "city_admin_required");
        }
        app.get("/api/v1/admin/tenants/wismar/audit", None).await.expect_error(401, "unauthenticated");
        app.get("/api/v1/admin/tenants/wismar/audit", Some(&t.device.token)).await.expect_error(401, "unauthenticated");
        app.get("/api/v1/admin/tenants/atlantis/audit", Some(&t.admin.access)).await.expect_error(404, "not_found");
        let theirs = app.get("/api/v1/admin/tenants/strausberg/audit", Some(&t.operator.access)).await.expect(200);
        assert!(theirs["items"].as_array().expect("items").iter().all(|e| e["tenant"] == "strausberg"));
        assert!(theirs.to_string().contains(&t.other_group));

        // Across towns: the operator only.
        for who in [&t.admin, &t.stranger, &t.owner.user, &t.editor] {
            app.get("/api/v1/admin/audit", Some(&who.access)).await.expect_error(403, "operator_required");
        }
        app.get("/api/v1/admin/audit", None).await.expect_error(401, "unauthenticated");
        let all = app.get("/api/v1/admin/audit?action=group.verify", Some(&t.operator.access)).await.expect(200);
        let mut towns: Vec<&str> =
            all["items"].as_array().expect("items").iter().map(|e| e["tenant"].as_str().expect("tenant")).collect();
        towns.sort();
        assert_eq!(towns, vec!["strausberg", "wismar"]);
        let one = app.get("/api/v1/admin/audit?tenant=strausberg", Some(&t.operator.access)).await.expect(200);
        assert!(one["items"].as_array().expect("items").iter().all(|e| e["tenant"] == "strausberg"));
        app.get("/api/v1/admin/audit?tenant=atlantis", Some(&t.operator.access)).await.expect_error(404, "not_found");

        // Append-only: no method changes or deletes an entry.
        let before = audit_count(&app).await;
        let entry = all["items"][0]["id"].as_str().expect("id").to_owned();
        for path in [
            "/api/v1/admin/audit".to_owned(),
            "/api/v1/admin/tenants/wismar/audit".to_owned(),
            format!("/api/v1/admin/audit/{entry}"),
            format!("/api/v1/admin/tenants/wismar/audit/{entry}"),
        ] {
            for method in [Method::DELETE, Method::PUT, Method::PATCH, Method::POST] {
                let res = app.call(method.clone(), &path, Some(&t.operator.access), json!({"reason": "x"})).await;
                assert!([404, 405].contains(&res.status.as_u16()), "{method} {path}: {}", res.status);
            }
        }
        assert_eq!(audit_count(&app).await, before);
    }
);

// ---- the city admin edits a group; roles and archiving in the audit log ----

/// The town's audit log filtered by `query`, newest first.
async fn audit(app: &TestApp, admin: &User, query: &str) -> Vec<Value> {
    let page = app.get(&format!("/api/v1/admin/tenants/wismar/audit?{query}"), Some(&admin.access)).await.expect(200);
    page["items"].as_array().expect("items").clone()
}

/// (action, actor, target_type, target_id, reason) of an audit entry.
fn entry(e: &Value) -> (String, String, String, String, Option<String>) {
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    (text("action"), text("actor"), text("target_type"), text("target_id"), e["reason"].as_str().map(str::to_owned))
}

both_backends!(
    async fn the_city_admin_renames_and_recategorizes_a_group_on_the_record(app: TestApp) {
        let t = town(&app).await;
        let edited = app
            .patch(
                &format!("/api/v1/groups/{}", t.group),
                Some(&t.admin.access),
                json!({"name": "Spielplan SV Wismar", "category": "culture"}),
            )
            .await
            .expect(200);
        assert_eq!(
            (edited["name"].as_str(), edited["category"].as_str()),
            (Some("Spielplan SV Wismar"), Some("culture"))
        );
        let public = app.get(&format!("/api/v1/groups/{}", t.group), None).await.expect(200);
        assert_eq!(
            (public["name"].as_str(), public["category"].as_str()),
            (Some("Spielplan SV Wismar"), Some("culture"))
        );
        let culture = app.get("/api/v1/tenants/wismar/groups?category=culture", None).await.expect(200);
        assert_eq!(ids(&culture), vec![t.group.clone()]);
        let updates = audit(&app, &t.admin, "action=group.update").await;
        assert_eq!(updates.len(), 1, "{updates:?}");
        assert_eq!(
            entry(&updates[0]),
            ("group.update".into(), "rathaus@wismar.de".into(), "group".into(), t.group.clone(), None)
        );
        assert_eq!(updates[0]["actor_type"], "user");

        // Another town's city admin and the organization's editor cannot.
        let before = audit_count(&app).await;
        app.patch(&format!("/api/v1/groups/{}", t.group), Some(&t.stranger.access), json!({"name": "Gekapert"}))
            .await
            .expect_error(404, "not_found");
        app.patch(&format!("/api/v1/groups/{}", t.group), Some(&t.editor.access), json!({"category": "business"}))
            .await
            .expect_error(403, "owner_required");
        app.patch(&format!("/api/v1/groups/{}", t.other_group), Some(&t.admin.access), json!({"name": "Gekapert"}))
            .await
            .expect_error(404, "not_found");
        // An unknown category is refused, naming the field.
        let bad =
            app.patch(&format!("/api/v1/groups/{}", t.group), Some(&t.admin.access), json!({"category": "sect"})).await;
        assert_eq!(bad.expect(422)["field"], "category");
        assert_eq!(audit_count(&app).await, before);
        let public = app.get(&format!("/api/v1/groups/{}", t.group), None).await.expect(200);
        assert_eq!(
            (public["name"].as_str(), public["category"].as_str()),
            (Some("Spielplan SV Wismar"), Some("culture"))
        );
    }
);

both_backends!(
    async fn role_changes_removals_and_archiving_are_in_the_audit_log(app: TestApp) {
        let t = town(&app).await;
        let members = format!("/api/v1/organizations/{}/members", t.owner.org_id);
        let editor_id = t.editor.id.clone();
        let owner_id = t.owner.user.id.clone();

        // Ownership transfer: the owner makes the editor owner, who then steps the old owner down.
        app.advance(SECOND);
        app.patch(&format!("{members}/{editor_id}"), Some(&t.owner.user.access), json!({"role": "owner"}))
            .await
            .expect(200);
        app.advance(SECOND);
        app.patch(&format!("{members}/{owner_id}"), Some(&t.editor.access), json!({"role": "editor"}))
            .await
            .expect(200);
        app.advance(SECOND);
        // The new owner removes the old one and archives the group.
        app.delete(&format!("{members}/{owner_id}"), Some(&t.editor.access)).await.expect(204);
        app.advance(SECOND);
        app.delete(&format!("/api/v1/groups/{}", t.group), Some(&t.editor.access)).await.expect(204);

        let roles: Vec<_> = audit(&app, &t.admin, "action=member.role").await.iter().map(entry).collect();
        assert_eq!(
            roles,
            vec![
                (
                    "member.role".into(),
                    "presse@sv-wismar.de".into(),
                    "user".into(),
                    owner_id.clone(),
                    Some("editor".into())
                ),
                (
                    "member.role".into(),
                    "info@sv-wismar.de".into(),
                    "user".into(),
                    editor_id.clone(),
                    Some("owner".into())
                ),
            ]
        );
        let removals: Vec<_> = audit(&app, &t.admin, "action=member.remove").await.iter().map(entry).collect();
        assert_eq!(
            removals,
            vec![("member.remove".into(), "presse@sv-wismar.de".into(), "user".into(), owner_id.clone(), None)]
        );
        let archived: Vec<_> = audit(&app, &t.admin, "action=group.archive").await.iter().map(entry).collect();
        assert_eq!(
            archived,
            vec![("group.archive".into(), "presse@sv-wismar.de".into(), "group".into(), t.group.clone(), None)]
        );
        // Newest first, in the order they happened.
        let latest: Vec<String> = audit(&app, &t.admin, "limit=4").await.iter().map(|e| entry(e).0).collect();
        assert_eq!(latest, vec!["group.archive", "member.remove", "member.role", "member.role"]);

        // Refused changes leave no entry: the last owner cannot step down, a former member changes nothing.
        let before = audit_count(&app).await;
        app.patch(&format!("{members}/{editor_id}"), Some(&t.editor.access), json!({"role": "editor"}))
            .await
            .expect_error(409, "last_owner");
        app.patch(&format!("{members}/{editor_id}"), Some(&t.owner.user.access), json!({"role": "editor"}))
            .await
            .expect_error(404, "not_found");
        assert_eq!(audit_count(&app).await, before);
    }
);
