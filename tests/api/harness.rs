//! The test harness: a fresh database per test (temp-file SQLite, or a new
//! PostgreSQL database when `TEST_DATABASE_URL` is set), the real app built
//! by `herold::app`, a pinned clock, and typed clients per role.
//!
//! `both_backends!` turns one async scenario into a `sqlite` and a
//! `postgres` test. Without `TEST_DATABASE_URL` the PostgreSQL half says
//! loudly that it is skipped — unless `HEROLD_REQUIRE_POSTGRES=1` (CI),
//! where it fails.

#![allow(dead_code)]

use std::path::PathBuf;

use actix_http::Request;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use herold::{AppState, Clock, Config};

/// 2026-11-26T12:00:00Z: tests run on a pinned clock they move themselves.
pub const T0: i64 = 1_795_694_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database made for one test and removed after it.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
    pg_name: Option<(String, String)>,
}

impl TestDb {
    /// `None` when PostgreSQL is not configured (the caller skips).
    pub fn new(kind: Db) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            Db::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("herold.db").display());
                Some(TestDb { url, _dir: dir, pg_name: None })
            }
            Db::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    if std::env::var("HEROLD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                        panic!("HEROLD_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set");
                    }
                    announce_postgres_skipped();
                    return None;
                };
                let name =
                    format!("herold_t_{}", herold::auth::secrets::new_id().to_lowercase().replace(['-', '_'], "x"));
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("PostgreSQL at TEST_DATABASE_URL unreachable: {e}"));
                admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let url = replace_db_name(&admin_url, &name);
                Some(TestDb { url, _dir: dir, pg_name: Some((admin_url, name)) })
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }
}

/// Says once per run, past libtest's output capture, that the PostgreSQL
/// half did not run.
fn announce_postgres_skipped() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** PostgreSQL tests SKIPPED: set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
             to run every scenario on PostgreSQL too (CI does, and fails without it). ***\n"
        );
    });
}

/// Swaps the database name in a `postgres://…/name?…` URL.
pub fn replace_db_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg_name {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

type BoxedService = Box<
    dyn Service<
        Request,
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        Future = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>,
    >,
>;

/// The app under test, on its own database.
pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    service: BoxedService,
}

/// A response: status, headers and the JSON body (Null when empty).
pub struct Res {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Res {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts an error status and its stable code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "unexpected error code; body: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    }
}

impl TestApp {
    /// `None` when the backend is not available (PostgreSQL not configured).
    pub async fn new(kind: Db) -> Option<TestApp> {
        let db = TestDb::new(kind)?;
        let config = Config::for_database(&db.url, db.data_dir()).expect("config");
        Some(Self::with_config(db, config).await)
    }

    pub async fn with_config(db: TestDb, config: Config) -> TestApp {
        let state = actix_web::web::block(move || AppState::open(config, Clock::fixed(T0)))
            .await
            .expect("blocking")
            .expect("app state");
        let service = test::init_service(herold::app(state.clone())).await;
        let service = Box::new(MapBody(service));
        TestApp { db, state, service }
    }

    pub fn advance(&self, ms: i64) {
        self.state.clock.advance_ms(ms);
    }

    /// Sends a request; `body` of `Value::Null` sends none.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Res {
        let mut req = test::TestRequest::default().method(method).uri(path);
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        if !body.is_null() {
            req = req.set_json(&body);
        }
        self.send(req.to_request()).await
    }

    /// Sends a raw request (bad JSON, odd headers).
    pub async fn send(&self, req: Request) -> Res {
        let res = self.service.call(req).await.expect("service error");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = test::read_body(res).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Res { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::GET, path, token, Value::Null).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(Method::POST, path, token, body).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(Method::PUT, path, token, body).await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.call(Method::PATCH, path, token, body).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Res {
        self.call(Method::DELETE, path, token, Value::Null).await
    }

    /// Runs blocking work on a pooled connection (fixtures the API has no route for).
    pub async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut herold::db::DbConn) -> T + Send + 'static,
    ) -> T {
        let pool = self.state.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().expect("connection");
            work(&mut conn)
        })
        .await
        .expect("blocking")
    }

    // ---- fixtures in the domain's words ----

    /// Creates a tenant as the operator's CLI does.
    pub async fn with_tenant(&self, slug: &str) -> &Self {
        let slug = slug.to_owned();
        self.with_conn(move |c| herold::tenants::create(c, &slug, &format!("Stadt {slug}"), T0).expect("tenant")).await;
        self
    }

    /// A city admin of `tenant`, logged in.
    pub async fn city_admin(&self, tenant: &str, email: &str) -> User {
        self.make_admin(Some(tenant), email).await
    }

    /// An operator (CLI `--platform`), logged in.
    pub async fn operator(&self, email: &str) -> User {
        self.make_admin(None, email).await
    }

    async fn make_admin(&self, tenant: Option<&str>, email: &str) -> User {
        let (tenant, mail) = (tenant.map(str::to_owned), email.to_owned());
        self.with_conn(move |c| {
            let hash = herold::auth::password::hash(PASSWORD).expect("hash");
            let user = herold::accounts::create_user(c, &mail, Some(&hash), tenant.is_none(), T0).expect("user");
            if let Some(slug) = tenant {
                let t = herold::tenants::by_slug(c, &slug).expect("tenant");
                herold::accounts::grant_city_admin(c, &t.id, &user.id, T0).expect("grant");
            }
        })
        .await;
        self.login(email).await
    }

    pub async fn login(&self, email: &str) -> User {
        let body =
            self.post("/api/v1/auth/login", None, json!({"email": email, "password": PASSWORD})).await.expect(200);
        User::from_tokens(&body)
    }

    /// Registers an organization (pending) and returns its owner.
    pub async fn register_org(&self, tenant: &str, email: &str, org_name: &str) -> Owner {
        let body = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "organization": {"name": org_name, "tenant": tenant}}),
            )
            .await
            .expect(201);
        Owner {
            user: User::from_tokens(&body),
            org_id: body["organization"]["id"].as_str().expect("org id").to_owned(),
        }
    }

    /// Registers an organization and has `admin` approve it.
    pub async fn approved_org(&self, admin: &User, tenant: &str, email: &str, org_name: &str) -> Owner {
        let owner = self.register_org(tenant, email, org_name).await;
        self.post(&format!("/api/v1/admin/organizations/{}/approve", owner.org_id), Some(&admin.access), Value::Null)
            .await
            .expect(200);
        owner
    }

    /// Invites a new member as an editor of `owner`'s organization; the
    /// invitation is accepted and the editor logged in.
    pub async fn invited_editor(&self, owner: &Owner, email: &str) -> User {
        let added = self
            .post(
                &format!("/api/v1/organizations/{}/members", owner.org_id),
                Some(&owner.user.access),
                json!({"email": email}),
            )
            .await
            .expect(201);
        let invite = added["invite_token"].as_str().expect("invitation").to_owned();
        User::from_tokens(
            &self
                .post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": PASSWORD}))
                .await
                .expect(200),
        )
    }

    /// Creates a group as `owner`; returns its id.
    pub async fn group(&self, owner: &Owner, name: &str, category: &str) -> String {
        let body = self
            .post(
                &format!("/api/v1/organizations/{}/groups", owner.org_id),
                Some(&owner.user.access),
                json!({"name": name, "description": format!("{name} — Neuigkeiten"), "category": category}),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("group id").to_owned()
    }

    /// Registers a resident device; returns its token.
    pub async fn device(&self) -> Device {
        let body = self.post("/api/v1/devices", None, push_subscription(&fresh_endpoint())).await.expect(201);
        Device { token: body["device_token"].as_str().expect("device token").to_owned() }
    }

    /// Posts a message as `user`; returns its id.
    pub async fn message(&self, user: &User, group: &str, title: &str) -> String {
        let body = self
            .post(
                &format!("/api/v1/groups/{group}/messages"),
                Some(&user.access),
                json!({"title": title, "body": format!("{title}: Text")}),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("message id").to_owned()
    }
}

/// Maps the app's body type into `BoxBody` so the service can be stored.
struct MapBody<S>(S);

impl<S, B> Service<Request> for MapBody<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>;

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: Request) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move { fut.await.map(|r| r.map_into_boxed_body()) })
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A logged-in person (organization member, city admin or operator).
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub access: String,
    pub refresh: String,
}

impl User {
    pub fn from_tokens(body: &Value) -> User {
        User {
            id: body["user"]["id"].as_str().expect("user id").to_owned(),
            access: body["access_token"].as_str().expect("access token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh token").to_owned(),
        }
    }
}

/// The owner of an organization.
#[derive(Clone, Debug)]
pub struct Owner {
    pub user: User,
    pub org_id: String,
}

/// A resident device.
#[derive(Clone, Debug)]
pub struct Device {
    pub token: String,
}

/// A valid-looking FCM endpoint, unique per call.
pub fn fresh_endpoint() -> String {
    format!("https://fcm.googleapis.com/fcm/send/{}", herold::auth::secrets::new_id())
}

/// A browser `PushSubscription.toJSON()` with a real P-256 key.
pub fn push_subscription(endpoint: &str) -> Value {
    json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {
            // RFC 8291 Appendix A's user-agent public key and auth secret.
            "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "auth": "BTBZMqHH6r4Tts7J_aSIgg"
        }
    })
}

/// Runs one async scenario on both backends: `mod $name { fn sqlite; fn postgres }`.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($app:ident : TestApp) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::harness::*;

            async fn scenario($app: TestApp) $body

            #[actix_web::test]
            async fn sqlite() {
                let app = TestApp::new(Db::Sqlite).await.expect("sqlite is always available");
                scenario(app).await;
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(app) = TestApp::new(Db::Postgres).await {
                    scenario(app).await;
                }
            }
        }
    };
}

/// An app wired to a strict test push service, with a delivery engine the
/// test drives itself (`deliver()` works until nothing is due).
pub struct Delivering {
    pub app: TestApp,
    /// The first (usually the only) test push service.
    pub push: crate::push_service::TestPushService,
    /// Every test push service of the setup, `push` first, each on its own
    /// origin and all of them allowed.
    pub pushes: Vec<crate::push_service::TestPushService>,
    pub engine: std::sync::Arc<herold::delivery::Delivery>,
}

/// What a [`Delivering`] is made with beyond the defaults.
pub struct DeliverySetup {
    /// Test push services to start (at least one), each on its own origin.
    pub push_services: usize,
    /// Further origins to allow in `HEROLD_PUSH_ALLOWED_ORIGINS` (e.g. one
    /// where nothing listens).
    pub also_allowed: Vec<String>,
    /// The engine's tunables.
    pub engine: herold::delivery::DeliveryConfig,
}

impl DeliverySetup {
    /// One push service, batches of `batch_size`, a 5 s request timeout.
    pub fn batch(batch_size: i64) -> DeliverySetup {
        DeliverySetup {
            push_services: 1,
            also_allowed: Vec::new(),
            engine: herold::delivery::DeliveryConfig {
                batch_size,
                request_timeout: std::time::Duration::from_secs(5),
                ..Default::default()
            },
        }
    }
}

impl Delivering {
    /// `None` when the backend is not available. `batch_size` small makes
    /// the keyset walk visible in tests.
    pub async fn new(kind: Db, batch_size: i64) -> Option<Delivering> {
        Self::with_setup(kind, DeliverySetup::batch(batch_size)).await
    }

    /// `None` when the backend is not available.
    pub async fn with_setup(kind: Db, setup: DeliverySetup) -> Option<Delivering> {
        let db = TestDb::new(kind)?;
        // First open creates the installation's VAPID key in the database …
        let probe = Config::for_database(&db.url, db.data_dir()).expect("config");
        let vapid = actix_web::web::block(move || AppState::open(probe, Clock::fixed(T0)))
            .await
            .expect("blocking")
            .expect("app state")
            .keys
            .vapid
            .public_key()
            .to_owned();
        // … which the push services need; the app then allows their origins.
        let pushes: Vec<_> =
            (0..setup.push_services.max(1)).map(|_| crate::push_service::TestPushService::start(&vapid)).collect();
        let mut config = Config::for_database(&db.url, db.data_dir()).expect("config");
        config.push_allowed_origins = pushes
            .iter()
            .map(|p| p.origin())
            .chain(setup.also_allowed.iter().map(String::as_str))
            .map(|o| url::Url::parse(o).expect("origin"))
            .collect();
        config.vapid_subject = "mailto:rathaus@wismar.de".into();
        let app = TestApp::with_config(db, config).await;
        for push in &pushes {
            let clock = app.state.clock.clone();
            push.set_clock(move || (clock.now_ms() / 1000) as u64);
        }
        let engine = herold::delivery::Delivery::new(app.state.clone(), setup.engine).expect("engine");
        Some(Delivering { app, push: pushes[0].clone(), pushes, engine })
    }

    /// Runs the engine until no job or retry is due at the pinned time.
    pub async fn deliver(&self) {
        self.engine.run_until_idle().await.expect("delivery");
    }

    /// Registers `n` devices at the (first) push service; returns (subscription, device).
    pub async fn devices(&self, n: usize) -> Vec<(crate::push_service::Subscription, Device)> {
        self.devices_at(&self.push, n).await
    }

    /// Registers `n` devices at `push` (one of [`Self::pushes`]).
    pub async fn devices_at(
        &self,
        push: &crate::push_service::TestPushService,
        n: usize,
    ) -> Vec<(crate::push_service::Subscription, Device)> {
        let mut out = Vec::with_capacity(n);
        for sub in push.new_subscriptions(n) {
            let body = self.app.post("/api/v1/devices", None, sub.to_json()).await.expect(201);
            let token = body["device_token"].as_str().expect("device token").to_owned();
            out.push((sub, Device { token }));
        }
        out
    }

    pub async fn follow(&self, device: &Device, group: &str) {
        self.app
            .put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device.token), Value::Null)
            .await
            .expect(200);
    }

    /// The message's delivery statistics, as its organization sees them.
    pub async fn stats(&self, user: &User, message: &str) -> Value {
        self.app.get(&format!("/api/v1/messages/{message}/stats"), Some(&user.access)).await.expect(200)["stats"]
            .clone()
    }
}

/// Runs one delivery scenario on both backends.
#[macro_export]
macro_rules! both_backends_delivering {
    ($(#[$meta:meta])* async fn $name:ident($d:ident : Delivering, batch = $batch:expr) $body:block) => {
        $crate::both_backends_delivering!(
            $(#[$meta])* async fn $name($d: Delivering, setup = $crate::harness::DeliverySetup::batch($batch)) $body
        );
    };
    ($(#[$meta:meta])* async fn $name:ident($d:ident : Delivering, setup = $setup:expr) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::harness::*;

            async fn scenario($d: Delivering) $body

            #[actix_web::test]
            async fn sqlite() {
                let d = Delivering::with_setup(Db::Sqlite, $setup).await.expect("sqlite is always available");
                scenario(d).await;
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(d) = Delivering::with_setup(Db::Postgres, $setup).await {
                    scenario(d).await;
                }
            }
        }
    };
}

impl TestApp {
    /// The app opened afresh on the same database, as a restarted server
    /// would be (a CLI command may have changed its keys meanwhile).
    pub async fn reopen(self) -> TestApp {
        let TestApp { db, state, service } = self;
        drop(service);
        drop(state);
        let config = Config::for_database(&db.url, db.data_dir()).expect("config");
        TestApp::with_config(db, config).await
    }
}
