//! `herold migrate-db --from URL --to URL`, the real binary: an installation
//! filled through the API on SQLite is copied to a fresh PostgreSQL database
//! and afterwards is the same installation — every table identical row for
//! row (dumped by SQL written here, independent of the copier), the same
//! JSON from the public, resident, organization and admin API, old access
//! tokens, device tokens, API tokens and passwords still accepted, the same
//! VAPID key signing pushes the test push service verifies, and the
//! scheduled message delivered at its time. What residents said moves too:
//! issue reports with their conversation, a photo (the same bytes served),
//! coordinates bit for bit, blocks and a question hour with questions,
//! answers and votes. Copying back to SQLite gives the same dump again. A non-empty target, a source that is not fully migrated
//! and a table the copier does not know are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;
use serde_json::{json, Value};

use herold::db::{Backend, DbConn};

use crate::cli::{clean_command, free_port};
use crate::harness::{push_subscription, Db, TestDb, PASSWORD};
use crate::push_service::{Program, Subscription, TestPushService};

const ADMIN: &str = "rathaus@wismar.de";
const OWNER: &str = "buero@st-nikolai.de";

// ---------------------------------------------------------------------------
// An installation driven through the binary
// ---------------------------------------------------------------------------

struct Site {
    db: TestDb,
    push_origin: Option<String>,
}

struct Out {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Site {
    fn new(kind: Db) -> Option<Site> {
        Some(Site { db: TestDb::new(kind)?, push_origin: None })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(args);
        cmd.env("DATABASE_URL", &self.db.url)
            .env("HEROLD_DATA_DIR", self.db.data_dir())
            .env("HEROLD_VAPID_SUBJECT", "mailto:ops@herold-test.de");
        if let Some(origin) = &self.push_origin {
            cmd.env("HEROLD_PUSH_ALLOWED_ORIGINS", origin);
        }
        cmd
    }

    #[track_caller]
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = run(self.command(args), stdin);
        assert!(out.status.success(), "herold {} exited with {}: {}", args.join(" "), out.status, out.stderr);
        out.stdout
    }

    fn serve(&self, name: &str) -> Server {
        let port = free_port();
        let mut cmd = self.command(&["serve"]);
        cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HEROLD_ACCESS_LOG", "false")
            .env("HEROLD_RATE_LIMIT_DEVICES", "off")
            .env("HEROLD_RATE_LIMIT_REGISTER", "off")
            .env("HEROLD_RATE_LIMIT_LOGIN", "off")
            .env("HEROLD_SHUTDOWN_GRACE_SECS", "0");
        Server::start(cmd, port, self.db.data_dir().join(format!("{name}-{port}.log")))
    }
}

/// `herold migrate-db --from … --to …` with nothing else of ours in the environment.
fn migrate_db(from: &str, to: &str) -> Out {
    run(clean_command(&["migrate-db", "--from", from, "--to", to]), None)
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start herold");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin pipe").write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("herold output");
    Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `herold serve`; killed on drop, also when the test fails.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(mut cmd: Command, port: u16, log: PathBuf) -> Server {
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log file")).stderr(file);
        let mut server = Server { child: cmd.spawn().expect("start herold serve"), port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait().expect("poll herold serve") {
                panic!("herold serve exited early with {status}; log:\n{}", server.log());
            }
            if matches!(http(port, "GET", "/healthz", None, None), Ok((200, _))) {
                return server;
            }
            assert!(Instant::now() < deadline, "herold serve not healthy after 20 s; log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request that must answer `status`; returns the body.
    #[track_caller]
    fn expect(&self, status: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let (got, text) = http(self.port, method, path, token, body.map(Value::to_string).as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; log:\n{}", self.log()));
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    #[track_caller]
    fn get(&self, path: &str, token: Option<&str>) -> Value {
        self.expect(200, "GET", path, token, None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let body = body.unwrap_or("").as_bytes();
    let (status, body) = http_bytes(port, method, path, token, ("application/json", body))?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTP/1.1 request with a body of any type: (status, body bytes).
fn http_bytes(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    (content_type, body): (&str, &[u8]),
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, String::from_utf8_lossy(&raw).into_owned());
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let (head, mut rest) = (String::from_utf8_lossy(&raw[..split]).into_owned(), &raw[split + 4..]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((status, rest.to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let line = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size = std::str::from_utf8(&rest[..line]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let size = size.ok_or_else(bad)?;
        if size == 0 {
            return Ok((status, body));
        }
        body.extend_from_slice(rest.get(line + 2..line + 2 + size).ok_or_else(bad)?);
        rest = rest.get(line + 2 + size + 2..).ok_or_else(bad)?;
    }
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

// ---------------------------------------------------------------------------
// Dumps: every table as JSON rows, by SQL independent of the copier
// ---------------------------------------------------------------------------

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn connect(url: &str) -> DbConn {
    Backend::from_url(url).expect("database URL").connect().expect("connect")
}

/// The tables the migrations created (diesel's bookkeeping excluded).
fn tables_of(conn: &mut DbConn) -> BTreeSet<String> {
    let lines: Vec<Line> = match conn {
        DbConn::Sqlite(c) => sql_query(
            "SELECT name AS line FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .load(c),
        DbConn::Pg(c) => sql_query(
            "SELECT table_name::text AS line FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .load(c),
    }
    .expect("list tables");
    lines.into_iter().map(|l| l.line).filter(|t| t != "__diesel_schema_migrations").collect()
}

/// Booleans are 0/1 in SQLite's JSON and true/false in PostgreSQL's.
/// Floating-point columns come as text (see [`dump`]) and are written back
/// as Rust's shortest text for the same `f64`: equal iff the bits are.
fn normalize(value: Value, reals: &BTreeSet<String>) -> Value {
    match value {
        Value::Bool(b) => json!(b as i64),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::String(text) if reals.contains(&k) => {
                        let exact: f64 = text.parse().unwrap_or_else(|_| panic!("{k} = {text} is no number"));
                        (k, Value::String(exact.to_string()))
                    }
                    v => (k, normalize(v, reals)),
                })
                .collect(),
        ),
        other => other,
    }
}

/// How a column goes into the dump.
#[derive(PartialEq)]
enum Column {
    AsItIs,
    /// A double: JSON output rounds (SQLite's to 15 digits), so as text with
    /// enough digits to name the exact value.
    Real,
    /// Bytes, which JSON cannot hold: as hex.
    Binary,
}

fn columns_of(conn: &mut DbConn, table: &str) -> Vec<(String, Column)> {
    let lines: Vec<Line> = match conn {
        DbConn::Sqlite(c) => sql_query(format!(
            "SELECT name || ' ' || upper(type) AS line FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .load(c),
        DbConn::Pg(c) => sql_query(format!(
            "SELECT column_name || ' ' || upper(data_type) AS line FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
        ))
        .load(c),
    }
    .expect("columns");
    lines
        .into_iter()
        .map(|l| {
            let (name, kind) = l.line.split_once(' ').expect("name and type");
            let kind = match kind {
                k if k.contains("REAL") || k.contains("DOUBLE") => Column::Real,
                k if k.contains("BLOB") || k.contains("BYTEA") => Column::Binary,
                _ => Column::AsItIs,
            };
            (name.to_owned(), kind)
        })
        .collect()
}

/// table → its rows as JSON objects, sorted (serde_json's maps are sorted by
/// key, so the text is canonical).
fn dump(url: &str) -> BTreeMap<String, Vec<String>> {
    let mut conn = connect(url);
    if let DbConn::Pg(c) = &mut conn {
        // Shortest exact text for doubles, whatever the server's default.
        diesel::connection::SimpleConnection::batch_execute(c, "SET extra_float_digits = 3").expect("set");
    }
    let mut out = BTreeMap::new();
    for table in tables_of(&mut conn) {
        let columns = columns_of(&mut conn, &table);
        let reals: BTreeSet<String> =
            columns.iter().filter(|(_, kind)| *kind == Column::Real).map(|(name, _)| name.clone()).collect();
        let sqlite = matches!(conn, DbConn::Sqlite(_));
        let pairs: Vec<String> = columns
            .iter()
            .map(|(name, kind)| {
                let column = format!("\"{name}\"");
                let value = match (kind, sqlite) {
                    (Column::AsItIs, _) => column.clone(),
                    (Column::Real, true) => format!("printf('%!.17g', {column})"),
                    (Column::Real, false) => format!("{column}::text"),
                    (Column::Binary, true) => format!("lower(hex({column}))"),
                    (Column::Binary, false) => format!("encode({column}, 'hex')"),
                };
                format!("'{name}', CASE WHEN {column} IS NULL THEN NULL ELSE {value} END")
            })
            .collect();
        let query = match sqlite {
            true => format!("SELECT json_object({}) AS line FROM \"{table}\"", pairs.join(", ")),
            false => format!("SELECT json_build_object({})::text AS line FROM \"{table}\"", pairs.join(", ")),
        };
        let lines: Vec<Line> = match &mut conn {
            DbConn::Sqlite(c) => sql_query(query).load(c),
            DbConn::Pg(c) => sql_query(query).load(c),
        }
        .unwrap_or_else(|e| panic!("dump {table}: {e}"));
        let mut rows: Vec<String> = lines
            .into_iter()
            .map(|l| normalize(serde_json::from_str(&l.line).expect("row JSON"), &reals).to_string())
            .collect();
        rows.sort();
        out.insert(table, rows);
    }
    out
}

#[track_caller]
fn assert_same_dump(left: &BTreeMap<String, Vec<String>>, right: &BTreeMap<String, Vec<String>>, what: &str) {
    assert_eq!(left.keys().collect::<Vec<_>>(), right.keys().collect::<Vec<_>>(), "{what}: other tables");
    for (table, rows) in left {
        assert_eq!(rows.len(), right[table].len(), "{what}: row count of {table}");
        for (a, b) in rows.iter().zip(&right[table]) {
            assert_eq!(a, b, "{what}: a row of {table} differs");
        }
    }
}

// ---------------------------------------------------------------------------
// The copier knows every table, parents first
// ---------------------------------------------------------------------------

fn assert_copier_knows_every_table(kind: Db) {
    let Some(db) = TestDb::new(kind) else { return };
    let mut conn = connect(&db.url);
    herold::db::run_migrations(&mut conn).expect("migrate");
    let copied: BTreeSet<String> = herold::migrate_db::TABLES.iter().map(|t| t.to_string()).collect();
    assert_eq!(copied.len(), herold::migrate_db::TABLES.len(), "a table is listed twice");
    assert_eq!(
        tables_of(&mut conn),
        copied,
        "migrate_db::TABLES must list exactly the tables the migrations create: add a new table to \
         server/migrate_db.rs (herold_tables!)"
    );
}

#[test]
fn copier_knows_every_table_sqlite() {
    assert_copier_knows_every_table(Db::Sqlite);
}

#[test]
fn copier_knows_every_table_postgres() {
    assert_copier_knows_every_table(Db::Postgres);
}

#[test]
fn copier_inserts_parents_before_children() {
    let db = TestDb::new(Db::Sqlite).expect("sqlite");
    let mut conn = connect(&db.url);
    herold::db::run_migrations(&mut conn).expect("migrate");
    let DbConn::Sqlite(c) = &mut conn else { unreachable!() };
    let edges: Vec<Line> = sql_query(
        "SELECT m.name || ' ' || f.\"table\" AS line FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f \
         WHERE m.type = 'table'",
    )
    .load(c)
    .expect("foreign keys");
    assert!(!edges.is_empty());
    let position = |t: &str| herold::migrate_db::TABLES.iter().position(|x| *x == t).expect("listed");
    for edge in edges {
        let (child, parent) = edge.line.split_once(' ').expect("pair");
        assert!(position(parent) < position(child), "{child} references {parent}, which is copied after it");
    }
}

// ---------------------------------------------------------------------------
// A filled installation
// ---------------------------------------------------------------------------

/// What the scenario made, to look at again after the copy.
struct Town {
    admin: String,
    owner: String,
    org: String,
    group: String,
    other_group: String,
    devices: Vec<(Subscription, String)>,
    hidden: String,
    scheduled: String,
    scheduled_at_ms: i64,
    api_token: String,
    /// The third device's report in the other group (with a photo), and a
    /// question hour there.
    issue: String,
    photo: String,
    session: String,
}

/// A position with all 17 significant digits (`LON`'s shortest text is read
/// one unit in the last place off by serde_json's default parser): set in
/// the database, it must come back bit for bit.
const LAT: f64 = 53.891_234_567_890_12;
const LON: f64 = 11.464_729_199_999_999;

/// A town with everything in it, made through the CLI and the API of a
/// running server: approved and pending organizations, an invited editor,
/// groups, devices following them, a delivered message, a hidden one, a
/// scheduled one (its fan-out job pending), a report, an API token, a
/// failing device with a retry and a device notice due, audit entries; and
/// residents talking back: an intake, an issue report with a photo, posts
/// and a public board entry, a question hour with questions, an answer, a
/// vote and a block.
fn fill(site: &mut Site) -> (Town, TestPushService) {
    let vapid = site.run(&["vapid", "show"], None).trim().to_owned();
    let push = TestPushService::start(&vapid);
    site.push_origin = Some(push.origin().to_owned());
    site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"], None);
    site.run(&["admin", "create", "--tenant", "wismar", "--email", ADMIN], Some(&format!("{PASSWORD}\n")));
    let server = site.serve("fill");
    let login = |email: &str| {
        server.expect(200, "POST", "/api/v1/auth/login", None, Some(&json!({"email": email, "password": PASSWORD})))
            ["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    };
    let admin = login(ADMIN);
    let register = |email: &str, name: &str| {
        let body = json!({"email": email, "password": PASSWORD, "organization": {"name": name, "tenant": "wismar"}});
        let body = server.expect(201, "POST", "/api/v1/auth/register", None, Some(&body));
        (id(&body["organization"]), body["access_token"].as_str().expect("token").to_owned())
    };
    let (org, owner) = register(OWNER, "St. Nikolai");
    register("vorstand@sv-wismar.de", "SV Wismar"); // stays pending
    server.expect(200, "POST", &format!("/api/v1/admin/organizations/{org}/approve"), Some(&admin), None);
    server.expect(
        201,
        "POST",
        &format!("/api/v1/organizations/{org}/members"),
        Some(&owner),
        Some(&json!({"email": "kuester@st-nikolai.de"})),
    );
    let group = |name: &str| {
        let body = json!({"name": name, "description": format!("{name} — Neuigkeiten"), "category": "church"});
        id(&server.expect(201, "POST", &format!("/api/v1/organizations/{org}/groups"), Some(&owner), Some(&body)))
    };
    let (group, other_group) = (group("Gemeindebrief"), group("Jugend"));

    let mut devices = Vec::new();
    for (n, sub) in push.new_subscriptions(3).into_iter().enumerate() {
        let token = server.expect(201, "POST", "/api/v1/devices", None, Some(&sub.to_json()))["device_token"]
            .as_str()
            .expect("device token")
            .to_owned();
        let follow = if n < 2 { &group } else { &other_group };
        server.expect(200, "PUT", &format!("/api/v1/devices/me/subscriptions/{follow}"), Some(&token), None);
        devices.push((sub, token));
    }
    // A device of a push service not under test: never delivered to here.
    server.expect(201, "POST", "/api/v1/devices", None, Some(&push_subscription(&crate::harness::fresh_endpoint())));

    let post = |group: &str, body: Value| {
        id(&server.expect(201, "POST", &format!("/api/v1/groups/{group}/messages"), Some(&owner), Some(&body)))
    };
    let delivered = post(&group, json!({"title": "Orgelkonzert am Sonntag", "body": "Um 17 Uhr in St. Nikolai."}));
    assert!(push.wait_for(2, Duration::from_secs(20)), "the first message reaches both followers");
    let hidden = post(&group, json!({"title": "Werbung", "body": "Kaufen Sie jetzt!"}));
    assert!(push.wait_for(4, Duration::from_secs(20)), "the second message reaches both followers");
    server.expect(
        200,
        "POST",
        &format!("/api/v1/admin/messages/{hidden}/hide"),
        Some(&admin),
        Some(&json!({"reason": "Werbung"})),
    );
    server.expect(
        201,
        "POST",
        &format!("/api/v1/messages/{delivered}/reports"),
        Some(&devices[0].1),
        Some(&json!({"reason": "other", "text": "Falsche Uhrzeit"})),
    );
    // The third device's push service fails: a retry and a notice stay due.
    push.program_for(&devices[2].0.id, Program::status(503));
    post(&other_group, json!({"title": "Jugendabend", "body": "Freitag im Gemeindehaus."}));
    server.expect(202, "POST", "/api/v1/devices/me/test-notification", Some(&devices[2].1), Some(&json!({})));
    assert!(push.wait_for_requests(6, Duration::from_secs(20)), "the failing device was tried");

    let scheduled_at_ms = now_ms() + 20_000;
    let scheduled = post(
        &group,
        json!({"title": "Adventsmarkt", "body": "Ab 15 Uhr.", "publish_at": herold::model::ts(scheduled_at_ms)}),
    );
    let token = json!({"name": "Website", "group_id": group});
    let api_token =
        server.expect(201, "POST", &format!("/api/v1/organizations/{org}/tokens"), Some(&owner), Some(&token))
            ["secret"]
            .as_str()
            .expect("secret")
            .to_owned();

    // Residents talk back in the other group, mostly from the third device:
    // its push service fails, so the replies and answers it is told of add
    // retries, not deliveries the rest of the test counts.
    let talker = devices[2].1.as_str();
    let call = |status: u16, method: &str, path: String, token: &str, body: Value| {
        server.expect(status, method, &format!("/api/v1{path}"), Some(token), Some(&body))
    };
    let intake = json!({"open": true, "categories": ["Straßenschäden", "Müll"], "board": true});
    call(200, "PUT", format!("/groups/{other_group}/intake"), &owner, intake);
    let report = json!({"category": "Straßenschäden", "body": "Schlagloch vor dem Gemeindehaus",
                        "lat": 53.9, "lon": 11.4, "address": "Lübsche Straße 1"});
    let issue = id(&call(201, "POST", format!("/groups/{other_group}/issues"), talker, report));
    let (status, photo) = http_bytes(
        server.port,
        "POST",
        &format!("/api/v1/devices/me/issues/{issue}/photos"),
        Some(talker),
        ("image/jpeg", &crate::photos_fixtures::jpeg(96, 64)),
    )
    .expect("upload");
    let photo: Value = serde_json::from_slice(&photo).expect("photo JSON");
    assert_eq!(status, 201, "{photo}");
    let photo = id(&photo);
    call(201, "POST", format!("/devices/me/issues/{issue}/posts"), talker, json!({"body": "Es wird größer."}));
    let reply = json!({"body": "Der Bauhof kommt.", "status": "in_progress"});
    call(201, "POST", format!("/issues/{issue}/replies"), &owner, reply);
    call(200, "PATCH", format!("/issues/{issue}"), &owner, json!({"public": true}));
    let hour = json!({"title": "Bürgersprechstunde", "starts_at": herold::model::ts(now_ms()),
                      "ends_at": herold::model::ts(now_ms() + 3_600_000)});
    let session = id(&call(201, "POST", format!("/groups/{other_group}/sessions"), &owner, hour));
    let ask = |token: &str, body: &str| {
        id(&call(201, "POST", format!("/sessions/{session}/questions"), token, json!({"body": body})))
    };
    let answered = ask(talker, "Wann öffnet die Kirche?");
    let rude = ask(&devices[1].1, "Warum so spät?");
    call(200, "PUT", format!("/sessions/{session}/questions/{answered}/vote"), &devices[0].1, Value::Null);
    let answer = json!({"body": "Um zehn.", "public": true});
    call(200, "POST", format!("/sessions/{session}/questions/{answered}/answer"), &owner, answer);
    call(204, "POST", format!("/sessions/{session}/questions/{rude}/block"), &owner, json!({"reason": "Ton"}));

    // Give the failing deliveries a moment to be recorded as retries.
    std::thread::sleep(Duration::from_millis(500));
    drop(server);
    let mut conn = connect(&site.db.url);
    use herold::db::schema::issues as i;
    diesel::update(i::table.find(&issue)).set((i::lat.eq(LAT), i::lon.eq(LON))).execute(&mut conn).expect("position");
    let town = Town {
        admin,
        owner,
        org,
        group,
        other_group,
        devices,
        hidden,
        scheduled,
        scheduled_at_ms,
        api_token,
        issue,
        photo,
        session,
    };
    (town, push)
}

/// More photos than fit one page of the copy (16), each holding every byte
/// value: they are copied page by page, byte for byte.
fn add_photos(url: &str, town: &Town, n: usize) {
    use herold::db::schema::issue_photos as p;
    let mut conn = connect(url);
    for k in 0..n {
        let data: Vec<u8> = (0..=255u8).cycle().skip(k).take(1000 + k).collect();
        diesel::insert_into(p::table)
            .values((
                p::id.eq(format!("photo-{k:03}")),
                p::issue_id.eq(&town.issue),
                p::content_type.eq("image/jpeg"),
                p::width.eq(1),
                p::height.eq(1),
                p::bytes.eq(data.len() as i32),
                p::data.eq(data),
                p::created_at.eq(k as i64),
            ))
            .execute(&mut conn)
            .expect("photo");
    }
}

/// The report's position and photo as stored.
fn stored_report(url: &str, town: &Town) -> (Option<f64>, Option<f64>, Vec<u8>) {
    use herold::db::schema::{issue_photos as p, issues as i};
    let mut conn = connect(url);
    let (lat, lon) = i::table.find(&town.issue).select((i::lat, i::lon)).first(&mut conn).expect("issue");
    let data = p::table.find(&town.photo).select(p::data).first(&mut conn).expect("photo");
    (lat, lon, data)
}

/// The photo as the organization gets it.
fn served_photo(server: &Server, town: &Town) -> Vec<u8> {
    let path = format!("/api/v1/issues/{}/photos/{}", town.issue, town.photo);
    let (status, bytes) = http_bytes(server.port, "GET", &path, Some(&town.owner), ("", b"")).expect("photo");
    assert_eq!(status, 200, "GET {path}");
    bytes
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// The JSON an operator, an organization and residents see.
fn views(server: &Server, town: &Town) -> Vec<(String, Value)> {
    let paths: Vec<(String, Option<&str>)> = vec![
        ("/api/v1/tenants".into(), None),
        ("/api/v1/tenants/wismar/groups".into(), None),
        (format!("/api/v1/groups/{}", town.group), None),
        (format!("/api/v1/groups/{}/messages", town.group), None),
        (format!("/api/v1/groups/{}/messages", town.other_group), None),
        ("/api/v1/devices/me/inbox".into(), Some(&town.devices[0].1)),
        ("/api/v1/devices/me/subscriptions".into(), Some(&town.devices[1].1)),
        (format!("/api/v1/organizations/{}/groups", town.org), Some(&town.owner)),
        (format!("/api/v1/organizations/{}/members", town.org), Some(&town.owner)),
        (format!("/api/v1/organizations/{}/tokens", town.org), Some(&town.owner)),
        ("/api/v1/admin/tenants/wismar/organizations".into(), Some(&town.admin)),
        ("/api/v1/admin/tenants/wismar/reports".into(), Some(&town.admin)),
        ("/api/v1/admin/tenants/wismar/audit".into(), Some(&town.admin)),
        (format!("/api/v1/messages/{}", town.hidden), Some(&town.admin)),
        ("/api/v1/push/vapid-public-key".into(), None),
        (format!("/api/v1/groups/{}/intake", town.other_group), None),
        (format!("/api/v1/groups/{}/board", town.other_group), None),
        (format!("/api/v1/groups/{}/sessions", town.other_group), None),
        (format!("/api/v1/organizations/{}/issues", town.org), Some(&town.owner)),
        (format!("/api/v1/organizations/{}/blocks", town.org), Some(&town.owner)),
        (format!("/api/v1/issues/{}", town.issue), Some(&town.owner)),
        ("/api/v1/devices/me/issues".into(), Some(&town.devices[2].1)),
        (format!("/api/v1/devices/me/issues/{}", town.issue), Some(&town.devices[2].1)),
        (format!("/api/v1/sessions/{}", town.session), None),
        (format!("/api/v1/sessions/{}", town.session), Some(&town.owner)),
        (format!("/api/v1/sessions/{}", town.session), Some(&town.devices[0].1)),
    ];
    paths
        .into_iter()
        .map(|(path, token)| {
            let (status, text) = http(server.port, "GET", &path, token, None).expect("request");
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            assert!(status == 200 || path.contains(&town.hidden), "GET {path}: {status} {body}");
            (path, json!({"status": status, "body": body}))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// SQLite → PostgreSQL → SQLite
// ---------------------------------------------------------------------------

#[test]
fn sqlite_to_postgres_is_the_same_installation_and_copies_back_identically() {
    let Some(postgres) = Site::new(Db::Postgres) else { return };
    let mut sqlite = Site::new(Db::Sqlite).expect("sqlite");
    let (town, push) = fill(&mut sqlite);
    add_photos(&sqlite.db.url, &town, 40);

    // A second look at the SQLite server, now that nothing runs in the background.
    let (before, photo) = {
        let server = sqlite.serve("before");
        (views(&server, &town), served_photo(&server, &town))
    };
    let (lat, lon, data) = stored_report(&sqlite.db.url, &town);
    assert_eq!((lat, lon), (Some(LAT), Some(LON)));
    assert_eq!(photo, data, "the photo served is the one stored");
    let mut original = dump(&sqlite.db.url);
    if original["subscriber_counts"].is_empty() {
        // Written by the daily housekeeping, which this short run does not reach.
        let mut conn = connect(&sqlite.db.url);
        use herold::db::schema::subscriber_counts as s;
        diesel::insert_into(s::table)
            .values((s::group_id.eq(&town.group), s::day.eq("2026-11-25"), s::subscribers.eq(2_i64)))
            .execute(&mut conn)
            .expect("subscriber count");
        original = dump(&sqlite.db.url);
    }
    let empty: Vec<&String> = original.iter().filter(|(_, rows)| rows.is_empty()).map(|(t, _)| t).collect();
    assert!(empty.is_empty(), "the scenario leaves tables empty, so their copy is not tested: {empty:?}");

    let out = migrate_db(&sqlite.db.url, &postgres.db.url);
    assert!(out.status.success(), "migrate-db failed: {}\n{}", out.stderr, out.stdout);
    for table in herold::migrate_db::TABLES {
        let n = original[*table].len();
        assert!(
            out.stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [*table, n.to_string().as_str(), n.to_string().as_str()]),
            "the count table does not show {table} with {n} rows on both sides:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("row counts verified"), "{}", out.stdout);
    assert_same_dump(&original, &dump(&postgres.db.url), "SQLite → PostgreSQL");
    let (lat, lon, bytes) = stored_report(&postgres.db.url, &town);
    assert_eq!(lat.map(f64::to_bits), Some(LAT.to_bits()), "latitude bit for bit on PostgreSQL");
    assert_eq!(lon.map(f64::to_bits), Some(LON.to_bits()), "longitude bit for bit on PostgreSQL");
    assert_eq!(bytes, data, "the photo's bytes on PostgreSQL");

    // And back: PostgreSQL → a new SQLite file gives the same dump again.
    let back = TestDb::new(Db::Sqlite).expect("sqlite");
    let out = migrate_db(&postgres.db.url, &back.url);
    assert!(out.status.success(), "migrate-db back failed: {}\n{}", out.stderr, out.stdout);
    assert_same_dump(&original, &dump(&back.url), "PostgreSQL → SQLite");
    let (lat, lon, bytes) = stored_report(&back.url, &town);
    assert_eq!((lat.map(f64::to_bits), lon.map(f64::to_bits)), (Some(LAT.to_bits()), Some(LON.to_bits())));
    assert_eq!(bytes, data, "the photo's bytes back on SQLite");

    // The same installation on PostgreSQL.
    let postgres = Site { push_origin: sqlite.push_origin.clone(), ..postgres };
    assert_eq!(
        postgres.run(&["vapid", "show"], None),
        sqlite.run(&["vapid", "show"], None),
        "the VAPID key was not copied"
    );
    let server = postgres.serve("postgres");
    let after = views(&server, &town);
    assert_eq!(served_photo(&server, &town), photo, "the photo served from PostgreSQL");
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        let new = if path.ends_with(&format!("{}/messages", town.group)) && now_ms() >= town.scheduled_at_ms {
            // The scheduled message may have come due in the meantime.
            let mut new = new.clone();
            new["body"]["items"].as_array_mut().expect("items").retain(|m| m["id"] != town.scheduled.as_str());
            new
        } else {
            new.clone()
        };
        assert_eq!(old, &new, "GET {path} answers differently on PostgreSQL");
    }
    // Passwords (argon2 hashes) and the API token (its hash) were copied.
    server.expect(200, "POST", "/api/v1/auth/login", None, Some(&json!({"email": OWNER, "password": PASSWORD})));
    let delivered_before = push.count();
    let posted = server.expect(
        201,
        "POST",
        &format!("/api/v1/groups/{}/messages", town.group),
        Some(&town.api_token),
        Some(&json!({"title": "Über die Website", "body": "Gepostet mit dem API-Token."})),
    );
    // Its push is signed with the copied VAPID key (the push service checks)
    // to the copied subscriptions.
    assert!(push.wait_for(delivered_before + 2, Duration::from_secs(20)), "the new message is not delivered");
    let posted = id(&posted);
    for (sub, _) in &town.devices[..2] {
        assert!(
            push.deliveries_for(&sub.id).iter().any(|d| d.payload.to_string().contains(&posted)),
            "device {} did not get the message posted on PostgreSQL",
            sub.id
        );
    }
    // The scheduled message goes out at its time, from PostgreSQL.
    let deadline = Instant::now() + Duration::from_millis((town.scheduled_at_ms - now_ms()).max(0) as u64 + 20_000);
    loop {
        let got = town.devices[..2].iter().all(|(sub, _)| {
            push.deliveries_for(&sub.id).iter().any(|d| d.payload.to_string().contains(&town.scheduled))
        });
        if got {
            break;
        }
        assert!(Instant::now() < deadline, "the scheduled message was not delivered; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let feed = server.get(&format!("/api/v1/groups/{}/messages", town.group), None);
    assert!(feed["items"].as_array().expect("items").iter().any(|m| m["id"] == town.scheduled.as_str()), "{feed}");
    // Every push the test push service received was valid (VAPID, encryption).
    push.assert_no_violations();
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

/// A SQLite installation with a tenant and its keys, made by the CLI.
fn small_site() -> Site {
    let site = Site::new(Db::Sqlite).expect("sqlite");
    site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"], None);
    site
}

#[track_caller]
fn refused(out: Out) -> String {
    assert_eq!(out.status.code(), Some(1), "expected exit 1\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{}", out.stderr);
    lines[0].to_owned()
}

fn refuses_a_target_that_is_not_empty(kind: Db) {
    let source = small_site();
    let Some(target) = Site::new(kind) else { return };
    // A server once started on the target: it made keys of its own.
    target.run(&["vapid", "show"], None);
    let before = dump(&target.db.url);
    let line = refused(migrate_db(&source.db.url, &target.db.url));
    assert!(line.contains("not empty") && line.contains("server_secrets"), "{line}");
    assert_same_dump(&before, &dump(&target.db.url), "the refused target");
}

#[test]
fn refuses_a_target_that_is_not_empty_sqlite() {
    refuses_a_target_that_is_not_empty(Db::Sqlite);
}

#[test]
fn refuses_a_target_that_is_not_empty_postgres() {
    refuses_a_target_that_is_not_empty(Db::Postgres);
}

#[test]
fn refuses_a_source_that_is_not_fully_migrated() {
    use diesel_migrations::MigrationHarness;
    let source = small_site();
    {
        let DbConn::Sqlite(mut c) = connect(&source.db.url) else { unreachable!() };
        c.revert_last_migration(herold::db::SQLITE_MIGRATIONS).expect("revert the last migration");
    }
    let target = TestDb::new(Db::Sqlite).expect("sqlite");
    let line = refused(migrate_db(&source.db.url, &target.url));
    assert!(line.contains("not fully migrated") && line.contains("herold migrate"), "{line}");

    let missing = source.db.data_dir().join("nothing-here.db");
    let line = refused(migrate_db(&format!("sqlite://{}", missing.display()), &target.url));
    assert!(line.contains("no SQLite database"), "{line}");
    assert!(!missing.exists(), "a missing source was created");
}

#[test]
fn refuses_a_table_it_does_not_know() {
    let source = small_site();
    {
        let mut conn = connect(&source.db.url);
        diesel::connection::SimpleConnection::batch_execute(&mut conn, "CREATE TABLE plugin_data (id TEXT)")
            .expect("extra table");
    }
    let target = TestDb::new(Db::Sqlite).expect("sqlite");
    let line = refused(migrate_db(&source.db.url, &target.url));
    assert!(line.contains("plugin_data"), "{line}");
}

/// SQLite to SQLite needs no PostgreSQL: the copy is checked on every run.
#[test]
fn sqlite_to_sqlite_copies_identically() {
    let mut source = Site::new(Db::Sqlite).expect("sqlite");
    let (town, _push) = fill(&mut source);
    add_photos(&source.db.url, &town, 33);
    let target = TestDb::new(Db::Sqlite).expect("sqlite");
    let out = migrate_db(&source.db.url, &target.url);
    assert!(out.status.success(), "{}\n{}", out.stderr, out.stdout);
    assert!(out.stdout.lines().any(|l| l.split_whitespace().eq(["issue_photos", "34", "34"])), "{}", out.stdout);
    assert_same_dump(&dump(&source.db.url), &dump(&target.url), "SQLite → SQLite");
}
