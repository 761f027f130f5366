//! Herold's scale simulation (issue 6, "Scale simulation"): a benchmark,
//! not a test.
//!
//! ```text
//! apt-get install -y wrk            # the HTTP load generator (Debian package)
//! cargo bench --bench scale         # ~5 minutes on this 2-core machine
//! cargo bench --bench scale -- --runs 1 --devices 200000   # a quicker look
//! ```
//!
//! PostgreSQL only: `SCALE_DATABASE_URL` (or `TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a server where a
//! fresh database `herold_scale_<pid>` is made and dropped afterwards.
//!
//! 1. **The installation**: 50 towns, each with an approved organization
//!    and the groups "Rathaus aktuell" (every device of the town), "Verkehr"
//!    (every 2nd device in the city, every 3rd elsewhere) and "Amtsblatt"
//!    (no subscribers; its feed is read under load); the city (town 0) has
//!    200,000 of the 1,000,000 devices and four "Ortsteil" groups of 25,000.
//!    Devices and subscriptions are written with `generate_series` in SQL.
//!    Endpoints are `https://localhost:<port>/push/<i>` on the local HTTPS
//!    sink (`benches/support/sink.rs`, answers `201`). Keys: real P-256
//!    public keys with auth secrets, but a **pool of 1,000** pairs reused
//!    round-robin (device i has pair i mod 1000) — making a million takes
//!    minutes and changes nothing for the sender, which does a fresh ECDH
//!    per notification whatever the recipient key.
//! 2. **Fan-out rate**, one and two `herold serve` processes (release
//!    build, default settings: batches of 500, 64 requests in flight per
//!    origin, 2 workers each), from the post (`messages::post`, whose
//!    `NOTIFY` wakes every instance) to the sink's last `201`:
//!    - *one message* to the city's "Verkehr" group (100,000 devices);
//!    - *four messages* at once to the four "Ortsteil" groups (4 × 25,000).
//!
//!    One message is one fan-out job, walked one batch at a time (a crash
//!    must repeat at most the batch in flight), so a second instance cannot
//!    speed up a single message — it takes other jobs. The rounds run
//!    `--runs K` times (default 2), one instance then two in each, so the
//!    two-vs-one ratio comes from the same minutes of this noisy machine.
//!    CPU per notification: Herold processes, sink, PostgreSQL (all
//!    `postgres` processes on the machine), and the rest ("other").
//! 3. **Directory and feed under load**: `wrk` (a second process, 2
//!    threads, 256 connections, 15 s each) against one instance:
//!    `GET /api/v1/tenants/{slug}/groups` for the city and for a small town,
//!    and `GET /api/v1/groups/{id}/messages` (30 messages). Requests/s and
//!    p99 latency; without `wrk` this part is skipped, loudly.
//!
//! The binary plays two roles: the orchestrator (default) and `sink`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[path = "support/certs.rs"]
mod certs;
#[path = "support/sink.rs"]
mod sink;

const TOWNS: usize = 50;
const KEY_POOL: usize = 1_000;
const SUBJECT: &str = "mailto:rathaus@grossstadt.de";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => sink::main(&args[2..]),
        _ => orchestrate(&args[1..]),
    }
}

// ---------------------------------------------------------------------------
// CPU figures from /proc
// ---------------------------------------------------------------------------

/// Clock ticks per second of /proc's CPU times.
fn ticks() -> f64 {
    // SAFETY: sysconf has no side effects.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process in seconds (0 when it is gone).
fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name may hold spaces: fields count from after its ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (n(11) + n(12)) / ticks()
}

/// CPU seconds of every `postgres` process now running (the server's
/// backends come and go; this undercounts exited ones, fine over seconds).
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(proc_cpu)
        .sum()
}

/// Busy CPU seconds of the whole machine (all cores) so far.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let f: Vec<f64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = f.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy / ticks()
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// The sink, spoken to line by line.
struct Sink {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Sink {
    fn start(certs: &certs::Files) -> (Sink, u16) {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("sink")
            .arg(&certs.leaf_der)
            .arg(&certs.key_der)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the sink");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sink = Sink { child, stdin, lines };
        let port = sink.expect("port", Duration::from_secs(10)).parse().expect("port number");
        (sink, port)
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").and_then(|_| self.stdin.flush()).expect("talk to the sink");
    }

    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line[prefix.len()..].trim().to_owned()),
                Ok(line) => eprintln!("  [sink] {line}"),
                Err(_) => return None,
            }
        }
    }

    fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_for(prefix, timeout).unwrap_or_else(|| panic!("sink: no '{prefix}' within {timeout:?}"))
    }

    fn count(&mut self) -> String {
        self.send("count");
        self.expect("count", Duration::from_secs(5))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `herold serve` process (the release binary `cargo bench` builds).
struct Instance {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Instance {
    fn start(site: &Site, name: &str) -> Instance {
        let port = free_port();
        let log = site.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herold"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("HEROLD_")) {
            cmd.env_remove(key);
        }
        cmd.arg("serve")
            .env("DATABASE_URL", &site.url)
            .env("HEROLD_DATA_DIR", &site.dir)
            .env("HEROLD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HEROLD_PUBLIC_URL", "https://herold.example.de")
            .env("HEROLD_PUSH_ALLOWED_ORIGINS", &site.origin)
            .env("HEROLD_PUSH_CA_FILE", &site.ca_pem)
            .env("HEROLD_VAPID_SUBJECT", SUBJECT)
            .env("HEROLD_LOG", "warn")
            .env("HEROLD_ACCESS_LOG", "false")
            .env("HEROLD_SHUTDOWN_GRACE_SECS", "0")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        let child = cmd.spawn().expect("start herold serve");
        let mut instance = Instance { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/readyz").map(|(s, _)| s) != Some(200) {
            if let Ok(Some(status)) = instance.child.try_wait() {
                panic!(
                    "herold serve exited with {status}:\n{}",
                    std::fs::read_to_string(&instance.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "herold serve not ready after 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        instance
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait (a graceful stop, as an operator does).
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A one-shot `GET` over a fresh connection: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

// ---------------------------------------------------------------------------
// The installation
// ---------------------------------------------------------------------------

struct Site {
    url: String,
    admin_url: String,
    db_name: String,
    dir: PathBuf,
    origin: String,
    ca_pem: PathBuf,
    state: herold::AppState,
    /// The city's editor (posts every message).
    editor: String,
    verkehr: String,
    ortsteile: Vec<String>,
    amtsblatt: String,
    city: String,
    small_town: String,
}

/// Groups of one town: (Rathaus aktuell, Verkehr, Amtsblatt, Ortsteile).
struct Town {
    slug: String,
    editor: String,
    rathaus: String,
    verkehr: String,
    amtsblatt: String,
    ortsteile: Vec<String>,
}

fn make_town(conn: &mut herold::db::DbConn, admin: &str, i: usize, now: i64) -> Town {
    let (slug, name) = if i == 0 {
        ("grossstadt".to_owned(), "Großstadt".to_owned())
    } else {
        (format!("gemeinde-{i:02}"), format!("Gemeinde {i}"))
    };
    let tenant = herold::tenants::create(conn, &slug, &name, now).expect("tenant");
    herold::accounts::grant_city_admin(conn, &tenant.id, admin, now).expect("city admin");
    let editor = herold::accounts::create_user(conn, &format!("presse@{slug}.de"), None, false, now).expect("editor");
    let org = herold::orgs::create(
        conn,
        &editor,
        herold::orgs::NewOrg { name: &format!("Rathaus {name}"), description: None, tenant_slug: &slug },
        now,
    )
    .expect("organization");
    herold::orgs::decide(conn, admin, &org.id, herold::orgs::Decision::Approve, None, now).expect("approve");
    let mut group = |name: &str, description: &str| {
        herold::groups::create(
            conn,
            &editor.id,
            &org.id,
            herold::groups::GroupInput { name: Some(name), description: Some(description), category: Some("other") },
            now,
        )
        .expect("group")
        .id
    };
    let rathaus = group("Rathaus aktuell", "Neuigkeiten aus dem Rathaus");
    let verkehr = group("Verkehr und Baustellen", "Sperrungen, Umleitungen, Baustellen");
    let amtsblatt = group("Amtsblatt", "Bekanntmachungen");
    let ortsteile = if i == 0 {
        (1..=4).map(|k| group(&format!("Ortsteil {k}"), "Aus dem Ortsteil")).collect()
    } else {
        Vec::new()
    };
    Town { slug, editor: editor.id, rathaus, verkehr, amtsblatt, ortsteile }
}

impl Site {
    fn build(dir: &Path, origin: &str, ca_pem: &Path, devices: usize) -> Site {
        let admin_url = std::env::var("SCALE_DATABASE_URL")
            .or_else(|_| std::env::var("TEST_DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db_name = format!("herold_scale_{}", std::process::id());
        let mut admin = diesel::PgConnection::establish(&admin_url).expect("PostgreSQL reachable");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db_name}")).expect("drop an old database");
        admin.batch_execute(&format!("CREATE DATABASE {db_name}")).expect("create the database");
        let mut parsed = url::Url::parse(&admin_url).expect("database URL");
        parsed.set_path(&format!("/{db_name}"));
        let url = parsed.to_string();

        let mut config = herold::Config::for_database(&url, dir.to_path_buf()).expect("config");
        config.push_allowed_origins = vec![url::Url::parse(origin).expect("origin")];
        config.push_ca_file = Some(ca_pem.to_path_buf());
        config.vapid_subject = SUBJECT.into();
        let state = herold::AppState::open(config, herold::Clock::system()).expect("app state (migrations)");
        let now = state.now_ms();

        let started = Instant::now();
        let towns: Vec<Town> = {
            let mut pooled = state.pool.get().expect("connection");
            let conn: &mut herold::db::DbConn = &mut pooled;
            let admin = herold::accounts::create_user(conn, "land@verwaltung.de", None, false, now).expect("admin");
            (0..TOWNS).map(|i| make_town(conn, &admin.id, i, now)).collect()
        };

        // The key pool: real P-256 public keys and auth secrets.
        let pool = keys(KEY_POOL);
        let mut pg = diesel::PgConnection::establish(&url).expect("connect");
        let mut sql = String::from("CREATE TEMP TABLE bench_keys (k INT PRIMARY KEY, p256dh TEXT, auth TEXT);\n");
        sql.push_str("INSERT INTO bench_keys VALUES ");
        sql.push_str(
            &pool.iter().enumerate().map(|(k, (p, a))| format!("({k}, '{p}', '{a}')")).collect::<Vec<_>>().join(","),
        );
        sql.push_str(";\nCREATE TEMP TABLE bench_towns (town INT PRIMARY KEY, rathaus TEXT, verkehr TEXT);\n");
        sql.push_str("INSERT INTO bench_towns VALUES ");
        sql.push_str(
            &towns
                .iter()
                .enumerate()
                .map(|(i, t)| format!("({i}, '{}', '{}')", t.rathaus, t.verkehr))
                .collect::<Vec<_>>()
                .join(","),
        );
        sql.push_str(";\n");
        pg.batch_execute(&sql).expect("key pool and towns");

        // Device i lives in the city when i < city, else in town 1 + i mod 49.
        let city = devices / 5;
        let town_of = format!("CASE WHEN i < {city} THEN 0 ELSE 1 + i % {} END", TOWNS - 1);
        let device_id = "'d' || lpad(i::text, 8, '0')";
        let n = devices - 1;
        let mut steps: Vec<(String, String)> = vec![
            (
                "devices".into(),
                format!(
                    "INSERT INTO devices (id, token_hash, endpoint, p256dh, auth, created_at, last_seen_at) \
                     SELECT {device_id}, 'bench-' || i, '{origin}/push/' || i, k.p256dh, k.auth, {now}, {now} \
                     FROM generate_series(0, {n}) i JOIN bench_keys k ON k.k = i % {KEY_POOL}"
                ),
            ),
            (
                "subscriptions: Rathaus aktuell".into(),
                format!(
                    "INSERT INTO subscriptions (device_id, group_id, created_at) SELECT {device_id}, t.rathaus, {now} \
                     FROM generate_series(0, {n}) i JOIN bench_towns t ON t.town = {town_of}"
                ),
            ),
            (
                "subscriptions: Verkehr".into(),
                format!(
                    "INSERT INTO subscriptions (device_id, group_id, created_at) SELECT {device_id}, t.verkehr, {now} \
                     FROM generate_series(0, {n}) i JOIN bench_towns t ON t.town = {town_of} \
                     WHERE (i < {city} AND i % 2 = 0) OR (i >= {city} AND i % 3 = 0)"
                ),
            ),
        ];
        for (k, group) in towns[0].ortsteile.iter().enumerate() {
            steps.push((
                format!("subscriptions: Ortsteil {}", k + 1),
                format!(
                    "INSERT INTO subscriptions (device_id, group_id, created_at) SELECT {device_id}, '{group}', {now} \
                     FROM generate_series(0, {n}) i WHERE i < {city} AND i % 8 = {k}"
                ),
            ));
        }
        // Herold keeps each group's subscriber count with the group; bulk SQL
        // bypasses that, so count once here as the migration does.
        steps.push((
            "subscriber counts".into(),
            "UPDATE broadcast_groups SET subscriber_count = \
             (SELECT COUNT(*) FROM subscriptions WHERE subscriptions.group_id = broadcast_groups.id)"
                .into(),
        ));
        steps.push(("ANALYZE".into(), "ANALYZE".into()));
        for (what, statement) in steps {
            let t = Instant::now();
            pg.batch_execute(&statement).unwrap_or_else(|e| panic!("{what}: {e}"));
            eprintln!("  {what}: {:.1} s", t.elapsed().as_secs_f64());
        }

        let site = Site {
            url,
            admin_url,
            db_name,
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            ca_pem: ca_pem.to_path_buf(),
            state,
            editor: towns[0].editor.clone(),
            verkehr: towns[0].verkehr.clone(),
            ortsteile: towns[0].ortsteile.clone(),
            amtsblatt: towns[0].amtsblatt.clone(),
            city: towns[0].slug.clone(),
            small_town: towns[7].slug.clone(),
        };
        // The feed read under load: 30 messages of a group nobody follows.
        for i in 0..30 {
            site.post(&site.amtsblatt, &format!("Bekanntmachung Nr. {}", i + 1));
        }
        eprintln!("  installation built in {:.1} s", started.elapsed().as_secs_f64());
        site
    }

    fn pg(&self) -> diesel::PgConnection {
        diesel::PgConnection::establish(&self.url).expect("connect")
    }

    /// Posts a message (message + fan-out job + `NOTIFY`, one transaction).
    fn post(&self, group: &str, title: &str) -> String {
        let mut pooled = self.state.pool.get().expect("connection");
        let conn: &mut herold::db::DbConn = &mut pooled;
        let now = self.state.now_ms();
        conn.transaction(|c| {
            herold::messages::post(
                c,
                herold::messages::Poster::User(&self.editor),
                group,
                herold::messages::NewMessage {
                    title: title.into(),
                    body: format!("{title}: Näheres auf der Website der Stadt, im Bürgerbüro und in der Tagespresse."),
                    url: Some("https://www.grossstadt.de/aktuell".into()),
                    urgency: None,
                    ttl: None,
                    publish_at: None,
                },
                now,
            )
        })
        .expect("post")
        .message
        .id
    }

    fn wait_jobs_done(&self, timeout: Duration) {
        let mut pg = self.pg();
        let deadline = Instant::now() + timeout;
        loop {
            let open: i64 = diesel::sql_query("SELECT count(*) AS n FROM fanout_jobs WHERE state <> 'done'")
                .get_result::<Count>(&mut pg)
                .expect("open jobs")
                .n;
            if open == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{open} fan-out jobs still open after {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn delivered(&self, ids: &[String]) -> i64 {
        let list = ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
        diesel::sql_query(format!("SELECT coalesce(sum(delivered), 0)::bigint AS n FROM messages WHERE id IN ({list})"))
            .get_result::<Count>(&mut self.pg())
            .expect("delivered")
            .n
    }

    /// (transactions committed, rows fetched) of this database so far.
    fn db_counters(&self) -> (i64, i64) {
        #[derive(QueryableByName)]
        struct Stat {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            xact: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            fetched: i64,
        }
        let s: Stat = diesel::sql_query(
            "SELECT xact_commit AS xact, tup_fetched AS fetched FROM pg_stat_database WHERE datname = current_database()",
        )
        .get_result(&mut self.pg())
        .expect("pg_stat_database");
        (s.xact, s.fetched)
    }

    fn size(&self) -> (i64, i64, i64) {
        #[derive(QueryableByName)]
        struct Sizes {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            db: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            devices: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            subscriptions: i64,
        }
        let s: Sizes = diesel::sql_query(
            "SELECT pg_database_size(current_database()) AS db, pg_total_relation_size('devices') AS devices, \
             pg_total_relation_size('subscriptions') AS subscriptions",
        )
        .get_result(&mut self.pg())
        .expect("sizes");
        (s.db, s.devices, s.subscriptions)
    }

    fn counts(&self) -> (i64, i64) {
        let n = |sql: &str| diesel::sql_query(sql).get_result::<Count>(&mut self.pg()).expect("count").n;
        (n("SELECT count(*) AS n FROM devices"), n("SELECT count(*) AS n FROM subscriptions"))
    }

    fn drop_database(&self) {
        if let Ok(mut admin) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name));
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `n` real P-256 public keys (uncompressed, base64url) with auth secrets.
fn keys(n: usize) -> Vec<(String, String)> {
    use ring::agreement::{EphemeralPrivateKey, ECDH_P256};
    use ring::rand::{SecureRandom, SystemRandom};
    let rng = SystemRandom::new();
    (0..n)
        .map(|_| {
            let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng).expect("key");
            let public = private.compute_public_key().expect("public key");
            let mut auth = [0u8; 16];
            rng.fill(&mut auth).expect("random");
            (URL_SAFE_NO_PAD.encode(public.as_ref()), URL_SAFE_NO_PAD.encode(auth))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Fan-out rounds
// ---------------------------------------------------------------------------

struct Round {
    label: String,
    instances: usize,
    notifications: usize,
    seconds: f64,
    /// CPU seconds: Herold (all instances), sink, PostgreSQL, the rest.
    herold: f64,
    sink: f64,
    postgres: f64,
    other: f64,
    transactions: i64,
    rows_fetched: i64,
    /// Pushes sent per instance (from `/metrics`).
    split: Vec<u64>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.notifications as f64 / self.seconds
    }
    fn per(&self, cpu: f64) -> f64 {
        cpu / self.notifications as f64 * 1e6
    }
}

fn delivered_metric(port: u16) -> u64 {
    let Some((_, text)) = http_get(port, "/metrics") else { return 0 };
    text.lines()
        .filter(|l| l.starts_with("herold_push_deliveries_total{") && l.contains("outcome=\"delivered\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>() as u64
}

/// Posts to `groups` at once (one message each) and times the post to the
/// sink's last `201`.
fn fan_out(
    site: &mut Site,
    sink: &mut Sink,
    instances: &[&Instance],
    groups: &[String],
    each: usize,
    label: &str,
) -> Round {
    let total = groups.len() * each;
    sink.send(&format!("expect {total}"));
    sink.expect("ok", Duration::from_secs(5));
    let metrics0: Vec<u64> = instances.iter().map(|i| delivered_metric(i.port)).collect();
    let herold0: f64 = instances.iter().map(|i| proc_cpu(i.pid())).sum();
    let (sink0, pg0, busy0) = (proc_cpu(sink.child.id()), postgres_cpu(), machine_busy());
    let (xact0, fetched0) = site.db_counters();

    let started = Instant::now();
    let ids: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(k, g)| site.post(g, &format!("Hinweis {k}: Straßensperrung am Ring")))
        .collect();
    sink.wait_for("reached", Duration::from_secs(600))
        .unwrap_or_else(|| panic!("{label}: the sink never reached {total}: {}", sink.count()));
    let seconds = started.elapsed().as_secs_f64();

    let herold = instances.iter().map(|i| proc_cpu(i.pid())).sum::<f64>() - herold0;
    let (sink_cpu, pg, busy) = (proc_cpu(sink.child.id()) - sink0, postgres_cpu() - pg0, machine_busy() - busy0);
    site.wait_jobs_done(Duration::from_secs(60));
    let (xact, fetched) = site.db_counters();
    let delivered = site.delivered(&ids);
    assert_eq!(delivered, total as i64, "{label}: recorded deliveries");
    let split = instances.iter().zip(metrics0).map(|(i, m)| delivered_metric(i.port) - m).collect();
    let round = Round {
        label: label.to_owned(),
        instances: instances.len(),
        notifications: total,
        seconds,
        herold,
        sink: sink_cpu,
        postgres: pg,
        other: (busy - herold - sink_cpu - pg).max(0.0),
        transactions: xact - xact0,
        rows_fetched: fetched - fetched0,
        split,
    };
    eprintln!(
        "  {label}, {} instance(s): {total} in {seconds:.1} s = {:.0}/s; CPU µs/notification: herold {:.0}, sink {:.0}, \
         postgres {:.0}, other {:.0}; pushes per instance {:?}",
        round.instances,
        round.rate(),
        round.per(round.herold),
        round.per(round.sink),
        round.per(round.postgres),
        round.per(round.other),
        round.split
    );
    round
}

// ---------------------------------------------------------------------------
// The API under load (wrk)
// ---------------------------------------------------------------------------

struct Load {
    label: String,
    path: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn wrk_available() -> bool {
    Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn millis(value: &str) -> f64 {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

fn wrk(port: u16, label: &str, path: &str, seconds: u64) -> Load {
    let (status, body) = http_get(port, path).expect("GET before the load");
    assert_eq!(status, 200, "{path}: {body}");
    let out = Command::new("wrk")
        .args(["-t2", "-c256", &format!("-d{seconds}s"), "--timeout", "10s", "--latency"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_owned())
    };
    let errors = [field("Socket errors:"), field("Non-2xx or 3xx responses:")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    let load = Load {
        label: label.to_owned(),
        path: path.to_owned(),
        rps: field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
        p50_ms: field("50%").map(|v| millis(&v)).unwrap_or(f64::NAN),
        p99_ms: field("99%").map(|v| millis(&v)).unwrap_or(f64::NAN),
        errors: if errors.is_empty() { "none".into() } else { errors },
    };
    eprintln!(
        "  {label}: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, errors: {}",
        load.rps, load.p50_ms, load.p99_ms, load.errors
    );
    load
}

// ---------------------------------------------------------------------------
// The orchestrator
// ---------------------------------------------------------------------------

fn orchestrate(args: &[String]) {
    let value = |name: &str| -> Option<u64> {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
    };
    let runs = value("--runs").unwrap_or(2) as usize;
    let devices = value("--devices").unwrap_or(1_000_000) as usize;
    let load_secs = value("--load-secs").unwrap_or(15);
    assert!(devices >= 100_000 && devices % 40 == 0, "--devices: a multiple of 40, at least 100,000");
    let began = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = certs::write(tmp.path());
    let (mut sink, port) = Sink::start(&certs);
    let origin = format!("https://localhost:{port}");

    eprintln!("== building the installation: {TOWNS} towns, {devices} devices ({KEY_POOL} key pairs, reused)");
    let mut site = Site::build(tmp.path(), &origin, &certs.ca_pem, devices);
    let (n_devices, n_subscriptions) = site.counts();
    let (db_bytes, device_bytes, subscription_bytes) = site.size();
    let built = began.elapsed();
    let city = devices / 5;
    let (verkehr, ortsteil) = (city / 2, city / 8);

    eprintln!("== fan-out: 1 message to {verkehr} devices; {} messages to {ortsteil} each", site.ortsteile.len());
    let mut rounds = Vec::new();
    let a = Instance::start(&site, "a");
    // The feed's 30 messages have nobody to deliver to: their jobs finish at once.
    site.wait_jobs_done(Duration::from_secs(30));
    for run in 0..runs {
        eprintln!("-- run {} of {runs}", run + 1);
        let verkehr_group = [site.verkehr.clone()];
        let ortsteile = site.ortsteile.clone();
        rounds.push(fan_out(&mut site, &mut sink, &[&a], &verkehr_group, verkehr, "one message"));
        rounds.push(fan_out(&mut site, &mut sink, &[&a], &ortsteile, ortsteil, "four messages"));
        let b = Instance::start(&site, &format!("b{run}"));
        rounds.push(fan_out(&mut site, &mut sink, &[&a, &b], &verkehr_group, verkehr, "one message"));
        rounds.push(fan_out(&mut site, &mut sink, &[&a, &b], &ortsteile, ortsteil, "four messages"));
        b.stop();
    }

    let mut loads = Vec::new();
    if wrk_available() {
        eprintln!("== the API under load: wrk, 2 threads, 256 connections, {load_secs} s each, one instance");
        loads.push(wrk(
            a.port,
            "directory, the city (8 groups)",
            &format!("/api/v1/tenants/{}/groups", site.city),
            load_secs,
        ));
        loads.push(wrk(
            a.port,
            "directory, a small town (3 groups)",
            &format!("/api/v1/tenants/{}/groups", site.small_town),
            load_secs,
        ));
        loads.push(wrk(a.port, "feed, 30 messages", &format!("/api/v1/groups/{}/messages", site.amtsblatt), load_secs));
    } else {
        eprintln!("\n*** wrk not found: the API load part is SKIPPED (apt-get install -y wrk) ***\n");
    }
    a.stop();
    drop(sink);
    site.drop_database();

    report(
        &rounds,
        &loads,
        (n_devices, n_subscriptions),
        (db_bytes, device_bytes, subscription_bytes),
        built,
        began.elapsed(),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(
    rounds: &[Round],
    loads: &[Load],
    counts: (i64, i64),
    sizes: (i64, i64, i64),
    built: Duration,
    total: Duration,
) {
    println!(
        "\n== Herold scale simulation (PostgreSQL, this machine: {} cores)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "installation: {} devices, {} subscriptions, 50 towns; database {:.0} MiB (devices {:.0} MiB, subscriptions {:.0} MiB); \
         built in {:.0} s",
        counts.0,
        counts.1,
        mib(sizes.0),
        mib(sizes.1),
        mib(sizes.2),
        built.as_secs_f64()
    );
    println!("\n| fan-out, post → last 201 | instances | notifications | notifications/s (each run) | CPU µs/notification: herold / sink / postgres / other | DB transactions per 1,000 | pushes per instance (last run) |");
    println!("|---|---|---|---|---|---|---|");
    let mut by: HashMap<(String, usize), Vec<&Round>> = HashMap::new();
    for r in rounds {
        by.entry((r.label.clone(), r.instances)).or_default().push(r);
    }
    let mut keys: Vec<_> = by.keys().cloned().collect();
    keys.sort();
    let mut medians = HashMap::new();
    for key in &keys {
        let rs = &by[key];
        let rates: Vec<f64> = rs.iter().map(|r| r.rate()).collect();
        let m = median(rates.clone());
        medians.insert(key.clone(), m);
        let cpu = |f: &dyn Fn(&Round) -> f64| median(rs.iter().map(|r| r.per(f(r))).collect());
        let tx = median(rs.iter().map(|r| r.transactions as f64 / r.notifications as f64 * 1000.0).collect());
        println!(
            "| {} | {} | {} | **{:.0}** ({}) | {:.0} / {:.0} / {:.0} / {:.0} | {:.1} | {:?} |",
            key.0,
            key.1,
            rs[0].notifications,
            m,
            rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
            cpu(&|r| r.herold),
            cpu(&|r| r.sink),
            cpu(&|r| r.postgres),
            cpu(&|r| r.other),
            tx,
            rs.last().map(|r| r.split.clone()).unwrap_or_default()
        );
    }
    println!("\n| ratio, two instances ÷ one (same run) | per run | median |");
    println!("|---|---|---|");
    for label in ["one message", "four messages"] {
        let ones: Vec<&Round> = rounds.iter().filter(|r| r.label == label && r.instances == 1).collect();
        let twos: Vec<&Round> = rounds.iter().filter(|r| r.label == label && r.instances == 2).collect();
        let ratios: Vec<f64> = ones.iter().zip(&twos).map(|(o, t)| t.rate() / o.rate()).collect();
        println!(
            "| {label} | {} | **{:.2}** |",
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", "),
            median(ratios.clone())
        );
    }
    let fetched = median(rounds.iter().map(|r| r.rows_fetched as f64 / r.notifications as f64).collect());
    println!("\nrows fetched by PostgreSQL per notification (median): {fetched:.1}");
    if !loads.is_empty() {
        println!("\n| API under load (wrk -t2 -c256, one instance) | path | requests/s | p50 | p99 | errors |");
        println!("|---|---|---|---|---|---|");
        for l in loads {
            println!(
                "| {} | `{}` | **{:.0}** | {:.1} ms | **{:.1} ms** | {} |",
                l.label, l.path, l.rps, l.p50_ms, l.p99_ms, l.errors
            );
        }
    }
    println!("\ntotal time: {:.0} s", total.as_secs_f64());
}
