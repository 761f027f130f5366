//! Organizations: accounts (register, login, tokens, invitations), members,
//! groups and posting messages.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Owner, Res, TestApp, User, PASSWORD, T0};

const MINUTE: i64 = 60 * 1000;
const DAY: i64 = 24 * 60 * MINUTE;

fn registration(email: &str, password: &str, org_name: &str, tenant: &str) -> Value {
    json!({"email": email, "password": password, "organization": {"name": org_name, "tenant": tenant}})
}

async fn register(app: &TestApp, body: Value) -> Res {
    app.post("/api/v1/auth/register", None, body).await
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> Res {
    app.post("/api/v1/auth/login", None, json!({"email": email, "password": password})).await
}

async fn refresh(app: &TestApp, token: &str) -> Res {
    app.post("/api/v1/auth/refresh", None, json!({"refresh_token": token})).await
}

/// Asserts a 422 naming `field`.
#[track_caller]
fn expect_field(res: Res, field: &str) {
    let body = res.expect(422);
    assert_eq!(body["code"], "invalid_field", "body: {body}");
    assert_eq!(body["field"], field, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
}

async fn count_users(app: &TestApp) -> i64 {
    use herold::db::schema::users;
    app.with_conn(|c| users::table.count().get_result::<i64>(c).expect("count users")).await
}

async fn count_orgs(app: &TestApp) -> i64 {
    use herold::db::schema::organizations;
    app.with_conn(|c| organizations::table.count().get_result::<i64>(c).expect("count organizations")).await
}

/// `(run_at, state)` of every fan-out job of a message.
async fn fanout_jobs_of(app: &TestApp, message_id: &str) -> Vec<(i64, String)> {
    use herold::db::schema::fanout_jobs;
    let id = message_id.to_owned();
    app.with_conn(move |c| {
        fanout_jobs::table
            .filter(fanout_jobs::message_id.eq(&id))
            .select((fanout_jobs::run_at, fanout_jobs::state))
            .load(c)
            .expect("fan-out jobs")
    })
    .await
}

/// Posts `{"title": "Titel", "body": "Text"}` with `extra` fields merged in.
async fn post_with(app: &TestApp, path: &str, token: &str, extra: Value) -> Res {
    let mut body = json!({"title": "Titel", "body": "Text"});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    app.post(path, Some(token), body).await
}

/// A town, its city admin and an approved organization with one group.
async fn town_with_group(app: &TestApp) -> (User, Owner, String) {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let org = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
    let group = app.group(&org, "Gemeindebrief", "church").await;
    (admin, org, group)
}

/// Adds `email` to the owner's organization; returns the response body.
async fn add_member(app: &TestApp, owner: &Owner, email: &str, role: Option<&str>) -> Res {
    let mut body = json!({ "email": email });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    app.post(&format!("/api/v1/organizations/{}/members", owner.org_id), Some(&owner.user.access), body).await
}

/// Adds an editor who already has an account (own organization) and logs them in.
async fn editor_of(app: &TestApp, owner: &Owner, tenant: &str, email: &str) -> User {
    app.register_org(tenant, email, &format!("Org of {email}")).await;
    add_member(app, owner, email, Some("editor")).await.expect(201);
    app.login(email).await
}

// ---------------------------------------------------------------- accounts

both_backends!(
    async fn register_returns_tokens_and_a_pending_organization(app: TestApp) {
        app.with_tenant("wismar").await;
        let body = register(&app, registration("Buero@St-Nikolai.de", PASSWORD, "St. Nikolai", "wismar")).await;
        let body = body.expect(201);
        assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert!(body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["user"]["email"], "buero@st-nikolai.de", "e-mail is stored lower-cased");
        let org = &body["organization"];
        assert_eq!(org["status"], "pending");
        assert_eq!(org["name"], "St. Nikolai");
        assert_eq!(org["tenant"], "wismar");
        assert_eq!(org["role"], "owner");
        assert_eq!(org["status_reason"], Value::Null);
        assert_eq!(org["created_at"], "2026-11-26T12:00:00.000Z");
        assert!(org["id"].as_str().is_some_and(|id| !id.is_empty()));
        // The password is never echoed back.
        assert!(!body.to_string().contains(PASSWORD));

        // The access token works at once.
        let me = app.get("/api/v1/me", body["access_token"].as_str()).await.expect(200);
        assert_eq!(me["id"], body["user"]["id"]);
    }
);

both_backends!(
    async fn register_rejects_bad_input_with_the_field_and_writes_nothing(app: TestApp) {
        app.with_tenant("wismar").await;
        let email = "kontakt@sv-wismar.de";
        for bad in ["not-an-email", "a@b", "@wismar.de", "kontakt@.de", "kon takt@wismar.de", ""] {
            expect_field(register(&app, registration(bad, PASSWORD, "SV Wismar", "wismar")).await, "email");
        }
        expect_field(register(&app, registration(email, "123456789", "SV Wismar", "wismar")).await, "password");
        expect_field(register(&app, registration(email, "", "SV Wismar", "wismar")).await, "password");
        expect_field(register(&app, registration(email, PASSWORD, "", "wismar")).await, "organization.name");
        expect_field(register(&app, registration(email, PASSWORD, "   ", "wismar")).await, "organization.name");
        expect_field(register(&app, registration(email, PASSWORD, "S", "wismar")).await, "organization.name");
        expect_field(
            register(&app, registration(email, PASSWORD, &"x".repeat(121), "wismar")).await,
            "organization.name",
        );
        expect_field(
            register(&app, registration(email, PASSWORD, "SV Wismar", "rostock")).await,
            "organization.tenant",
        );
        expect_field(register(&app, registration(email, PASSWORD, "SV Wismar", "")).await, "organization.tenant");
        expect_field(register(&app, registration(email, &"p".repeat(257), "SV Wismar", "wismar")).await, "password");
        let mut long_description = registration(email, PASSWORD, "SV Wismar", "wismar");
        long_description["organization"]["description"] = json!("d".repeat(1001));
        expect_field(register(&app, long_description).await, "organization.description");
        // A missing name is a malformed body, not a missing value.
        register(&app, json!({"email": email, "password": PASSWORD, "organization": {"tenant": "wismar"}}))
            .await
            .expect_error(422, "invalid_body");
        register(&app, json!({"email": email, "password": PASSWORD})).await.expect_error(422, "invalid_body");

        // Nothing of the failed attempts was stored: no user, no organization.
        assert_eq!(count_users(&app).await, 0);
        assert_eq!(count_orgs(&app).await, 0);
        login_with(&app, email, PASSWORD).await.expect_error(401, "bad_credentials");

        // The e-mail (used in the unknown-tenant attempt, which failed after the
        // user row) registers fine now; a 10-character password is enough.
        let body = register(&app, registration(email, "0123456789", "SV Wismar", "wismar")).await.expect(201);
        assert_eq!(body["organization"]["status"], "pending");
        assert_eq!(count_users(&app).await, 1);
        assert_eq!(count_orgs(&app).await, 1);
        login_with(&app, email, "0123456789").await.expect(200);
    }
);

both_backends!(
    async fn register_with_a_taken_email_is_409(app: TestApp) {
        app.with_tenant("wismar").await;
        app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        register(&app, registration("buero@st-nikolai.de", PASSWORD, "Zweite Gemeinde", "wismar"))
            .await
            .expect_error(409, "email_taken");
        // Case and surrounding blanks do not make a new address.
        register(&app, registration("  BUERO@St-Nikolai.DE ", PASSWORD, "Zweite Gemeinde", "wismar"))
            .await
            .expect_error(409, "email_taken");
        assert_eq!(count_users(&app).await, 1);
        assert_eq!(count_orgs(&app).await, 1);
    }
);

both_backends!(
    async fn login_checks_the_password_and_ignores_email_case(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;

        let res = login_with(&app, "buero@st-nikolai.de", "wrong password!").await;
        assert_eq!(res.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        res.expect_error(401, "bad_credentials");
        login_with(&app, "niemand@st-nikolai.de", PASSWORD).await.expect_error(401, "bad_credentials");
        login_with(&app, "", "").await.expect_error(401, "bad_credentials");

        for spelling in ["buero@st-nikolai.de", "BUERO@ST-NIKOLAI.DE", " Buero@St-Nikolai.de "] {
            let body = login_with(&app, spelling, PASSWORD).await.expect(200);
            assert_eq!(body["user"]["id"], owner.user.id.as_str());
            assert_eq!(body["user"]["email"], "buero@st-nikolai.de");
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 900);
            assert!(body["refresh_token"].as_str().is_some_and(|t| !t.is_empty()));
        }
    }
);

both_backends!(
    async fn access_token_expires_after_15_minutes(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let token = owner.user.access.as_str();
        app.get("/api/v1/me", Some(token)).await.expect(200);
        app.advance(15 * MINUTE - 1000);
        app.get("/api/v1/me", Some(token)).await.expect(200);
        app.advance(1000);
        let res = app.get("/api/v1/me", Some(token)).await;
        assert_eq!(res.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        res.expect_error(401, "unauthenticated");
        app.get("/api/v1/organizations/mine", Some(token)).await.expect_error(401, "unauthenticated");

        // The refresh token still gets a fresh access token.
        let body = refresh(&app, &owner.user.refresh).await.expect(200);
        app.get("/api/v1/me", body["access_token"].as_str()).await.expect(200);

        // No token, a garbage token, a forged one: 401.
        app.get("/api/v1/me", None).await.expect_error(401, "unauthenticated");
        app.get("/api/v1/me", Some("not.a.jwt")).await.expect_error(401, "unauthenticated");
        let forged = format!("{}x", body["access_token"].as_str().expect("token"));
        app.get("/api/v1/me", Some(&forged)).await.expect_error(401, "unauthenticated");
    }
);

both_backends!(
    async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let other_session = app.login("buero@st-nikolai.de").await;

        let first = owner.user.refresh.clone();
        let second_pair = refresh(&app, &first).await.expect(200);
        let second = second_pair["refresh_token"].as_str().expect("refresh").to_owned();
        assert_ne!(second, first);
        assert_eq!(second_pair["user"]["id"], owner.user.id.as_str());
        app.get("/api/v1/me", second_pair["access_token"].as_str()).await.expect(200);

        // The rotated token is dead …
        refresh(&app, &first).await.expect_error(401, "bad_credentials");
        // … and presenting it revoked the whole family: the newest one too.
        refresh(&app, &second).await.expect_error(401, "bad_credentials");

        // Another login (another family) is untouched.
        let third = refresh(&app, &other_session.refresh).await.expect(200);
        assert!(third["refresh_token"].as_str().is_some());

        refresh(&app, "hrt_unknown").await.expect_error(401, "bad_credentials");
        refresh(&app, "").await.expect_error(401, "bad_credentials");
    }
);

both_backends!(
    async fn refresh_token_expires_after_30_days(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let session = app.login("buero@st-nikolai.de").await;
        app.advance(30 * DAY - 1000);
        refresh(&app, &session.refresh).await.expect(200);
        app.advance(1000);
        refresh(&app, &owner.user.refresh).await.expect_error(401, "bad_credentials");
    }
);

both_backends!(
    async fn logout_revokes_the_refresh_token(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let rotated = refresh(&app, &owner.user.refresh).await.expect(200);
        let current = rotated["refresh_token"].as_str().expect("refresh").to_owned();
        let other_session = app.login("buero@st-nikolai.de").await;

        let res = app.post("/api/v1/auth/logout", None, json!({"refresh_token": current})).await;
        assert_eq!(res.expect(204), Value::Null);
        refresh(&app, &current).await.expect_error(401, "bad_credentials");
        // Logging out twice, or with an unknown token, is no error.
        app.post("/api/v1/auth/logout", None, json!({"refresh_token": current})).await.expect(204);
        app.post("/api/v1/auth/logout", None, json!({"refresh_token": "hrt_unknown"})).await.expect(204);
        // Only that session ended.
        refresh(&app, &other_session.refresh).await.expect(200);
    }
);

both_backends!(
    async fn me_and_my_organizations(app: TestApp) {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;

        let me = app.get("/api/v1/me", Some(&owner.user.access)).await.expect(200);
        assert_eq!(me["id"], owner.user.id.as_str());
        assert_eq!(me["email"], "buero@st-nikolai.de");
        assert_eq!(me["platform_admin"], false);
        assert_eq!(me["city_admin_of"], json!([]));
        assert_eq!(me["organizations"].as_array().map(Vec::len), Some(1));
        assert_eq!(me["organizations"][0]["id"], owner.org_id.as_str());
        assert_eq!(me["organizations"][0]["role"], "owner");
        assert_eq!(me["organizations"][0]["status"], "pending");

        // A second organization, in another town.
        app.advance(1000);
        let second = app
            .post(
                "/api/v1/organizations",
                Some(&owner.user.access),
                json!({"name": "Kita Regenbogen", "tenant": "strausberg", "description": "Kita"}),
            )
            .await
            .expect(201);
        assert_eq!(second["status"], "pending");
        assert_eq!(second["tenant"], "strausberg");
        assert_eq!(second["role"], "owner");
        assert_eq!(second["description"], "Kita");

        // The same checks as at registration.
        expect_field(
            app.post("/api/v1/organizations", Some(&owner.user.access), json!({"name": "Kita", "tenant": "rostock"}))
                .await,
            "organization.tenant",
        );
        expect_field(
            app.post("/api/v1/organizations", Some(&owner.user.access), json!({"name": "", "tenant": "wismar"})).await,
            "organization.name",
        );

        let mine = app.get("/api/v1/organizations/mine", Some(&owner.user.access)).await.expect(200);
        let items = mine["items"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], owner.org_id.as_str(), "oldest first");
        assert_eq!(items[0]["name"], "St. Nikolai");
        assert_eq!(items[1]["id"], second["id"]);
        assert_eq!(mine["next"], Value::Null);
        app.get("/api/v1/organizations/mine", None).await.expect_error(401, "unauthenticated");

        // The organization itself: its members and its town's admin see it.
        let org = app.get(&format!("/api/v1/organizations/{}", owner.org_id), Some(&owner.user.access)).await;
        assert_eq!(org.expect(200)["name"], "St. Nikolai");
        let seen = app.get(&format!("/api/v1/organizations/{}", owner.org_id), Some(&admin.access)).await.expect(200);
        assert_eq!(seen["status"], "pending");

        let me = app.get("/api/v1/me", Some(&admin.access)).await.expect(200);
        assert_eq!(me["city_admin_of"], json!(["wismar"]));
        assert_eq!(me["organizations"], json!([]));
        let op = app.operator("betrieb@herold.example").await;
        let me = app.get("/api/v1/me", Some(&op.access)).await.expect(200);
        assert_eq!(me["platform_admin"], true);
        assert_eq!(me["city_admin_of"], json!(["strausberg", "wismar"]));
    }
);

// ---------------------------------------------------------------- members

both_backends!(
    async fn owner_adds_existing_users_and_invites_new_ones(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        app.register_org("wismar", "kuester@st-nikolai.de", "Küsterei").await;

        // An existing account: added at once, no invitation.
        let added = add_member(&app, &owner, "Kuester@St-Nikolai.de", None).await.expect(201);
        assert_eq!(added["invite_token"], Value::Null);
        assert_eq!(added["member"]["email"], "kuester@st-nikolai.de");
        assert_eq!(added["member"]["role"], "editor", "editor is the default role");
        assert_eq!(added["member"]["active"], true);

        // A new e-mail: an invitation, shown once.
        let invited = add_member(&app, &owner, "pastorin@st-nikolai.de", Some("owner")).await.expect(201);
        let invite = invited["invite_token"].as_str().expect("invite token").to_owned();
        assert_eq!(invited["member"]["email"], "pastorin@st-nikolai.de");
        assert_eq!(invited["member"]["role"], "owner");
        assert_eq!(invited["member"]["active"], false);
        let invitee_id = invited["member"]["user_id"].as_str().expect("user id").to_owned();

        let members =
            app.get(&format!("/api/v1/organizations/{}/members", owner.org_id), Some(&owner.user.access)).await;
        let members = members.expect(200);
        let items = members["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        let me = items.iter().find(|m| m["user_id"] == owner.user.id.as_str()).expect("owner listed");
        assert_eq!(me["role"], "owner");
        assert_eq!(me["active"], true);
        let pastorin = items.iter().find(|m| m["email"] == "pastorin@st-nikolai.de").expect("invitee listed");
        assert_eq!(pastorin["active"], false);

        // No password yet: no login.
        login_with(&app, "pastorin@st-nikolai.de", PASSWORD).await.expect_error(401, "bad_credentials");
        login_with(&app, "pastorin@st-nikolai.de", "").await.expect_error(401, "bad_credentials");

        // Too short a password does not use the invitation up.
        expect_field(
            app.post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": "short"})).await,
            "password",
        );
        let accepted = app
            .post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": PASSWORD}))
            .await
            .expect(200);
        assert_eq!(accepted["user"]["id"], invitee_id.as_str());
        assert_eq!(accepted["user"]["email"], "pastorin@st-nikolai.de");
        let me = app.get("/api/v1/me", accepted["access_token"].as_str()).await.expect(200);
        assert_eq!(me["organizations"][0]["id"], owner.org_id.as_str());
        assert_eq!(me["organizations"][0]["role"], "owner");
        app.login("pastorin@st-nikolai.de").await;

        // Once only.
        app.post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": "another password"}))
            .await
            .expect_error(401, "bad_credentials");
        login_with(&app, "pastorin@st-nikolai.de", "another password").await.expect_error(401, "bad_credentials");
        app.post("/api/v1/auth/accept-invite", None, json!({"invite_token": "hin_nope", "password": PASSWORD}))
            .await
            .expect_error(401, "bad_credentials");

        let members =
            app.get(&format!("/api/v1/organizations/{}/members", owner.org_id), Some(&owner.user.access)).await;
        let members = members.expect(200);
        let pastorin = members["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|m| m["email"] == "pastorin@st-nikolai.de")
            .cloned()
            .expect("invitee listed");
        assert_eq!(pastorin["active"], true);
    }
);

both_backends!(
    async fn invitations_expire_after_seven_days(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let invited = add_member(&app, &owner, "kuester@st-nikolai.de", None).await.expect(201);
        let invite = invited["invite_token"].as_str().expect("invite token").to_owned();
        app.advance(7 * DAY);
        app.post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": PASSWORD}))
            .await
            .expect_error(401, "bad_credentials");
    }
);

both_backends!(
    async fn only_owners_manage_members(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let stranger = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let members = format!("/api/v1/organizations/{}/members", owner.org_id);

        // Editors see the members but change nothing.
        app.get(&members, Some(&editor.access)).await.expect(200);
        app.post(&members, Some(&editor.access), json!({"email": "neu@st-nikolai.de"}))
            .await
            .expect_error(403, "owner_required");
        app.patch(&format!("{members}/{}", owner.user.id), Some(&editor.access), json!({"role": "editor"}))
            .await
            .expect_error(403, "owner_required");
        app.patch(&format!("{members}/{}", editor.id), Some(&editor.access), json!({"role": "owner"}))
            .await
            .expect_error(403, "owner_required");
        app.delete(&format!("{members}/{}", owner.user.id), Some(&editor.access))
            .await
            .expect_error(403, "owner_required");
        // Nothing of it was stored: the rejected invitee has no account.
        login_with(&app, "neu@st-nikolai.de", PASSWORD).await.expect_error(401, "bad_credentials");
        assert_eq!(count_users(&app).await, 3);

        // A stranger learns nothing.
        app.get(&members, Some(&stranger.user.access)).await.expect_error(404, "not_found");
        app.post(&members, Some(&stranger.user.access), json!({"email": "x@y.de"}))
            .await
            .expect_error(404, "not_found");
        app.get(&format!("/api/v1/organizations/{}", owner.org_id), Some(&stranger.user.access))
            .await
            .expect_error(404, "not_found");
        app.get(&members, None).await.expect_error(401, "unauthenticated");

        // Duplicates, bad e-mails, bad roles.
        add_member(&app, &owner, "kuester@st-nikolai.de", None).await.expect_error(409, "already_member");
        add_member(&app, &owner, "KUESTER@st-nikolai.de", Some("owner")).await.expect_error(409, "already_member");
        add_member(&app, &owner, "buero@st-nikolai.de", None).await.expect_error(409, "already_member");
        expect_field(add_member(&app, &owner, "kein-mail", None).await, "email");
        add_member(&app, &owner, "neu@st-nikolai.de", Some("admin")).await.expect_error(422, "invalid_body");
        app.patch(&format!("{members}/{}", editor.id), Some(&owner.user.access), json!({"role": "boss"}))
            .await
            .expect_error(422, "invalid_body");
        app.patch(&format!("{members}/{}", stranger.user.id), Some(&owner.user.access), json!({"role": "owner"}))
            .await
            .expect_error(404, "not_found");
        app.delete(&format!("{members}/{}", stranger.user.id), Some(&owner.user.access))
            .await
            .expect_error(404, "not_found");
        let list = app.get(&members, Some(&owner.user.access)).await.expect(200);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    }
);

both_backends!(
    async fn ownership_transfers_but_the_last_owner_stays(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let members = format!("/api/v1/organizations/{}/members", owner.org_id);

        // The only owner can neither step down nor leave.
        app.patch(&format!("{members}/{}", owner.user.id), Some(&owner.user.access), json!({"role": "editor"}))
            .await
            .expect_error(409, "last_owner");
        app.delete(&format!("{members}/{}", owner.user.id), Some(&owner.user.access))
            .await
            .expect_error(409, "last_owner");

        // Transfer: make the editor owner, then step down.
        let promoted = app
            .patch(&format!("{members}/{}", editor.id), Some(&owner.user.access), json!({"role": "owner"}))
            .await
            .expect(200);
        assert_eq!(promoted["user_id"], editor.id.as_str());
        assert_eq!(promoted["role"], "owner");
        let demoted = app
            .patch(&format!("{members}/{}", owner.user.id), Some(&owner.user.access), json!({"role": "editor"}))
            .await
            .expect(200);
        assert_eq!(demoted["role"], "editor");

        // The former owner is an editor now.
        app.post(&members, Some(&owner.user.access), json!({"email": "neu@st-nikolai.de"}))
            .await
            .expect_error(403, "owner_required");
        app.patch(&format!("{members}/{}", editor.id), Some(&editor.access), json!({"role": "editor"}))
            .await
            .expect_error(409, "last_owner");

        // The new owner removes the former one, who then loses access.
        let res = app.delete(&format!("{members}/{}", owner.user.id), Some(&editor.access)).await;
        assert_eq!(res.expect(204), Value::Null);
        app.get(&format!("/api/v1/organizations/{}", owner.org_id), Some(&owner.user.access))
            .await
            .expect_error(404, "not_found");
        let mine = app.get("/api/v1/organizations/mine", Some(&owner.user.access)).await.expect(200);
        assert_eq!(mine["items"], json!([]));
        app.delete(&format!("{members}/{}", editor.id), Some(&editor.access)).await.expect_error(409, "last_owner");

        let list = app.get(&members, Some(&editor.access)).await.expect(200);
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["user_id"], editor.id.as_str());
        assert_eq!(items[0]["role"], "owner");
    }
);

both_backends!(
    async fn an_editor_may_leave_but_not_remove_others(app: TestApp) {
        app.with_tenant("wismar").await;
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let a = editor_of(&app, &owner, "wismar", "a@st-nikolai.de").await;
        let b = editor_of(&app, &owner, "wismar", "b@st-nikolai.de").await;
        let members = format!("/api/v1/organizations/{}/members", owner.org_id);

        app.delete(&format!("{members}/{}", b.id), Some(&a.access)).await.expect_error(403, "owner_required");
        app.delete(&format!("{members}/{}", a.id), Some(&a.access)).await.expect(204);
        app.get(&members, Some(&a.access)).await.expect_error(404, "not_found");
        app.delete(&format!("{members}/{}", b.id), Some(&owner.user.access)).await.expect(204);
        app.delete(&format!("{members}/{}", b.id), Some(&owner.user.access)).await.expect_error(404, "not_found");
        let list = app.get(&members, Some(&owner.user.access)).await.expect(200);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    }
);

// ---------------------------------------------------------------- groups

both_backends!(
    async fn owners_create_groups_with_checked_fields(app: TestApp) {
        app.with_tenant("wismar").await;
        // A pending organization may prepare its groups already.
        let owner = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let stranger = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let path = format!("/api/v1/organizations/{}/groups", owner.org_id);

        let group = app
            .post(
                &path,
                Some(&owner.user.access),
                json!({"name": "  Gemeindebrief ", "description": "Was los ist", "category": "church"}),
            )
            .await
            .expect(201);
        assert!(group["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(group["name"], "Gemeindebrief", "trimmed");
        assert_eq!(group["description"], "Was los ist");
        assert_eq!(group["category"], "church");
        assert_eq!(group["status"], "active");
        assert_eq!(group["verified"], false);
        assert_eq!(group["subscriber_count"], 0);
        assert_eq!(group["tenant"], "wismar");
        assert_eq!(group["organization"], json!({"id": owner.org_id, "name": "St. Nikolai"}));
        assert_eq!(group["created_at"], "2026-11-26T12:00:00.000Z");

        app.advance(1000);
        let minimal = app.post(&path, Some(&owner.user.access), json!({"name": "Kurz"})).await.expect(201);
        assert_eq!(minimal["category"], "other");
        assert_eq!(minimal["description"], "");
        app.advance(1000);
        let longest = app.post(&path, Some(&owner.user.access), json!({"name": "n".repeat(80)})).await;
        assert_eq!(longest.expect(201)["name"], "n".repeat(80));

        app.post(&path, Some(&editor.access), json!({"name": "Editorengruppe"}))
            .await
            .expect_error(403, "owner_required");
        app.post(&path, Some(&stranger.user.access), json!({"name": "Fremd"})).await.expect_error(404, "not_found");
        app.post(&path, None, json!({"name": "Anonym"})).await.expect_error(401, "unauthenticated");
        expect_field(
            app.post(&path, Some(&owner.user.access), json!({"name": "Gruppe", "category": "sports"})).await,
            "category",
        );
        expect_field(app.post(&path, Some(&owner.user.access), json!({"name": "G"})).await, "name");
        expect_field(app.post(&path, Some(&owner.user.access), json!({"name": "n".repeat(81)})).await, "name");
        expect_field(app.post(&path, Some(&owner.user.access), json!({"description": "ohne Namen"})).await, "name");
        expect_field(app.post(&path, Some(&owner.user.access), json!({"name": "Zeile\u{7}Glocke"})).await, "name");
        expect_field(
            app.post(&path, Some(&owner.user.access), json!({"name": "Gruppe", "description": "d".repeat(1001)})).await,
            "description",
        );
        app.post(&path, Some(&owner.user.access), json!({"name": "Gruppe", "colour": "red"}))
            .await
            .expect_error(422, "invalid_body");

        let list = app.get(&path, Some(&editor.access)).await.expect(200);
        let names: Vec<&str> =
            list["items"].as_array().expect("items").iter().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(names, vec!["Gemeindebrief", "Kurz", &"n".repeat(80)]);
        app.get(&path, Some(&stranger.user.access)).await.expect_error(404, "not_found");
    }
);

both_backends!(
    async fn groups_are_updated_and_archived_by_owners(app: TestApp) {
        let (_admin, owner, group) = town_with_group(&app).await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        app.advance(1000);
        let other = app.group(&owner, "Kirchenchor", "culture").await;
        let path = format!("/api/v1/groups/{group}");

        let updated = app
            .patch(
                &path,
                Some(&owner.user.access),
                json!({"name": "Gemeindebrief St. Nikolai", "description": "Neu", "category": "culture"}),
            )
            .await
            .expect(200);
        assert_eq!(updated["id"], group.as_str());
        assert_eq!(updated["name"], "Gemeindebrief St. Nikolai");
        assert_eq!(updated["description"], "Neu");
        assert_eq!(updated["category"], "culture");
        // Only what is sent changes.
        let updated = app.patch(&path, Some(&owner.user.access), json!({"category": "church"})).await.expect(200);
        assert_eq!(updated["name"], "Gemeindebrief St. Nikolai");
        assert_eq!(updated["description"], "Neu");
        assert_eq!(updated["category"], "church");
        let public = app.get(&path, None).await.expect(200);
        assert_eq!(public["name"], "Gemeindebrief St. Nikolai");

        expect_field(app.patch(&path, Some(&owner.user.access), json!({"category": "sports"})).await, "category");
        expect_field(app.patch(&path, Some(&owner.user.access), json!({"name": "x"})).await, "name");
        app.patch(&path, Some(&editor.access), json!({"name": "Editor"})).await.expect_error(403, "owner_required");
        app.delete(&path, Some(&editor.access)).await.expect_error(403, "owner_required");

        // Archive.
        let res = app.delete(&path, Some(&owner.user.access)).await;
        assert_eq!(res.expect(204), Value::Null);
        app.get(&path, None).await.expect_error(404, "not_found");
        app.get(&format!("{path}/messages"), None).await.expect_error(404, "not_found");
        let directory = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        let ids: Vec<&str> =
            directory["items"].as_array().expect("items").iter().filter_map(|g| g["id"].as_str()).collect();
        assert_eq!(ids, vec![other.as_str()]);
        app.post(&format!("{path}/messages"), Some(&owner.user.access), json!({"title": "Hallo", "body": "Welt"}))
            .await
            .expect_error(409, "group_archived");
        app.post(&format!("{path}/messages"), Some(&editor.access), json!({"title": "Hallo", "body": "Welt"}))
            .await
            .expect_error(409, "group_archived");
        app.patch(&path, Some(&owner.user.access), json!({"name": "Wieder da"}))
            .await
            .expect_error(409, "group_archived");

        // The organization still lists it, with its status.
        let list =
            app.get(&format!("/api/v1/organizations/{}/groups", owner.org_id), Some(&editor.access)).await.expect(200);
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], group.as_str());
        assert_eq!(items[0]["status"], "archived");
        assert_eq!(items[1]["id"], other.as_str());
        assert_eq!(items[1]["status"], "active");
    }
);

both_backends!(
    async fn strangers_cannot_touch_groups(app: TestApp) {
        let (admin, _owner, group) = town_with_group(&app).await;
        let stranger = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let path = format!("/api/v1/groups/{group}");
        app.patch(&path, Some(&stranger.user.access), json!({"name": "Gekapert"})).await.expect_error(404, "not_found");
        app.delete(&path, Some(&stranger.user.access)).await.expect_error(404, "not_found");
        app.post(&format!("{path}/messages"), Some(&stranger.user.access), json!({"title": "Spam", "body": "Spam"}))
            .await
            .expect_error(404, "not_found");
        app.patch(&path, None, json!({"name": "Anonym"})).await.expect_error(401, "unauthenticated");
        app.delete(&path, None).await.expect_error(401, "unauthenticated");
        app.post(&format!("{path}/messages"), None, json!({"title": "A", "body": "B"}))
            .await
            .expect_error(401, "unauthenticated");
        let public = app.get(&path, None).await.expect(200);
        assert_eq!(public["name"], "Gemeindebrief");
        assert_eq!(public["status"], "active");
    }
);

// ---------------------------------------------------------------- messages

both_backends!(
    async fn posting_publishes_and_writes_one_fanout_job(app: TestApp) {
        let (_admin, owner, group) = town_with_group(&app).await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let path = format!("/api/v1/groups/{group}/messages");

        let message = app
            .post(
                &path,
                Some(&owner.user.access),
                json!({
                    "title": "Adventskonzert",
                    "body": "Am Sonntag um 17 Uhr.\nEintritt frei.",
                    "url": "https://st-nikolai.de/advent",
                    "urgency": "low",
                    "ttl": 3600
                }),
            )
            .await
            .expect(201);
        let id = message["id"].as_str().expect("id").to_owned();
        assert_eq!(message["status"], "published");
        assert_eq!(message["title"], "Adventskonzert");
        assert_eq!(message["body"], "Am Sonntag um 17 Uhr.\nEintritt frei.");
        assert_eq!(message["url"], "https://st-nikolai.de/advent");
        assert_eq!(message["urgency"], "low");
        assert_eq!(message["ttl"], 3600);
        assert_eq!(message["published_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(message["created_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(message["group"]["id"], group.as_str());
        assert_eq!(message["group"]["name"], "Gemeindebrief");
        assert_eq!(message["group"]["tenant"], "wismar");
        assert_eq!(message["hidden_reason"], Value::Null);
        assert_eq!(message["stats"]["delivered"], 0);
        assert_eq!(message["stats"]["failed"], 0);
        assert_eq!(message["stats"]["gone"], 0);
        assert_eq!(fanout_jobs_of(&app, &id).await, vec![(T0, "pending".to_owned())]);

        // Defaults, and an editor may post.
        let plain = app.post(&path, Some(&editor.access), json!({"title": "Kurz", "body": "Notiz"})).await.expect(201);
        assert_eq!(plain["status"], "published");
        assert_eq!(plain["urgency"], "normal");
        assert_eq!(plain["ttl"], 3 * 24 * 3600);
        assert_eq!(plain["url"], Value::Null);
        let plain_id = plain["id"].as_str().expect("id");
        assert_eq!(fanout_jobs_of(&app, plain_id).await, vec![(T0, "pending".to_owned())]);

        // A time in the past means now.
        let late = app
            .post(
                &path,
                Some(&owner.user.access),
                json!({"title": "Spät", "body": "x", "publish_at": "2020-01-01T00:00:00Z"}),
            )
            .await
            .expect(201);
        assert_eq!(late["status"], "published");
        assert_eq!(late["published_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(fanout_jobs_of(&app, late["id"].as_str().expect("id")).await, vec![(T0, "pending".to_owned())]);

        let feed = app.get(&path, None).await.expect(200);
        assert_eq!(feed["items"].as_array().map(Vec::len), Some(3));
        assert!(feed["items"].as_array().expect("items").iter().any(|m| m["id"] == id.as_str()));
        let public = app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200);
        assert_eq!(public["title"], "Adventskonzert");
    }
);

both_backends!(
    async fn only_approved_organizations_post(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let pending = app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let pending_group = app.group(&pending, "Gemeindebrief", "church").await;
        app.post(
            &format!("/api/v1/groups/{pending_group}/messages"),
            Some(&pending.user.access),
            json!({"title": "Zu früh", "body": "Noch nicht freigegeben"}),
        )
        .await
        .expect_error(403, "organization_pending");

        let club = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let club_group = app.group(&club, "Spielplan", "club").await;
        app.message(&club.user, &club_group, "Vor der Sperre").await;
        app.post(
            &format!("/api/v1/admin/organizations/{}/suspend", club.org_id),
            Some(&admin.access),
            json!({"reason": "Werbung"}),
        )
        .await
        .expect(200);
        app.post(
            &format!("/api/v1/groups/{club_group}/messages"),
            Some(&club.user.access),
            json!({"title": "Gesperrt", "body": "Kommt nicht an"}),
        )
        .await
        .expect_error(403, "organization_suspended");
        // Suspended organizations open no new groups either.
        app.post(
            &format!("/api/v1/organizations/{}/groups", club.org_id),
            Some(&club.user.access),
            json!({"name": "Neu"}),
        )
        .await
        .expect_error(403, "organization_suspended");

        // Only the one message from before the suspension exists; no job was written for the refused ones.
        use herold::db::schema::{fanout_jobs, messages};
        let (messages, jobs) = app
            .with_conn(|c| {
                let m: i64 = messages::table.count().get_result(c).expect("count");
                let j: i64 = fanout_jobs::table.count().get_result(c).expect("count");
                (m, j)
            })
            .await;
        assert_eq!((messages, jobs), (1, 1));
    }
);

both_backends!(
    async fn message_fields_are_validated(app: TestApp) {
        let (_admin, owner, group) = town_with_group(&app).await;
        let path = format!("/api/v1/groups/{group}/messages");
        let token = Some(owner.user.access.as_str());
        let post = |extra: Value| post_with(&app, &path, &owner.user.access, extra);

        expect_field(post(json!({"title": ""})).await, "title");
        expect_field(post(json!({"title": "   "})).await, "title");
        expect_field(post(json!({"title": "t".repeat(121)})).await, "title");
        expect_field(post(json!({"title": "Zeile\nUmbruch"})).await, "title");
        expect_field(post(json!({"body": ""})).await, "body");
        expect_field(post(json!({"body": "b".repeat(4001)})).await, "body");
        expect_field(post(json!({"url": "ftp://st-nikolai.de/datei"})).await, "url");
        expect_field(post(json!({"url": "javascript:alert(1)"})).await, "url");
        expect_field(post(json!({"url": "st-nikolai.de"})).await, "url");
        expect_field(post(json!({"ttl": 59})).await, "ttl");
        expect_field(post(json!({"ttl": 0})).await, "ttl");
        expect_field(post(json!({"ttl": -1})).await, "ttl");
        expect_field(post(json!({"ttl": 30 * 24 * 3600 + 1})).await, "ttl");
        expect_field(post(json!({"publish_at": "morgen"})).await, "publish_at");
        expect_field(post(json!({"publish_at": "2026-13-01T00:00:00Z"})).await, "publish_at");
        expect_field(post(json!({"publish_at": "2026-12-24 18:00"})).await, "publish_at");
        expect_field(post(json!({"publish_at": "2028-01-01T00:00:00Z"})).await, "publish_at");
        post(json!({"urgency": "urgent"})).await.expect_error(422, "invalid_body");
        post(json!({"ttl": "3600"})).await.expect_error(422, "invalid_body");
        post(json!({"priority": 1})).await.expect_error(422, "invalid_body");
        app.post(&path, token, json!({"title": "Ohne Text"})).await.expect_error(422, "invalid_body");

        // Nothing of it was stored.
        use herold::db::schema::{fanout_jobs, messages};
        let stored = app
            .with_conn(|c| {
                let m: i64 = messages::table.count().get_result(c).expect("count");
                let j: i64 = fanout_jobs::table.count().get_result(c).expect("count");
                (m, j)
            })
            .await;
        assert_eq!(stored, (0, 0));

        // The limits themselves are fine (counted in characters, not bytes).
        let ok = post(json!({"title": "ü".repeat(120), "body": "b".repeat(4000), "ttl": 60})).await.expect(201);
        assert_eq!(ok["title"], "ü".repeat(120));
        assert_eq!(ok["body"].as_str().map(|b| b.chars().count()), Some(4000));
        let ok = post(json!({"body": "ö".repeat(4000), "ttl": 30 * 24 * 3600, "url": "http://st-nikolai.de/"})).await;
        let ok = ok.expect(201);
        assert_eq!(ok["ttl"], 30 * 24 * 3600);
        assert_eq!(ok["url"], "http://st-nikolai.de/");
        let ok = post(json!({"url": "", "urgency": "high"})).await.expect(201);
        assert_eq!(ok["url"], Value::Null);
        assert_eq!(ok["urgency"], "high");
        // RFC 8030's spelling, the same in the API as in the `Urgency` header.
        let ok = post(json!({"urgency": "very-low"})).await.expect(201);
        assert_eq!(ok["urgency"], "very-low");
        post(json!({"urgency": "very_low"})).await.expect_error(422, "invalid_body");
    }
);

both_backends!(
    async fn future_messages_are_scheduled_and_only_members_see_them(app: TestApp) {
        let (admin, owner, group) = town_with_group(&app).await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let stranger = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let path = format!("/api/v1/groups/{group}/messages");
        let now_id = app.message(&owner.user, &group, "Jetzt").await;

        // 2026-11-26T14:00:00+01:00 is one hour after T0.
        let scheduled = app
            .post(
                &path,
                Some(&owner.user.access),
                json!({"title": "Später", "body": "In einer Stunde", "publish_at": "2026-11-26T14:00:00+01:00"}),
            )
            .await
            .expect(201);
        let id = scheduled["id"].as_str().expect("id").to_owned();
        assert_eq!(scheduled["status"], "scheduled");
        assert_eq!(scheduled["published_at"], "2026-11-26T13:00:00.000Z");
        assert_eq!(scheduled["stats"]["fanout"], "scheduled");
        assert_eq!(fanout_jobs_of(&app, &id).await, vec![(T0 + 60 * MINUTE, "pending".to_owned())]);

        // The public (and a stranger) see only what is published.
        for token in [None, Some(stranger.user.access.as_str())] {
            let feed = app.get(&path, token).await.expect(200);
            let items = feed["items"].as_array().expect("items");
            assert_eq!(items.len(), 1);
            assert_eq!(items[0]["id"], now_id.as_str());
            assert!(items[0].get("status").is_none(), "public items carry no status: {feed}");
            assert!(items[0].get("stats").is_none(), "public items carry no stats: {feed}");
        }
        app.get(&format!("/api/v1/messages/{id}"), None).await.expect_error(404, "not_found");

        // Members see both, newest (by publication) first, with status.
        for token in [&owner.user.access, &editor.access] {
            let feed = app.get(&path, Some(token)).await.expect(200);
            let items = feed["items"].as_array().expect("items");
            assert_eq!(items.len(), 2, "{feed}");
            assert_eq!(items[0]["id"], id.as_str());
            assert_eq!(items[0]["status"], "scheduled");
            assert_eq!(items[1]["id"], now_id.as_str());
            assert_eq!(items[1]["status"], "published");
        }

        // At publish time it is out.
        app.advance(60 * MINUTE);
        let feed = app.get(&path, None).await.expect(200);
        assert_eq!(feed["items"][0]["id"], id.as_str());
        assert_eq!(feed["items"].as_array().map(Vec::len), Some(2));
        let owner_access = app.login("buero@st-nikolai.de").await.access;
        let feed = app.get(&path, Some(&owner_access)).await.expect(200);
        assert_eq!(feed["items"][0]["status"], "published");
        app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200);
    }
);

both_backends!(
    async fn message_stats_are_for_members_only(app: TestApp) {
        let (admin, owner, group) = town_with_group(&app).await;
        let editor = editor_of(&app, &owner, "wismar", "kuester@st-nikolai.de").await;
        let stranger = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let id = app.message(&editor, &group, "Adventskonzert").await;
        let path = format!("/api/v1/messages/{id}/stats");

        for token in [&owner.user.access, &editor.access] {
            let stats = app.get(&path, Some(token)).await.expect(200);
            assert_eq!(stats["id"], id.as_str());
            assert_eq!(stats["status"], "published");
            let s = &stats["stats"];
            for counter in ["recipients", "delivered", "gone", "failed", "pending"] {
                assert!(s[counter].is_i64(), "{counter} missing: {stats}");
            }
            assert_eq!(s["delivered"], 0);
            assert_eq!(s["fanout"], "pending");
            // Aggregates only: nothing about who.
            assert!(!stats.to_string().contains("device"), "{stats}");
        }
        app.get(&path, Some(&stranger.user.access)).await.expect_error(404, "not_found");
        app.get(&path, Some(&admin.access)).await.expect_error(404, "not_found");
        app.get(&path, None).await.expect_error(401, "unauthenticated");
        app.get("/api/v1/messages/unbekannt/stats", Some(&owner.user.access)).await.expect_error(404, "not_found");

        // A member who left loses the stats.
        app.delete(&format!("/api/v1/organizations/{}/members/{}", owner.org_id, editor.id), Some(&owner.user.access))
            .await
            .expect(204);
        app.get(&path, Some(&editor.access)).await.expect_error(404, "not_found");
    }
);
