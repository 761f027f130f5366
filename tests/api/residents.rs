//! What a resident's device does: register its push subscription, keep it
//! fresh, follow and unfollow groups, read its inbox, erase itself — and
//! what Herold refuses (foreign push endpoints, bad keys, missing tokens)
//! and never stores (anything but endpoint, keys, token hash and two times).

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use herold::db::schema::{devices, subscriptions};
use herold::db::DbConn;
use serde_json::{json, Value};

use crate::harness::{fresh_endpoint, push_subscription, Device, Owner, TestApp, User};

// ---- helpers private to this file ----

/// The `id`s of a page's items, in order.
fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items array").iter().map(|i| i["id"].as_str().expect("id").to_owned()).collect()
}

fn sub_path(group: &str) -> String {
    format!("/api/v1/devices/me/subscriptions/{group}")
}

/// The stored row of the device holding `token`: (id, token_hash, endpoint, p256dh, auth).
async fn device_row(app: &TestApp, token: &str) -> Option<(String, String, String, String, String)> {
    let hash = herold::auth::secrets::hash_secret(token);
    app.with_conn(move |c| {
        devices::table
            .filter(devices::token_hash.eq(hash))
            .select((devices::id, devices::token_hash, devices::endpoint, devices::p256dh, devices::auth))
            .first(c)
            .optional()
            .expect("query devices")
    })
    .await
}

async fn last_seen(app: &TestApp, token: &str) -> i64 {
    let hash = herold::auth::secrets::hash_secret(token);
    app.with_conn(move |c| {
        devices::table
            .filter(devices::token_hash.eq(hash))
            .select(devices::last_seen_at)
            .first(c)
            .expect("last_seen_at")
    })
    .await
}

async fn device_count(app: &TestApp) -> i64 {
    app.with_conn(|c| devices::table.count().get_result(c).expect("count devices")).await
}

async fn subscriber_count(app: &TestApp, group: &str) -> i64 {
    app.get(&format!("/api/v1/groups/{group}"), None).await.expect(200)["subscriber_count"].as_i64().expect("count")
}

async fn follow(app: &TestApp, device: &Device, group: &str) -> Value {
    app.put(&sub_path(group), Some(&device.token), json!(null)).await.expect(200)
}

/// Suspends an organization as the town's admin.
async fn suspend_org(app: &TestApp, admin: &User, org_id: &str) {
    app.post(
        &format!("/api/v1/admin/organizations/{org_id}/suspend"),
        Some(&admin.access),
        json!({"reason": "Verstoß gegen die Nutzungsregeln"}),
    )
    .await
    .expect(200);
}

/// A town, its admin and one approved organization.
async fn town(app: &TestApp) -> (User, Owner) {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let org = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
    (admin, org)
}

/// A subscription body with other keys.
fn with_keys(endpoint: &str, p256dh: &str, auth: &str) -> Value {
    json!({"endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}})
}

/// The harness's valid keys.
fn good_keys() -> (String, String) {
    let sub = push_subscription("https://fcm.googleapis.com/x");
    (sub["keys"]["p256dh"].as_str().unwrap().to_owned(), sub["keys"]["auth"].as_str().unwrap().to_owned())
}

/// Column names of a table, sorted, on either backend.
fn columns(conn: &mut DbConn, table: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let rows: Vec<Column> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name"))
            .load(c)
            .expect("pragma_table_info"),
        DbConn::Pg(c) => diesel::sql_query(format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY 1"
        ))
        .load(c)
        .expect("information_schema"),
    };
    let mut names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
    names.sort();
    names
}

// ---- registering a device ----

both_backends!(
    async fn device_registration_returns_a_token_stored_only_hashed(app: TestApp) {
        let endpoint = fresh_endpoint();
        let res = app.post("/api/v1/devices", None, push_subscription(&endpoint)).await;
        let body = res.expect(201);
        let obj = body.as_object().expect("object");
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["device_token"], "only the token comes back: {body}");
        let token = body["device_token"].as_str().expect("token").to_owned();
        assert!(token.starts_with("hdv_"), "{token}");
        assert!(token.len() >= 40, "token too short to be a secret: {token}");

        let other = app.device().await;
        assert_ne!(other.token, token);

        // stored: the endpoint and keys as given, the token only as a hash
        let (_, hash, stored_endpoint, p256dh, auth) = device_row(&app, &token).await.expect("device stored");
        assert_eq!(stored_endpoint, endpoint);
        let (good_p, good_a) = good_keys();
        assert_eq!((p256dh, auth), (good_p, good_a));
        assert_ne!(hash, token);
        let needles = [token.clone(), token.trim_start_matches("hdv_").to_owned()];
        let rows: Vec<(String, String, String, String, String)> = app
            .with_conn(|c| {
                devices::table
                    .select((devices::id, devices::token_hash, devices::endpoint, devices::p256dh, devices::auth))
                    .load(c)
                    .expect("devices")
            })
            .await;
        assert_eq!(rows.len(), 2);
        for row in &rows {
            for needle in &needles {
                for field in [&row.0, &row.1, &row.2, &row.3, &row.4] {
                    assert!(!field.contains(needle.as_str()), "device token stored in clear: {row:?}");
                }
            }
        }

        // the token works right away
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&token)).await.expect(200);
        assert_eq!(subs, json!({"items": [], "next": null}));
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&token)).await.expect(200);
        assert_eq!(inbox, json!({"items": [], "next": null}));
    }
);

both_backends!(
    async fn foreign_push_endpoints_are_refused(app: TestApp) {
        for endpoint in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "http://updates.push.services.mozilla.com/wpush/v2/abc",
            "https://127.0.0.1/push",
            "https://127.0.0.1:443/push",
            "https://[::1]/push",
            "https://10.0.0.5/push",
            "https://192.168.1.1/push",
            "https://169.254.169.254/latest/meta-data",
            "https://2130706433/push",
            "https://localhost/push",
            "https://localhost./push",
            "http://localhost:8090/push",
            "https://evil.example.com/push",
            "https://fcm.googleapis.com.evil.example/fcm/send/abc",
            "https://push.apple.com.attacker.net/x",
            "https://notfcm.googleapis.com/x",
            "https://googleapis.com/x",
            "https://fcm.googleapis.com:8443/fcm/send/abc",
            "https://fcm.googleapis.com:443x/fcm/send/abc",
            "https://user:pw@fcm.googleapis.com/fcm/send/abc",
            "file:///etc/passwd",
            "ftp://fcm.googleapis.com/x",
            "not a url",
            "",
        ] {
            let res = app.post("/api/v1/devices", None, push_subscription(endpoint)).await;
            let body = res.expect(422);
            assert_eq!(body["code"], "push_endpoint_refused", "{endpoint:?}: {body}");
            assert_eq!(body["field"], "endpoint", "{endpoint:?}: {body}");
        }
        let too_long = format!("https://fcm.googleapis.com/fcm/send/{}", "a".repeat(2100));
        app.post("/api/v1/devices", None, push_subscription(&too_long))
            .await
            .expect_error(422, "push_endpoint_refused");
        assert_eq!(device_count(&app).await, 0, "a refused endpoint must not be stored");
    }
);

both_backends!(
    async fn public_push_services_are_accepted(app: TestApp) {
        let endpoints = [
            "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91bH",
            "https://android.googleapis.com/gcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
            "https://web.push.apple.com/QGx0ZXN0",
            "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
            "https://db5p.notify.windows.com/w/?token=abc",
            "https://FCM.googleapis.com/fcm/send/upper",
            "https://fcm.googleapis.com:443/fcm/send/default-port",
        ];
        for endpoint in endpoints {
            let body = app.post("/api/v1/devices", None, push_subscription(endpoint)).await.expect(201);
            assert!(body["device_token"].as_str().is_some_and(|t| t.starts_with("hdv_")), "{endpoint}");
        }
        assert_eq!(device_count(&app).await, endpoints.len() as i64);
        // padded base64url keys (some browsers) are fine too
        let (p, a) = good_keys();
        app.post("/api/v1/devices", None, with_keys(&fresh_endpoint(), &format!("{p}="), &format!("{a}==")))
            .await
            .expect(201);
    }
);

both_backends!(
    async fn bad_push_keys_and_missing_fields_are_refused(app: TestApp) {
        let (good_p, good_a) = good_keys();
        let raw_point = URL_SAFE_NO_PAD.decode(&good_p).unwrap();
        // (x, y) = (1, 1) is not on the curve
        let mut off_curve = vec![0x04];
        off_curve.extend([0u8; 31]);
        off_curve.push(1);
        off_curve.extend([0u8; 31]);
        off_curve.push(1);
        // the same point compressed (33 bytes): browsers send uncompressed points
        let mut compressed = vec![if raw_point[64] % 2 == 0 { 0x02 } else { 0x03 }];
        compressed.extend(&raw_point[1..33]);
        let mut truncated = raw_point.clone();
        truncated.pop();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);

        for p256dh in [
            b64(&off_curve),
            b64(&compressed),
            b64(&truncated),
            b64(&[0x04; 65]),
            "not base64!".to_owned(),
            String::new(),
        ] {
            let body =
                app.post("/api/v1/devices", None, with_keys(&fresh_endpoint(), &p256dh, &good_a)).await.expect(422);
            assert_eq!(body["code"], "push_keys_invalid", "p256dh={p256dh:?}: {body}");
            assert_eq!(body["field"], "keys.p256dh");
        }
        for auth in [b64(&[7; 15]), b64(&[7; 17]), b64(&[7; 32]), "***".to_owned(), String::new()] {
            let body =
                app.post("/api/v1/devices", None, with_keys(&fresh_endpoint(), &good_p, &auth)).await.expect(422);
            assert_eq!(body["code"], "push_keys_invalid", "auth={auth:?}: {body}");
            assert_eq!(body["field"], "keys.auth");
        }

        // missing or mistyped fields: 422, never a 500
        for body in [
            json!({}),
            json!({"endpoint": fresh_endpoint()}),
            json!({"keys": {"p256dh": good_p, "auth": good_a}}),
            json!({"endpoint": fresh_endpoint(), "keys": {"p256dh": good_p}}),
            json!({"endpoint": fresh_endpoint(), "keys": {"auth": good_a}}),
            json!({"endpoint": null, "keys": {"p256dh": good_p, "auth": good_a}}),
            json!({"endpoint": 42, "keys": {"p256dh": good_p, "auth": good_a}}),
            json!({"endpoint": fresh_endpoint(), "keys": "p256dh"}),
            json!([fresh_endpoint()]),
        ] {
            let res = app.post("/api/v1/devices", None, body.clone()).await;
            assert_eq!(res.status.as_u16(), 422, "{body}: {}", res.body);
            assert!(res.body["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", res.body);
        }
        assert_eq!(device_count(&app).await, 0);
    }
);

// ---- changing the push subscription ----

both_backends!(
    async fn push_subscription_can_be_replaced_but_not_with_a_bad_one(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Vereinsnews", "club").await;
        let device = app.device().await;
        follow(&app, &device, &group).await;
        let (id, hash, old_endpoint, _, _) = device_row(&app, &device.token).await.unwrap();

        let mozilla = "https://updates.push.services.mozilla.com/wpush/v2/neu";
        let res = app.put("/api/v1/devices/me/push", Some(&device.token), push_subscription(mozilla)).await;
        assert_eq!(res.expect(204), Value::Null);
        let (id2, hash2, endpoint, _, _) = device_row(&app, &device.token).await.expect("same token still valid");
        assert_eq!((id2.as_str(), hash2.as_str(), endpoint.as_str()), (id.as_str(), hash.as_str(), mozilla));
        assert_ne!(old_endpoint, mozilla);

        // the same device, token and subscriptions go on working
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&subs), vec![group.clone()]);
        assert_eq!(subscriber_count(&app, &group).await, 1);

        // a bad replacement is refused and the stored one is untouched
        let before = device_row(&app, &device.token).await.unwrap();
        for bad in
            ["https://169.254.169.254/latest", "http://updates.push.services.mozilla.com/x", "https://evil.example/x"]
        {
            app.put("/api/v1/devices/me/push", Some(&device.token), push_subscription(bad))
                .await
                .expect_error(422, "push_endpoint_refused");
        }
        let (_, good_a) = good_keys();
        app.put(
            "/api/v1/devices/me/push",
            Some(&device.token),
            with_keys("https://web.push.apple.com/neu", &URL_SAFE_NO_PAD.encode([4u8; 65]), &good_a),
        )
        .await
        .expect_error(422, "push_keys_invalid");
        let res = app
            .put("/api/v1/devices/me/push", Some(&device.token), json!({"endpoint": "https://web.push.apple.com/x"}))
            .await;
        assert_eq!(res.status.as_u16(), 422, "{}", res.body);
        assert_eq!(device_row(&app, &device.token).await.unwrap(), before);

        app.put("/api/v1/devices/me/push", None, push_subscription(&fresh_endpoint()))
            .await
            .expect_error(401, "unauthenticated");
        assert_eq!(device_count(&app).await, 1, "PUT must not create devices");
    }
);

// ---- following groups ----

both_backends!(
    async fn following_and_unfollowing_are_idempotent(app: TestApp) {
        let (_, org) = town(&app).await;
        let news = app.group(&org, "Vereinsnews", "club").await;
        let youth = app.group(&org, "Jugend", "club").await;
        let device = app.device().await;

        let first = follow(&app, &device, &news).await;
        assert_eq!(first["id"], news);
        assert_eq!(first["name"], "Vereinsnews");
        assert_eq!(first["subscriber_count"], 1);
        let second = follow(&app, &device, &news).await;
        assert_eq!(second["subscriber_count"], 1);
        assert_eq!(subscriber_count(&app, &news).await, 1);
        let rows: i64 =
            app.with_conn(|c| subscriptions::table.count().get_result(c).expect("count subscriptions")).await;
        assert_eq!(rows, 1);

        app.advance(1000);
        follow(&app, &device, &youth).await;
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        let got: HashSet<String> = ids(&subs).into_iter().collect();
        assert_eq!(got, HashSet::from([news.clone(), youth.clone()]));
        assert!(subs["next"].is_null());
        let item = subs["items"].as_array().unwrap().iter().find(|g| g["id"] == youth).unwrap();
        assert_eq!(item["tenant"], "wismar");
        assert_eq!(item["organization"]["name"], "SV Wismar");

        let res = app.delete(&sub_path(&news), Some(&device.token)).await;
        assert_eq!(res.expect(204), Value::Null);
        app.delete(&sub_path(&news), Some(&device.token)).await.expect(204);
        assert_eq!(subscriber_count(&app, &news).await, 0);
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&subs), vec![youth.clone()]);
        // unfollowing a group never followed (or unknown) is fine too
        app.delete(&sub_path("no-such-group"), Some(&device.token)).await.expect(204);

        // following again after unfollowing
        follow(&app, &device, &news).await;
        assert_eq!(subscriber_count(&app, &news).await, 1);
    }
);

both_backends!(
    async fn hidden_or_unknown_groups_cannot_be_followed(app: TestApp) {
        let (admin, org) = town(&app).await;
        let device = app.device().await;

        let archived = app.group(&org, "Archiv", "club").await;
        app.delete(&format!("/api/v1/groups/{archived}"), Some(&org.user.access)).await.expect(204);
        let pending = app.register_org("wismar", "info@neu.de", "Neuer Verein").await;
        let pending_group = app.group(&pending, "Neuigkeiten", "club").await;
        let shady = app.approved_org(&admin, "wismar", "info@weg.de", "Weg GmbH").await;
        let shady_group = app.group(&shady, "Werbung", "business").await;
        suspend_org(&app, &admin, &shady.org_id).await;

        for group in [archived.as_str(), pending_group.as_str(), shady_group.as_str(), "no-such-group"] {
            app.put(&sub_path(group), Some(&device.token), json!(null)).await.expect_error(404, "not_found");
        }
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        assert_eq!(subs, json!({"items": [], "next": null}));
        let rows: i64 =
            app.with_conn(|c| subscriptions::table.count().get_result(c).expect("count subscriptions")).await;
        assert_eq!(rows, 0);
    }
);

// ---- the inbox ----

both_backends!(
    async fn inbox_merges_followed_groups_newest_first(app: TestApp) {
        let (admin, club) = town(&app).await;
        app.with_tenant("anklam").await;
        let anklam_admin = app.city_admin("anklam", "rathaus@anklam.de").await;
        let parish = app.approved_org(&anklam_admin, "anklam", "buero@marien-anklam.de", "St. Marien").await;
        let other = app.approved_org(&admin, "wismar", "info@kita.de", "Kita Sonnenschein").await;
        let shady = app.approved_org(&admin, "wismar", "info@weg.de", "Weg GmbH").await;

        let a = app.group(&club, "Vereinsnews", "club").await;
        let e = app.group(&club, "Jugend", "club").await;
        let b = app.group(&parish, "Gemeindebrief", "church").await;
        let c = app.group(&other, "Elternbriefe", "school").await;
        let d = app.group(&shady, "Angebote", "business").await;

        let device = app.device().await;
        let bystander = app.device().await;
        for g in [&a, &b, &d, &e] {
            follow(&app, &device, g).await;
        }
        follow(&app, &bystander, &c).await;
        app.delete(&sub_path(&e), Some(&device.token)).await.expect(204);

        let mut post = Vec::new();
        for (owner, group, title) in [
            (&club, &a, "a1"),
            (&parish, &b, "b1"),
            (&other, &c, "c1"),
            (&shady, &d, "d1"),
            (&club, &a, "a2"),
            (&club, &e, "e1"),
            (&parish, &b, "b2"),
        ] {
            post.push((title, app.message(&owner.user, group, title).await));
            app.advance(60_000);
        }
        let scheduled = app
            .post(
                &format!("/api/v1/groups/{a}/messages"),
                Some(&club.user.access),
                json!({"title": "a3", "body": "später", "publish_at": "2026-11-26T14:00:00Z"}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        post.push(("d2", app.message(&shady.user, &d, "d2").await));
        let id = |t: &str| post.iter().find(|(title, _)| *title == t).map(|(_, id)| id.clone()).unwrap();

        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        let want: Vec<String> = ["d2", "b2", "a2", "d1", "b1", "a1"].into_iter().map(id).collect();
        assert_eq!(ids(&inbox), want);
        assert!(inbox["next"].is_null());
        let b2 = &inbox["items"][1];
        assert_eq!(b2["title"], "b2");
        assert_eq!(b2["body"], "b2: Text");
        assert_eq!(b2["group"], json!({"id": b, "name": "Gemeindebrief", "tenant": "anklam", "verified": false}));
        assert_eq!(b2["published_at"], "2026-11-26T12:06:00.000Z");

        // pages: [d2 b2 a2 d1] [b1 a1]; then limit 2: three pages
        let p1 = app.get("/api/v1/devices/me/inbox?limit=4", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&p1), want[0..4]);
        let next = p1["next"].as_str().expect("next").to_owned();
        let p2 =
            app.get(&format!("/api/v1/devices/me/inbox?limit=4&cursor={next}"), Some(&device.token)).await.expect(200);
        assert_eq!(ids(&p2), want[4..6]);
        assert!(p2["next"].is_null());
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for page in 0..3 {
            let url = if page == 0 {
                "/api/v1/devices/me/inbox?limit=2".to_owned()
            } else {
                format!("/api/v1/devices/me/inbox?limit=2&cursor={cursor}")
            };
            let res = app.get(&url, Some(&device.token)).await.expect(200);
            seen.extend(ids(&res));
            match res["next"].as_str() {
                Some(n) if page < 2 => cursor = n.to_owned(),
                None if page == 2 => {}
                other => panic!("page {page}: unexpected next {other:?}"),
            }
        }
        assert_eq!(seen, want);

        // the organization gets suspended: its messages leave the inbox
        suspend_org(&app, &admin, &shady.org_id).await;
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        let want: Vec<String> = ["b2", "a2", "b1", "a1"].into_iter().map(id).collect();
        assert_eq!(ids(&inbox), want);

        // the scheduled message arrives when its time comes
        app.advance(2 * 3_600_000);
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&inbox)[0], scheduled);
        assert_eq!(inbox["items"][0]["published_at"], "2026-11-26T14:00:00.000Z");
        assert_eq!(ids(&inbox).len(), 5);

        // a device sees only what it follows
        let theirs = app.get("/api/v1/devices/me/inbox", Some(&bystander.token)).await.expect(200);
        assert_eq!(ids(&theirs), vec![id("c1")]);

        for bad in ["limit=0", "limit=101", "cursor=%21%21", "cursor=bm90LWEtY3Vyc29y"] {
            app.get(&format!("/api/v1/devices/me/inbox?{bad}"), Some(&device.token))
                .await
                .expect_error(422, "invalid_field");
        }
    }
);

both_backends!(
    async fn inbox_keeps_archived_groups_and_drops_hidden_messages(app: TestApp) {
        let (_, club) = town(&app).await;
        let old = app.group(&club, "Alte Herren", "club").await;
        let news = app.group(&club, "Vereinsnews", "club").await;
        let device = app.device().await;
        follow(&app, &device, &old).await;
        follow(&app, &device, &news).await;
        let o1 = app.message(&club.user, &old, "o1").await;
        app.advance(1000);
        let n1 = app.message(&club.user, &news, "n1").await;
        app.advance(1000);
        let n2 = app.message(&club.user, &news, "n2").await;

        // the club archives a group: its past messages stay in its followers' inboxes
        app.delete(&format!("/api/v1/groups/{old}"), Some(&club.user.access)).await.expect(204);
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&inbox), vec![n2.clone(), n1.clone(), o1.clone()]);
        // and the follower still sees the group, to unfollow it
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        let archived = subs["items"].as_array().unwrap().iter().find(|g| g["id"] == old).cloned().unwrap();
        assert_eq!(archived["status"], "archived");
        // and a notification of the archived group still opens its message
        let detail = app.get(&format!("/api/v1/messages/{o1}"), None).await.expect(200);
        assert_eq!(detail["title"], "o1");

        // a message the town hid (moderation) leaves the inbox
        let hidden = n2.clone();
        app.with_conn(move |c| {
            use herold::db::schema::messages;
            diesel::update(messages::table.find(hidden)).set(messages::hidden.eq(true)).execute(c).expect("hide")
        })
        .await;
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&inbox), vec![n1, o1]);
    }
);

// ---- erasing a device ----

both_backends!(
    async fn erasing_a_device_removes_everything_about_it(app: TestApp) {
        let (_, org) = town(&app).await;
        let news = app.group(&org, "Vereinsnews", "club").await;
        let youth = app.group(&org, "Jugend", "club").await;
        let device = app.device().await;
        let neighbour = app.device().await;
        follow(&app, &device, &news).await;
        follow(&app, &device, &youth).await;
        follow(&app, &neighbour, &news).await;
        app.message(&org.user, &news, "Training fällt aus").await;
        assert_eq!(subscriber_count(&app, &news).await, 2);
        assert_eq!(subscriber_count(&app, &youth).await, 1);
        let (device_id, _, _, _, _) = device_row(&app, &device.token).await.unwrap();

        let res = app.delete("/api/v1/devices/me", Some(&device.token)).await;
        assert_eq!(res.expect(204), Value::Null);

        // the token is dead everywhere
        let t = Some(device.token.as_str());
        app.get("/api/v1/devices/me/subscriptions", t).await.expect_error(401, "unauthenticated");
        app.get("/api/v1/devices/me/inbox", t).await.expect_error(401, "unauthenticated");
        app.put(&sub_path(&news), t, json!(null)).await.expect_error(401, "unauthenticated");
        app.delete(&sub_path(&news), t).await.expect_error(401, "unauthenticated");
        app.put("/api/v1/devices/me/push", t, push_subscription(&fresh_endpoint()))
            .await
            .expect_error(401, "unauthenticated");
        app.delete("/api/v1/devices/me", t).await.expect_error(401, "unauthenticated");

        assert_eq!(subscriber_count(&app, &news).await, 1);
        assert_eq!(subscriber_count(&app, &youth).await, 0);

        // nothing left in the database
        assert!(device_row(&app, &device.token).await.is_none());
        let id = device_id.clone();
        let (devices_left, subs_left): (i64, i64) = app
            .with_conn(move |c| {
                (
                    devices::table.filter(devices::id.eq(&id)).count().get_result(c).expect("count"),
                    subscriptions::table.filter(subscriptions::device_id.eq(&id)).count().get_result(c).expect("count"),
                )
            })
            .await;
        assert_eq!((devices_left, subs_left), (0, 0));

        // the neighbour is untouched
        let subs = app.get("/api/v1/devices/me/subscriptions", Some(&neighbour.token)).await.expect(200);
        assert_eq!(ids(&subs), vec![news.clone()]);
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&neighbour.token)).await.expect(200);
        assert_eq!(ids(&inbox).len(), 1);
        assert_eq!(device_count(&app).await, 1);
    }
);

// ---- authentication ----

both_backends!(
    async fn resident_routes_need_a_valid_device_token(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Vereinsnews", "club").await;
        let device = app.device().await;
        let forged = format!("hdv_{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        let wrong: Vec<Option<&str>> = vec![
            None,
            Some("hdv_bogus"),
            Some(forged.as_str()),
            // an organization member's access token is not a device token
            Some(org.user.access.as_str()),
            Some(org.user.refresh.as_str()),
            // the token's hash is not the token
            Some("x"),
        ];
        let hash = herold::auth::secrets::hash_secret(&device.token);
        let hashed = vec![Some(hash.as_str()), Some(&device.token[4..])];
        for token in wrong.into_iter().chain(hashed) {
            let checks = [
                app.get("/api/v1/devices/me/subscriptions", token).await,
                app.get("/api/v1/devices/me/inbox", token).await,
                app.put(&sub_path(&group), token, json!(null)).await,
                app.delete(&sub_path(&group), token).await,
                app.put("/api/v1/devices/me/push", token, push_subscription(&fresh_endpoint())).await,
                app.delete("/api/v1/devices/me", token).await,
            ];
            for res in checks {
                assert_eq!(res.headers.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
                res.expect_error(401, "unauthenticated");
            }
        }
        // nothing happened to the real device
        assert_eq!(subscriber_count(&app, &group).await, 0);
        assert!(device_row(&app, &device.token).await.is_some());

        // the scheme is case-insensitive; other schemes are refused
        let req = actix_web::test::TestRequest::get()
            .uri("/api/v1/devices/me/subscriptions")
            .insert_header(("Authorization", format!("bearer {}", device.token)))
            .to_request();
        assert_eq!(app.send(req).await.expect(200)["items"], json!([]));
        let req = actix_web::test::TestRequest::get()
            .uri("/api/v1/devices/me/subscriptions")
            .insert_header(("Authorization", format!("Basic {}", device.token)))
            .to_request();
        app.send(req).await.expect_error(401, "unauthenticated");
    }
);

// ---- privacy ----

both_backends!(
    async fn a_device_is_an_endpoint_two_keys_a_token_hash_and_two_times(app: TestApp) {
        let (devices_cols, subscription_cols) =
            app.with_conn(|c| (columns(c, "devices"), columns(c, "subscriptions"))).await;
        assert_eq!(devices_cols, ["auth", "created_at", "endpoint", "id", "last_seen_at", "p256dh", "token_hash"]);
        assert_eq!(subscription_cols, ["created_at", "device_id", "group_id"]);

        // a request with an IP and user agent leaves no trace of either
        let req = actix_web::test::TestRequest::post()
            .uri("/api/v1/devices")
            .insert_header(("User-Agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) Herold-Test-UA"))
            .insert_header(("X-Forwarded-For", "203.0.113.77"))
            .peer_addr("198.51.100.23:40000".parse().unwrap())
            .set_json(push_subscription(&fresh_endpoint()))
            .to_request();
        let token = app.send(req).await.expect(201)["device_token"].as_str().unwrap().to_owned();
        let row = device_row(&app, &token).await.unwrap();
        let text = format!("{row:?}");
        for trace in ["203.0.113.77", "198.51.100.23", "Herold-Test-UA", "Android"] {
            assert!(!text.contains(trace), "{trace} stored: {text}");
        }
        let times: (i64, i64) = app
            .with_conn(move |c| {
                devices::table
                    .filter(devices::id.eq(row.0))
                    .select((devices::created_at, devices::last_seen_at))
                    .first(c)
                    .expect("times")
            })
            .await;
        assert_eq!(times, (crate::harness::T0, crate::harness::T0));

        // last_seen_at is coarse (a day): it tells an active device from one to
        // purge, not when the resident opened the app
        app.advance(3 * 3_600_000);
        app.get("/api/v1/devices/me/inbox", Some(&token)).await.expect(200);
        assert_eq!(last_seen(&app, &token).await, crate::harness::T0);
        app.advance(24 * 3_600_000);
        app.get("/api/v1/devices/me/inbox", Some(&token)).await.expect(200);
        assert_eq!(last_seen(&app, &token).await, crate::harness::T0 + 27 * 3_600_000);
    }
);
