//! Herold's fan-out benchmark (issue 3, "Benchmark"): not a timed test.
//!
//! ```text
//! npm install --prefix benches/node && cargo bench --bench fanout
//! cargo bench --bench fanout -- --quick     # skip 100,000 devices, one run each
//! ```
//!
//! What it measures, all in one run on this machine:
//!
//! 1. **End-to-end fan-out**: a fresh SQLite database with a town, an approved
//!    organization, a group and N devices (real P-256 public keys, random
//!    16-byte auth secrets, every key pair distinct) subscribed to it, whose
//!    endpoints are `https://localhost:<port>/push/<i>` on a local HTTPS sink
//!    that answers `201` (HTTP/2 or HTTP/1.1, chosen by ALPN). A message is
//!    posted with `herold::messages::post` (message + fan-out job in one
//!    transaction), the delivery engine (`DeliveryHandle::start`, as
//!    `herold serve` runs it) is woken, and the time from the post to the
//!    sink's N-th `201` gives notifications per second. The engine runs in a
//!    child process of its own, so its CPU time (getrusage) and peak RSS
//!    (VmHWM) are Herold's alone; the sink is another process sharing the
//!    same two cores.
//! 2. **Encryption alone**, one thread: `crypto::encrypt` + VAPID
//!    `authorization` per notification (the payload as the engine builds
//!    it), against the floor of the bare ring primitives (key generation +
//!    ECDH + HKDF + AES-128-GCM) on the same payload.
//! 3. **Memory flatness**: peak RSS of a fan-out to 10,000 and to 100,000
//!    devices (`--quick` skips the latter).
//! 4. **Baseline in the same run**: Node's `web-push` package sends the same
//!    subscriptions and payload to the same sink with 64 requests in flight
//!    over keep-alive connections (`benches/node/baseline.mjs`). Without
//!    node or the package the baseline alone is skipped, loudly.
//!
//! The machine is small and may be shared, so the end-to-end figures are
//! taken in rounds (Herold HTTP/2, Herold HTTP/1.1, Node; repeated `--runs K`
//! times, default 5, `--quick` 1) and the medians compared; before each run
//! the benchmark waits up to 20 s for the machine to be idle (`--no-wait`
//! skips that) and reports the CPU that other processes used meanwhile
//! ("other"). `--engine-only` skips the baseline and the encryption figures
//! (for profiling the engine); `--batch N` sets the engine's batch size
//! (default Herold's, 500).
//!
//! The binary plays three roles: the orchestrator (default), `sink` and
//! `engine` (child processes it starts itself).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

const SMALL: usize = 10_000;
const LARGE: usize = 100_000;
const TITLE: &str = "Straßensperrung Altstadt: Umleitung ab Montag";
const BODY: &str = "Ab Montag, 7. Dezember, ist die Lübsche Straße zwischen Markt und Hafen wegen \
    Kanalarbeiten voll gesperrt. Die Umleitung führt über die Dankwartstraße und ist ausgeschildert. \
    Die Buslinien 241 und 242 fahren in dieser Zeit die Ersatzhaltestelle am Lindengarten an. \
    Anwohnerinnen und Anwohner erreichen ihre Grundstücke zu Fuß; Lieferverkehr ist werktags von \
    6 bis 10 Uhr frei. Fragen beantwortet das Bürgertelefon unter 03841 251-0.";
const SUBJECT: &str = "mailto:rathaus@wismar.de";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sink") => sink::main(&args[2..]),
        Some("engine") => engine::main(&args[2..]),
        _ => orchestrate(&args[1..]),
    }
}

// ---------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------

fn rusage_seconds(ru: &libc::rusage) -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// User + system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    rusage_seconds(&ru)
}

/// A `Vm…:` line of /proc/self/status, in KiB (`VmHWM` = peak RSS).
fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits for a child and returns (exit code, CPU seconds, peak RSS KiB).
fn reap(child: Child) -> (i32, f64, u64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child; it fills `ru` and `status`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    std::mem::forget(child);
    if r != pid {
        return (-1, 0.0, 0);
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, rusage_seconds(&ru), ru.ru_maxrss as u64)
}

/// A child process spoken to line by line over stdin/stdout.
struct Proc {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child: Some(child), stdin, lines, name }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).unwrap_or_else(|e| panic!("{}: {e}", self.name));
    }

    /// The next line starting with `prefix` (others are echoed), or `None` on timeout.
    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line[prefix.len()..].trim().to_owned()),
                Ok(line) => eprintln!("  [{}] {line}", self.name),
                Err(_) => return None,
            }
        }
    }

    fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_for(prefix, timeout).unwrap_or_else(|| panic!("{}: no '{prefix}' within {timeout:?}", self.name))
    }

    /// Closes stdin (the child's cue to exit) and reaps it.
    fn finish(mut self) -> (i32, f64, u64) {
        self.stdin.take();
        reap(self.child.take().expect("child"))
    }
}

// ---------------------------------------------------------------------------
// The orchestrator
// ---------------------------------------------------------------------------

struct Options {
    quick: bool,
    runs: usize,
    /// `--engine-only`: Herold's fan-outs alone (for profiling the engine).
    engine_only: bool,
    /// `--no-wait`: do not wait for the machine to calm down before a run.
    no_wait: bool,
    /// `--batch N`: the engine's batch size (default: Herold's default).
    batch: Option<i64>,
}

fn orchestrate(args: &[String]) {
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
    let quick = flag("--quick");
    let opts = Options {
        quick,
        runs: value("--runs").unwrap_or(if quick { 1 } else { 5 }),
        engine_only: flag("--engine-only"),
        no_wait: flag("--no-wait"),
        batch: value("--batch").map(|v: usize| v as i64),
    };
    let started = Instant::now();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!(
        "Herold fan-out benchmark: {cores} cores, {} run(s) per figure{}",
        opts.runs,
        if quick { ", --quick" } else { "" }
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = certs::write(tmp.path());
    let mut sink = Proc::spawn("sink", {
        let mut c = Command::new(std::env::current_exe().expect("own path"));
        c.arg("sink").arg(&certs.leaf_der).arg(&certs.key_der);
        c
    });
    let port: u16 = sink.expect("port ", Duration::from_secs(10)).parse().expect("port number");
    let origin = format!("https://localhost:{port}");
    eprintln!("sink listening at {origin}");
    let largest = if opts.quick { SMALL } else { LARGE };
    let t = Instant::now();
    let keys = keys::generate(largest);
    eprintln!("generated {largest} distinct P-256 key pairs and auth secrets in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let small = fixture::build(&tmp.path().join("db-10k"), &origin, &certs.ca_pem, &keys[..SMALL]);
    eprintln!("database with {SMALL} devices in {:.1} s", t.elapsed().as_secs_f64());

    // 1 and 4: end to end over HTTP/2 and HTTP/1.1, and the baseline, in
    // rounds (the machine's load drifts; each round sees the same drift).
    let mut node_input = match if opts.engine_only { Err("--engine-only".into()) } else { baseline::available() } {
        Ok(()) => Some(None),
        Err(why) => {
            baseline::skipped(&why);
            None
        }
    };
    let (mut h2, mut h1, mut node) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=opts.runs {
        h2.push(run_engine(&mut sink, &small, "h2", SMALL, &opts, &format!("Herold HTTP/2   #{round}")));
        h1.push(run_engine(&mut sink, &small, "h1", SMALL, &opts, &format!("Herold HTTP/1.1 #{round}")));
        if let Some(input) = &mut node_input {
            // The same subscriptions and the very plaintext the engine sent.
            let file = input.get_or_insert_with(|| baseline::write_input(tmp.path(), &small, &small.last_payload()));
            let label = format!("Node web-push   #{round}");
            match baseline::run(&mut sink, file, &certs.ca_pem, SMALL, &opts, &label) {
                Ok(r) => node.push(r),
                Err(e) => {
                    baseline::skipped(&e);
                    node_input = None;
                }
            }
        }
    }

    // 2. Encryption alone.
    let info = small.last_message_info();
    let payload = herold::delivery::message_payload(&small.state.config.public_url, &info);
    let crypto = if opts.engine_only {
        crypto_bench::Figures { herold: f64::NAN, floor: f64::NAN, payload_build: f64::NAN, payload_len: payload.len() }
    } else {
        if !opts.no_wait {
            load::wait_quiet();
        }
        crypto_bench::run(&keys[..SMALL], &info, &small.state.config.public_url, &origin)
    };
    drop(small);

    // 3. Memory flatness at 100,000 devices.
    let mut large = Vec::new();
    if !opts.quick {
        let t = Instant::now();
        let big = fixture::build(&tmp.path().join("db-100k"), &origin, &certs.ca_pem, &keys[..LARGE]);
        eprintln!("database with {LARGE} devices in {:.1} s", t.elapsed().as_secs_f64());
        large.push(run_engine(&mut sink, &big, "h2", LARGE, &opts, "Herold HTTP/2, 100k"));
    }
    let _ = sink.finish();

    report::print(cores, &h2, &h1, &node, &crypto, &large, started.elapsed());
}

/// What else the machine is doing: CPU time of all processes from
/// /proc/stat, so a run can say how much of it was someone else's.
mod load {
    use super::*;

    /// (busy, total) CPU seconds of the whole machine since boot.
    pub fn machine() -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<f64> =
            stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let total: f64 = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
        ((total - idle) / hz, total / hz)
    }

    /// Waits (at most 20 s) for a second in which the machine is ≥ 90 % idle:
    /// other jobs on a 2-core machine distort every figure.
    pub fn wait_quiet() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut said = false;
        loop {
            let (b0, t0) = machine();
            std::thread::sleep(Duration::from_millis(1000));
            let (b1, t1) = machine();
            let busy = (b1 - b0) / (t1 - t0).max(1e-9);
            if busy <= 0.10 {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("  (the machine stayed busy — {:.0} % — measuring anyway)", busy * 100.0);
                return;
            }
            if !said {
                eprintln!("  (waiting for the machine to calm down: {:.0} % busy)", busy * 100.0);
                said = true;
            }
        }
    }
}

/// One end-to-end fan-out: engine process, post, N-th 201.
#[derive(Debug, Clone)]
struct EngineRun {
    ok: bool,
    n: usize,
    seconds: f64,
    cpu: f64,
    sink_cpu: f64,
    /// CPU cores used by other processes on the machine during the run.
    other_load: f64,
    rss_idle_kib: u64,
    hwm_kib: u64,
    delivered: i64,
    failed: i64,
}

impl EngineRun {
    fn rate(&self) -> f64 {
        self.n as f64 / self.seconds
    }
}

fn sink_cpu(sink: &mut Proc) -> f64 {
    sink.send("cpu");
    sink.expect("cpu ", Duration::from_secs(5)).parse().unwrap_or(0.0)
}

fn run_engine(sink: &mut Proc, fx: &fixture::Fixture, alpn: &str, n: usize, opts: &Options, label: &str) -> EngineRun {
    sink.send(&format!("alpn {alpn}"));
    sink.expect("ok", Duration::from_secs(5));
    sink.send(&format!("expect {n}"));
    sink.expect("ok", Duration::from_secs(5));

    let mut engine = Proc::spawn("engine", {
        let mut c = Command::new(std::env::current_exe().expect("own path"));
        c.arg("engine").arg(&fx.url).arg(&fx.data_dir).arg(&fx.origin).arg(&fx.ca_pem);
        if let Some(batch) = opts.batch {
            c.arg(batch.to_string());
        }
        c
    });
    let rss_idle_kib: u64 = engine.expect("ready ", Duration::from_secs(30)).parse().unwrap_or(0);
    if !opts.no_wait {
        load::wait_quiet();
    }
    let sink_cpu0 = sink_cpu(sink);
    let machine0 = load::machine().0;
    let t0 = Instant::now();
    engine.send(&format!("go {} {}", fx.group_id, fx.user_id));
    let timeout = Duration::from_secs(60 + n as u64 / 200);
    let reached = sink.wait_for("reached", timeout);
    let seconds = t0.elapsed().as_secs_f64();
    let machine1 = load::machine().0;
    let sink_cpu1 = sink_cpu(sink);
    let message_id = engine.expect("posted ", Duration::from_secs(5));
    engine.send("stop");
    let result = engine.expect("result ", Duration::from_secs(60));
    let (code, _, _) = engine.finish();
    let v: serde_json::Value = serde_json::from_str(&result).expect("engine result JSON");
    let cpu = v["cpu"].as_f64().unwrap_or(0.0);
    let sink_cpu = sink_cpu1 - sink_cpu0;
    let run = EngineRun {
        ok: reached.is_some() && code == 0,
        n,
        seconds,
        cpu,
        sink_cpu,
        other_load: ((machine1 - machine0) - cpu - sink_cpu).max(0.0) / seconds,
        rss_idle_kib,
        hwm_kib: v["hwm_kib"].as_u64().unwrap_or(0),
        delivered: v["delivered"].as_i64().unwrap_or(0),
        failed: v["failed"].as_i64().unwrap_or(0),
    };
    *fx.last_message.lock().unwrap() = Some(message_id);
    if run.ok {
        eprintln!(
            "{label}: {n} in {:.2} s = {:.0}/s; engine CPU {:.2} s, peak RSS {} MiB; sink CPU {:.2} s; other load {:.2} cores",
            run.seconds,
            run.rate(),
            run.cpu,
            run.hwm_kib / 1024,
            run.sink_cpu,
            run.other_load
        );
    } else {
        eprintln!(
            "{label}: FAILED: the sink did not see {n} notifications within {timeout:?} \
             (delivered {}, failed {}, engine exit {code})",
            run.delivered, run.failed
        );
    }
    run
}

// ---------------------------------------------------------------------------
// Certificates: a CA and a leaf for localhost
// ---------------------------------------------------------------------------

#[path = "support/certs.rs"]
mod certs;

// ---------------------------------------------------------------------------
// Device keys
// ---------------------------------------------------------------------------

mod keys {
    use ring::agreement::{EphemeralPrivateKey, ECDH_P256};
    use ring::rand::{SecureRandom, SystemRandom};

    /// A device's subscription keys: raw P-256 public key (65 bytes) and auth secret.
    #[derive(Clone)]
    pub struct DeviceKeys {
        pub p256dh: Vec<u8>,
        pub auth: [u8; 16],
    }

    /// `n` distinct key pairs (the private halves are not needed: the sink
    /// does not decrypt — the test suite's push service does that).
    pub fn generate(n: usize) -> Vec<DeviceKeys> {
        let rng = SystemRandom::new();
        (0..n)
            .map(|_| {
                let private = EphemeralPrivateKey::generate(&ECDH_P256, &rng).expect("key");
                let p256dh = private.compute_public_key().expect("public key").as_ref().to_vec();
                let mut auth = [0u8; 16];
                rng.fill(&mut auth).expect("random");
                DeviceKeys { p256dh, auth }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The database: town, approved organization, group, N subscribed devices
// ---------------------------------------------------------------------------

mod fixture {
    use super::*;
    use diesel::prelude::*;
    use herold::db::schema::{devices, subscriptions};
    use herold::{AppState, Clock, Config};

    pub struct Fixture {
        pub url: String,
        pub data_dir: PathBuf,
        pub origin: String,
        pub ca_pem: PathBuf,
        pub group_id: String,
        pub user_id: String,
        pub state: AppState,
        pub last_message: std::sync::Mutex<Option<String>>,
    }

    pub fn config(url: &str, data_dir: &Path, origin: &str, ca_pem: &Path) -> Config {
        let mut config = Config::for_database(url, data_dir.to_path_buf()).expect("config");
        config.push_allowed_origins = vec![url::Url::parse(origin).expect("origin")];
        config.push_ca_file = Some(ca_pem.to_path_buf());
        config.vapid_subject = SUBJECT.into();
        config
    }

    pub fn build(dir: &Path, origin: &str, ca_pem: &Path, keys: &[keys::DeviceKeys]) -> Fixture {
        std::fs::create_dir_all(dir).expect("db dir");
        let url = format!("sqlite://{}", dir.join("herold.db").display());
        let state = AppState::open(config(&url, dir, origin, ca_pem), Clock::system()).expect("app state");
        let now = state.now_ms();
        let mut pooled = state.pool.get().expect("connection");
        let conn: &mut herold::db::DbConn = &mut pooled;

        herold::tenants::create(conn, "wismar", "Hansestadt Wismar", now).expect("tenant");
        let admin = herold::accounts::create_user(conn, "stadt@wismar.de", None, false, now).expect("admin");
        let tenant = herold::tenants::by_slug(conn, "wismar").expect("tenant");
        herold::accounts::grant_city_admin(conn, &tenant.id, &admin.id, now).expect("city admin");
        let editor = herold::accounts::create_user(conn, "presse@wismar.de", None, false, now).expect("editor");
        let org = herold::orgs::create(
            conn,
            &editor,
            herold::orgs::NewOrg { name: "Pressestelle Wismar", description: None, tenant_slug: "wismar" },
            now,
        )
        .expect("organization");
        herold::orgs::decide(conn, &admin.id, &org.id, herold::orgs::Decision::Approve, None, now).expect("approve");
        let group = herold::groups::create(
            conn,
            &editor.id,
            &org.id,
            herold::groups::GroupInput {
                name: Some("Rathaus aktuell"),
                description: Some("Verkehr, Baustellen, Termine"),
                category: Some("other"),
            },
            now,
        )
        .expect("group");

        // One statement per row (diesel's multi-backend connection has no
        // batch insert), all in one transaction: a few seconds for 100,000.
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for (i, k) in keys.iter().enumerate() {
                let id = herold::auth::secrets::new_id();
                diesel::insert_into(devices::table)
                    .values((
                        devices::id.eq(&id),
                        devices::token_hash.eq(format!("bench-{i}")),
                        devices::endpoint.eq(format!("{origin}/push/{i}")),
                        devices::p256dh.eq(URL_SAFE_NO_PAD.encode(&k.p256dh)),
                        devices::auth.eq(URL_SAFE_NO_PAD.encode(k.auth)),
                        devices::created_at.eq(now),
                        devices::last_seen_at.eq(now),
                    ))
                    .execute(conn)?;
                diesel::insert_into(subscriptions::table)
                    .values((
                        subscriptions::device_id.eq(&id),
                        subscriptions::group_id.eq(&group.id),
                        subscriptions::created_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
        .expect("devices");
        drop(pooled);
        Fixture {
            url,
            data_dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            ca_pem: ca_pem.to_path_buf(),
            group_id: group.id,
            user_id: editor.id,
            state,
            last_message: Default::default(),
        }
    }

    impl Fixture {
        /// What the engine knew of the last message posted.
        pub fn last_message_info(&self) -> herold::delivery::store::MessageInfo {
            let id = self.last_message_id();
            let mut conn = self.state.pool.get().expect("connection");
            herold::delivery::store::message_info(&mut conn, &id).expect("query").expect("message")
        }

        /// The plaintext the engine sent for the last message posted.
        pub fn last_payload(&self) -> Vec<u8> {
            herold::delivery::message_payload(&self.state.config.public_url, &self.last_message_info())
        }

        pub fn last_message_id(&self) -> String {
            self.last_message.lock().unwrap().clone().expect("a message was posted")
        }

        /// (endpoint, p256dh, auth) of every subscribed device.
        pub fn subscriptions(&self) -> Vec<(String, String, String)> {
            let mut conn = self.state.pool.get().expect("connection");
            subscriptions::table
                .inner_join(devices::table)
                .filter(subscriptions::group_id.eq(&self.group_id))
                .select((devices::endpoint, devices::p256dh, devices::auth))
                .load(&mut *conn)
                .expect("subscriptions")
        }
    }
}

// ---------------------------------------------------------------------------
// The engine process: opens the database, posts, runs the delivery engine
// ---------------------------------------------------------------------------

mod engine {
    use super::*;
    use diesel::prelude::*;
    use herold::db::schema::{fanout_jobs, messages};
    use herold::delivery::{Delivery, DeliveryHandle};
    use herold::{AppState, Clock};

    fn out(line: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    pub fn main(args: &[String]) {
        let [url, data_dir, origin, ca_pem, rest @ ..] = args else {
            panic!("engine <db url> <data dir> <origin> <ca pem> [batch size]")
        };
        let mut config = fixture::config(url, Path::new(data_dir), origin, Path::new(ca_pem));
        if let Some(batch) = rest.first().and_then(|b| b.parse().ok()) {
            config.delivery.batch_size = batch;
        }
        let (delivery, workers) = (config.delivery.clone(), config.delivery_workers);
        let state = AppState::open(config, Clock::system()).expect("app state");
        let engine = Delivery::new(state.clone(), delivery).expect("engine");
        let handle = DeliveryHandle::start(engine, workers).expect("delivery");
        // Let the workers find nothing to do and go to sleep, as in `herold serve`.
        std::thread::sleep(Duration::from_millis(200));
        out(&format!("ready {}", vm_kib("VmRSS:")));

        let mut stdin = std::io::stdin().lock().lines();
        let go = stdin.next().and_then(Result::ok).unwrap_or_default();
        let mut words = go.split_whitespace().skip(1);
        let (Some(group_id), Some(user_id)) = (words.next(), words.next()) else { return };
        let cpu0 = cpu_seconds();
        let message_id = {
            let mut pooled = state.pool.get().expect("connection");
            let conn: &mut herold::db::DbConn = &mut pooled;
            let posted = conn
                .transaction(|c| {
                    herold::messages::post(
                        c,
                        herold::messages::Poster::User(user_id),
                        group_id,
                        herold::messages::NewMessage {
                            title: TITLE.into(),
                            body: BODY.into(),
                            url: Some("https://www.wismar.de/verkehr".into()),
                            urgency: None,
                            ttl: None,
                            publish_at: None,
                        },
                        state.now_ms(),
                    )
                })
                .expect("post");
            posted.message.id
        };
        state.wake.notify_one();
        out(&format!("posted {message_id}"));

        let _stop = stdin.next();
        // The job is done once its last batch is recorded (right after the last 201).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pooled = state.pool.get().expect("connection");
        let conn: &mut herold::db::DbConn = &mut pooled;
        loop {
            let job: String = fanout_jobs::table
                .filter(fanout_jobs::message_id.eq(&message_id))
                .select(fanout_jobs::state)
                .first(conn)
                .expect("job");
            if job == "done" || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let cpu = cpu_seconds() - cpu0;
        let (recipients, delivered, gone, failed): (i64, i64, i64, i64) = messages::table
            .find(&message_id)
            .select((messages::recipients, messages::delivered, messages::gone, messages::failed))
            .first(conn)
            .expect("stats");
        drop(pooled);
        let result = serde_json::json!({
            "cpu": cpu,
            "hwm_kib": vm_kib("VmHWM:"),
            "recipients": recipients,
            "delivered": delivered,
            "gone": gone,
            "failed": failed,
        });
        out(&format!("result {result}"));
        handle.shutdown();
    }
}

// ---------------------------------------------------------------------------
// The sink: HTTPS, answers 201 over HTTP/1.1 or HTTP/2 (ALPN switchable)
// ---------------------------------------------------------------------------

#[path = "support/sink.rs"]
mod sink;

// ---------------------------------------------------------------------------
// Node's web-push, the baseline
// ---------------------------------------------------------------------------

mod baseline {
    use super::*;

    pub struct NodeRun {
        pub n: usize,
        pub rate: f64,
        pub cpu: f64,
        pub rss_kib: u64,
        pub sink_cpu: f64,
        pub other_load: f64,
    }

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node")
    }

    pub fn available() -> Result<(), String> {
        match Command::new("node").arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => return Err("`node` is not on PATH".into()),
        }
        if !dir().join("node_modules/web-push/package.json").exists() {
            return Err("the web-push package is not installed: run `npm install --prefix benches/node`".into());
        }
        Ok(())
    }

    pub fn skipped(why: &str) {
        eprintln!();
        eprintln!("**************************************************************************");
        eprintln!("*** NODE BASELINE SKIPPED: {why}");
        eprintln!("*** The end-to-end figures below have no baseline to compare with.");
        eprintln!("**************************************************************************");
        eprintln!();
    }

    pub fn write_input(tmp: &Path, fx: &fixture::Fixture, payload: &[u8]) -> PathBuf {
        let vapid = &fx.state.keys.vapid;
        let subscriptions: Vec<serde_json::Value> = fx
            .subscriptions()
            .into_iter()
            .map(|(endpoint, p256dh, auth)| serde_json::json!({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}))
            .collect();
        let input = serde_json::json!({
            "vapid": {"subject": SUBJECT, "public_key": vapid.public_key(), "private_key": vapid.to_stored()},
            "payload_b64": STANDARD.encode(payload),
            "ttl": herold::messages::TTL_DEFAULT,
            "urgency": "normal",
            "topic": herold::delivery::topic(&fx.last_message_id()),
            "in_flight": 64,
            "subscriptions": subscriptions,
        });
        let file = tmp.join("subscriptions.json");
        std::fs::write(&file, input.to_string()).expect("write subscriptions");
        file
    }

    pub fn run(
        sink: &mut Proc,
        file: &Path,
        ca_pem: &Path,
        n: usize,
        opts: &Options,
        label: &str,
    ) -> Result<NodeRun, String> {
        sink.send("alpn h1");
        sink.expect("ok", Duration::from_secs(5));
        sink.send(&format!("expect {n}"));
        sink.expect("ok", Duration::from_secs(5));
        if !opts.no_wait {
            load::wait_quiet();
        }
        let sink_cpu0 = sink_cpu(sink);
        let machine0 = load::machine().0;
        let t0 = Instant::now();
        let mut command = Command::new("node");
        command.arg(dir().join("baseline.mjs")).arg(file).arg(n.to_string()).env("NODE_EXTRA_CA_CERTS", ca_pem);
        let mut node = Proc::spawn("node", command);
        let line = node.wait_for("{", Duration::from_secs(60 + n as u64 / 50));
        let (code, cpu, rss_kib) = node.finish();
        let seconds = t0.elapsed().as_secs_f64();
        let machine1 = load::machine().0;
        let _ = sink.wait_for("reached", Duration::from_secs(5));
        let sink_cpu = sink_cpu(sink) - sink_cpu0;
        let line = line.ok_or_else(|| format!("node printed no result (exit {code})"))?;
        let v: serde_json::Value =
            serde_json::from_str(&format!("{{{line}")).map_err(|e| format!("node's result is not JSON: {e}"))?;
        let ok = v["ok"].as_u64().unwrap_or(0);
        if ok as usize != n {
            return Err(format!("node delivered {ok} of {n}: {}", v["first_error"]));
        }
        let run = NodeRun {
            n,
            rate: v["rate"].as_f64().unwrap_or(0.0),
            cpu,
            rss_kib,
            sink_cpu,
            other_load: ((machine1 - machine0) - cpu - sink_cpu).max(0.0) / seconds,
        };
        eprintln!(
            "{label}: {n} at {:.0}/s; node CPU {:.2} s, peak RSS {} MiB; sink CPU {:.2} s; other load {:.2} cores",
            run.rate,
            run.cpu,
            run.rss_kib / 1024,
            run.sink_cpu,
            run.other_load
        );
        Ok(run)
    }
}

// ---------------------------------------------------------------------------
// Encryption alone, one thread
// ---------------------------------------------------------------------------

mod crypto_bench {
    use super::*;
    use herold::delivery::store::MessageInfo;
    use herold::push::crypto;
    use herold::push::vapid::{VapidKeys, VapidSigner};
    use ring::rand::{SecureRandom, SystemRandom};
    use ring::{aead, agreement, hkdf};
    use std::hint::black_box;

    pub struct Figures {
        pub herold: f64,
        pub floor: f64,
        pub payload_build: f64,
        pub payload_len: usize,
    }

    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }

    /// The primitives alone: RFC 8291 as bare ring calls, no checks, no framing helpers.
    fn floor_once(rng: &SystemRandom, ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt).unwrap();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng).unwrap();
        let public = private.compute_public_key().unwrap();
        let mut shared = [0u8; 32];
        agreement::agree_ephemeral(
            private,
            &agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public),
            |s| shared.copy_from_slice(s),
        )
        .unwrap();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(&shared);
        let mut ikm = [0u8; 32];
        prk.expand(&[b"WebPush: info\0", ua_public, public.as_ref()], Len(32)).unwrap().fill(&mut ikm).unwrap();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&ikm);
        let mut cek = [0u8; 16];
        prk.expand(&[b"Content-Encoding: aes128gcm\0"], Len(16)).unwrap().fill(&mut cek).unwrap();
        let mut nonce = [0u8; 12];
        prk.expand(&[b"Content-Encoding: nonce\0"], Len(12)).unwrap().fill(&mut nonce).unwrap();
        let mut body = Vec::with_capacity(plaintext.len() + 17);
        body.extend_from_slice(plaintext);
        body.push(2);
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).unwrap());
        let tag = key
            .seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut body)
            .unwrap();
        body.extend_from_slice(tag.as_ref());
        body
    }

    /// Runs `f` for about `secs` seconds; returns calls per second.
    fn rate(secs: f64, mut f: impl FnMut(usize)) -> f64 {
        let start = Instant::now();
        let mut i = 0;
        loop {
            for _ in 0..200 {
                f(i);
                i += 1;
            }
            let elapsed = start.elapsed().as_secs_f64();
            if elapsed >= secs {
                return i as f64 / elapsed;
            }
        }
    }

    /// `info` is a message as the engine reads it; the payload is built from it.
    pub fn run(keys: &[keys::DeviceKeys], info: &MessageInfo, public_url: &url::Url, origin: &str) -> Figures {
        let signer = VapidSigner::new(&VapidKeys::generate(), SUBJECT).expect("signer");
        let rng = SystemRandom::new();
        let now = herold::Clock::system().now_ms();
        let payload = &herold::delivery::message_payload(public_url, info)[..];
        let (mut herold, mut floor, mut build) = (0f64, 0f64, 0f64);
        // Interleaved rounds, best of each: the machine is noisy.
        for _ in 0..3 {
            herold = herold.max(rate(1.5, |i| {
                let k = &keys[i % keys.len()];
                let body = crypto::encrypt(&k.p256dh, &k.auth, black_box(payload)).expect("encrypt");
                let auth = signer.authorization(origin, now).expect("sign");
                black_box((body, auth));
            }));
            floor = floor.max(rate(1.5, |i| {
                let k = &keys[i % keys.len()];
                black_box(floor_once(&rng, &k.p256dh, &k.auth, black_box(payload)));
            }));
            build = build.max(rate(0.3, |_| {
                black_box(herold::delivery::message_payload(public_url, black_box(info)));
            }));
        }
        eprintln!(
            "encryption, one thread: Herold encrypt+sign {herold:.0}/s, ring primitives {floor:.0}/s ({:.0} %), \
             payload build {build:.0}/s",
            100.0 * herold / floor
        );
        Figures { herold, floor, payload_build: build, payload_len: payload.len() }
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

mod report {
    use super::*;

    fn median(mut v: Vec<f64>) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    fn mib(kib: u64) -> String {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    }

    /// One row per figure: the median run's rate, and that run's CPU and memory.
    struct Row {
        rate: f64,
        cpu: f64,
        n: usize,
        rss_kib: u64,
        sink_cpu: f64,
        other_load: f64,
        all: Vec<f64>,
    }

    fn row(label: &str, rows: Vec<Row>) -> Option<Row> {
        if rows.is_empty() {
            return None;
        }
        let rate = median(rows.iter().map(|r| r.rate).collect());
        let all: Vec<f64> = rows.iter().map(|r| r.rate).collect();
        let mut r =
            rows.into_iter().min_by(|a, b| (a.rate - rate).abs().partial_cmp(&(b.rate - rate).abs()).unwrap())?;
        r.all = all;
        let runs: Vec<String> = r.all.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "{label:<34} {:>8.0} {:>7.2} {:>8.0} {:>9} {:>8.2} {:>8.2}   {}",
            r.rate,
            r.cpu,
            r.cpu * 1e6 / r.n as f64,
            mib(r.rss_kib),
            r.sink_cpu,
            r.other_load,
            runs.join(", ")
        );
        Some(r)
    }

    fn engine_rows(runs: &[EngineRun]) -> Vec<Row> {
        runs.iter()
            .filter(|r| r.ok)
            .map(|r| Row {
                rate: r.rate(),
                cpu: r.cpu,
                n: r.n,
                rss_kib: r.hwm_kib,
                sink_cpu: r.sink_cpu,
                other_load: r.other_load,
                all: Vec::new(),
            })
            .collect()
    }

    fn verdict(ok: bool) -> &'static str {
        if ok {
            "met"
        } else {
            "NOT MET"
        }
    }

    pub fn print(
        cores: usize,
        h2: &[EngineRun],
        h1: &[EngineRun],
        node: &[baseline::NodeRun],
        crypto: &crypto_bench::Figures,
        large: &[EngineRun],
        took: Duration,
    ) {
        let date = herold::model::ts(herold::Clock::system().now_ms());
        println!();
        println!("Herold fan-out benchmark, {} on {cores} cores, took {:.0} s", &date[..10], took.as_secs_f64());
        println!(
            "payload {} bytes plaintext, {} bytes encrypted; 64 requests in flight per origin",
            crypto.payload_len,
            crypto.payload_len + 103
        );
        println!();
        println!(
            "{:<34} {:>8} {:>7} {:>8} {:>9} {:>8} {:>8}   all runs (notif/s)",
            "end to end (post → N-th 201)", "notif/s", "CPU s", "µs/notif", "peak RSS", "sink CPU", "other",
        );
        let h2_row = row(&format!("Herold, HTTP/2, {SMALL}"), engine_rows(h2));
        let h1_row = row(&format!("Herold, HTTP/1.1, {SMALL}"), engine_rows(h1));
        let node_row = row(
            &format!("Node web-push, HTTP/1.1, {SMALL}"),
            node.iter()
                .map(|r| Row {
                    rate: r.rate,
                    cpu: r.cpu,
                    n: r.n,
                    rss_kib: r.rss_kib,
                    sink_cpu: r.sink_cpu,
                    other_load: r.other_load,
                    all: Vec::new(),
                })
                .collect(),
        );
        if node_row.is_none() {
            println!("{:<34} SKIPPED (see the note above)", format!("Node web-push, HTTP/1.1, {SMALL}"));
        }
        let big_row = row(&format!("Herold, HTTP/2, {LARGE}"), engine_rows(large));
        for (label, runs) in [("HTTP/2", h2), ("HTTP/1.1", h1), ("HTTP/2 100k", large)] {
            if runs.iter().any(|r| !r.ok) {
                println!("  ({} of the {label} runs FAILED: see above)", runs.iter().filter(|r| !r.ok).count());
            }
        }
        println!(
            "CPU s, µs/notif, peak RSS: Herold's engine process alone from the post (Node: its whole process);\n\
             sink CPU: the local push service; other: cores used by other processes on the machine meanwhile."
        );
        println!();
        println!("encryption alone, one thread, per notification");
        println!("  Herold: crypto::encrypt + VAPID authorization   {:>8.0} /s", crypto.herold);
        println!("  floor: ring keygen + ECDH + HKDF + AES-128-GCM  {:>8.0} /s", crypto.floor);
        println!("  (payload JSON, built once per batch             {:>8.0} /s)", crypto.payload_build);
        println!();
        println!("ratios");
        match (&h2_row, &node_row) {
            (Some(h2), Some(node)) => {
                let x = h2.rate / node.rate;
                println!("  end to end, HTTP/2 ÷ Node web-push     {x:>6.1}×   target ≥ 10×    {}", verdict(x >= 10.0));
            }
            _ => println!("  end to end, HTTP/2 ÷ Node web-push     n/a (no baseline)"),
        }
        if let (Some(h1), Some(node)) = (&h1_row, &node_row) {
            let x = h1.rate / node.rate;
            println!("  end to end, HTTP/1.1 ÷ Node web-push   {x:>6.1}×   target ≥ 10×    {}", verdict(x >= 10.0));
        }
        let f = crypto.herold / crypto.floor;
        if f.is_finite() {
            println!("  encrypt+sign ÷ primitive floor         {f:>6.2}    target ≥ 0.75   {}", verdict(f >= 0.75));
        }
        match (&h2_row, &big_row) {
            (Some(small), Some(big)) => {
                let x = big.rss_kib as f64 / small.rss_kib as f64;
                let idle = h2.iter().chain(large).map(|r| r.rss_idle_kib).max().unwrap_or(0);
                println!(
                    "  peak RSS, {LARGE} ÷ {SMALL} devices     {x:>6.2}    flat (≈ 1)      {} ({} vs {}; {} idle)",
                    verdict(x < 1.5),
                    mib(big.rss_kib),
                    mib(small.rss_kib),
                    mib(idle)
                );
            }
            _ => println!("  peak RSS, {LARGE} ÷ {SMALL} devices     n/a (--quick)"),
        }
    }
}
