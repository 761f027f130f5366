//! Bad requests of every kind get a 4xx with a JSON `{code, message}` body,
//! never a 500 and never a lost or half-written record; every response
//! carries the security headers.

use actix_web::http::{header, Method};
use actix_web::test::TestRequest;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::{Res, TestApp, PASSWORD};

/// A request with a raw body and content type.
fn raw(method: Method, path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> TestRequest {
    let mut req = TestRequest::default().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.insert_header((header::CONTENT_TYPE, ct));
    }
    let body: Vec<u8> = body.into();
    if !body.is_empty() {
        req = req.set_payload(body);
    }
    req
}

fn header_of<'a>(res: &'a Res, name: &str) -> Option<&'a str> {
    res.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Content-Security-Policy without inline scripts, nosniff, never framed.
#[track_caller]
fn assert_security_headers(res: &Res) {
    let csp = header_of(res, "content-security-policy").expect("Content-Security-Policy header");
    assert!(!csp.contains("unsafe-inline"), "CSP allows inline: {csp}");
    assert!(!csp.contains("unsafe-eval"), "CSP allows eval: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "CSP allows framing: {csp}");
    assert!(csp.contains("script-src 'self'") || csp.contains("default-src 'self'"), "CSP: {csp}");
    assert_eq!(header_of(res, "x-content-type-options"), Some("nosniff"));
}

/// Asserts status and code, a JSON `{code, message}` body, and the security headers.
#[track_caller]
fn expect_json_error(res: Res, status: u16, code: &str) -> Value {
    assert_security_headers(&res);
    let ct = header_of(&res, "content-type").map(str::to_owned);
    assert!(
        ct.as_deref().is_some_and(|ct| ct.starts_with("application/json")),
        "error is not JSON ({ct:?}): {}",
        res.body
    );
    let body = res.expect(status);
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    body
}

async fn count_users(app: &TestApp) -> i64 {
    use herold::db::schema::users;
    app.with_conn(|c| users::table.count().get_result::<i64>(c).expect("count users")).await
}

both_backends!(
    async fn malformed_json_is_400(app: TestApp) {
        app.with_tenant("wismar").await;
        let cases: &[&[u8]] = &[b"{", b"{\"email\": \"a@b.de\", }", b"{'email': 'a@b.de'}", b"not json at all", b"   "];
        for body in cases {
            for path in ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/devices"] {
                let res = app.send(raw(Method::POST, path, Some("application/json"), body.to_vec()).to_request()).await;
                expect_json_error(res, 400, "malformed_json");
            }
        }
        // Invalid UTF-8 inside a string the server reads.
        let latin1 = b"{\"email\": \"b\xe4cker@b.de\", \"password\": \"0123456789\"}".to_vec();
        let res =
            app.send(raw(Method::POST, "/api/v1/auth/login", Some("application/json"), latin1).to_request()).await;
        expect_json_error(res, 400, "malformed_json");
        let trailing = b"{\"email\": \"a@b.de\", \"password\": \"0123456789\"} trailing".to_vec();
        let res =
            app.send(raw(Method::POST, "/api/v1/auth/login", Some("application/json"), trailing).to_request()).await;
        expect_json_error(res, 400, "malformed_json");
        // Deep nesting neither crashes the parser nor gets past it unclosed.
        let deep = |close: bool| {
            let closing = if close { "]".repeat(10_000) } else { String::new() };
            let body = format!(
                "{{\"email\": \"a@b.de\", \"password\": \"0123456789\", \"x\": {}{closing}}}",
                "[".repeat(10_000)
            );
            raw(Method::POST, "/api/v1/auth/login", Some("application/json"), body).to_request()
        };
        expect_json_error(app.send(deep(false)).await, 400, "malformed_json");
        expect_json_error(app.send(deep(true)).await, 401, "bad_credentials");
        // A route taking an optional body says the same.
        let owner = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let op = app.operator("betrieb@herold.example").await;
        let req = raw(
            Method::POST,
            &format!("/api/v1/admin/organizations/{}/reject", owner.org_id),
            Some("application/json"),
            "{\"reason\": ",
        )
        .insert_header((header::AUTHORIZATION, format!("Bearer {}", op.access)));
        expect_json_error(app.send(req.to_request()).await, 400, "malformed_json");
        assert_eq!(count_users(&app).await, 2);
    }
);

both_backends!(
    async fn wrong_types_and_missing_fields_are_422(app: TestApp) {
        app.with_tenant("wismar").await;
        let cases = [
            ("/api/v1/auth/login", json!({"email": "a@b.de"})),
            ("/api/v1/auth/login", json!({"email": 5, "password": PASSWORD})),
            ("/api/v1/auth/login", json!("a@b.de")),
            ("/api/v1/auth/login", json!(null)),
            ("/api/v1/auth/login", json!(42)),
            ("/api/v1/auth/register", json!({"email": "a@b.de", "password": PASSWORD})),
            ("/api/v1/auth/register", json!({"email": "a@b.de", "password": PASSWORD, "organization": "SV"})),
            (
                "/api/v1/auth/register",
                json!({"email": "a@b.de", "password": PASSWORD, "organization": {"name": 1, "tenant": "wismar"}}),
            ),
            (
                "/api/v1/auth/register",
                json!({"email": "a@b.de", "password": PASSWORD, "organization": {"name": "SV", "tenant": "wismar"}, "admin": true}),
            ),
            ("/api/v1/auth/refresh", json!({})),
            ("/api/v1/auth/refresh", json!({"refresh_token": ["x"]})),
            ("/api/v1/auth/accept-invite", json!({"invite_token": "hin_x"})),
            ("/api/v1/devices", json!({"endpoint": 1})),
        ];
        for (path, body) in cases {
            // `json!(null)` must go on the wire, so send it raw.
            let bytes = serde_json::to_vec(&body).expect("json");
            let res = app.send(raw(Method::POST, path, Some("application/json"), bytes).to_request()).await;
            expect_json_error(res, 422, "invalid_body");
        }
        assert_eq!(count_users(&app).await, 0);

        // The same for authenticated routes.
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let owner = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let group = app.group(&owner, "Spielplan", "club").await;
        let token = Some(owner.user.access.as_str());
        let messages = format!("/api/v1/groups/{group}/messages");
        for body in [
            json!({"title": "Nur Titel"}),
            json!({"title": 1, "body": "x"}),
            json!({"title": "t", "body": "b", "ttl": 1.5}),
            json!({"title": "t", "body": "b", "ttl": 99_999_999_999_i64}),
            json!({"title": "t", "body": "b", "publish_at": 1_795_694_400}),
        ] {
            expect_json_error(app.post(&messages, token, body).await, 422, "invalid_body");
        }
        let members = format!("/api/v1/organizations/{}/members", owner.org_id);
        expect_json_error(app.post(&members, token, json!({"mail": "x@y.de"})).await, 422, "invalid_body");
        expect_json_error(
            app.patch(&format!("/api/v1/groups/{group}"), token, json!({"name": ["a"]})).await,
            422,
            "invalid_body",
        );
        // Query strings of the wrong type are 400 (path and query are not the body).
        expect_json_error(app.get(&format!("{messages}?limit=zwanzig"), None).await, 400, "bad_query");
        expect_json_error(app.get(&format!("{messages}?limit=-1"), None).await, 400, "bad_query");
        let body = expect_json_error(app.get(&format!("{messages}?limit=0"), None).await, 422, "invalid_field");
        assert_eq!(body["field"], "limit");
        let feed = app.get(&messages, None).await.expect(200);
        assert_eq!(feed["items"], json!([]));
    }
);

both_backends!(
    async fn oversized_bodies_are_413_and_store_nothing(app: TestApp) {
        app.with_tenant("wismar").await;
        let huge = "x".repeat(70 * 1024);
        let body = json!({
            "email": "info@sv-wismar.de",
            "password": PASSWORD,
            "organization": {"name": "SV Wismar", "tenant": "wismar", "description": huge}
        });
        let bytes = serde_json::to_vec(&body).expect("json");
        assert!(bytes.len() > 64 * 1024);
        let res =
            app.send(raw(Method::POST, "/api/v1/auth/register", Some("application/json"), bytes).to_request()).await;
        expect_json_error(res, 413, "payload_too_large");
        assert_eq!(count_users(&app).await, 0);
        // The e-mail is still free.
        app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;

        // Just under the limit is read (and then judged on its content).
        let near = json!({"email": "x@y.de", "password": "p".repeat(60 * 1024)});
        let res = app.post("/api/v1/auth/login", None, near).await;
        expect_json_error(res, 401, "bad_credentials");

        // A message body far over the limit, and a route that reads raw bytes.
        let op = app.operator("betrieb@herold.example").await;
        app.post(
            &format!("/api/v1/admin/organizations/{}/approve", app_org(&app).await),
            Some(&op.access),
            Value::Null,
        )
        .await
        .expect(200);
        let owner = app.login("info@sv-wismar.de").await;
        let org_id = app_org(&app).await;
        let group = app
            .post(&format!("/api/v1/organizations/{org_id}/groups"), Some(&owner.access), json!({"name": "Spielplan"}))
            .await
            .expect(201)["id"]
            .as_str()
            .expect("group id")
            .to_owned();
        let res = app
            .post(&format!("/api/v1/groups/{group}/messages"), Some(&owner.access), json!({"title": "t", "body": huge}))
            .await;
        expect_json_error(res, 413, "payload_too_large");
        let stored: i64 =
            app.with_conn(|c| herold::db::schema::messages::table.count().get_result(c).expect("count")).await;
        assert_eq!(stored, 0);

        let req = raw(
            Method::POST,
            &format!("/api/v1/admin/organizations/{org_id}/suspend"),
            Some("application/json"),
            serde_json::to_vec(&json!({"reason": huge})).expect("json"),
        )
        .insert_header((header::AUTHORIZATION, format!("Bearer {}", op.access)));
        expect_json_error(app.send(req.to_request()).await, 413, "payload_too_large");
        let org = app.get(&format!("/api/v1/organizations/{org_id}"), Some(&owner.access)).await.expect(200);
        assert_eq!(org["status"], "approved");
    }
);

/// The id of the only organization.
async fn app_org(app: &TestApp) -> String {
    use herold::db::schema::organizations;
    app.with_conn(|c| organizations::table.select(organizations::id).first(c).expect("organization")).await
}

both_backends!(
    async fn non_json_content_types_are_415(app: TestApp) {
        app.with_tenant("wismar").await;
        let body = serde_json::to_vec(&json!({"email": "a@b.de", "password": PASSWORD})).expect("json");
        for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None] {
            let res = app.send(raw(Method::POST, "/api/v1/auth/login", ct, body.clone()).to_request()).await;
            expect_json_error(res, 415, "unsupported_media_type");
        }
        let form = "email=a%40b.de&password=0123456789&organization%5Bname%5D=SV&organization%5Btenant%5D=wismar";
        let res = app
            .send(
                raw(Method::POST, "/api/v1/auth/register", Some("application/x-www-form-urlencoded"), form)
                    .to_request(),
            )
            .await;
        expect_json_error(res, 415, "unsupported_media_type");
        assert_eq!(count_users(&app).await, 0);
        // A JSON media type with parameters is JSON.
        app.register_org("wismar", "a@b.de", "SV Wismar").await;
        let res = app
            .send(raw(Method::POST, "/api/v1/auth/login", Some("application/json; charset=utf-8"), body).to_request())
            .await;
        res.expect(200);
    }
);

both_backends!(
    async fn unknown_routes_are_404_and_wrong_methods_405(app: TestApp) {
        app.with_tenant("wismar").await;
        for path in ["/api/v1/nothing-here", "/api/v1/", "/api/v2/tenants", "/api/v1/groups/x/y/z", "/api/v1/admin"] {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let res = app.send(raw(method, path, None, Vec::new()).to_request()).await;
                expect_json_error(res, 404, "not_found");
            }
        }
        let wrong = [
            (Method::GET, "/api/v1/auth/login"),
            (Method::PUT, "/api/v1/auth/register"),
            (Method::DELETE, "/api/v1/tenants"),
            (Method::POST, "/api/v1/tenants/wismar/groups"),
            (Method::PUT, "/api/v1/groups/some-id"),
            (Method::PUT, "/api/v1/groups/some-id/messages"),
            (Method::GET, "/api/v1/devices"),
            (Method::PATCH, "/api/v1/me"),
            (Method::GET, "/api/v1/admin/organizations/some-id/approve"),
            (Method::POST, "/healthz"),
        ];
        for (method, path) in wrong {
            let res = app.send(raw(method.clone(), path, None, Vec::new()).to_request()).await;
            assert_ne!(res.status.as_u16(), 404, "{method} {path} exists with another method");
            expect_json_error(res, 405, "method_not_allowed");
        }
    }
);

both_backends!(
    async fn unknown_ids_are_404(app: TestApp) {
        app.with_tenant("wismar").await;
        let op = app.operator("betrieb@herold.example").await;
        let owner = app.register_org("wismar", "info@sv-wismar.de", "SV Wismar").await;
        let t = Some(owner.user.access.as_str());
        let o = Some(op.access.as_str());
        let device = app.device().await;
        let d = Some(device.token.as_str());
        let cases: Vec<Res> = vec![
            app.get("/api/v1/tenants/rostock/groups", None).await,
            app.get("/api/v1/groups/unbekannt", None).await,
            app.get("/api/v1/groups/unbekannt/messages", None).await,
            app.get("/api/v1/groups/unbekannt/messages", t).await,
            app.get("/api/v1/messages/unbekannt", None).await,
            app.get("/api/v1/messages/unbekannt/stats", t).await,
            app.get("/api/v1/organizations/unbekannt", t).await,
            app.get("/api/v1/organizations/unbekannt", o).await,
            app.get("/api/v1/organizations/unbekannt/members", t).await,
            app.get("/api/v1/organizations/unbekannt/groups", t).await,
            app.post("/api/v1/organizations/unbekannt/groups", t, json!({"name": "Gruppe"})).await,
            app.post("/api/v1/organizations/unbekannt/members", t, json!({"email": "x@y.de"})).await,
            app.patch("/api/v1/groups/unbekannt", t, json!({"name": "Gruppe"})).await,
            app.delete("/api/v1/groups/unbekannt", t).await,
            app.post("/api/v1/groups/unbekannt/messages", t, json!({"title": "t", "body": "b"})).await,
            app.post("/api/v1/admin/organizations/unbekannt/approve", o, Value::Null).await,
            app.get("/api/v1/admin/tenants/rostock/organizations", o).await,
            app.put("/api/v1/devices/me/subscriptions/unbekannt", d, Value::Null).await,
            app.patch(
                &format!("/api/v1/organizations/{}/members/unbekannt", owner.org_id),
                t,
                json!({"role": "owner"}),
            )
            .await,
            app.delete(&format!("/api/v1/organizations/{}/members/unbekannt", owner.org_id), t).await,
            // Odd ids are just unknown ids.
            app.get("/api/v1/groups/'%20OR%201=1--", None).await,
            app.get(&format!("/api/v1/groups/{}", "x".repeat(2000)), None).await,
            app.get("/api/v1/groups/%C3%A4%F0%9F%98%80", None).await,
        ];
        for res in cases {
            expect_json_error(res, 404, "not_found");
        }
    }
);

both_backends!(
    async fn unauthenticated_requests_are_401_json(app: TestApp) {
        app.with_tenant("wismar").await;
        let device = app.device().await;
        for token in [None, Some("garbage"), Some(device.token.as_str())] {
            for res in [
                app.get("/api/v1/me", token).await,
                app.get("/api/v1/organizations/mine", token).await,
                app.post("/api/v1/organizations", token, json!({"name": "SV", "tenant": "wismar"})).await,
                app.get("/api/v1/admin/tenants/wismar/organizations", token).await,
            ] {
                assert_eq!(header_of(&res, "www-authenticate"), Some("Bearer"));
                expect_json_error(res, 401, "unauthenticated");
            }
        }
        let req = TestRequest::get().uri("/api/v1/me").insert_header((header::AUTHORIZATION, "Basic dXNlcjpwdw=="));
        expect_json_error(app.send(req.to_request()).await, 401, "unauthenticated");
        let req = TestRequest::get().uri("/api/v1/me").insert_header((header::AUTHORIZATION, "Bearer "));
        expect_json_error(app.send(req.to_request()).await, 401, "unauthenticated");
    }
);

both_backends!(
    async fn responses_carry_security_headers(app: TestApp) {
        app.with_tenant("wismar").await;
        let ok = app.get("/api/v1/tenants", None).await;
        assert_security_headers(&ok);
        assert_eq!(ok.expect(200)["items"][0]["slug"], "wismar");
        for path in ["/healthz", "/api/v1/push/vapid-public-key"] {
            let res = app.get(path, None).await;
            assert_security_headers(&res);
            res.expect(200);
        }
        let created = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": "a@b.de", "password": PASSWORD, "organization": {"name": "SV", "tenant": "wismar"}}),
            )
            .await;
        assert_security_headers(&created);
        let created = created.expect(201);
        let res = app.post("/api/v1/auth/logout", None, json!({"refresh_token": created["refresh_token"]})).await;
        assert_security_headers(&res);
        res.expect(204);
        // Errors from the app and from the framework alike.
        expect_json_error(app.get("/api/v1/groups/x", None).await, 404, "not_found");
        expect_json_error(app.get("/api/v1/none", None).await, 404, "not_found");
        expect_json_error(app.get("/api/v1/me", None).await, 401, "unauthenticated");
    }
);

both_backends!(
    async fn nul_bytes_are_refused_before_the_database(app: TestApp) {
        // PostgreSQL cannot store U+0000 in text: it must never get there.
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let owner = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let group = app.group(&owner, "Spielplan", "club").await;
        let t = Some(owner.user.access.as_str());
        for res in [
            app.get("/api/v1/groups/%00", None).await,
            app.get("/api/v1/groups/ab%00cd/messages", None).await,
            app.get("/api/v1/messages/%00", None).await,
            app.get("/api/v1/tenants/%00/groups", None).await,
            app.get("/api/v1/organizations/%00", t).await,
            app.patch("/api/v1/groups/%00", t, json!({"name": "Gruppe"})).await,
            app.post("/api/v1/admin/organizations/%00/approve", Some(&admin.access), Value::Null).await,
            app.get("/api/v1/admin/tenants/wis%00mar/organizations", Some(&admin.access)).await,
        ] {
            expect_json_error(res, 404, "not_found");
        }
        // In a cursor (base64 of "0:\0").
        let res = app.get(&format!("/api/v1/groups/{group}/messages?cursor=MDoA"), None).await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "cursor");
        let res = app.get("/api/v1/admin/tenants/wismar/organizations?cursor=MDoA", Some(&admin.access)).await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "cursor");
        // In JSON strings.
        let res = app.post("/api/v1/auth/login", None, json!({"email": "a\u{0}@b.de", "password": PASSWORD})).await;
        expect_json_error(res, 401, "bad_credentials");
        let res = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": "neu@b.de", "password": PASSWORD, "organization": {"name": "SV", "tenant": "wis\u{0}mar"}}),
            )
            .await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "organization.tenant");
        let res = app.post("/api/v1/organizations", t, json!({"name": "Zweite", "tenant": "\u{0}"})).await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "organization.tenant");
        let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": "hrt_\u{0}"})).await;
        expect_json_error(res, 401, "bad_credentials");
        let res = app.post("/api/v1/auth/logout", None, json!({"refresh_token": "\u{0}"})).await;
        res.expect(204);
        let res =
            app.post(&format!("/api/v1/groups/{group}/messages"), t, json!({"title": "a\u{0}b", "body": "x"})).await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "title");
        let res = app.get("/api/v1/tenants/wismar/groups?q=%00", None).await;
        assert_eq!(expect_json_error(res, 422, "invalid_field")["field"], "q");
    }
);
