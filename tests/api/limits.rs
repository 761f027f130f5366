//! Abuse limits: request rates per client address (429 `rate_limited` with
//! `Retry-After`, per address, behind trusted proxies by `X-Forwarded-For`)
//! and the login lock-out per account (429 `account_locked`).
//!
//! The rate limiters run on the app's pinned clock, so a test drains a
//! bucket, reads the exact `Retry-After`, moves the clock and sees it refill.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::*;
use herold::limits::{Limit, LimitsConfig, Rate};
use herold::Config;

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;

/// An app with small limits: login 3/minute, registration 2/hour, devices
/// 3/hour, reports 2/hour, alerts 1/hour, test notifications 2/hour; proxies in 10.0.0.0/8 are trusted.
async fn limited_app(kind: Db) -> Option<TestApp> {
    let db = TestDb::new(kind)?;
    let mut config = Config::for_database(&db.url, db.data_dir()).expect("config");
    config.limits.set_rate(Limit::Login, Some(Rate::new(3, 60)));
    config.limits.set_rate(Limit::Register, Some(Rate::new(2, 3600)));
    config.limits.set_rate(Limit::Devices, Some(Rate::new(3, 3600)));
    config.limits.set_rate(Limit::Reports, Some(Rate::new(2, 3600)));
    config.limits.set_rate(Limit::Alerts, Some(Rate::new(1, 3600)));
    config.limits.set_rate(Limit::TestNotifications, Some(Rate::new(2, 3600)));
    config.limits.trusted_proxies = LimitsConfig::parse_proxies("10.0.0.0/8").expect("proxies");
    Some(TestApp::with_config(db, config).await)
}

/// `both_backends!` on the small-limits app.
macro_rules! with_limits {
    (async fn $name:ident($app:ident : TestApp) $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($app: TestApp) $body

            #[actix_web::test]
            async fn sqlite() {
                scenario(limited_app(Db::Sqlite).await.expect("sqlite is always available")).await;
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(app) = limited_app(Db::Postgres).await {
                    scenario(app).await;
                }
            }
        }
    };
}

/// POSTs `body` to `path` from client `peer` (`""`: no peer address, as
/// in-process requests have), optionally through a proxy's `X-Forwarded-For`.
async fn post_from(app: &TestApp, peer: &str, forwarded: Option<&str>, path: &str, body: Value) -> Res {
    send_from(app, peer, forwarded, None, path, body).await
}

async fn send_from(
    app: &TestApp,
    peer: &str,
    forwarded: Option<&str>,
    bearer: Option<&str>,
    path: &str,
    body: Value,
) -> Res {
    let mut req = TestRequest::default().method(Method::POST).uri(path).set_json(&body);
    if !peer.is_empty() {
        req = req.peer_addr(peer.parse().expect("socket address"));
    }
    if let Some(xff) = forwarded {
        req = req.insert_header(("X-Forwarded-For", xff));
    }
    if let Some(token) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    app.send(req.to_request()).await
}

fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

/// Asserts a 429 `rate_limited` answer that says when to come back.
#[track_caller]
fn expect_limited(res: Res, retry_after: &str) {
    let header = res.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    res.expect_error(429, "rate_limited");
    assert_eq!(header.as_deref(), Some(retry_after));
}

async fn failed_logins(app: &TestApp, email: &str) -> (i32, Option<i64>) {
    use herold::db::schema::users;
    let email = email.to_owned();
    app.with_conn(move |c| {
        users::table
            .filter(users::email.eq(&email))
            .select((users::failed_logins, users::locked_until))
            .first(c)
            .expect("user")
    })
    .await
}

with_limits!(
    async fn login_is_limited_per_address(app: TestApp) {
        app.with_tenant("wismar").await;
        app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let right = credentials("buero@st-nikolai.de", PASSWORD);
        let wrong = credentials("buero@st-nikolai.de", "falsches passwort");
        let login = "/api/v1/auth/login";
        let (one, two) = ("203.0.113.1:40001", "203.0.113.2:40002");

        // Three attempts a minute per address, right or wrong.
        post_from(&app, one, None, login, right.clone()).await.expect(200);
        post_from(&app, one, None, login, wrong.clone()).await.expect_error(401, "bad_credentials");
        post_from(&app, one, None, login, right.clone()).await.expect(200);
        // The fourth waits one refill: 60 s / 3.
        expect_limited(post_from(&app, one, None, login, right.clone()).await, "20");
        // A refused attempt is not even counted against the account.
        expect_limited(post_from(&app, one, Some("198.51.100.9"), login, wrong.clone()).await, "20");
        assert_eq!(failed_logins(&app, "buero@st-nikolai.de").await, (0, None));
        // Another address, and requests without any address, have buckets of their own.
        post_from(&app, two, None, login, right.clone()).await.expect(200);
        post_from(&app, "", None, login, right.clone()).await.expect(200);
        // The same host's other port is the same client.
        expect_limited(post_from(&app, "203.0.113.1:50000", None, login, right.clone()).await, "20");

        // Time refills the bucket one attempt at a time.
        app.advance(15 * SECOND);
        expect_limited(post_from(&app, one, None, login, right.clone()).await, "5");
        app.advance(5 * SECOND);
        post_from(&app, one, None, login, right.clone()).await.expect(200);
        expect_limited(post_from(&app, one, None, login, right.clone()).await, "20");
        app.advance(MINUTE);
        for _ in 0..3 {
            post_from(&app, one, None, login, right.clone()).await.expect(200);
        }
        expect_limited(post_from(&app, one, None, login, right).await, "20");
    }
);

with_limits!(
    async fn registration_and_devices_are_limited(app: TestApp) {
        app.with_tenant("wismar").await;
        let register = |n: u32| {
            json!({"email": format!("verein{n}@example.org"), "password": PASSWORD,
                   "organization": {"name": format!("Verein {n}"), "tenant": "wismar"}})
        };
        let ip = "198.51.100.20:1234";
        post_from(&app, ip, None, "/api/v1/auth/register", register(1)).await.expect(201);
        post_from(&app, ip, None, "/api/v1/auth/register", register(2)).await.expect(201);
        // 2 an hour: the next one in 30 minutes, and nothing was created.
        expect_limited(post_from(&app, ip, None, "/api/v1/auth/register", register(3)).await, "1800");
        let users =
            app.with_conn(|c| herold::db::schema::users::table.count().get_result::<i64>(c).expect("users")).await;
        assert_eq!(users, 2);
        post_from(&app, "198.51.100.21:1234", None, "/api/v1/auth/register", register(3)).await.expect(201);

        // Devices: 3 an hour per address; an IPv6 client is its /64.
        let v6 = "[2001:db8:5:6::1]:443";
        for _ in 0..3 {
            post_from(&app, v6, None, "/api/v1/devices", push_subscription(&fresh_endpoint())).await.expect(201);
        }
        let res = post_from(
            &app,
            "[2001:db8:5:6:ffff::2]:443",
            None,
            "/api/v1/devices",
            push_subscription(&fresh_endpoint()),
        );
        expect_limited(res.await, "1200");
        post_from(&app, "[2001:db8:5:7::1]:443", None, "/api/v1/devices", push_subscription(&fresh_endpoint()))
            .await
            .expect(201);
        // Limits answer before the body is looked at.
        expect_limited(post_from(&app, v6, None, "/api/v1/devices", json!({"nonsense": true})).await, "1200");
        // Other routes are not limited.
        for _ in 0..5 {
            app.get("/api/v1/tenants", None).await.expect(200);
        }
    }
);

with_limits!(
    async fn behind_a_trusted_proxy_the_forwarded_client_counts(app: TestApp) {
        let devices = "/api/v1/devices";
        let proxy = "10.0.0.2:5000";
        let sub = || push_subscription(&fresh_endpoint());
        // Three clients behind the proxy: three buckets.
        for _ in 0..3 {
            post_from(&app, proxy, Some("203.0.113.50"), devices, sub()).await.expect(201);
        }
        expect_limited(post_from(&app, proxy, Some("203.0.113.50"), devices, sub()).await, "1200");
        // A client cannot escape by prepending an address of its choice: the
        // proxy appends the real one, and that is the one read.
        expect_limited(post_from(&app, proxy, Some("192.0.2.77, 203.0.113.50"), devices, sub()).await, "1200");
        // Through two trusted proxies.
        expect_limited(post_from(&app, proxy, Some("203.0.113.50, 10.1.2.3"), devices, sub()).await, "1200");
        post_from(&app, proxy, Some("203.0.113.51"), devices, sub()).await.expect(201);
        // An untrusted peer's `X-Forwarded-For` is ignored: it is its own client.
        let direct = "192.0.2.1:6000";
        for n in 0..3 {
            post_from(&app, direct, Some(&format!("203.0.113.{}", 100 + n)), devices, sub()).await.expect(201);
        }
        expect_limited(post_from(&app, direct, Some("203.0.113.200"), devices, sub()).await, "1200");
    }
);

with_limits!(
    async fn reports_and_alerts_are_limited(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let owner = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let group = app.group(&owner, "Spielplan", "club").await;
        let mut messages = Vec::new();
        for n in 0..3 {
            messages.push(app.message(&owner.user, &group, &format!("Spiel {n}")).await);
        }
        let device = app.device().await;
        let (one, two) = ("198.51.100.30:1000", "198.51.100.31:1000");
        let report = |peer: &'static str, message: &str| {
            let (app, token, path) = (&app, device.token.clone(), format!("/api/v1/messages/{message}/reports"));
            async move { send_from(app, peer, None, Some(&token), &path, json!({"reason": "spam"})).await }
        };
        report(one, &messages[0]).await.expect(201);
        report(one, &messages[1]).await.expect(201);
        expect_limited(report(one, &messages[2]).await, "1800");
        report(two, &messages[2]).await.expect(201);

        let alerts = "/api/v1/admin/tenants/wismar/alerts";
        let alert = json!({"title": "Hochwasser", "body": "Die Uferstraße ist gesperrt."});
        send_from(&app, one, None, Some(&admin.access), alerts, alert.clone()).await.expect(201);
        expect_limited(send_from(&app, one, None, Some(&admin.access), alerts, alert.clone()).await, "3600");
        send_from(&app, two, None, Some(&admin.access), alerts, alert).await.expect(201);
    }
);

with_limits!(
    async fn test_notifications_are_limited(app: TestApp) {
        // Each is a real push signed with the town's key: a loop must not
        // make a push service throttle the whole origin.
        let device = app.device().await;
        let (one, two) = ("198.51.100.40:1000", "198.51.100.41:1000");
        let path = "/api/v1/devices/me/test-notification";
        let test = |peer: &'static str| {
            let (app, token) = (&app, device.token.clone());
            async move { send_from(app, peer, None, Some(&token), path, json!({"lang": "de"})).await }
        };
        test(one).await.expect(202);
        test(one).await.expect(202);
        expect_limited(test(one).await, "1800");
        test(two).await.expect(202);
    }
);

both_backends!(
    async fn repeated_failures_lock_the_account(app: TestApp) {
        app.with_tenant("wismar").await;
        app.register_org("wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let email = "buero@st-nikolai.de";
        let login = |password: &'static str| app.post("/api/v1/auth/login", None, credentials(email, password));

        // Nine wrong passwords: still the ordinary answer.
        for _ in 0..9 {
            login("falsches passwort").await.expect_error(401, "bad_credentials");
        }
        assert_eq!(failed_logins(&app, email).await, (9, None));
        // The tenth locks the account for 15 minutes …
        let res = login("falsches passwort").await;
        assert_eq!(res.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("900"));
        let body = res.expect(429);
        assert_eq!(body["code"], "account_locked", "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("locked") && m.contains("15 more minute")),
            "{body}"
        );
        assert_eq!(failed_logins(&app, email).await, (0, Some(T0 + 15 * MINUTE)));
        // … even for the right password, which is not even checked.
        app.advance(10 * MINUTE);
        let res = login(PASSWORD).await;
        assert_eq!(res.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("300"));
        res.expect_error(429, "account_locked");
        login("falsches passwort").await.expect_error(429, "account_locked");
        assert_eq!(failed_logins(&app, email).await, (0, Some(T0 + 15 * MINUTE)));
        // Sessions that existed go on: the lock guards the password, not the account's data.

        // Afterwards the right password works and clears the record.
        app.advance(5 * MINUTE);
        login(PASSWORD).await.expect(200);
        assert_eq!(failed_logins(&app, email).await, (0, None));

        // The count is of consecutive failures: a success starts it over.
        for _ in 0..9 {
            login("falsches passwort").await.expect_error(401, "bad_credentials");
        }
        login(PASSWORD).await.expect(200);
        for _ in 0..9 {
            login("falsches passwort").await.expect_error(401, "bad_credentials");
        }
        assert_eq!(failed_logins(&app, email).await, (9, None));
        login("falsches passwort").await.expect_error(429, "account_locked");

        // Another account is not affected.
        app.register_org("wismar", "vorstand@hansa-wismar.de", "Hansa").await;
        app.post("/api/v1/auth/login", None, credentials("vorstand@hansa-wismar.de", PASSWORD)).await.expect(200);

        // An unknown e-mail never says "locked": there is no account to lock.
        for _ in 0..12 {
            app.post("/api/v1/auth/login", None, credentials("niemand@example.org", "falsches passwort"))
                .await
                .expect_error(401, "bad_credentials");
        }
    }
);

#[test]
fn defaults_are_on_outside_tests() {
    let defaults = LimitsConfig::default();
    let rate = |l| defaults.rate(l).expect("on by default");
    assert_eq!(rate(Limit::Login), Rate::new(10, 60));
    assert_eq!(rate(Limit::Register), Rate::new(5, 3600));
    assert_eq!(rate(Limit::Devices), Rate::new(30, 3600));
    assert_eq!(rate(Limit::Reports), Rate::new(20, 3600));
    assert_eq!(rate(Limit::Alerts), Rate::new(10, 3600));
    assert_eq!((defaults.lockout_failures, defaults.lockout_ms), (10, 15 * 60 * 1000));
    let dir = tempfile::tempdir().expect("dir");
    let tools = Config::for_database("sqlite://x.db", dir.path().to_path_buf()).expect("config");
    assert!(Limit::ALL.iter().all(|l| tools.limits.rate(*l).is_none()), "tests and tools run without rate limits");
    assert_eq!(tools.limits.lockout_failures, 10);
}
