//! City admins and operators: the approval queue and the decisions about
//! organizations (approve, reject, suspend, reinstate), tenant-bound and audited.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Res, TestApp, User};

const SECOND: i64 = 1000;

fn decision_path(org_id: &str, decision: &str) -> String {
    format!("/api/v1/admin/organizations/{org_id}/{decision}")
}

async fn decide(app: &TestApp, admin: &User, org_id: &str, decision: &str, reason: Option<&str>) -> Res {
    let body = match reason {
        Some(r) => json!({ "reason": r }),
        None => Value::Null,
    };
    app.post(&decision_path(org_id, decision), Some(&admin.access), body).await
}

async fn list(app: &TestApp, admin: &User, tenant: &str, query: &str) -> Res {
    app.get(&format!("/api/v1/admin/tenants/{tenant}/organizations{query}"), Some(&admin.access)).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|o| o["id"].as_str().expect("id").to_owned()).collect()
}

/// One audit row: (tenant_id, actor, action, target_type, target_id, reason).
type AuditRow = (Option<String>, String, String, String, String, Option<String>);

/// Every audit row about `target`, oldest first.
async fn audit_of(app: &TestApp, target: &str) -> Vec<AuditRow> {
    use herold::db::schema::audit_log as a;
    let target = target.to_owned();
    app.with_conn(move |c| {
        a::table
            .filter(a::target_id.eq(&target))
            .order((a::created_at.asc(), a::id.asc()))
            .select((a::tenant_id, a::actor, a::action, a::target_type, a::target_id, a::reason))
            .load(c)
            .expect("audit rows")
    })
    .await
}

async fn tenant_id(app: &TestApp, slug: &str) -> String {
    use herold::db::schema::tenants;
    let slug = slug.to_owned();
    app.with_conn(move |c| {
        tenants::table.filter(tenants::slug.eq(&slug)).select(tenants::id).first(c).expect("tenant id")
    })
    .await
}

async fn org_status(app: &TestApp, org_id: &str) -> (String, Option<String>) {
    use herold::db::schema::organizations as o;
    let id = org_id.to_owned();
    app.with_conn(move |c| o::table.find(&id).select((o::status, o::status_reason)).first(c).expect("organization"))
        .await
}

/// The town's public directory as (name, subscriber count), sorted.
async fn directory(app: &TestApp, tenant: &str) -> Vec<(String, i64)> {
    let page = app.get(&format!("/api/v1/tenants/{tenant}/groups"), None).await.expect(200);
    let mut names: Vec<(String, i64)> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|g| (g["name"].as_str().expect("name").to_owned(), g["subscriber_count"].as_i64().expect("count")))
        .collect();
    names.sort();
    names
}

both_backends!(
    async fn the_queue_lists_pending_organizations_oldest_first_with_contacts(app: TestApp) {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let church = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        app.advance(SECOND);
        let club = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        app.advance(SECOND);
        let bakery = app.register_org("wismar", "laden@baeckerei-wismar.de", "Bäckerei Korn").await;
        app.advance(SECOND);
        let school = app.approved_org(&admin, "wismar", "sekretariat@gs-wismar.de", "Grundschule").await;
        app.register_org("strausberg", "info@kita-strausberg.de", "Kita Strausberg").await;
        // A second owner is a second contact.
        app.advance(SECOND);
        app.register_org("wismar", "vorstand@sv-wismar.de", "Förderverein").await;
        app.post(
            &format!("/api/v1/organizations/{}/members", club.org_id),
            Some(&club.user.access),
            json!({"email": "vorstand@sv-wismar.de", "role": "owner"}),
        )
        .await
        .expect(201);
        // An editor is not a contact.
        app.post(
            &format!("/api/v1/organizations/{}/members", church.org_id),
            Some(&church.user.access),
            json!({"email": "kuester@st-nikolai.de"}),
        )
        .await
        .expect(201);

        let pending = list(&app, &admin, "wismar", "?status=pending").await.expect(200);
        let items = pending["items"].as_array().expect("items");
        let foerderverein = items.last().expect("newest").clone();
        assert_eq!(items.len(), 4, "{pending}");
        assert_eq!(&ids(&pending)[..3], &[church.org_id.clone(), club.org_id.clone(), bakery.org_id.clone()]);
        assert_eq!(foerderverein["name"], "Förderverein");
        assert_eq!(pending["next"], Value::Null);
        let first = &items[0];
        assert_eq!(first["name"], "St. Nikolai");
        assert_eq!(first["status"], "pending");
        assert_eq!(first["tenant"], "wismar");
        assert_eq!(first["created_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(first["contacts"], json!(["buero@st-nikolai.de"]));
        assert!(first.get("role").is_none(), "the admin is no member: {first}");
        let mut club_contacts: Vec<String> = serde_json::from_value(items[1]["contacts"].clone()).expect("contacts");
        club_contacts.sort();
        assert_eq!(club_contacts, vec!["info@sv-wismar.de", "vorstand@sv-wismar.de"]);

        // Other statuses, and all of them.
        let approved = list(&app, &admin, "wismar", "?status=approved").await.expect(200);
        assert_eq!(ids(&approved), vec![school.org_id.clone()]);
        assert_eq!(approved["items"][0]["contacts"], json!(["sekretariat@gs-wismar.de"]));
        let rejected = list(&app, &admin, "wismar", "?status=rejected").await.expect(200);
        assert_eq!(rejected["items"], json!([]));
        let all = list(&app, &admin, "wismar", "").await.expect(200);
        assert_eq!(all["items"].as_array().map(Vec::len), Some(5));
        assert_eq!(ids(&all)[3], school.org_id);
        let all = list(&app, &admin, "wismar", "?status=").await.expect(200);
        assert_eq!(all["items"].as_array().map(Vec::len), Some(5));

        // Pagination: two by two, nothing twice, nothing lost.
        let page1 = list(&app, &admin, "wismar", "?status=pending&limit=2").await.expect(200);
        assert_eq!(ids(&page1), vec![church.org_id.clone(), club.org_id.clone()]);
        let cursor = page1["next"].as_str().expect("next cursor").to_owned();
        let page2 = list(&app, &admin, "wismar", &format!("?status=pending&limit=2&cursor={cursor}")).await.expect(200);
        assert_eq!(ids(&page2)[0], bakery.org_id);
        assert_eq!(page2["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(page2["next"], Value::Null);

        // Bad parameters.
        let res = list(&app, &admin, "wismar", "?status=waiting").await;
        let body = res.expect(422);
        assert_eq!(body["code"], "invalid_field");
        assert_eq!(body["field"], "status");
        assert_eq!(list(&app, &admin, "wismar", "?limit=0").await.expect(422)["field"], "limit");
        assert_eq!(list(&app, &admin, "wismar", "?limit=101").await.expect(422)["field"], "limit");
        assert_eq!(list(&app, &admin, "wismar", "?cursor=nonsense!").await.expect(422)["field"], "cursor");
        list(&app, &admin, "wismar", "?limit=viele").await.expect_error(400, "bad_query");
        list(&app, &admin, "rostock", "?status=pending").await.expect_error(404, "not_found");
    }
);

both_backends!(
    async fn decisions_follow_the_lifecycle_and_are_audited(app: TestApp) {
        app.with_tenant("wismar").await;
        let wismar = tenant_id(&app, "wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let actor = format!("user:{}", admin.id);
        let org = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let id = org.org_id.as_str();

        // Reject needs a reason; an empty or blank one is none.
        let res = decide(&app, &admin, id, "reject", None).await;
        assert_eq!(res.expect(422)["field"], "reason");
        assert_eq!(decide(&app, &admin, id, "reject", Some("")).await.expect(422)["field"], "reason");
        assert_eq!(decide(&app, &admin, id, "reject", Some("   ")).await.expect(422)["field"], "reason");
        let long = "r".repeat(501);
        assert_eq!(decide(&app, &admin, id, "reject", Some(&long)).await.expect(422)["field"], "reason");
        app.post(&decision_path(id, "reject"), Some(&admin.access), json!({"reason": 5}))
            .await
            .expect_error(422, "invalid_body");
        assert_eq!(org_status(&app, id).await, ("pending".to_owned(), None));

        // pending → rejected
        let rejected = decide(&app, &admin, id, "reject", Some("Kein Verein aus Wismar")).await.expect(200);
        assert_eq!(rejected["id"], id);
        assert_eq!(rejected["status"], "rejected");
        assert_eq!(rejected["status_reason"], "Kein Verein aus Wismar");
        // The organization sees status and reason.
        let own = app.get(&format!("/api/v1/organizations/{id}"), Some(&org.user.access)).await.expect(200);
        assert_eq!(own["status"], "rejected");
        assert_eq!(own["status_reason"], "Kein Verein aus Wismar");
        for invalid in ["reject", "reinstate"] {
            decide(&app, &admin, id, invalid, Some("nochmal")).await.expect_error(409, "invalid_transition");
        }
        decide(&app, &admin, id, "suspend", Some("Sperre")).await.expect_error(409, "invalid_transition");

        // rejected → approved (the town changed its mind); the reason is cleared.
        app.advance(SECOND);
        let approved = decide(&app, &admin, id, "approve", None).await.expect(200);
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["status_reason"], Value::Null);
        decide(&app, &admin, id, "approve", None).await.expect_error(409, "invalid_transition");
        decide(&app, &admin, id, "reinstate", None).await.expect_error(409, "invalid_transition");
        decide(&app, &admin, id, "reject", Some("doch nicht")).await.expect_error(409, "invalid_transition");

        // approved → suspended, reason required.
        assert_eq!(decide(&app, &admin, id, "suspend", None).await.expect(422)["field"], "reason");
        assert_eq!(org_status(&app, id).await.0, "approved");
        app.advance(SECOND);
        let suspended = decide(&app, &admin, id, "suspend", Some("Werbung für Glücksspiel")).await.expect(200);
        assert_eq!(suspended["status"], "suspended");
        assert_eq!(suspended["status_reason"], "Werbung für Glücksspiel");
        decide(&app, &admin, id, "approve", None).await.expect_error(409, "invalid_transition");
        decide(&app, &admin, id, "suspend", Some("nochmal")).await.expect_error(409, "invalid_transition");
        decide(&app, &admin, id, "reject", Some("nochmal")).await.expect_error(409, "invalid_transition");

        // suspended → approved again.
        app.advance(SECOND);
        let reinstated = app.post(&decision_path(id, "reinstate"), Some(&admin.access), json!({})).await.expect(200);
        assert_eq!(reinstated["status"], "approved");
        assert_eq!(reinstated["status_reason"], Value::Null);
        assert_eq!(org_status(&app, id).await, ("approved".to_owned(), None));

        // Unknown decisions are unknown routes.
        for word in ["delete", "APPROVE", "verify"] {
            decide(&app, &admin, id, word, None).await.expect_error(404, "not_found");
        }
        // Unauthenticated: 401; a member of the organization is no admin: 404.
        app.post(&decision_path(id, "suspend"), None, json!({"reason": "x"}))
            .await
            .expect_error(401, "unauthenticated");
        decide(&app, &org.user, id, "suspend", Some("selbst")).await.expect_error(404, "not_found");
        decide(&app, &admin, "unbekannt", "approve", None).await.expect_error(404, "not_found");

        // Exactly one audit row per decision that happened, none for the refused ones.
        let rows = audit_of(&app, id).await;
        let expected: Vec<AuditRow> = [
            ("organization.reject", Some("Kein Verein aus Wismar")),
            ("organization.approve", None),
            ("organization.suspend", Some("Werbung für Glücksspiel")),
            ("organization.reinstate", None),
        ]
        .into_iter()
        .map(|(action, reason)| {
            (
                Some(wismar.clone()),
                actor.clone(),
                action.to_owned(),
                "organization".to_owned(),
                id.to_owned(),
                reason.map(str::to_owned),
            )
        })
        .collect();
        assert_eq!(rows, expected);
    }
);

both_backends!(
    async fn a_pending_organization_may_be_suspended_and_a_decision_keeps_its_reason(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let org = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        // An optional reason on approve is recorded too.
        let other = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let approved = decide(&app, &admin, &other.org_id, "approve", Some("  Bekannt  ")).await.expect(200);
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["status_reason"], "Bekannt");
        assert_eq!(audit_of(&app, &other.org_id).await[0].5.as_deref(), Some("Bekannt"));

        let suspended = decide(&app, &admin, &org.org_id, "suspend", Some("Spam")).await.expect(200);
        assert_eq!(suspended["status"], "suspended");
        let reinstated = decide(&app, &admin, &org.org_id, "reinstate", None).await.expect(200);
        assert_eq!(reinstated["status"], "approved");
    }
);

both_backends!(
    async fn admins_are_bound_to_their_town_and_operators_act_everywhere(app: TestApp) {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let wismar_admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let strausberg_admin = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let operator = app.operator("betrieb@herold.example").await;
        let org = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let kita = app.register_org("strausberg", "info@kita-strausberg.de", "Kita").await;

        // Another town's admin: 403 on the list, 404 on the decision, nothing changes.
        list(&app, &strausberg_admin, "wismar", "?status=pending").await.expect_error(403, "city_admin_required");
        for (decision, reason) in [("approve", None), ("reject", Some("nein")), ("suspend", Some("nein"))] {
            decide(&app, &strausberg_admin, &org.org_id, decision, reason).await.expect_error(404, "not_found");
        }
        assert_eq!(org_status(&app, &org.org_id).await.0, "pending");
        assert!(audit_of(&app, &org.org_id).await.is_empty());
        app.get(&format!("/api/v1/organizations/{}", org.org_id), Some(&strausberg_admin.access))
            .await
            .expect_error(404, "not_found");
        // An organization owner is no admin at all.
        list(&app, &org.user, "wismar", "").await.expect_error(403, "city_admin_required");
        list(&app, &kita.user, "strausberg", "").await.expect_error(403, "city_admin_required");
        app.get("/api/v1/admin/tenants/wismar/organizations", None).await.expect_error(401, "unauthenticated");

        // Each admin in their own town.
        let own = list(&app, &strausberg_admin, "strausberg", "?status=pending").await.expect(200);
        assert_eq!(ids(&own), vec![kita.org_id.clone()]);
        let own = list(&app, &wismar_admin, "wismar", "?status=pending").await.expect(200);
        assert_eq!(ids(&own), vec![org.org_id.clone()]);

        // The operator sees and decides in every town.
        let w = list(&app, &operator, "wismar", "?status=pending").await.expect(200);
        assert_eq!(ids(&w), vec![org.org_id.clone()]);
        let s = list(&app, &operator, "strausberg", "?status=pending").await.expect(200);
        assert_eq!(ids(&s), vec![kita.org_id.clone()]);
        assert_eq!(decide(&app, &operator, &org.org_id, "approve", None).await.expect(200)["status"], "approved");
        assert_eq!(
            decide(&app, &operator, &kita.org_id, "reject", Some("Doppelt")).await.expect(200)["status"],
            "rejected"
        );
        let rows = audit_of(&app, &kita.org_id).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0.as_deref(), Some(tenant_id(&app, "strausberg").await.as_str()));
        assert_eq!(rows[0].1, format!("user:{}", operator.id));
        assert_eq!(rows[0].2, "organization.reject");
        assert_eq!(rows[0].5.as_deref(), Some("Doppelt"));
        assert_eq!(list(&app, &wismar_admin, "wismar", "?status=pending").await.expect(200)["items"], json!([]));
    }
);

both_backends!(
    async fn a_suspended_organizations_groups_leave_the_directory_and_return_with_their_subscribers(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let club = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let church = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let spielplan = app.group(&club, "Spielplan", "club").await;
        let jugend = app.group(&club, "Jugendabteilung", "club").await;
        let gemeinde = app.group(&church, "Gemeindebrief", "church").await;
        let message = app.message(&club.user, &spielplan, "Heimspiel am Samstag").await;

        let device = app.device().await;
        let other = app.device().await;
        for (d, g) in [(&device, &spielplan), (&other, &spielplan), (&device, &jugend)] {
            app.put(&format!("/api/v1/devices/me/subscriptions/{g}"), Some(&d.token), Value::Null).await.expect(200);
        }
        let everything =
            vec![("Gemeindebrief".to_owned(), 0), ("Jugendabteilung".to_owned(), 1), ("Spielplan".to_owned(), 2)];
        assert_eq!(directory(&app, "wismar").await, everything);

        decide(&app, &admin, &club.org_id, "suspend", Some("Beschwerden")).await.expect(200);
        assert_eq!(directory(&app, "wismar").await, vec![("Gemeindebrief".to_owned(), 0)]);
        app.get(&format!("/api/v1/groups/{spielplan}"), None).await.expect_error(404, "not_found");
        app.get(&format!("/api/v1/groups/{spielplan}/messages"), None).await.expect_error(404, "not_found");
        app.get(&format!("/api/v1/messages/{message}"), None).await.expect_error(404, "not_found");
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(inbox["items"], json!([]));
        // Nobody can follow it meanwhile.
        let third = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{spielplan}"), Some(&third.token), Value::Null)
            .await
            .expect_error(404, "not_found");
        app.get(&format!("/api/v1/groups/{gemeinde}"), None).await.expect(200);

        decide(&app, &admin, &club.org_id, "reinstate", None).await.expect(200);
        assert_eq!(directory(&app, "wismar").await, everything);
        let detail = app.get(&format!("/api/v1/groups/{spielplan}"), None).await.expect(200);
        assert_eq!(detail["subscriber_count"], 2);
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(inbox["items"][0]["id"], message.as_str());
        app.get(&format!("/api/v1/messages/{message}"), None).await.expect(200);
    }
);
