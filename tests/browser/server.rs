//! The installation under test: a fresh database (temp-file SQLite, or a new
//! PostgreSQL database when `TEST_DATABASE_URL` is set), the town `wismar`
//! and its city admin made with the CLI, the strict test push service
//! trusting the installation's VAPID key, and one real `herold serve`
//! process on a free port — killed on drop, also when the test fails.
//!
//! The fixtures below use the API directly; the browser tests use them only
//! for what a test does not exercise through the UI.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;
use crate::push_service::{Subscription, TestPushService};

pub const TOWN: &str = "wismar";
pub const TOWN_NAME: &str = "Hansestadt Wismar";
pub const ADMIN: &str = "rathaus@wismar.de";
pub const PASSWORD: &str = "correct horse battery staple";
const VAPID_SUBJECT: &str = "mailto:ops@herold-test.de";
const BIN: &str = env!("CARGO_BIN_EXE_herold");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database made for one test and removed after it (copied from the api
/// suite's harness, which needs the library's test app to compile).
pub struct TestDb {
    pub url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// `None` when PostgreSQL is not configured (the caller skips, loudly);
    /// a panic instead when `HEROLD_REQUIRE_POSTGRES=1`.
    pub fn new(kind: Db) -> Option<TestDb> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            Db::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("herold.db").display());
                Some(TestDb { url, dir, pg: None })
            }
            Db::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    if std::env::var("HEROLD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                        panic!("HEROLD_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set");
                    }
                    crate::say_once(
                        "postgres",
                        "*** browser tests on PostgreSQL SKIPPED: set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
                         to run every scenario on PostgreSQL too (CI does, and fails without it). ***",
                    );
                    return None;
                };
                let name = format!("herold_b_{:032x}", rand::random::<u128>());
                let mut admin = diesel::PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("PostgreSQL at TEST_DATABASE_URL unreachable: {e}"));
                admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(TestDb { url: url.to_string(), dir, pg: Some((admin_url, name)) })
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        if let Some((admin_url, name)) = &self.pg {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// `herold serve` with its database, town, admin and test push service.
pub struct Herold {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    pub push: TestPushService,
    /// The VAPID public key (base64url), as `herold vapid show` prints it.
    pub vapid: String,
    pub db: TestDb,
}

impl Herold {
    /// `None` when the backend is not available (see [`TestDb::new`]).
    pub fn start(kind: Db) -> Option<Herold> {
        let db = TestDb::new(kind)?;
        let port = free_port();
        let log = db.data_dir().join("herold.log");
        let vapid = run(&db, &["vapid", "show"], None).trim().to_owned();
        let push = TestPushService::start(&vapid);
        run(&db, &["tenant", "create", "--slug", TOWN, "--name", TOWN_NAME], None);
        run(&db, &["admin", "create", "--tenant", TOWN, "--email", ADMIN], Some(&format!("{PASSWORD}\n")));
        let mut server = Herold { child: None, port, log, push, vapid, db };
        server.spawn();
        Some(server)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(&self.db, args);
        cmd.env("HEROLD_PUSH_ALLOWED_ORIGINS", self.push.origin());
        cmd
    }

    fn spawn(&mut self) {
        let mut cmd = self.command(&["serve"]);
        cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("HEROLD_PUBLIC_URL", self.origin())
            .env("HEROLD_LOG", "info")
            // Every test's residents, organizations and admins come from 127.0.0.1.
            .env("HEROLD_RATE_LIMIT_LOGIN", "off")
            .env("HEROLD_RATE_LIMIT_REGISTER", "off")
            .env("HEROLD_RATE_LIMIT_DEVICES", "off")
            .env("HEROLD_RATE_LIMIT_REPORTS", "off")
            .env("HEROLD_RATE_LIMIT_ALERTS", "off");
        // Logs go to a file: an unread pipe would fill up and stall the server.
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log file handle")).stderr(file);
        self.child = Some(cmd.spawn().expect("start herold serve"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("poll herold serve") {
                panic!("herold serve exited early with {status}; log:\n{}", self.log());
            }
            if http::request(self.port, "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "herold serve not healthy after 30 s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(30));
        }
        // The PWA's shell (debug builds read web/ from disk on every request).
        loop {
            let page = http::request(self.port, "GET", "/", &[("Accept", "text/html")], None).expect("GET /");
            if page.status == 200 && page.header("content-type").is_some_and(|t| t.starts_with("text/html")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "herold serve does not serve the PWA at / (status {}, type {:?}): is web/ embedded?",
                page.status,
                page.header("content-type")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (SIGKILL): the browser is offline from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`: the one origin the browser may talk to.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An API call under `/api/v1`, asserting the status; returns the body.
    #[track_caller]
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>, expect: u16) -> Value {
        let (status, res) = http::json(self.port, method, &format!("/api/v1{path}"), token, body.as_ref());
        assert_eq!(status, expect, "{method} /api/v1{path}: {res}");
        res
    }

    // ---- fixtures in the domain's words ----

    pub fn login(&self, email: &str) -> String {
        let res = self.api("POST", "/auth/login", None, Some(json!({"email": email, "password": PASSWORD})), 200);
        res["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A registered organization, still pending: (organization id, owner's access token).
    pub fn register_org(&self, email: &str, name: &str) -> (String, String) {
        let body = json!({"email": email, "password": PASSWORD,
                          "organization": {"name": name, "tenant": TOWN, "kind": "church"}});
        let res = self.api("POST", "/auth/register", None, Some(body), 201);
        (res["organization"]["id"].as_str().unwrap().to_owned(), res["access_token"].as_str().unwrap().to_owned())
    }

    /// An approved organization: (organization id, owner's access token).
    pub fn approved_org(&self, email: &str, name: &str) -> (String, String) {
        let (org, token) = self.register_org(email, name);
        let admin = self.login(ADMIN);
        self.api("POST", &format!("/admin/organizations/{org}/approve"), Some(&admin), None, 200);
        (org, token)
    }

    pub fn create_group(&self, org: &str, token: &str, name: &str, description: &str, category: &str) -> String {
        let body = json!({"name": name, "description": description, "category": category});
        let res = self.api("POST", &format!("/organizations/{org}/groups"), Some(token), Some(body), 201);
        res["id"].as_str().unwrap().to_owned()
    }

    pub fn verify_group(&self, group: &str) {
        let admin = self.login(ADMIN);
        self.api("POST", &format!("/admin/groups/{group}/verify"), Some(&admin), None, 200);
    }

    /// Posts a message; returns its id.
    pub fn post(&self, group: &str, token: &str, title: &str, body: &str) -> String {
        let res = self.api(
            "POST",
            &format!("/groups/{group}/messages"),
            Some(token),
            Some(json!({"title": title, "body": body})),
            201,
        );
        res["id"].as_str().unwrap().to_owned()
    }

    /// A resident device registered straight with the API, following `groups`:
    /// (subscription at the test push service, device token).
    pub fn device(&self, groups: &[&str]) -> (Subscription, String) {
        let sub = self.push.new_subscription();
        let res = self.api("POST", "/devices", None, Some(sub.to_json()), 201);
        let token = res["device_token"].as_str().unwrap().to_owned();
        for g in groups {
            let (status, res) =
                http::json(self.port, "PUT", &format!("/api/v1/devices/me/subscriptions/{g}"), Some(&token), None);
            assert!((200..300).contains(&status), "follow {g}: {status} {res}");
        }
        (sub, token)
    }

    /// Waits until the message's fan-out is finished; returns its statistics.
    pub fn wait_fanned_out(&self, message: &str, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let message_view = self.api("GET", &format!("/messages/{message}/stats"), Some(token), None, 200);
            let stats = &message_view["stats"];
            if stats["fanout"] == "done" {
                return stats.clone();
            }
            assert!(Instant::now() < deadline, "fan-out of {message} not finished after 20 s: {message_view}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Herold {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `herold <args>` with this installation's environment and nothing else of ours.
fn clean_command(db: &TestDb, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HEROLD_") || key == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd.args(args)
        .env("DATABASE_URL", &db.url)
        .env("HEROLD_DATA_DIR", db.data_dir())
        .env("HEROLD_VAPID_SUBJECT", VAPID_SUBJECT);
    cmd
}

/// Runs a one-shot command to success; returns its stdout.
fn run(db: &TestDb, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = clean_command(db, args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start herold");
    if let Some(input) = stdin {
        // Dropping the pipe closes it: the command reads to end of input.
        child.stdin.take().expect("stdin pipe").write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("herold output");
    assert!(
        out.status.success(),
        "herold {} exited with {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().expect("local address").port()
}
