//! The `herold` binary as an operator meets it: `--help` everywhere,
//! `migrate`, `tenant create`, `admin create` (password on stdin),
//! `vapid show`, `serve` answering `/healthz`, `/readyz` and a login,
//! `backup` of a running SQLite database restoring into a working server,
//! and start-up refusing bad configuration with a message naming the variable.
//!
//! Every child gets a scrubbed environment: no `HEROLD_*` or `DATABASE_URL`
//! leaks in from the test runner, a temp `HEROLD_DATA_DIR`, and a free port
//! found by the operating system — never a fixed one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Db, TestDb, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_herold");

/// The configuration variables of the contract (DESIGN.md) and the CLI's own.
const CONTRACT_VARS: &[&str] = &[
    "DATABASE_URL",
    "HEROLD_LISTEN",
    "HEROLD_PUBLIC_URL",
    "HEROLD_DATA_DIR",
    "HEROLD_VAPID_SUBJECT",
    "HEROLD_PUSH_ALLOWED_ORIGINS",
    "HEROLD_PUSH_CA_FILE",
    "HEROLD_LOG",
    "HEROLD_CONFIG",
];

/// A one-shot command must finish within this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command left behind.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    #[track_caller]
    fn success(self) -> Output {
        assert!(
            self.status.success(),
            "expected success, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit with exactly one non-empty line on stderr; returns it.
    #[track_caller]
    fn failure_line(self) -> String {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "expected a non-zero exit code, got {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected one clear line on stderr, got:\n{}", self.stderr);
        lines[0].to_owned()
    }
}

/// A temp data directory, and a database: the SQLite default under the data
/// directory, or a fresh PostgreSQL database.
struct Site {
    data: tempfile::TempDir,
    database_url: Option<String>,
    _db: Option<TestDb>,
}

impl Site {
    /// The embedded default: no `DATABASE_URL`, SQLite under `HEROLD_DATA_DIR`.
    fn sqlite_default() -> Site {
        Site { data: tempfile::tempdir().expect("temp dir"), database_url: None, _db: None }
    }

    /// `None` when PostgreSQL is not configured (the test skips).
    fn postgres() -> Option<Site> {
        let db = TestDb::new(Db::Postgres)?;
        Some(Site { data: tempfile::tempdir().expect("temp dir"), database_url: Some(db.url.clone()), _db: Some(db) })
    }

    fn for_backend(kind: Db) -> Option<Site> {
        match kind {
            Db::Sqlite => Some(Site::sqlite_default()),
            Db::Postgres => Site::postgres(),
        }
    }

    fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// `herold <args>` with this site's environment and nothing else of ours.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(args);
        cmd.env("HEROLD_DATA_DIR", self.data_dir());
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        run(self.command(args), None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run(self.command(args), Some(stdin))
    }

    /// Starts `herold serve` on a free port; killed when the guard drops.
    fn serve(&self) -> Server {
        let port = free_port();
        let mut cmd = self.command(&["serve"]);
        cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{port}"));
        Server::start(cmd, port, self.data_dir())
    }
}

/// `herold <args>` with every configuration variable of the runner removed.
pub(crate) fn clean_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HEROLD_") {
            cmd.env_remove(&key);
        }
    }
    for key in CONTRACT_VARS {
        cmd.env_remove(key);
    }
    cmd.args(args);
    cmd
}

/// Runs to completion (bounded by [`COMMAND_TIMEOUT`]), feeding `stdin` if given.
fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start herold");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // A command that refuses its arguments exits without reading its
        // input: a broken pipe then is its answer, not a test failure.
        match pipe.write_all(input.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("write stdin"),
        }
        // Dropping the pipe closes it: the command reads to end of input.
    }
    // Read both pipes on their own threads so a chatty child never blocks.
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = wait_with_timeout(&mut child, COMMAND_TIMEOUT);
    Output { status, stdout: out.join().expect("stdout reader"), stderr: err.join().expect("stderr reader") }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for herold") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herold did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A port nobody listens on right now (the OS picks it; we release it).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A running `herold serve`, killed on drop — also when the test fails.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(mut cmd: Command, port: u16, log_dir: &Path) -> Server {
        // Logs go to a file: an unread pipe would fill up and stall the server.
        let log = log_dir.join(format!("serve-{port}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log file handle")).stderr(file);
        let child = cmd.spawn().expect("start herold serve");
        let mut server = Server { child, port, log };
        server.wait_healthy();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `GET /healthz` for up to ~20 s.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll herold serve") {
                panic!("herold serve exited early with {status}; log:\n{}", self.log());
            }
            if let Ok((200, _)) = http(self.port, "GET", "/healthz", None) {
                return;
            }
            if Instant::now() > deadline {
                panic!("herold serve not healthy on port {} after 20 s; log:\n{}", self.port, self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[track_caller]
    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None)
    }

    #[track_caller]
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(&body.to_string()))
    }

    #[track_caller]
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call(method, path, None, body)
    }

    /// A request with a bearer token.
    #[track_caller]
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let (status, text) = http_as(self.port, method, path, token, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}; log:\n{}", self.log()));
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// A request that must answer `status`; returns the body.
    #[track_caller]
    fn expect(&self, status: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let (got, answer) = self.call(method, path, token, body.map(Value::to_string).as_deref());
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    http_as(port, method, path, None, body)
}

/// [`http`] with an optional bearer token.
fn http_as(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or(""));
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {raw:?}"));
    let (head, rest) = raw.split_once("\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let status: u16 = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(rest).ok_or_else(|| bad("bad chunked body"))? } else { rest.to_owned() };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

fn migration_count() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::read_dir(dir).expect("migrations/sqlite").filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir())).count()
}

// ---- --help ----

#[test]
fn help_of_every_command_exits_zero_and_names_its_options() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--help"], &["serve", "migrate", "tenant", "admin", "vapid", "backup", "--config"]),
        (&["backup", "--help"], &["FILE", "pg_dump", "--config"]),
        (&["serve", "--help"], &["--config"]),
        (&["migrate", "--help"], &["--config"]),
        (&["tenant", "--help"], &["create"]),
        (&["tenant", "create", "--help"], &["--slug", "--name", "--config"]),
        (&["admin", "--help"], &["create"]),
        (&["admin", "create", "--help"], &["--tenant", "--email", "--platform", "--config"]),
        (&["vapid", "--help"], &["show"]),
        (&["vapid", "show", "--help"], &["--config"]),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, mentions) in cases {
        let mut cmd = clean_command(args);
        cmd.env("HEROLD_DATA_DIR", dir.path());
        let out = run(cmd, None);
        assert!(out.status.success(), "herold {} exited with {}: {}", args.join(" "), out.status, out.stderr);
        for word in *mentions {
            assert!(out.stdout.contains(word), "herold {} does not mention {word}:\n{}", args.join(" "), out.stdout);
        }
        assert!(out.stdout.contains("Usage"), "herold {} prints no usage:\n{}", args.join(" "), out.stdout);
    }
    // --help is answered without touching any database.
    assert_eq!(std::fs::read_dir(dir.path()).expect("data dir").count(), 0, "--help created files");
}

#[test]
fn unknown_subcommand_fails() {
    let out = run(clean_command(&["frobnicate"]), None);
    assert!(!out.status.success());
    assert!(out.stderr.contains("frobnicate"), "stderr: {}", out.stderr);
}

// ---- the operator's story, on each backend ----

fn operator_story(kind: Db) {
    let Some(site) = Site::for_backend(kind) else { return };

    // migrate: everything on a fresh database, nothing the second time.
    let out = site.run(&["migrate"]).success();
    assert!(
        out.stdout.contains(&format!("{} migration(s) applied", migration_count())),
        "migrate prints the applied count: {}",
        out.stdout
    );
    let db_file = site.data_dir().join("herold.db");
    match kind {
        Db::Sqlite => assert!(db_file.is_file(), "the default SQLite file is not under HEROLD_DATA_DIR"),
        Db::Postgres => assert!(!db_file.exists(), "a SQLite file appeared although DATABASE_URL is PostgreSQL"),
    }
    let out = site.run(&["migrate"]).success();
    assert!(out.stdout.contains("0 migration(s) applied"), "second migrate: {}", out.stdout);

    // tenant create: once fine, twice a clear one-line error.
    let out = site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"]).success();
    assert!(out.stdout.contains("wismar"), "tenant create: {}", out.stdout);
    let line = site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"]).failure_line();
    assert!(line.contains("wismar") && line.contains("already exists"), "duplicate tenant: {line}");
    let line = site.run(&["tenant", "create", "--slug", "Not A Slug!", "--name", "X"]).failure_line();
    assert!(line.contains("slug"), "bad slug: {line}");

    // admin create: password from stdin.
    let out = site
        .run_with_stdin(&["admin", "create", "--tenant", "wismar", "--email", "a@wismar.de"], &format!("{PASSWORD}\n"))
        .success();
    assert!(out.stdout.contains("a@wismar.de") && out.stdout.contains("wismar"), "admin create: {}", out.stdout);
    let line = site
        .run_with_stdin(&["admin", "create", "--tenant", "nowhere", "--email", "b@wismar.de"], &format!("{PASSWORD}\n"))
        .failure_line();
    assert!(line.contains("nowhere"), "unknown tenant: {line}");
    let line = site
        .run_with_stdin(&["admin", "create", "--tenant", "wismar", "--email", "c@wismar.de"], "short\n")
        .failure_line();
    assert!(line.contains("password"), "short password: {line}");
    let line = site.run(&["admin", "create", "--tenant", "wismar", "--email", "d@wismar.de"]).failure_line();
    assert!(line.contains("password"), "empty stdin: {line}");
    let line = site
        .run_with_stdin(&["admin", "create", "--tenant", "wismar", "--email", "not-an-email"], &format!("{PASSWORD}\n"))
        .failure_line();
    assert!(line.contains("mail"), "bad e-mail: {line}");

    // vapid show: the same key on every run (it is persisted).
    let first = site.run(&["vapid", "show"]).success().stdout.trim().to_owned();
    let second = site.run(&["vapid", "show"]).success().stdout.trim().to_owned();
    assert_eq!(first, second, "the VAPID key changed between runs");
    assert_eq!(first.len(), 87, "an uncompressed P-256 point is 65 bytes = 87 base64url chars: {first}");
    assert!(
        first.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "not unpadded base64url: {first}"
    );
    assert!(first.starts_with('B'), "an uncompressed point starts with 0x04: {first}");

    // serve: healthy, ready, same key, the admin can log in.
    let server = site.serve();
    let (status, body) = server.get("/healthz");
    assert_eq!(status, 200, "healthz: {body}");
    let (status, body) = server.get("/readyz");
    assert_eq!(status, 200, "readyz: {body}");
    let (status, body) = server.get("/api/v1/push/vapid-public-key");
    assert_eq!(status, 200, "vapid key: {body}");
    assert_eq!(body["public_key"], first.as_str(), "the server announces another key than `vapid show`");
    let (status, body) = server.post("/api/v1/auth/login", &json!({"email": "a@wismar.de", "password": PASSWORD}));
    assert_eq!(status, 200, "login as the CLI-made admin: {body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()), "no access token: {body}");
    let (status, body) = server.post("/api/v1/auth/login", &json!({"email": "c@wismar.de", "password": "short"}));
    assert!(status == 401 || status == 400, "a refused admin must not exist: {status} {body}");
    let (status, body) = server.get("/api/v1/tenants");
    assert_eq!(status, 200);
    assert!(
        body["items"].as_array().is_some_and(|items| items.iter().any(|t| t["slug"] == "wismar")),
        "the CLI-made tenant is listed: {body}"
    );
    drop(server);
}

#[test]
fn operator_story_sqlite() {
    operator_story(Db::Sqlite);
}

#[test]
fn operator_story_postgres() {
    operator_story(Db::Postgres);
}

// ---- an operator across towns (`--platform`) ----

fn platform_operator(kind: Db) {
    let Some(site) = Site::for_backend(kind) else { return };
    site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"]).success();

    // --platform and --tenant exclude each other: refused before anything is asked or written.
    let out = site.run_with_stdin(
        &["admin", "create", "--platform", "--tenant", "wismar", "--email", "both@herold.example"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(out.status.code(), Some(2), "a usage error; stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].starts_with("herold: ")
            && lines[0].contains("--platform")
            && lines[0].contains("--tenant"),
        "one clear line: {}",
        out.stderr
    );
    // Neither --platform nor --tenant: refused too.
    let out = site.run_with_stdin(&["admin", "create", "--email", "none@herold.example"], &format!("{PASSWORD}\n"));
    assert!(!out.status.success() && out.stderr.contains("--tenant"), "{}", out.stderr);

    let out = site
        .run_with_stdin(
            &["admin", "create", "--platform", "--email", "betrieb@herold.example"],
            &format!("{PASSWORD}\n"),
        )
        .success();
    assert!(out.stdout.contains("betrieb@herold.example") && out.stdout.contains("operator"), "{}", out.stdout);

    let server = site.serve();
    let login = |email: &str| {
        server.call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": email, "password": PASSWORD}).to_string()),
        )
    };
    let (status, body) = login("both@herold.example");
    assert!(status == 401 || status == 400, "the refused command made an account: {status} {body}");
    let (status, body) = login("none@herold.example");
    assert!(status == 401 || status == 400, "the refused command made an account: {status} {body}");
    let (status, body) = login("betrieb@herold.example");
    assert_eq!(status, 200, "login as the operator: {body}");
    let token = body["access_token"].as_str().expect("access token").to_owned();
    let me = server.expect(200, "GET", "/api/v1/me", Some(&token), None);
    assert_eq!(me["email"], "betrieb@herold.example", "{me}");
    assert_eq!(me["platform_admin"], true, "{me}");
    assert_eq!(me["city_admin_of"], json!(["wismar"]), "an operator administers every town: {me}");
    // The flag means something: the operator reads every town's audit log, where the CLI's act is recorded.
    let all = server.expect(200, "GET", "/api/v1/admin/audit?action=operator.create", Some(&token), None);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(all["items"][0]["actor"], "operator", "{all}");
}

#[test]
fn platform_operator_sqlite() {
    platform_operator(Db::Sqlite);
}

#[test]
fn platform_operator_postgres() {
    platform_operator(Db::Postgres);
}

// ---- bad configuration stops start-up, naming the variable ----

/// `herold serve` with one bad variable: non-zero exit, stderr names `variable`.
#[track_caller]
fn serve_refuses(variable: &str, value: &str) {
    let site = Site::sqlite_default();
    let mut cmd = site.command(&["serve"]);
    // If the bad value were accepted, the server must not take a fixed port.
    if variable != "HEROLD_LISTEN" {
        cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{}", free_port()));
    }
    cmd.env(variable, value);
    let out = run(cmd, None);
    let line = out.failure_line();
    assert!(line.contains(variable), "{variable}={value}: stderr does not name the variable: {line}");
}

#[test]
fn bad_listen_address_is_refused() {
    serve_refuses("HEROLD_LISTEN", "nonsense");
}

#[test]
fn bad_database_url_is_refused() {
    serve_refuses("DATABASE_URL", "mysql://x");
}

#[test]
fn bad_public_url_is_refused() {
    serve_refuses("HEROLD_PUBLIC_URL", "ftp://x");
}

#[test]
fn bad_vapid_subject_is_refused() {
    serve_refuses("HEROLD_VAPID_SUBJECT", "admin@example.org");
}

#[test]
fn bad_push_allowed_origin_is_refused() {
    serve_refuses("HEROLD_PUSH_ALLOWED_ORIGINS", "not a url");
}

#[test]
fn missing_push_ca_file_is_refused() {
    serve_refuses("HEROLD_PUSH_CA_FILE", "/nonexistent/ca.pem");
}

#[test]
fn bad_log_filter_is_refused() {
    serve_refuses("HEROLD_LOG", "[[[");
}

#[test]
fn shutdown_grace_not_below_the_timeout_is_refused() {
    // The grace period is part of the bound (HEROLD_SHUTDOWN_TIMEOUT_SECS, 30).
    serve_refuses("HEROLD_SHUTDOWN_GRACE_SECS", "30");
}

#[test]
fn zero_delivery_poll_is_refused() {
    serve_refuses("HEROLD_DELIVERY_POLL_SECS", "0");
}

#[test]
fn listen_address_in_use_is_refused() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = taken.local_addr().expect("local address").port();
    let site = Site::sqlite_default();
    let mut cmd = site.command(&["serve"]);
    cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{port}"));
    let line = run(cmd, None).failure_line();
    assert!(line.contains("HEROLD_LISTEN") && line.contains(&port.to_string()), "port in use: {line}");
    drop(taken);
}

#[test]
fn missing_config_file_is_refused() {
    let site = Site::sqlite_default();
    let line = site.run(&["--config", "/nonexistent/herold.toml", "migrate"]).failure_line();
    assert!(line.contains("/nonexistent/herold.toml"), "names the file: {line}");
}

#[test]
fn bad_value_in_config_file_names_the_setting() {
    let site = Site::sqlite_default();
    let file = site.data_dir().join("herold.toml");
    std::fs::write(&file, "listen = \"nonsense\"\n").expect("write config");
    let line = site.run(&["--config", file.to_str().expect("utf-8 path"), "serve"]).failure_line();
    assert!(line.contains("HEROLD_LISTEN") || line.contains("listen"), "names the setting: {line}");
}

// ---- the optional TOML file ----

#[test]
fn config_file_sets_listen_and_the_environment_wins() {
    let site = Site::sqlite_default();
    let file_port = free_port();
    let file = site.data_dir().join("herold.toml");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:{file_port}\"\npublic_url = \"http://localhost:{file_port}\"\n"),
    )
    .expect("write config");
    let file = file.to_str().expect("utf-8 path");

    // The file alone: the server listens where the file says.
    {
        let server = Server::start(site.command(&["--config", file, "serve"]), file_port, site.data_dir());
        assert_eq!(server.get("/readyz").0, 200);
    }

    // HEROLD_CONFIG names the file as well as --config does.
    {
        let mut cmd = site.command(&["serve"]);
        cmd.env("HEROLD_CONFIG", file);
        let server = Server::start(cmd, file_port, site.data_dir());
        assert_eq!(server.get("/healthz").0, 200);
    }

    // File and environment: the environment wins.
    let env_port = free_port();
    let mut cmd = site.command(&["--config", file, "serve"]);
    cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{env_port}"));
    let server = Server::start(cmd, env_port, site.data_dir());
    assert_eq!(server.get("/healthz").0, 200);
    assert!(
        http(file_port, "GET", "/healthz", None).is_err(),
        "the file's address is served although HEROLD_LISTEN overrides it"
    );
}

#[test]
fn fresh_sqlite_default_creates_the_database_under_the_data_dir() {
    let site = Site::sqlite_default();
    // Several fresh starts: the pool opens its connections at once on a new
    // file, and switching it to WAL must not make them fail ("database is locked").
    for attempt in 0..3 {
        // A data dir that does not exist yet is created.
        let nested = site.data_dir().join(format!("nested-{attempt}/data"));
        let mut cmd = clean_command(&["vapid", "show"]);
        cmd.env("HEROLD_DATA_DIR", &nested);
        let out = run(cmd, None).success();
        assert_eq!(out.stdout.lines().count(), 1, "vapid show prints only the key:\n{}", out.stdout);
        assert_eq!(out.stdout.trim().len(), 87, "vapid show: {}", out.stdout);
        assert!(out.stderr.trim().is_empty(), "a fresh start logs errors:\n{}", out.stderr);
        assert!(nested.join("herold.db").is_file(), "no herold.db under {}", nested.display());
    }
}

// ---- backup ----

/// `herold backup FILE` while a server uses the SQLite database: the copy is
/// consistent and complete — a server started on it shows the town, the
/// parish's group and its message, lets the admin log in, and announces the
/// same VAPID key, so the residents' subscriptions keep working after a
/// restore. What was written after the backup is not in it.
#[test]
fn backup_of_a_running_sqlite_database_restores_into_a_working_server() {
    let site = Site::sqlite_default();
    site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"]).success();
    site.run_with_stdin(&["admin", "create", "--tenant", "wismar", "--email", "a@wismar.de"], &format!("{PASSWORD}\n"))
        .success();
    let vapid = site.run(&["vapid", "show"]).success().stdout.trim().to_owned();
    let server = site.serve();
    let login = json!({"email": "a@wismar.de", "password": PASSWORD});
    let admin = server.expect(200, "POST", "/api/v1/auth/login", None, Some(&login))["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let registration = json!({"email": "buero@st-nikolai.de", "password": PASSWORD,
        "organization": {"name": "St. Nikolai", "tenant": "wismar"}});
    let body = server.expect(201, "POST", "/api/v1/auth/register", None, Some(&registration));
    let (org, owner) =
        (body["organization"]["id"].as_str().expect("org id"), body["access_token"].as_str().expect("token"));
    server.expect(200, "POST", &format!("/api/v1/admin/organizations/{org}/approve"), Some(&admin), None);
    let group = json!({"name": "Gemeindebrief", "description": "Neuigkeiten aus St. Nikolai", "category": "church"});
    let group = server.expect(201, "POST", &format!("/api/v1/organizations/{org}/groups"), Some(owner), Some(&group))
        ["id"]
        .as_str()
        .expect("group id")
        .to_owned();
    let post = |title: &str| {
        let message = json!({"title": title, "body": "Näheres im Schaukasten."});
        server.expect(201, "POST", &format!("/api/v1/groups/{group}/messages"), Some(owner), Some(&message))["id"]
            .as_str()
            .expect("message id")
            .to_owned()
    };
    let before = post("Orgelkonzert am Sonntag");

    let backups = tempfile::tempdir().expect("temp dir");
    let file = backups.path().join("herold-2026-11-26.db");
    let file_arg = file.to_str().expect("utf-8 path");
    let out = site.run(&["backup", file_arg]).success();
    assert!(out.stdout.contains(file_arg), "backup names the copy: {}", out.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("the copy exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds private keys: mode {mode:o}");
    }
    let size = std::fs::metadata(&file).expect("the copy").len();
    let line = site.run(&["backup", file_arg]).failure_line();
    assert!(line.contains("exists"), "an existing file is refused: {line}");
    assert_eq!(std::fs::metadata(&file).expect("the copy").len(), size, "the refused run touched the copy");
    let after = post("Nach der Sicherung");

    // Restore: a new installation on the copy.
    let restored = Site {
        data: tempfile::tempdir().expect("temp dir"),
        database_url: Some(format!("sqlite://{}", file.display())),
        _db: None,
    };
    assert_eq!(restored.run(&["vapid", "show"]).success().stdout.trim(), vapid, "the VAPID key is in the backup");
    let copy = restored.serve();
    assert_eq!(copy.get("/readyz").0, 200);
    let tenants = copy.expect(200, "GET", "/api/v1/tenants", None, None);
    assert!(tenants["items"].as_array().is_some_and(|t| t.iter().any(|t| t["slug"] == "wismar")), "{tenants}");
    let shown = copy.expect(200, "GET", &format!("/api/v1/groups/{group}"), None, None);
    assert_eq!(shown["name"], "Gemeindebrief", "{shown}");
    let feed = copy.expect(200, "GET", &format!("/api/v1/groups/{group}/messages"), None, None);
    let ids: Vec<&str> =
        feed["items"].as_array().expect("feed items").iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&before.as_str()), "the message posted before the backup is in it: {feed}");
    assert!(!ids.contains(&after.as_str()), "a message posted after the backup is in it: {feed}");
    copy.expect(200, "POST", "/api/v1/auth/login", None, Some(&login));
    assert_eq!(
        copy.expect(200, "GET", "/api/v1/push/vapid-public-key", None, None)["public_key"],
        vapid.as_str(),
        "the restored server signs with another key"
    );
}

/// PostgreSQL has its own online backup: `herold backup` says which command
/// to run instead, and writes nothing.
#[test]
fn backup_on_postgres_points_to_pg_dump() {
    let Some(site) = Site::postgres() else { return };
    site.run(&["migrate"]).success();
    let file = site.data_dir().join("herold.dump");
    let line = site.run(&["backup", file.to_str().expect("utf-8 path")]).failure_line();
    assert!(line.contains("pg_dump -Fc") && line.contains("DATABASE_URL"), "names the pg_dump command: {line}");
    assert!(!file.exists(), "a file was written");
}
