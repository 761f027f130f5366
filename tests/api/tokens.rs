//! Organization API tokens: owners create (secret shown once, stored hashed),
//! list and revoke them; a token posts to its own group only, only while the
//! organization is approved and the group active; a revoked token is refused
//! at once.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Owner, Res, TestApp, User};

const MINUTE: i64 = 60 * 1000;

/// A town, its city admin and an approved organization with one group.
async fn town_with_group(app: &TestApp) -> (User, Owner, String) {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let org = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
    let group = app.group(&org, "Gemeindebrief", "church").await;
    (admin, org, group)
}

fn tokens_path(owner: &Owner) -> String {
    format!("/api/v1/organizations/{}/tokens", owner.org_id)
}

async fn create_token(app: &TestApp, owner: &Owner, name: &str, group: &str) -> Res {
    app.post(&tokens_path(owner), Some(&owner.user.access), json!({"name": name, "group_id": group})).await
}

/// Creates a token; returns (id, secret).
async fn new_token(app: &TestApp, owner: &Owner, group: &str) -> (String, String) {
    let body = create_token(app, owner, "Website", group).await.expect(201);
    (body["id"].as_str().expect("id").to_owned(), body["secret"].as_str().expect("secret").to_owned())
}

async fn post_as(app: &TestApp, secret: &str, group: &str, title: &str) -> Res {
    app.post(&format!("/api/v1/groups/{group}/messages"), Some(secret), json!({"title": title, "body": "Text"})).await
}

async fn list(app: &TestApp, owner: &Owner) -> Value {
    app.get(&tokens_path(owner), Some(&owner.user.access)).await.expect(200)
}

/// (action, actor, target_id, tenant_id) of every audit row about API tokens.
async fn token_audit(app: &TestApp) -> Vec<(String, String, String, Option<String>)> {
    use herold::db::schema::audit_log as a;
    app.with_conn(|c| {
        a::table
            .filter(a::target_type.eq("api_token"))
            .order(a::created_at.asc())
            .select((a::action, a::actor, a::target_id, a::tenant_id))
            .load(c)
            .expect("audit rows")
    })
    .await
}

both_backends!(
    async fn lifecycle_secret_once_stored_hashed_post_revoke(app: TestApp) {
        let (_, owner, group) = town_with_group(&app).await;
        assert_eq!(list(&app, &owner).await, json!({"items": [], "next": null}));

        let created = create_token(&app, &owner, "Website der Gemeinde", &group).await.expect(201);
        let secret = created["secret"].as_str().expect("secret").to_owned();
        let id = created["id"].as_str().expect("id").to_owned();
        // `hapi_` and 256 random bits, base64url.
        assert!(secret.starts_with("hapi_") && secret.len() == 5 + 43, "{secret}");
        assert_eq!(created["name"], "Website der Gemeinde");
        assert_eq!(created["group"], json!({"id": group, "name": "Gemeindebrief"}));
        assert_eq!(created["created_by"], "buero@st-nikolai.de");
        assert_eq!(created["created_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(created["last_used_at"], Value::Null);
        assert_eq!(created["revoked_at"], Value::Null);

        // Stored as its SHA-256 only; the secret is in no column.
        let (hash, row) = {
            let id = id.clone();
            app.with_conn(move |c| {
                use herold::db::schema::api_tokens as t;
                let row: (String, String, String, String, String, String) = t::table
                    .find(&id)
                    .select((t::id, t::organization_id, t::group_id, t::name, t::token_hash, t::created_by))
                    .first(c)
                    .expect("token row");
                (row.4.clone(), format!("{row:?}"))
            })
            .await
        };
        assert_eq!(hash, herold::auth::secrets::hash_secret(&secret));
        assert!(!row.contains(&secret[5..]), "secret stored: {row}");

        // Listed without the secret, ever again.
        let listed = list(&app, &owner).await;
        assert!(!listed.to_string().contains(&secret[5..]), "secret listed: {listed}");
        let item = &listed["items"][0];
        assert_eq!(item["id"], id.as_str());
        assert!(item.get("secret").is_none(), "{item}");
        assert_eq!(item["group"]["id"], group.as_str());

        // It posts, as the token; the use is recorded.
        app.advance(5 * MINUTE);
        let posted = post_as(&app, &secret, &group, "Gottesdienst per API").await.expect(201);
        assert_eq!(posted["title"], "Gottesdienst per API");
        assert_eq!(posted["group"]["id"], group.as_str());
        let message_id = posted["id"].as_str().expect("message id").to_owned();
        let created_by = app
            .with_conn(move |c| {
                use herold::db::schema::messages as m;
                m::table.find(&message_id).select(m::created_by).first::<String>(c).expect("message")
            })
            .await;
        assert_eq!(created_by, format!("token:{id}"));
        let feed = app.get(&format!("/api/v1/groups/{group}/messages"), None).await.expect(200);
        assert_eq!(feed["items"][0]["title"], "Gottesdienst per API");
        assert_eq!(list(&app, &owner).await["items"][0]["last_used_at"], "2026-11-26T12:05:00.000Z");

        // Revoked: refused at the very next request; listed with the time.
        app.advance(MINUTE);
        app.delete(&format!("{}/{id}", tokens_path(&owner)), Some(&owner.user.access)).await.expect(204);
        post_as(&app, &secret, &group, "Nach dem Widerruf").await.expect_error(401, "unauthenticated");
        let item = list(&app, &owner).await["items"][0].clone();
        assert_eq!(item["revoked_at"], "2026-11-26T12:06:00.000Z");
        assert_eq!(item["last_used_at"], "2026-11-26T12:05:00.000Z");
        // Revoking again changes nothing (and logs nothing).
        app.delete(&format!("{}/{id}", tokens_path(&owner)), Some(&owner.user.access)).await.expect(204);
        let feed = app.get(&format!("/api/v1/groups/{group}/messages"), None).await.expect(200);
        assert_eq!(feed["items"].as_array().expect("items").len(), 1);

        // Both acts are in the audit log: who, what, which token, which town.
        let tenant = app.with_conn(|c| herold::tenants::by_slug(c, "wismar").expect("tenant").id).await;
        let actor = format!("user:{}", owner.user.id);
        assert_eq!(
            token_audit(&app).await,
            vec![
                ("api_token.create".into(), actor.clone(), id.clone(), Some(tenant.clone())),
                ("api_token.revoke".into(), actor, id, Some(tenant)),
            ]
        );
    }
);

both_backends!(
    async fn a_token_posts_to_its_own_group_only(app: TestApp) {
        let (admin, owner, group) = town_with_group(&app).await;
        let second = app.group(&owner, "Kinderchor", "church").await;
        let other = app.approved_org(&admin, "wismar", "vorstand@hansa-wismar.de", "Hansa").await;
        let foreign = app.group(&other, "Spielplan", "club").await;
        let (_, secret) = new_token(&app, &owner, &group).await;

        post_as(&app, &secret, &second, "Falsche Gruppe").await.expect_error(403, "token_scope");
        post_as(&app, &secret, &foreign, "Fremde Gruppe").await.expect_error(403, "token_scope");
        post_as(&app, &secret, "keine-gruppe", "Unbekannt").await.expect_error(404, "not_found");
        post_as(&app, &secret, &group, "Richtig").await.expect(201);
        for g in [&second, &foreign] {
            let feed = app.get(&format!("/api/v1/groups/{g}/messages"), None).await.expect(200);
            assert_eq!(feed["items"], json!([]), "{g}");
        }

        // It is no login: every other route treats it as no credential.
        for path in ["/api/v1/me".to_owned(), tokens_path(&owner), format!("/api/v1/organizations/{}", owner.org_id)] {
            app.get(&path, Some(&secret)).await.expect_error(401, "unauthenticated");
        }
        app.patch(&format!("/api/v1/groups/{group}"), Some(&secret), json!({"name": "Gekapert"}))
            .await
            .expect_error(401, "unauthenticated");
        // Unknown secrets with the right prefix are refused.
        let bogus = herold::auth::secrets::new_secret("hapi");
        post_as(&app, &bogus, &group, "Geraten").await.expect_error(401, "unauthenticated");

        // A token is made for a group of the same organization only.
        let res = create_token(&app, &owner, "Fremd", &foreign).await;
        assert_eq!(res.expect(422)["field"], "group_id");
        let res = create_token(&app, &owner, "Nichts", "gibt-es-nicht").await;
        assert_eq!(res.expect(422)["field"], "group_id");
        let res = create_token(&app, &owner, "", &group).await;
        assert_eq!(res.expect(422)["field"], "name");
        let res = app.post(&tokens_path(&owner), Some(&owner.user.access), json!({"name": "x"})).await;
        assert!(res.status.is_client_error(), "{}", res.body);

        // An archived group takes no new tokens and no posts by its old ones.
        app.delete(&format!("/api/v1/groups/{group}"), Some(&owner.user.access)).await.expect(204);
        create_token(&app, &owner, "Zu spät", &group).await.expect_error(409, "group_archived");
        post_as(&app, &secret, &group, "Archiviert").await.expect_error(409, "group_archived");
    }
);

both_backends!(
    async fn only_owners_manage_tokens(app: TestApp) {
        let (admin, owner, group) = town_with_group(&app).await;
        let editor = app.invited_editor(&owner, "redaktion@st-nikolai.de").await;
        let other = app.approved_org(&admin, "wismar", "vorstand@hansa-wismar.de", "Hansa").await;
        app.with_tenant("strausberg").await;
        let admin_s = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let (id, secret) = new_token(&app, &owner, &group).await;
        let one = format!("{}/{id}", tokens_path(&owner));
        let body = json!({"name": "Editor-Token", "group_id": group});

        // An editor may post, but not create, list or revoke tokens.
        app.post(&tokens_path(&owner), Some(&editor.access), body.clone()).await.expect_error(403, "owner_required");
        app.get(&tokens_path(&owner), Some(&editor.access)).await.expect_error(403, "owner_required");
        app.delete(&one, Some(&editor.access)).await.expect_error(403, "owner_required");
        app.message(&editor, &group, "Vom Editor").await;

        // Strangers — another organization's owner, the town's and another town's
        // city admins — learn nothing.
        for stranger in [&other.user, &admin, &admin_s] {
            app.post(&tokens_path(&owner), Some(&stranger.access), body.clone()).await.expect_error(404, "not_found");
            app.get(&tokens_path(&owner), Some(&stranger.access)).await.expect_error(404, "not_found");
            app.delete(&one, Some(&stranger.access)).await.expect_error(404, "not_found");
        }
        // Nor through their own organization's path.
        app.delete(&format!("{}/{id}", tokens_path(&other)), Some(&other.user.access))
            .await
            .expect_error(404, "not_found");
        app.get(&tokens_path(&owner), None).await.expect_error(401, "unauthenticated");

        // Nothing of that changed the token: one, unrevoked, still posting.
        let items = list(&app, &owner).await["items"].clone();
        assert_eq!(items.as_array().expect("items").len(), 1, "{items}");
        assert_eq!(items[0]["revoked_at"], Value::Null);
        post_as(&app, &secret, &group, "Weiter gültig").await.expect(201);
        assert_eq!(token_audit(&app).await.len(), 1);

        // A token outlives its creator's membership: it belongs to the organization.
        let second = app.invited_editor(&owner, "kuester@st-nikolai.de").await;
        app.patch(
            &format!("/api/v1/organizations/{}/members/{}", owner.org_id, second.id),
            Some(&owner.user.access),
            json!({"role": "owner"}),
        )
        .await
        .expect(200);
        app.delete(
            &format!("/api/v1/organizations/{}/members/{}", owner.org_id, owner.user.id),
            Some(&owner.user.access),
        )
        .await
        .expect(204);
        post_as(&app, &secret, &group, "Nach dem Wechsel").await.expect(201);
        app.delete(&one, Some(&second.access)).await.expect(204);
        post_as(&app, &secret, &group, "Widerrufen").await.expect_error(401, "unauthenticated");
    }
);

both_backends!(
    async fn a_token_posts_only_while_the_town_allows(app: TestApp) {
        let (admin, owner, group) = town_with_group(&app).await;
        let (_, secret) = new_token(&app, &owner, &group).await;
        let org = format!("/api/v1/admin/organizations/{}", owner.org_id);

        // A suspended organization posts neither by dashboard nor by token.
        app.post(&format!("{org}/suspend"), Some(&admin.access), json!({"reason": "Spam"})).await.expect(200);
        post_as(&app, &secret, &group, "Gesperrt").await.expect_error(403, "organization_suspended");
        app.post(
            &format!("/api/v1/groups/{group}/messages"),
            Some(&owner.user.access),
            json!({"title": "t", "body": "b"}),
        )
        .await
        .expect_error(403, "organization_suspended");
        app.post(&format!("{org}/reinstate"), Some(&admin.access), Value::Null).await.expect(200);
        post_as(&app, &secret, &group, "Wieder da").await.expect(201);

        // A suspended group neither.
        let g = group.clone();
        app.with_conn(move |c| {
            use herold::db::schema::broadcast_groups as b;
            diesel::update(b::table.find(&g)).set(b::status.eq("suspended")).execute(c).expect("suspend group")
        })
        .await;
        post_as(&app, &secret, &group, "Gruppe gesperrt").await.expect_error(403, "group_suspended");

        // A pending organization's owner may prepare a token; it posts once approved.
        let pending = app.register_org("wismar", "info@baeckerei-wismar.de", "Bäckerei").await;
        let bread = app.group(&pending, "Angebote", "business").await;
        let (_, early) = new_token(&app, &pending, &bread).await;
        post_as(&app, &early, &bread, "Zu früh").await.expect_error(403, "organization_pending");
        app.post(&format!("/api/v1/admin/organizations/{}/approve", pending.org_id), Some(&admin.access), Value::Null)
            .await
            .expect(200);
        post_as(&app, &early, &bread, "Frische Brötchen").await.expect(201);
    }
);
