//! Delivery as an operator runs it: real `herold serve` processes, the
//! strict test push service in this process, plain HTTP/1.1 over a socket.
//!
//! - A crash (SIGKILL) in the middle of a fan-out re-sends at most the one
//!   batch in flight, and the restarted process finishes the walk.
//! - Two processes on one PostgreSQL database share the work and deliver
//!   every message to every device exactly once.
//! - SIGTERM stops the HTTP server, lets the batch in flight finish and
//!   record, exits 0; the next start delivers the rest, nothing lost.
//! - SIGTERM first drains: `/readyz` answers 503 "draining" for the grace
//!   period while the server still serves, then it stops and exits 0.
//! - A batch still in flight when `HEROLD_SHUTDOWN_TIMEOUT_SECS` runs out is
//!   cut off and its lease given back: the next instance resumes at once,
//!   not after the lease.
//! - On PostgreSQL a message posted on one instance wakes the workers of
//!   another at once (`LISTEN/NOTIFY`), not at its next poll.
//! - At scale, on PostgreSQL: 20,000 devices (seeded with SQL) get one
//!   message exactly once from two instances; with three, one of them
//!   SIGKILLed midway, at least once and at most one batch twice.
//!
//! Every test takes a process-wide lock: each one keeps every core busy
//! (encryption in Herold, decryption in the push service), and a small
//! lease must not expire because a neighbouring test hogs the machine.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{clean_command, free_port};
use crate::harness::{Db, TestDb, PASSWORD};
use crate::push_service::{Program, Subscription, TestPushService};

const VAPID_SUBJECT: &str = "mailto:ops@herold-test.de";
const ADMIN: &str = "rathaus@wismar.de";
const OWNER: &str = "buero@st-nikolai.de";

/// One process-level delivery test at a time (see the module comment).
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The installation: a database, a data directory, the push service's origin
// ---------------------------------------------------------------------------

struct Site {
    db: TestDb,
    /// Allowed as a push-service origin once the push service runs.
    push_origin: Option<String>,
}

impl Site {
    /// A fresh database with its VAPID key (`herold vapid show`), the test
    /// push service trusting that key, the town `wismar` and its admin, made
    /// with the CLI. `None` when PostgreSQL is not configured (skipped loudly).
    fn prepare(kind: Db) -> Option<(Site, TestPushService)> {
        let mut site = Site { db: TestDb::new(kind)?, push_origin: None };
        let vapid = site.run(&["vapid", "show"], None).trim().to_owned();
        let push = TestPushService::start(&vapid);
        site.push_origin = Some(push.origin().to_owned());
        site.run(&["tenant", "create", "--slug", "wismar", "--name", "Hansestadt Wismar"], None);
        site.run(&["admin", "create", "--tenant", "wismar", "--email", ADMIN], Some(&format!("{PASSWORD}\n")));
        Some((site, push))
    }

    /// `herold <args>` with this installation's environment and nothing else of ours.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command(args);
        cmd.env("DATABASE_URL", &self.db.url)
            .env("HEROLD_DATA_DIR", self.db.data_dir())
            .env("HEROLD_VAPID_SUBJECT", VAPID_SUBJECT);
        if let Some(origin) = &self.push_origin {
            cmd.env("HEROLD_PUSH_ALLOWED_ORIGINS", origin);
        }
        cmd
    }

    /// Runs a one-shot command to success; returns its stdout.
    #[track_caller]
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = self.command(args);
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

    /// Starts `herold serve` on a free port with `settings` on top; waits
    /// until it answers `/healthz`.
    fn serve(&self, name: &str, settings: &[(&str, &str)]) -> Herold {
        let port = free_port();
        let mut cmd = self.command(&["serve"]);
        cmd.env("HEROLD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HEROLD_LOG", "info")
            .env("HEROLD_ACCESS_LOG", "false")
            // Thousands of residents register here from one address.
            .env("HEROLD_RATE_LIMIT_DEVICES", "off")
            // No load balancer to wait for, unless a test sets one.
            .env("HEROLD_SHUTDOWN_GRACE_SECS", "0");
        for (key, value) in settings {
            cmd.env(key, value);
        }
        Herold::start(cmd, port, self.db.data_dir().join(format!("{name}-{port}.log")))
    }
}

/// A running `herold serve`; killed on drop, also when the test fails.
struct Herold {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Herold {
    fn start(mut cmd: Command, port: u16, log: PathBuf) -> Herold {
        // Logs go to a file: an unread pipe would fill up and stall the server.
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log file handle")).stderr(file);
        let child = cmd.spawn().expect("start herold serve");
        let mut server = Herold { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait().expect("poll herold serve") {
                panic!("herold serve exited early with {status}; log:\n{}", server.log());
            }
            if matches!(Api::new(port).raw("GET", "/healthz", None, None), Ok((200, _))) {
                return server;
            }
            assert!(Instant::now() < deadline, "herold serve not healthy after 30 s; log:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn api(&self) -> Api {
        Api::new(self.port)
    }

    /// SIGKILL (what `Child::kill` sends): no chance to finish anything.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL herold");
        self.child.wait().expect("reap herold");
    }

    /// SIGTERM, then waits at most `bound` for the exit; returns the exit
    /// status and how long it took.
    #[track_caller]
    fn terminate(&mut self, bound: Duration) -> (ExitStatus, Duration) {
        let started = self.send_term();
        self.wait_exit(started, bound)
    }

    /// Sends SIGTERM; returns when.
    #[track_caller]
    fn send_term(&self) -> Instant {
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM failed: {sent}");
        started
    }

    /// Waits at most `bound` after `started` for the exit; returns the exit
    /// status and how long after `started` it came.
    #[track_caller]
    fn wait_exit(&mut self, started: Instant, bound: Duration) -> (ExitStatus, Duration) {
        loop {
            if let Some(status) = self.child.try_wait().expect("poll herold serve") {
                return (status, started.elapsed());
            }
            if started.elapsed() > bound {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("herold serve did not exit within {bound:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `herold_push_deliveries_total{outcome="delivered"}` of this process, summed over origins.
    fn delivered_metric(&self) -> u64 {
        let (status, text) = self.api().raw("GET", "/metrics", None, None).expect("GET /metrics");
        assert_eq!(status, 200, "/metrics: {text}");
        text.lines()
            .filter(|l| l.starts_with("herold_push_deliveries_total{") && l.contains("outcome=\"delivered\""))
            .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).expect("a counter value") as u64)
            .sum()
    }
}

impl Drop for Herold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 with keep-alive over a plain socket
// ---------------------------------------------------------------------------

/// A client keeping one connection alive (thousands of registrations).
struct Api {
    port: u16,
    conn: Option<(BufReader<TcpStream>, Instant)>,
}

/// Why an exchange failed, and whether the server answered anything at all
/// (only then may a request be sent again on a fresh connection).
struct Failed {
    error: std::io::Error,
    nothing_back: bool,
}

impl Api {
    fn new(port: u16) -> Api {
        Api { port, conn: None }
    }

    fn connect(&self) -> std::io::Result<BufReader<TcpStream>> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(BufReader::new(stream))
    }

    /// One request: (status, body text).
    fn raw(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        // A connection idle for a while may be closed by the server any moment.
        let reused = matches!(&self.conn, Some((_, last)) if last.elapsed() < Duration::from_secs(1));
        if !reused {
            self.conn = Some((self.connect()?, Instant::now()));
        }
        let mut result = self.exchange(method, path, token, body);
        if let Err(Failed { nothing_back: true, .. }) = &result {
            if reused {
                // The server closed the kept-alive connection before reading
                // the request: nothing happened, so sending again is safe.
                self.conn = Some((self.connect()?, Instant::now()));
                result = self.exchange(method, path, token, body);
            }
        }
        match result {
            Ok((status, text, keep)) => {
                if keep {
                    if let Some((_, last)) = &mut self.conn {
                        *last = Instant::now();
                    }
                } else {
                    self.conn = None;
                }
                Ok((status, text))
            }
            Err(failed) => {
                self.conn = None;
                Err(failed.error)
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Result<(u16, String, bool), Failed> {
        let port = self.port;
        let (reader, _) = self.conn.as_mut().expect("connected");
        let early = |error| Failed { error, nothing_back: true };
        let late = |error| Failed { error, nothing_back: false };
        let body = body.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        reader.get_mut().write_all(request.as_bytes()).map_err(early)?;
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(early)? == 0 {
            return Err(early(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without an answer")));
        }
        let invalid = |what: String| late(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("no status line: {line:?}")))?;
        let (mut length, mut chunked, mut keep) = (0usize, false, true);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).map_err(late)? == 0 {
                return Err(invalid("end of stream in the headers".into()));
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = value.parse().map_err(|_| invalid(format!("bad length {value}")))?,
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => keep = !value.contains("close"),
                _ => {}
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).map_err(late)?;
                let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).map_err(late)?;
                if size == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..size]);
            }
        } else {
            bytes.resize(length, 0);
            reader.read_exact(&mut bytes).map_err(late)?;
        }
        Ok((status, String::from_utf8_lossy(&bytes).into_owned(), keep))
    }

    /// A JSON request; panics when the exchange fails.
    #[track_caller]
    fn call(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string);
        let (status, text) = self
            .raw(method, path, token, body.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path} on port {}: {e}", self.port));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A JSON request that must answer `status`; returns the body.
    #[track_caller]
    fn expect(&mut self, status: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let (got, body) = self.call(method, path, token, body);
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }
}

// ---------------------------------------------------------------------------
// The town's story, through the API
// ---------------------------------------------------------------------------

fn login(api: &mut Api, email: &str) -> String {
    let body =
        api.expect(200, "POST", "/api/v1/auth/login", None, Some(&json!({"email": email, "password": PASSWORD})));
    body["access_token"].as_str().expect("access token").to_owned()
}

/// The parish registers, the town's admin approves it, it opens a group.
/// Returns (the owner's access token, the group's id).
fn parish_with_group(api: &mut Api) -> (String, String) {
    let admin = login(api, ADMIN);
    let body = api.expect(
        201,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(
            &json!({"email": OWNER, "password": PASSWORD, "organization": {"name": "St. Nikolai", "tenant": "wismar"}}),
        ),
    );
    let org = body["organization"]["id"].as_str().expect("organization id").to_owned();
    let owner = body["access_token"].as_str().expect("access token").to_owned();
    api.expect(200, "POST", &format!("/api/v1/admin/organizations/{org}/approve"), Some(&admin), None);
    let body = api.expect(
        201,
        "POST",
        &format!("/api/v1/organizations/{org}/groups"),
        Some(&owner),
        Some(&json!({"name": "Gemeindebrief", "description": "Neuigkeiten aus St. Nikolai", "category": "church"})),
    );
    (owner, body["id"].as_str().expect("group id").to_owned())
}

/// Registers every subscription as a device and has it follow `group`:
/// four keep-alive connections in parallel, spread over `servers`.
fn register_followers(servers: &[&Herold], subs: &[Subscription], group: &str) {
    const THREADS: usize = 4;
    let chunk = subs.len().div_ceil(THREADS).max(1);
    std::thread::scope(|s| {
        for (i, part) in subs.chunks(chunk).enumerate() {
            let server = servers[i % servers.len()];
            s.spawn(move || {
                let mut api = server.api();
                let follow = format!("/api/v1/devices/me/subscriptions/{group}");
                for sub in part {
                    let (status, body) = api.call("POST", "/api/v1/devices", None, Some(&sub.to_json()));
                    assert_eq!(status, 201, "POST /api/v1/devices: {body}\nlog:\n{}", server.log());
                    let token = body["device_token"].as_str().expect("device token");
                    let (status, body) = api.call("PUT", &follow, Some(token), None);
                    assert_eq!(status, 200, "PUT {follow}: {body}\nlog:\n{}", server.log());
                }
            });
        }
    });
}

fn post_message(api: &mut Api, owner: &str, group: &str, title: &str) -> String {
    let body = api.expect(
        201,
        "POST",
        &format!("/api/v1/groups/{group}/messages"),
        Some(owner),
        Some(&json!({"title": title, "body": format!("{title}: Näheres auf der Website der Gemeinde.")})),
    );
    body["id"].as_str().expect("message id").to_owned()
}

/// Waits until the message's fan-out is `done`; returns its statistics.
#[track_caller]
fn wait_walked(server: &Herold, owner: &str, message: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let mut api = server.api();
    loop {
        let stats =
            api.expect(200, "GET", &format!("/api/v1/messages/{message}/stats"), Some(owner), None)["stats"].clone();
        if stats["fanout"] == "done" {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "fan-out of {message} not done after {timeout:?}: {stats}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deliveries of `message` per subscription.
fn tally(push: &TestPushService, message: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for d in push.deliveries() {
        if d.payload["herold"]["message_id"] == message {
            *counts.entry(d.subscription_id).or_insert(0) += 1;
        }
    }
    counts
}

/// Waits until every subscription has received `message` at least once.
#[track_caller]
fn wait_every_device(
    push: &TestPushService,
    subs: &[Subscription],
    message: &str,
    timeout: Duration,
    log: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = tally(push, message);
        let missing = subs.iter().filter(|s| !counts.contains_key(&s.id)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} devices still without {message} after {timeout:?} ({} requests, {} violations)\nlog:\n{}",
            subs.len(),
            push.request_count(),
            push.violations().len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The log's warnings and errors (reported, not asserted: a worker racing
/// another for a job may log one and carry on).
fn warnings(log: &str) -> impl Iterator<Item = String> + '_ {
    log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).map(str::to_owned)
}

/// How many subscriptions got the message how many times: {times: devices}.
fn histogram(counts: &HashMap<String, usize>) -> std::collections::BTreeMap<usize, usize> {
    let mut h = std::collections::BTreeMap::new();
    for n in counts.values() {
        *h.entry(*n).or_insert(0) += 1;
    }
    h
}

// ---------------------------------------------------------------------------
// 1. SIGKILL in the middle of a fan-out
// ---------------------------------------------------------------------------

/// 5,000 devices follow a group; the server is SIGKILLed once the push
/// service has some but not all of them, and started again on the same
/// database. Every device gets the message; at most one batch twice.
///
/// The bound: a job is walked one batch at a time. Claiming it leases it,
/// and the lease is released only in the transaction that records the batch
/// and advances the cursor, so while a batch is in flight no other worker
/// (of this process or another) can claim the job; the other worker finds
/// nothing and waits. A batch takes well under the 2 s lease here. So the
/// kill loses exactly one unrecorded batch, which the restarted process
/// re-sends from the recorded cursor: at most BATCH devices receive it
/// twice (not BATCH × workers), none three times.
fn crash_mid_fanout(kind: Db) {
    const DEVICES: usize = 5_000;
    const BATCH: usize = 200;
    const KILL_AFTER: usize = 600;
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(kind) else { return };
    let settings = [("HEROLD_DELIVERY_BATCH_SIZE", "200"), ("HEROLD_DELIVERY_LEASE_SECS", "2")];
    let started = Instant::now();
    let mut first = site.serve("first", &settings);
    let (owner, group) = parish_with_group(&mut first.api());
    let subs = push.new_subscriptions(DEVICES);
    register_followers(&[&first], &subs, &group);
    let registered = started.elapsed();

    let fanout = Instant::now();
    let message = post_message(&mut first.api(), &owner, &group, "Hochwasserwarnung");
    assert!(
        push.wait_for(KILL_AFTER, Duration::from_secs(30)),
        "only {} deliveries after 30 s; log:\n{}",
        push.count(),
        first.log()
    );
    let until_kill = fanout.elapsed();
    first.kill();
    let at_kill = push.count();
    let first_log = first.log();
    // Requests the push service had already read are answered (and recorded) still.
    std::thread::sleep(Duration::from_millis(300));
    let before_restart = push.count();
    assert!(before_restart < DEVICES, "the fan-out was over before the kill ({before_restart}): nothing was tested");

    let restart = Instant::now();
    let second = site.serve("second", &settings);
    wait_every_device(&push, &subs, &message, Duration::from_secs(60), &|| second.log());
    let owner = login(&mut second.api(), OWNER);
    let stats = wait_walked(&second, &owner, &message, Duration::from_secs(30));
    let (took, after_restart) = (fanout.elapsed(), restart.elapsed());

    let counts = tally(&push, &message);
    let histogram = histogram(&counts);
    eprintln!(
        "crash test ({kind:?}): {DEVICES} devices registered in {registered:?}; killed at {at_kill} deliveries \
         {until_kill:?} after posting ({before_restart} before the restart); walk done {after_restart:?} after \
         the restart, {took:?} after posting; deliveries per device {histogram:?}; total {:?}\n\
         warnings: {:?}",
        started.elapsed(),
        warnings(&first_log).chain(warnings(&second.log())).collect::<Vec<_>>()
    );
    assert_eq!(counts.len(), DEVICES, "every device got the message");
    assert!(subs.iter().all(|s| counts.contains_key(&s.id)));
    let twice = counts.values().filter(|&&n| n == 2).count();
    let more = counts.values().filter(|&&n| n > 2).count();
    assert_eq!(more, 0, "devices that got the message three times or more: {histogram:?}");
    assert!(
        twice <= BATCH,
        "{twice} devices got the message twice; a crash may repeat one batch ({BATCH}) at most: {histogram:?}"
    );
    // The counters count each device once: the lost batch was never recorded.
    assert_eq!(stats["recipients"], DEVICES, "{stats}");
    assert_eq!(stats["delivered"], DEVICES, "{stats}");
    assert_eq!(
        (stats["failed"].as_i64(), stats["gone"].as_i64(), stats["pending"].as_i64()),
        (Some(0), Some(0), Some(0)),
        "{stats}"
    );
    push.assert_no_violations();
}

#[test]
fn crash_mid_fanout_repeats_at_most_one_batch_sqlite() {
    crash_mid_fanout(Db::Sqlite);
}

#[test]
fn crash_mid_fanout_repeats_at_most_one_batch_postgres() {
    crash_mid_fanout(Db::Postgres);
}

// ---------------------------------------------------------------------------
// 2. Two instances on one PostgreSQL database
// ---------------------------------------------------------------------------

/// Two `herold serve` processes on one database, 3,000 devices registered
/// through both; one message posted through each. Every device receives
/// each message exactly once, and both processes sent pushes.
#[test]
fn two_instances_on_one_postgres_deliver_each_message_once() {
    const DEVICES: usize = 3_000;
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(Db::Postgres) else { return };
    // One delivery worker each: an instance busy with one message leaves the
    // other to the second instance (with two workers each, the first
    // instance could take both jobs before the second woke — a 1-in-many
    // failure of "both sent pushes" on a loaded CI machine).
    let settings = [("HEROLD_DELIVERY_BATCH_SIZE", "100"), ("HEROLD_DELIVERY_WORKERS", "1")];
    let started = Instant::now();
    let a = site.serve("a", &settings);
    let b = site.serve("b", &settings);
    let (owner, group) = parish_with_group(&mut a.api());
    let subs = push.new_subscriptions(DEVICES);
    register_followers(&[&a, &b], &subs, &group);
    let registered = started.elapsed();

    let fanout = Instant::now();
    let first = post_message(&mut a.api(), &owner, &group, "Straßensperrung Lübsche Straße");
    let second = post_message(&mut b.api(), &owner, &group, "Glühweinabend am Markt");
    let logs = || format!("--- a ---\n{}\n--- b ---\n{}", a.log(), b.log());
    for message in [&first, &second] {
        wait_every_device(&push, &subs, message, Duration::from_secs(60), &logs);
    }
    let stats = [&first, &second].map(|m| wait_walked(&a, &owner, m, Duration::from_secs(30)));
    let took = fanout.elapsed();

    let (by_a, by_b) = (a.delivered_metric(), b.delivered_metric());
    eprintln!(
        "two instances: {DEVICES} devices registered in {registered:?}; 2 messages delivered in {took:?}; \
         pushes sent by a: {by_a}, by b: {by_b}; total {:?}",
        started.elapsed()
    );
    for (message, stats) in [&first, &second].into_iter().zip(&stats) {
        let counts = tally(&push, message);
        let histogram = histogram(&counts);
        assert_eq!(counts.len(), DEVICES, "every device got {message}");
        assert!(counts.values().all(|&n| n == 1), "{message} not exactly once per device: {histogram:?}");
        assert_eq!(stats["recipients"], DEVICES, "{stats}");
        assert_eq!(stats["delivered"], DEVICES, "{stats}");
    }
    assert_eq!(push.count(), 2 * DEVICES, "no other pushes than the two messages");
    assert_eq!(by_a + by_b, 2 * DEVICES as u64, "the processes' counters add up to the pushes received");
    assert!(by_a > 0 && by_b > 0, "both instances must have sent pushes: a {by_a}, b {by_b}");
    push.assert_no_violations();
}

// ---------------------------------------------------------------------------
// 3. SIGTERM in the middle of a fan-out
// ---------------------------------------------------------------------------

/// A slow push service (200 ms per request), small batches; SIGTERM during
/// the fan-out: the process finishes and records the batch in flight, exits
/// 0 promptly; started again, it delivers the rest. Nothing lost, and —
/// since nothing was abandoned — nothing repeated either.
fn sigterm_mid_fanout(kind: Db) {
    const DEVICES: usize = 300;
    const BATCH: usize = 20;
    const BOUND: Duration = Duration::from_secs(30);
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(kind) else { return };
    let settings = [("HEROLD_DELIVERY_BATCH_SIZE", "20")];
    let started = Instant::now();
    let mut first = site.serve("first", &settings);
    // A client's kept-alive connection stays open across the SIGTERM.
    let mut api = first.api();
    let (owner, group) = parish_with_group(&mut api);
    let subs = push.new_subscriptions(DEVICES);
    register_followers(&[&first], &subs, &group);

    push.program_all(Program::delay(Duration::from_millis(200)));
    let message = post_message(&mut api, &owner, &group, "Orgelkonzert");
    assert!(
        push.wait_for(3 * BATCH, Duration::from_secs(30)),
        "only {} deliveries; log:\n{}",
        push.count(),
        first.log()
    );
    let (status, took) = first.terminate(BOUND);
    let at_exit = push.count();
    let log = first.log();
    assert_eq!(status.code(), Some(0), "SIGTERM must end in exit code 0, got {status}; log:\n{log}");
    assert!(log.contains("herold stopped"), "no orderly stop in the log:\n{log}");
    assert_eq!(push.in_flight(), 0, "requests still in flight after the exit");
    assert!(at_exit < DEVICES, "the fan-out was over before SIGTERM ({at_exit}): nothing was tested");
    // The batch in flight was finished, not abandoned: whole batches only.
    assert_eq!(at_exit % BATCH, 0, "{at_exit} deliveries at exit: a batch was cut short; log:\n{log}");
    drop(api);

    push.clear_programs();
    let second = site.serve("second", &settings);
    wait_every_device(&push, &subs, &message, Duration::from_secs(60), &|| second.log());
    let owner = login(&mut second.api(), OWNER);
    let stats = wait_walked(&second, &owner, &message, Duration::from_secs(30));
    let counts = tally(&push, &message);
    let histogram = histogram(&counts);
    eprintln!(
        "graceful shutdown ({kind:?}): SIGTERM at {at_exit} deliveries, exit 0 after {took:?}; \
         deliveries per device {histogram:?}; total {:?}",
        started.elapsed()
    );
    assert!(took < BOUND);
    assert_eq!(counts.len(), DEVICES, "every device got the message");
    assert!(counts.values().all(|&n| n == 1), "a graceful stop repeats nothing: {histogram:?}");
    assert_eq!(stats["recipients"], DEVICES, "{stats}");
    assert_eq!(stats["delivered"], DEVICES, "{stats}");
    push.assert_no_violations();
}

#[test]
fn sigterm_mid_fanout_finishes_the_batch_and_loses_nothing_sqlite() {
    sigterm_mid_fanout(Db::Sqlite);
}

#[test]
fn sigterm_mid_fanout_finishes_the_batch_and_loses_nothing_postgres() {
    sigterm_mid_fanout(Db::Postgres);
}

// ---------------------------------------------------------------------------
// 4. Draining: /readyz says 503 while the server still serves
// ---------------------------------------------------------------------------

/// SIGTERM with a 2 s grace period: `/readyz` answers 503 "draining" at
/// once while `/healthz` and the API still answer, so a load balancer takes
/// the instance out of rotation before it goes; after the grace period the
/// listener closes and the process exits 0, well within the bound.
fn sigterm_drains_before_stopping(kind: Db) {
    const GRACE: Duration = Duration::from_secs(2);
    const BOUND: Duration = Duration::from_secs(10);
    let _serial = exclusive();
    let Some((site, _push)) = Site::prepare(kind) else { return };
    let mut server =
        site.serve("draining", &[("HEROLD_SHUTDOWN_GRACE_SECS", "2"), ("HEROLD_SHUTDOWN_TIMEOUT_SECS", "10")]);
    let port = server.port;
    assert_eq!(server.api().call("GET", "/readyz", None, None), (200, json!({"status": "ready"})));

    let sent = server.send_term();
    // A fresh connection for each look: a refused one means the listener closed.
    let (mut draining_after, mut served_until) = (None, Duration::ZERO);
    loop {
        match Api::new(port).raw("GET", "/readyz", None, None) {
            Ok((503, body)) => {
                let body: Value = serde_json::from_str(&body).expect("JSON from /readyz");
                assert_eq!(body, json!({"status": "draining"}));
                if draining_after.is_none() {
                    draining_after = Some(sent.elapsed());
                    // Still serving: liveness and the API answer as before.
                    let mut api = Api::new(port);
                    assert_eq!(api.call("GET", "/healthz", None, None).0, 200, "healthz while draining");
                    let (status, tenants) = api.call("GET", "/api/v1/tenants", None, None);
                    assert_eq!(status, 200, "the API while draining: {tenants}");
                }
                served_until = sent.elapsed();
            }
            Ok((status, body)) => {
                assert!(draining_after.is_none(), "/readyz went back to {status} while draining: {body}");
                assert_eq!(status, 200, "/readyz before the signal was handled: {body}");
            }
            Err(_) => break,
        }
        assert!(sent.elapsed() < BOUND, "still listening {BOUND:?} after SIGTERM; log:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, took) = server.wait_exit(sent, BOUND);
    let log = server.log();
    eprintln!(
        "draining ({kind:?}): /readyz 503 {draining_after:?} after SIGTERM, served until {served_until:?}, \
         exit {status} after {took:?} (grace {GRACE:?})"
    );
    assert_eq!(status.code(), Some(0), "SIGTERM must end in exit code 0, got {status}; log:\n{log}");
    let draining_after = draining_after.unwrap_or_else(|| panic!("/readyz never answered 503; log:\n{log}"));
    assert!(draining_after < Duration::from_secs(1), "draining only {draining_after:?} after SIGTERM");
    assert!(
        served_until + Duration::from_millis(300) >= GRACE,
        "stopped serving {served_until:?} into a {GRACE:?} grace"
    );
    assert!(took < GRACE + Duration::from_secs(3), "exit {took:?} after SIGTERM with a {GRACE:?} grace; log:\n{log}");
    assert!(log.contains("draining") && log.contains("herold stopped"), "no orderly stop in the log:\n{log}");
}

#[test]
fn sigterm_drains_readyz_then_exits_zero_sqlite() {
    sigterm_drains_before_stopping(Db::Sqlite);
}

#[test]
fn sigterm_drains_readyz_then_exits_zero_postgres() {
    sigterm_drains_before_stopping(Db::Postgres);
}

// ---------------------------------------------------------------------------
// 5. The shutdown bound: a stuck batch is cut off and its lease given back
// ---------------------------------------------------------------------------

/// A push service that hangs (it answers 503, and only after 30 s): SIGTERM
/// with `HEROLD_SHUTDOWN_TIMEOUT_SECS=2` exits 0 after about 2 s, cutting the
/// batch in flight off and giving its job's 60 s lease back. The next
/// instance resumes the walk at once — on PostgreSQL one already running,
/// idle on a 60 s poll, woken by the release's NOTIFY — and every device gets
/// the message exactly once (the cut-off requests were never accepted).
fn sigterm_bound_releases_the_lease(kind: Db) {
    const DEVICES: usize = 60;
    const BATCH: usize = 20;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(kind) else { return };
    let first_settings = [
        ("HEROLD_DELIVERY_BATCH_SIZE", "20"),
        ("HEROLD_DELIVERY_LEASE_SECS", "60"),
        ("HEROLD_SHUTDOWN_TIMEOUT_SECS", "2"),
    ];
    let second_settings = [("HEROLD_DELIVERY_BATCH_SIZE", "20"), ("HEROLD_DELIVERY_POLL_SECS", "60")];
    let mut first = site.serve("first", &first_settings);
    let (owner, group) = parish_with_group(&mut first.api());
    let subs = push.new_subscriptions(DEVICES);
    register_followers(&[&first], &subs, &group);

    push.program_all(Program::status(503).with_delay(Duration::from_secs(30)));
    let message = post_message(&mut first.api(), &owner, &group, "Stadtvertretung tagt");
    let deadline = Instant::now() + Duration::from_secs(30);
    while push.in_flight() < BATCH {
        assert!(Instant::now() < deadline, "the first batch never got in flight; log:\n{}", first.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The requests in flight keep their hanging answer; later ones are accepted.
    push.clear_programs();
    // PostgreSQL: another instance is up already; its workers found the job
    // leased and now wait out a 60 s poll.
    let waiting = (kind == Db::Postgres).then(|| {
        let second = site.serve("second", &second_settings);
        std::thread::sleep(Duration::from_millis(500));
        second
    });
    assert_eq!(push.count(), 0, "nothing may be delivered while the job is leased");

    let (status, took) = first.terminate(Duration::from_secs(15));
    let log = first.log();
    assert_eq!(status.code(), Some(0), "SIGTERM must end in exit code 0, got {status}; log:\n{log}");
    assert!(took >= TIMEOUT - Duration::from_millis(100), "exit after {took:?}: the batch was not waited for");
    assert!(took < TIMEOUT + Duration::from_secs(3), "exit {took:?} after SIGTERM; the bound is {TIMEOUT:?}");
    assert!(log.contains("delivery cut off") && log.contains("released=1"), "no lease given back:\n{log}");

    let resumed = Instant::now();
    let second = waiting.unwrap_or_else(|| site.serve("second", &second_settings));
    // Far below the 60 s lease: the walk did not wait for it to run out.
    wait_every_device(&push, &subs, &message, Duration::from_secs(15), &|| second.log());
    let after = resumed.elapsed();
    let owner = login(&mut second.api(), OWNER);
    let stats = wait_walked(&second, &owner, &message, Duration::from_secs(15));
    let counts = tally(&push, &message);
    let histogram = histogram(&counts);
    eprintln!(
        "shutdown bound ({kind:?}): exit 0 {took:?} after SIGTERM (bound {TIMEOUT:?}), batch of {BATCH} cut off; \
         every device delivered {after:?} after the exit (lease 60 s); deliveries per device {histogram:?}"
    );
    assert_eq!(counts.len(), DEVICES, "every device got the message");
    assert!(counts.values().all(|&n| n == 1), "cut-off requests were never accepted: {histogram:?}");
    assert_eq!(stats["delivered"], DEVICES, "{stats}");
    push.assert_no_violations();
}

#[test]
fn sigterm_bound_cuts_off_the_batch_and_releases_its_lease_sqlite() {
    sigterm_bound_releases_the_lease(Db::Sqlite);
}

#[test]
fn sigterm_bound_cuts_off_the_batch_and_releases_its_lease_postgres() {
    sigterm_bound_releases_the_lease(Db::Postgres);
}

// ---------------------------------------------------------------------------
// 6. LISTEN/NOTIFY: a message posted on one instance wakes another
// ---------------------------------------------------------------------------

/// Two instances on one PostgreSQL, both polling only every 60 s: `a` has no
/// delivery workers (`HEROLD_DELIVERY_WORKERS=0`: HTTP only), `b` has. Each
/// message posted on `a` reaches every device within seconds: `b` was woken
/// by the NOTIFY committed with the message, not by its poll.
#[test]
fn notify_wakes_the_workers_of_another_instance_postgres() {
    const DEVICES: usize = 50;
    const PROMPT: Duration = Duration::from_secs(5);
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(Db::Postgres) else { return };
    let a = site.serve("a", &[("HEROLD_DELIVERY_WORKERS", "0"), ("HEROLD_DELIVERY_POLL_SECS", "60")]);
    let b = site.serve("b", &[("HEROLD_DELIVERY_POLL_SECS", "60")]);
    let (owner, group) = parish_with_group(&mut a.api());
    let subs = push.new_subscriptions(DEVICES);
    register_followers(&[&a], &subs, &group);
    let logs = || format!("--- a ---\n{}\n--- b ---\n{}", a.log(), b.log());

    let mut took = Vec::new();
    for title in ["Wasserrohrbruch in der Altstadt", "Wochenmarkt fällt aus", "Hafenfest verschoben"] {
        // b's workers have found nothing and sleep on their 60 s poll.
        std::thread::sleep(Duration::from_millis(500));
        let posted = Instant::now();
        let message = post_message(&mut a.api(), &owner, &group, title);
        wait_every_device(&push, &subs, &message, PROMPT, &logs);
        took.push(posted.elapsed());
    }
    let (by_a, by_b) = (a.delivered_metric(), b.delivered_metric());
    eprintln!("LISTEN/NOTIFY: 3 messages of {DEVICES} devices posted on a, delivered by b after {took:?}");
    assert_eq!(by_a, 0, "a has no delivery workers");
    assert_eq!(by_b, 3 * DEVICES as u64, "b delivered everything");
    assert_eq!(push.count(), 3 * DEVICES);
    push.assert_no_violations();
}

// ---------------------------------------------------------------------------
// 7. Twenty thousand devices, several instances, one killed midway
// ---------------------------------------------------------------------------

/// Devices of the scale tests, and the batch size they run with.
const SCALE_DEVICES: usize = 20_000;
const SCALE_BATCH: usize = 500;

/// Inserts `subs` as devices following `group`, straight into the database:
/// multi-row `INSERT`s in one transaction (a second or two for 20,000, where
/// registering through the API takes minutes on this machine). The rows are
/// what `POST /api/v1/devices` and `PUT …/subscriptions/{group}` write.
fn seed_followers(site: &Site, subs: &[Subscription], group: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&site.db.url).expect("connect to the test database");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    // Ids, endpoints and keys are base64url and digits: safe as SQL literals.
    let mut sql = String::from("BEGIN;\n");
    for (n, chunk) in subs.chunks(1_000).enumerate() {
        let rows = |row: &dyn Fn(usize, &Subscription) -> String| {
            chunk.iter().enumerate().map(|(i, s)| row(n * 1_000 + i, s)).collect::<Vec<_>>().join(",\n")
        };
        sql.push_str("INSERT INTO devices (id, token_hash, endpoint, p256dh, auth, created_at, last_seen_at) VALUES\n");
        sql.push_str(&rows(&|i, s| {
            format!("('seed{i:06}', 'seed-{}', '{}', '{}', '{}', {now}, {now})", s.id, s.endpoint, s.p256dh, s.auth)
        }));
        sql.push_str(";\nINSERT INTO subscriptions (device_id, group_id, created_at) VALUES\n");
        sql.push_str(&rows(&|i, _| format!("('seed{i:06}', '{group}', {now})")));
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    conn.batch_execute(&sql).expect("seed devices and subscriptions");
}

/// Waits until every subscription has `message`: first cheaply for the
/// delivery count (a condition variable), then device by device.
#[track_caller]
fn wait_all_delivered(
    push: &TestPushService,
    subs: &[Subscription],
    message: &str,
    timeout: Duration,
    log: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    push.wait_for(subs.len(), timeout);
    wait_every_device(push, subs, message, deadline.saturating_duration_since(Instant::now()), log);
}

/// The instance whose push counter moves: the one holding the fan-out job.
fn sending(servers: &[&Herold]) -> Option<usize> {
    let before: Vec<u64> = servers.iter().map(|s| s.delivered_metric()).collect();
    std::thread::sleep(Duration::from_millis(100));
    servers.iter().zip(before).position(|(s, b)| s.delivered_metric() > b)
}

/// Two `herold serve` processes on one PostgreSQL database, 20,000 devices
/// following one group, one message: every device gets it exactly once,
/// and the processes' counters add up to the pushes received.
///
/// (A fan-out job is walked one batch at a time — the claim leases the job
/// and only recording the batch gives the lease back — so one message is
/// sent by one instance at a time; which one may change between batches.
/// Several messages are what spreads over instances: see test 2.)
#[test]
fn two_instances_fan_out_to_20000_devices_exactly_once_postgres() {
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(Db::Postgres) else { return };
    let settings = [("HEROLD_DELIVERY_BATCH_SIZE", "500"), ("HEROLD_DELIVERY_LEASE_SECS", "3")];
    let started = Instant::now();
    let a = site.serve("a", &settings);
    let b = site.serve("b", &settings);
    let (owner, group) = parish_with_group(&mut a.api());
    let subs = push.new_subscriptions(SCALE_DEVICES);
    let keys = started.elapsed();
    seed_followers(&site, &subs, &group);
    let seeded = started.elapsed();

    let fanout = Instant::now();
    let message = post_message(&mut b.api(), &owner, &group, "Sturmflutwarnung für die Altstadt");
    let logs = || format!("--- a ---\n{}\n--- b ---\n{}", a.log(), b.log());
    wait_all_delivered(&push, &subs, &message, Duration::from_secs(60), &logs);
    let delivered_in = fanout.elapsed();
    let stats = wait_walked(&a, &owner, &message, Duration::from_secs(30));
    let (by_a, by_b) = (a.delivered_metric(), b.delivered_metric());

    let counts = tally(&push, &message);
    let histogram = histogram(&counts);
    eprintln!(
        "two instances, {SCALE_DEVICES} devices: keys {keys:?}, seeded by {seeded:?}; delivered in {delivered_in:?} \
         ({:.0}/s); pushes sent by a: {by_a}, by b: {by_b}; deliveries per device {histogram:?}; total {:?}",
        SCALE_DEVICES as f64 / delivered_in.as_secs_f64(),
        started.elapsed()
    );
    assert_eq!(counts.len(), SCALE_DEVICES, "every device got the message");
    assert!(counts.values().all(|&n| n == 1), "not exactly once per device: {histogram:?}");
    assert_eq!(push.count(), SCALE_DEVICES, "no other pushes than the one message");
    assert_eq!(by_a + by_b, SCALE_DEVICES as u64, "the processes' counters add up to the pushes received");
    assert_eq!(stats["recipients"], SCALE_DEVICES, "{stats}");
    assert_eq!(stats["delivered"], SCALE_DEVICES, "{stats}");
    push.assert_no_violations();
}

/// Three processes on one PostgreSQL database: `a` and `b` run, a message
/// to 20,000 devices is posted; when about 30 % are delivered the instance
/// sending it is SIGKILLed, `c` is started, and the survivors finish.
///
/// The bound on repeats: only one batch of a job is in flight at a time
/// (see test 7's first case), and the job's cursor moves only in the
/// transaction that records a batch. The kill loses at most the killed
/// instance's one unrecorded batch; once its lease (3 s) runs out another
/// instance claims the job at the recorded cursor and sends that batch
/// again. So every device gets the message at least once, at most
/// `SCALE_BATCH` (500) devices twice, none three times — at-least-once,
/// and the notification's `tag` folds the repeat on the device. Nothing
/// else is repeated: the delivery counters count each device once.
#[test]
fn three_instances_one_killed_midway_deliver_20000_devices_postgres() {
    let _serial = exclusive();
    let Some((site, push)) = Site::prepare(Db::Postgres) else { return };
    let settings = [("HEROLD_DELIVERY_BATCH_SIZE", "500"), ("HEROLD_DELIVERY_LEASE_SECS", "3")];
    let started = Instant::now();
    let mut servers = vec![site.serve("a", &settings), site.serve("b", &settings)];
    let (owner, group) = parish_with_group(&mut servers[0].api());
    let subs = push.new_subscriptions(SCALE_DEVICES);
    seed_followers(&site, &subs, &group);
    let seeded = started.elapsed();

    let fanout = Instant::now();
    let message = post_message(&mut servers[0].api(), &owner, &group, "Trinkwasser abkochen");
    let kill_after = SCALE_DEVICES * 3 / 10;
    assert!(
        push.wait_for(kill_after, Duration::from_secs(60)),
        "only {} deliveries after 60 s; logs:\n{}\n{}",
        push.count(),
        servers[0].log(),
        servers[1].log()
    );
    // Kill the one sending (if the job is between batches, the first).
    let victim = sending(&[&servers[0], &servers[1]]).unwrap_or(0);
    let mut killed = servers.remove(victim);
    killed.kill();
    let until_kill = fanout.elapsed();
    let at_kill = push.count();
    let killed_log = killed.log();
    let survivor = servers.pop().expect("the other instance");
    let c = site.serve("c", &settings);
    let logs = || format!("--- survivor ---\n{}\n--- c ---\n{}", survivor.log(), c.log());
    assert!(at_kill < SCALE_DEVICES, "the fan-out was over before the kill ({at_kill}): nothing was tested");

    wait_all_delivered(&push, &subs, &message, Duration::from_secs(60), &logs);
    let delivered_in = fanout.elapsed();
    let stats = wait_walked(&c, &owner, &message, Duration::from_secs(30));
    let (by_survivor, by_c) = (survivor.delivered_metric(), c.delivered_metric());
    let counts = tally(&push, &message);
    let histogram = histogram(&counts);
    let twice = counts.values().filter(|&&n| n == 2).count();
    eprintln!(
        "three instances, {SCALE_DEVICES} devices (seeded by {seeded:?}): {} killed at {at_kill} deliveries \
         {until_kill:?} after posting; every device delivered {delivered_in:?} after posting; pushes sent by {}: \
         {by_survivor}, by c: {by_c}; deliveries per device {histogram:?}; total {:?}\nwarnings: {:?}",
        ["a", "b"][victim],
        ["b", "a"][victim],
        started.elapsed(),
        warnings(&killed_log).chain(warnings(&survivor.log())).chain(warnings(&c.log())).collect::<Vec<_>>()
    );
    assert_eq!(counts.len(), SCALE_DEVICES, "every device got the message");
    assert!(counts.values().all(|&n| n <= 2), "a device got the message three times or more: {histogram:?}");
    assert!(
        twice <= SCALE_BATCH,
        "{twice} devices got the message twice; the kill may repeat one batch ({SCALE_BATCH}) at most: {histogram:?}"
    );
    assert_eq!(push.count(), SCALE_DEVICES + twice, "no other pushes than the message and the repeated batch");
    assert!(by_survivor + by_c >= (SCALE_DEVICES - at_kill) as u64, "the survivors sent the rest");
    assert_eq!(stats["recipients"], SCALE_DEVICES, "{stats}");
    assert_eq!(stats["delivered"], SCALE_DEVICES, "{stats}");
    assert_eq!(
        (stats["failed"].as_i64(), stats["gone"].as_i64(), stats["pending"].as_i64()),
        (Some(0), Some(0), Some(0)),
        "{stats}"
    );
    push.assert_no_violations();
}
