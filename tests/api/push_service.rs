//! A strict **test push service**: what Herold's delivery engine sends to in
//! the integration tests, since the real push services cannot be reached.
//!
//! It is an independent receiver written from the RFCs with the RustCrypto
//! primitive crates (`p256`, `hkdf`, `aes-gcm`, `sha2`); it shares no code
//! with Herold's own (ring-based) encryption and signing, so a test that
//! passes proves interoperability rather than self-consistency.
//!
//! - RFC 8030 (delivery): `POST /push/<id>`, headers `TTL` (mandatory),
//!   `Urgency`, `Topic`; answers `201 Created` with `Location` and `TTL`.
//! - RFC 8291 + RFC 8188 (`aes128gcm`): every body is decrypted with the
//!   device's private key and auth secret, exactly as a browser would.
//! - RFC 8292 (VAPID): `Authorization: vapid t=<JWT>, k=<key>` is verified
//!   (ES256 signature, `aud`, `exp`, `sub`) like Apple and Mozilla do.
//!
//! The HTTP server (actix-web's `HttpServer`) runs on its own std thread with
//! its own actix `System`, so the service works the same from an
//! `#[actix_web::test]`, a `#[tokio::test]` or plain threads.
//!
//! ```ignore
//! let push = TestPushService::start(&vapid_public_key_b64url);
//! // Herold: HEROLD_PUSH_ALLOWED_ORIGINS=<push.origin()>
//! let sub = push.new_subscription();
//! app.post("/api/v1/devices", None, sub.to_json()).await.expect(201);
//! // … post a message …
//! assert!(push.wait_for_async(1, Duration::from_secs(10)).await);
//! assert_eq!(push.deliveries_for(&sub.id)[0].payload["notification"]["title"], "Hallo");
//! push.assert_no_violations();
//! ```

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::TcpListener;
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Mozilla's cap on `TTL`: larger values are accepted and recorded capped.
pub const MAX_TTL: u64 = 30 * 24 * 3600;
/// The largest body a push service must accept (RFC 8030 §7.2, RFC 8291 §4).
pub const MAX_BODY: usize = 4096;
/// RFC 8292 §2: `exp` must be no more than 24 hours after the request.
pub const MAX_JWT_LIFETIME: u64 = 24 * 3600;
/// Longest `Topic` (RFC 8030 §5.4).
pub const MAX_TOPIC: usize = 32;

// ---------------------------------------------------------------------------
// Public records
// ---------------------------------------------------------------------------

/// A device subscribed at this service: what a browser's `PushSubscription`
/// holds. The private key stays inside the service, which decrypts with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The last path segment of the endpoint.
    pub id: String,
    /// `<origin>/push/<id>`.
    pub endpoint: String,
    /// The device's P-256 public key: base64url (no padding), 65 bytes uncompressed.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url (no padding).
    pub auth: String,
}

impl Subscription {
    /// The browser's `PushSubscription.toJSON()`:
    /// `{"endpoint", "expirationTime": null, "keys": {"p256dh", "auth"}}`.
    pub fn to_json(&self) -> Value {
        json!({
            "endpoint": self.endpoint,
            "expirationTime": null,
            "keys": {"p256dh": self.p256dh, "auth": self.auth}
        })
    }
}

/// One push message accepted, decrypted and parsed.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub subscription_id: String,
    /// The decrypted plaintext, parsed as JSON.
    pub payload: Value,
    /// `TTL` in seconds, capped at [`MAX_TTL`].
    pub ttl: u64,
    /// `TTL` as sent (saturating at `u64::MAX`).
    pub ttl_requested: u64,
    /// `Urgency` as sent (`None`: absent, which means `normal`).
    pub urgency: Option<String>,
    /// `Topic` as sent.
    pub topic: Option<String>,
    pub received_at: SystemTime,
    /// Size of the encrypted body in bytes.
    pub body_len: usize,
    /// Size of the plaintext (without delimiter and padding).
    pub plaintext_len: usize,
    /// The `rs` field of the `aes128gcm` header.
    pub record_size: u32,
    /// The VAPID JWT's `sub` and `exp`.
    pub vapid_subject: String,
    pub vapid_exp: u64,
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Valid; a [`Delivery`] was recorded.
    Delivered,
    /// Valid, but answered with a programmed status (see [`Program`]); nothing delivered.
    Programmed,
    /// Refused for a protocol violation (also in [`TestPushService::violations`]).
    Violation(String),
    /// No such subscription (or not a `/push/<id>` path): 404, not a violation.
    UnknownSubscription,
}

/// Every request the service received, whatever became of it.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// The id from the path (`""` when the path was not `/push/<id>`).
    pub subscription_id: String,
    /// The status answered.
    pub status: u16,
    /// `Retry-After` sent with the answer.
    pub retry_after: Option<u64>,
    pub outcome: Outcome,
    /// Headers as sent (`None`: absent).
    pub ttl: Option<String>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub body_len: usize,
    pub received_at: SystemTime,
}

/// A protocol violation: the request was refused with `status`.
#[derive(Clone, Debug)]
pub struct Violation {
    pub subscription_id: String,
    pub status: u16,
    pub reason: String,
    pub received_at: SystemTime,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for /push/{}: {}", self.status, self.subscription_id, self.reason)
    }
}

/// A refusal: the status a strict push service answers, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Rejection {
        Rejection { status, reason: reason.into() }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

// ---------------------------------------------------------------------------
// Programmable behaviour
// ---------------------------------------------------------------------------

/// A programmed answer: a status (with `Retry-After`), a delay, or both;
/// for the next `n` requests ([`Program::times`]) or forever (the default).
///
/// Programs queue per scope (one subscription, or all): the first one
/// applies until used up, then the next. A subscription's own queue takes
/// precedence over the global one. A program is used up by each request
/// that reaches a known subscription, valid or not. A valid request under a
/// non-2xx programmed status is answered with it and nothing is delivered;
/// an invalid one is still answered with its violation status.
///
/// A delay holds the answer (whatever it is) back. Violations are recorded
/// at once, the request and its delivery when the answer is written — even
/// if the sender has timed out by then (actix does not cancel a handler
/// whose client hung up), like a real service that took the message just
/// before the sender gave up. For a slow service that does *not* deliver,
/// combine both: `Program::status(503).with_delay(d)`.
/// [`TestPushService::in_flight`] counts the requests being held.
///
/// ```ignore
/// push.program_for(&sub.id, Program::status(410));                 // gone, forever
/// push.program_all(Program::too_many_requests(3).times(2));        // 429 + Retry-After: 3, twice
/// push.program_all(Program::delay(Duration::from_secs(5)).once()); // one slow answer
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub delay: Option<Duration>,
    /// `None`: forever.
    pub remaining: Option<u64>,
}

impl Program {
    /// Answer `code` (e.g. 404, 410, 400, 413, 429, 500, 403).
    pub fn status(code: u16) -> Program {
        Program { status: Some(code), retry_after: None, delay: None, remaining: None }
    }

    /// `429 Too Many Requests` with `Retry-After: <secs>`.
    pub fn too_many_requests(retry_after_secs: u64) -> Program {
        Program::status(429).retry_after(retry_after_secs)
    }

    /// A slow service: answer normally, but only after `d`.
    pub fn delay(d: Duration) -> Program {
        Program { status: None, retry_after: None, delay: Some(d), remaining: None }
    }

    /// Adds `Retry-After: <secs>` to the answer.
    pub fn retry_after(mut self, secs: u64) -> Program {
        self.retry_after = Some(secs);
        self
    }

    /// Holds the answer back by `d`.
    pub fn with_delay(mut self, d: Duration) -> Program {
        self.delay = Some(d);
        self
    }

    /// Only for the next `n` requests.
    pub fn times(mut self, n: u64) -> Program {
        self.remaining = Some(n);
        self
    }

    /// Only for the next request.
    pub fn once(self) -> Program {
        self.times(1)
    }
}

#[derive(Default)]
struct Programs {
    all: VecDeque<Program>,
    per: HashMap<String, VecDeque<Program>>,
}

fn take_from(queue: &mut VecDeque<Program>) -> Option<Program> {
    loop {
        let front = queue.front_mut()?;
        match front.remaining {
            None => return Some(front.clone()),
            Some(0) => {
                queue.pop_front();
            }
            Some(n) => {
                front.remaining = Some(n - 1);
                let p = front.clone();
                if n == 1 {
                    queue.pop_front();
                }
                return Some(p);
            }
        }
    }
}

impl Programs {
    fn take(&mut self, id: &str) -> Option<Program> {
        if let Some(queue) = self.per.get_mut(id) {
            if let Some(p) = take_from(queue) {
                return Some(p);
            }
        }
        take_from(&mut self.all)
    }
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

struct DeviceKeys {
    secret: SecretKey,
    public: [u8; 65],
    auth: [u8; 16],
}

#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    requests: Vec<PushRequest>,
    violations: Vec<Violation>,
}

/// What a request's key material was first used for: reuse with another
/// device or another plaintext breaks RFC 8291 (fresh key and salt per message).
type Usage = (String, [u8; 32]);

struct Shared {
    origin: String,
    vapid_key: [u8; 65],
    vapid_verifier: VerifyingKey,
    devices: RwLock<HashMap<String, Arc<DeviceKeys>>>,
    programs: Mutex<Programs>,
    log: Mutex<Log>,
    log_changed: Condvar,
    clock: RwLock<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// JWTs whose signature verified, with their claims (Herold reuses one per origin).
    verified_jwts: Mutex<HashMap<String, Claims>>,
    salts: Mutex<HashMap<[u8; 16], Usage>>,
    sender_keys: Mutex<HashMap<Vec<u8>, Usage>>,
    next_message: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
}

struct ServerGuard {
    handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // The stop command is sent eagerly; the returned future only waits.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

/// The test push service. Cheap to clone; the server stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct TestPushService {
    shared: Arc<Shared>,
    _server: Arc<ServerGuard>,
}

impl fmt::Debug for TestPushService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPushService").field("origin", &self.shared.origin).finish()
    }
}

impl TestPushService {
    /// Starts the service on `127.0.0.1` on a free port, accepting only
    /// VAPID JWTs signed by `vapid_public_key_b64url` (65-byte uncompressed
    /// P-256 point, base64url). Panics on a malformed key.
    pub fn start(vapid_public_key_b64url: &str) -> TestPushService {
        let raw = b64url_lenient(vapid_public_key_b64url).expect("VAPID public key: not base64url");
        let vapid_key: [u8; 65] = raw.as_slice().try_into().expect("VAPID public key: not 65 bytes");
        assert_eq!(vapid_key[0], 0x04, "VAPID public key: not an uncompressed point");
        let vapid_verifier = VerifyingKey::from_sec1_bytes(&vapid_key).expect("VAPID public key: not on P-256");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let origin = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            origin,
            vapid_key,
            vapid_verifier,
            devices: RwLock::new(HashMap::new()),
            programs: Mutex::new(Programs::default()),
            log: Mutex::new(Log::default()),
            log_changed: Condvar::new(),
            clock: RwLock::new(Arc::new(system_now_secs)),
            verified_jwts: Mutex::new(HashMap::new()),
            salts: Mutex::new(HashMap::new()),
            sender_keys: Mutex::new(HashMap::new()),
            next_message: std::sync::atomic::AtomicU64::new(1),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        });

        let data = web::Data::from(shared.clone());
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("test-push-service-{port}"))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(1 << 20))
                            .default_service(web::to(handle))
                    })
                    .workers(workers)
                    .backlog(4096)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("listen")
                    .run();
                    tx.send(server.handle()).expect("hand over the server handle");
                    let _ = server.await;
                });
            })
            .expect("spawn the push service thread");
        let handle = rx.recv().expect("push service did not start");
        TestPushService { shared, _server: Arc::new(ServerGuard { handle, thread: Mutex::new(Some(thread)) }) }
    }

    /// `http://127.0.0.1:PORT`: the `aud` VAPID JWTs must carry, and what
    /// goes into `HEROLD_PUSH_ALLOWED_ORIGINS`.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The endpoint of subscription `id`: `<origin>/push/<id>`.
    pub fn endpoint(&self, id: &str) -> String {
        format!("{}/push/{id}", self.shared.origin)
    }

    /// Replaces the clock `exp` is checked against (seconds since the epoch;
    /// default: the system clock), e.g. to follow Herold's pinned clock.
    pub fn set_clock(&self, now_secs: impl Fn() -> u64 + Send + Sync + 'static) {
        *self.shared.clock.write().unwrap() = Arc::new(now_secs);
    }

    /// The service's "now" in seconds since the epoch.
    pub fn now_secs(&self) -> u64 {
        self.shared.now()
    }

    // ---- subscriptions ----

    /// A new device: a fresh P-256 key pair and 16-byte auth secret.
    pub fn new_subscription(&self) -> Subscription {
        let (id, keys, sub) = self.make_device(SecretKey::random(&mut rand::thread_rng()), random_auth());
        self.shared.devices.write().unwrap().insert(id, Arc::new(keys));
        sub
    }

    /// `n` new devices at once (thousands in well under a second).
    ///
    /// A scalar multiplication costs about 1 ms in this unoptimized test
    /// crate, so bulk keys are made by stepping: each thread draws a random
    /// key `d` and a random step `s`, then hands out `d + s, d + 2s, …` with
    /// public keys `P + S, P + 2S, …` (one point addition each). Every key
    /// pair is a genuine P-256 pair (the first of each run is checked); the
    /// keys of one batch are merely related, which is fine for tests.
    pub fn new_subscriptions(&self, n: usize) -> Vec<Subscription> {
        let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(2).clamp(1, 8).min(n.max(1));
        let per = n.div_ceil(threads);
        let made: Vec<(String, DeviceKeys, Subscription)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let count = per.min(n.saturating_sub(t * per));
                    s.spawn(move || {
                        stepped_keys(count)
                            .into_iter()
                            .map(|pair| self.make_device_with(pair, random_auth()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("keygen thread")).collect()
        });
        let mut devices = self.shared.devices.write().unwrap();
        made.into_iter()
            .map(|(id, keys, sub)| {
                devices.insert(id, Arc::new(keys));
                sub
            })
            .collect()
    }

    /// A device with given keys (e.g. RFC 8291 Appendix A's, which the
    /// harness's `push_subscription` uses). Panics on a malformed key.
    pub fn subscription_with_keys(&self, private_key: &[u8; 32], auth: &[u8; 16]) -> Subscription {
        let secret = SecretKey::from_slice(private_key).expect("not a P-256 private key");
        let (id, keys, sub) = self.make_device(secret, *auth);
        self.shared.devices.write().unwrap().insert(id, Arc::new(keys));
        sub
    }

    /// Forgets a subscription: its endpoint answers 404 from now on.
    pub fn remove_subscription(&self, id: &str) {
        self.shared.devices.write().unwrap().remove(id);
    }

    fn make_device(&self, secret: SecretKey, auth: [u8; 16]) -> (String, DeviceKeys, Subscription) {
        let point = secret.public_key().to_encoded_point(false);
        let public: [u8; 65] = point.as_bytes().try_into().expect("uncompressed point");
        self.make_device_with((secret, public), auth)
    }

    fn make_device_with(
        &self,
        (secret, public): (SecretKey, [u8; 65]),
        auth: [u8; 16],
    ) -> (String, DeviceKeys, Subscription) {
        let mut raw_id = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut raw_id);
        let id = URL_SAFE_NO_PAD.encode(raw_id);
        let sub = Subscription {
            id: id.clone(),
            endpoint: self.endpoint(&id),
            p256dh: URL_SAFE_NO_PAD.encode(public),
            auth: URL_SAFE_NO_PAD.encode(auth),
        };
        (id, DeviceKeys { secret, public, auth }, sub)
    }

    // ---- programmed behaviour ----

    /// Queues `program` for every subscription (after their own programs).
    pub fn program_all(&self, program: Program) {
        self.shared.programs.lock().unwrap().all.push_back(program);
    }

    /// Queues `program` for subscription `id`.
    pub fn program_for(&self, id: &str, program: Program) {
        self.shared.programs.lock().unwrap().per.entry(id.to_owned()).or_default().push_back(program);
    }

    /// Drops every program: the service answers normally again.
    pub fn clear_programs(&self) {
        *self.shared.programs.lock().unwrap() = Programs::default();
    }

    // ---- queries ----

    /// Every delivery so far, in order of answer.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.log.lock().unwrap().deliveries.clone()
    }

    /// The deliveries to one subscription.
    pub fn deliveries_for(&self, id: &str) -> Vec<Delivery> {
        self.shared.log.lock().unwrap().deliveries.iter().filter(|d| d.subscription_id == id).cloned().collect()
    }

    /// The number of deliveries so far.
    pub fn count(&self) -> usize {
        self.shared.log.lock().unwrap().deliveries.len()
    }

    /// Every request so far (rejected, programmed and delivered), in order of answer.
    pub fn requests(&self) -> Vec<PushRequest> {
        self.shared.log.lock().unwrap().requests.clone()
    }

    /// The requests to one subscription.
    pub fn requests_for(&self, id: &str) -> Vec<PushRequest> {
        self.shared.log.lock().unwrap().requests.iter().filter(|r| r.subscription_id == id).cloned().collect()
    }

    /// Requests held back by a programmed delay right now (not yet in
    /// [`Self::requests`]).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The number of requests answered so far.
    pub fn request_count(&self) -> usize {
        self.shared.log.lock().unwrap().requests.len()
    }

    /// Every protocol violation so far; tests assert it stays empty.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.log.lock().unwrap().violations.clone()
    }

    /// Panics listing the violations, if any.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        if !v.is_empty() {
            let list: Vec<String> = v.iter().map(|v| format!("  - {v}")).collect();
            panic!("the test push service saw {} protocol violation(s):\n{}", v.len(), list.join("\n"));
        }
    }

    /// Forgets every delivery, request and violation (programs stay).
    pub fn clear(&self) {
        *self.shared.log.lock().unwrap() = Log::default();
    }

    /// Blocks until at least `count` deliveries are recorded; `false` on timeout.
    /// Do not call it on the thread of a single-threaded runtime that must
    /// make the deliveries happen (an `#[actix_web::test]`): use [`Self::wait_for_async`].
    pub fn wait_for(&self, count: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |log| log.deliveries.len() >= count)
    }

    /// Blocks until at least `count` requests are answered; `false` on timeout.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |log| log.requests.len() >= count)
    }

    /// [`Self::wait_for`] for async tests (any tokio-based runtime, actix's
    /// included): polls, sleeping with `tokio::time::sleep` in between.
    pub async fn wait_for_async(&self, count: usize, timeout: Duration) -> bool {
        self.poll_until(timeout, || self.count() >= count).await
    }

    /// [`Self::wait_for_requests`] for async tests.
    pub async fn wait_for_requests_async(&self, count: usize, timeout: Duration) -> bool {
        self.poll_until(timeout, || self.request_count() >= count).await
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&Log) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut log = self.shared.log.lock().unwrap();
        loop {
            if done(&log) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            log = self.shared.log_changed.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    async fn poll_until(&self, timeout: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn system_now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// `count` key pairs `d + i·s` / `P + i·S` (see [`TestPushService::new_subscriptions`]).
fn stepped_keys(count: usize) -> Vec<(SecretKey, [u8; 65])> {
    use p256::elliptic_curve::Field;
    use p256::{NonZeroScalar, ProjectivePoint, Scalar};
    let mut rng = rand::thread_rng();
    let base = SecretKey::random(&mut rng);
    let step = Scalar::random(&mut rng);
    let step_point = ProjectivePoint::GENERATOR * step;
    let mut d = *base.to_nonzero_scalar();
    let mut p = base.public_key().to_projective();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        d += step;
        p += step_point;
        let Some(nz) = Option::<NonZeroScalar>::from(NonZeroScalar::new(d)) else { continue };
        let public: [u8; 65] = p.to_affine().to_encoded_point(false).as_bytes().try_into().expect("uncompressed point");
        out.push((SecretKey::from(nz), public));
    }
    if let Some((secret, public)) = out.first() {
        assert_eq!(secret.public_key().to_encoded_point(false).as_bytes(), public, "stepped key pair");
    }
    out
}

fn random_auth() -> [u8; 16] {
    let mut auth = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut auth);
    auth
}

/// base64url with or without `=` padding (what push services accept for keys).
fn b64url_lenient(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('=')).ok()
}

impl Shared {
    fn now(&self) -> u64 {
        let clock = self.clock.read().unwrap().clone();
        clock()
    }

    fn record(&self, request: PushRequest, delivery: Option<Delivery>) {
        self.record_with(request, delivery, || {});
    }

    /// Records under the log lock, running `also` inside it.
    fn record_with(&self, request: PushRequest, delivery: Option<Delivery>, also: impl FnOnce()) {
        let mut log = self.log.lock().unwrap();
        also();
        if let Some(d) = delivery {
            log.deliveries.push(d);
        }
        log.requests.push(request);
        drop(log);
        self.log_changed.notify_all();
    }

    /// Fresh key and salt per message and device (RFC 8291 §3.1/§3.4): a
    /// retry of the very same message is fine, any other reuse is not.
    fn check_fresh(&self, id: &str, salt: [u8; 16], sender_key: &[u8], plaintext: &[u8]) -> Result<(), Rejection> {
        let hash: [u8; 32] = Sha256::digest(plaintext).into();
        let usage = (id.to_owned(), hash);
        {
            let mut salts = self.salts.lock().unwrap();
            let first = salts.entry(salt).or_insert_with(|| usage.clone());
            if *first != usage {
                return Err(Rejection::new(
                    400,
                    "salt reused for another message or device (RFC 8291: fresh per message)",
                ));
            }
        }
        let mut keys = self.sender_keys.lock().unwrap();
        let first = keys.entry(sender_key.to_vec()).or_insert_with(|| usage.clone());
        if *first != usage {
            return Err(Rejection::new(
                400,
                "ephemeral sender key reused for another message or device (RFC 8291: fresh per message)",
            ));
        }
        Ok(())
    }

    /// VAPID, with verified signatures cached per token (claims re-checked every time).
    fn check_authorization(&self, header: Option<&str>) -> Result<Claims, Rejection> {
        let header = header.ok_or_else(|| Rejection::new(401, "missing Authorization (VAPID) header"))?;
        let (token, key) = parse_vapid_header(header)?;
        if key != self.vapid_key {
            return Err(Rejection::new(
                403,
                "VAPID key k differs from the application server key the subscription was made with (VapidPkHashMismatch)",
            ));
        }
        let cached = self.verified_jwts.lock().unwrap().get(&token).cloned();
        let claims = match cached {
            Some(c) => c,
            None => {
                let c = verify_jwt(&token, &self.vapid_verifier)?;
                let mut cache = self.verified_jwts.lock().unwrap();
                if cache.len() < 100_000 {
                    cache.insert(token, c.clone());
                }
                c
            }
        };
        check_claims(&claims, &self.origin, self.now())?;
        Ok(claims)
    }
}

// ---------------------------------------------------------------------------
// The HTTP handler
// ---------------------------------------------------------------------------

/// Counts a request as in flight while its answer is held back; ends
/// (under the log lock) when the answer is recorded, or when the server
/// drops the handler.
struct InFlight(Option<Arc<Shared>>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(Some(shared))
    }

    fn record(mut self, request: PushRequest, delivery: Option<Delivery>) {
        let shared = self.0.take().expect("in flight");
        shared.record_with(request, delivery, || {
            shared.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn header_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn error_response(status: u16, retry_after: Option<u64>, reason: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut res = HttpResponse::build(code);
    if let Some(secs) = retry_after {
        res.insert_header(("Retry-After", secs.to_string()));
    }
    res.json(json!({
        "code": status,
        "error": code.canonical_reason().unwrap_or("Error"),
        "message": reason,
    }))
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let shared = shared.into_inner();
    let received_at = SystemTime::now();
    let id =
        req.path().strip_prefix("/push/").filter(|id| !id.is_empty() && !id.contains('/')).unwrap_or("").to_owned();
    let mut record = PushRequest {
        subscription_id: id.clone(),
        status: 0,
        retry_after: None,
        outcome: Outcome::UnknownSubscription,
        ttl: header_value(&req, "ttl"),
        urgency: header_value(&req, "urgency"),
        topic: header_value(&req, "topic"),
        body_len: body.len(),
        received_at,
    };

    let device = shared.devices.read().unwrap().get(&id).cloned();
    let Some(device) = device else {
        record.status = 404;
        shared.record(record, None);
        return error_response(404, None, "no such subscription");
    };
    let program = shared.programs.lock().unwrap().take(&id);

    // Validate and decrypt; no lock is held here.
    let result = if req.method() != actix_web::http::Method::POST {
        Err(Rejection::new(405, format!("method {} on a push endpoint (RFC 8030: POST)", req.method())))
    } else {
        accept(&shared, &req, &body, &id, &device, received_at)
    };

    let (status, retry_after, delivery, violation) = match result {
        Err(rejection) => {
            record.outcome = Outcome::Violation(rejection.reason.clone());
            let v = Violation {
                subscription_id: id.clone(),
                status: rejection.status,
                reason: rejection.reason,
                received_at,
            };
            (rejection.status, None, None, Some(v))
        }
        Ok(delivery) => match program.as_ref().and_then(|p| p.status) {
            Some(code) if !(200..300).contains(&code) => {
                record.outcome = Outcome::Programmed;
                (code, program.as_ref().and_then(|p| p.retry_after), None, None)
            }
            code => {
                record.outcome = Outcome::Delivered;
                (code.unwrap_or(201), program.as_ref().and_then(|p| p.retry_after), Some(delivery), None)
            }
        },
    };
    record.status = status;
    record.retry_after = retry_after;

    // Violations are recorded at once; the answer may be held back.
    let violation_reason = violation.as_ref().map(|v| v.reason.clone());
    if let Some(v) = violation {
        shared.log.lock().unwrap().violations.push(v);
    }
    let ttl_answer = delivery.as_ref().map(|d| d.ttl);
    if let Some(delay) = program.as_ref().and_then(|p| p.delay) {
        let in_flight = InFlight::new(shared.clone());
        tokio::time::sleep(delay).await;
        in_flight.record(record, delivery);
    } else {
        shared.record(record, delivery);
    }

    match violation_reason {
        Some(reason) => error_response(status, retry_after, &reason),
        None if (200..300).contains(&status) => {
            let n = shared.next_message.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let code = actix_web::http::StatusCode::from_u16(status).expect("2xx");
            let mut res = HttpResponse::build(code);
            res.insert_header(("Location", format!("{}/message/{n}", shared.origin)));
            if let Some(ttl) = ttl_answer {
                res.insert_header(("TTL", ttl.to_string()));
            }
            if let Some(secs) = retry_after {
                res.insert_header(("Retry-After", secs.to_string()));
            }
            res.finish()
        }
        None => error_response(status, retry_after, "programmed answer"),
    }
}

/// Every check of one POST, in the order a strict service applies them.
fn accept(
    shared: &Shared,
    req: &HttpRequest,
    body: &[u8],
    id: &str,
    device: &DeviceKeys,
    received_at: SystemTime,
) -> Result<Delivery, Rejection> {
    let claims = shared.check_authorization(header_value(req, "authorization").as_deref())?;

    let ttl_requested = parse_ttl(header_value(req, "ttl").as_deref())?;
    let urgency = header_value(req, "urgency");
    if let Some(u) = &urgency {
        check_urgency(u)?;
    }
    let topic = header_value(req, "topic");
    if let Some(t) = &topic {
        check_topic(t)?;
    }
    match header_value(req, "content-encoding") {
        None => return Err(Rejection::new(400, "missing Content-Encoding (must be aes128gcm)")),
        Some(ce) if ce.trim().eq_ignore_ascii_case("aes128gcm") => {}
        Some(ce) if ce.trim().eq_ignore_ascii_case("aesgcm") => {
            return Err(Rejection::new(400, "Content-Encoding aesgcm is the obsolete draft; use aes128gcm (RFC 8291)"))
        }
        Some(ce) => {
            return Err(Rejection::new(400, format!("unsupported Content-Encoding {ce:?} (must be aes128gcm)")))
        }
    }
    if body.is_empty() {
        return Err(Rejection::new(400, "empty body: Herold's pushes carry an encrypted payload"));
    }
    if body.len() > MAX_BODY {
        return Err(Rejection::new(413, format!("body of {} bytes exceeds {MAX_BODY}", body.len())));
    }

    let decrypted = decrypt_aes128gcm(body, &device.secret, &device.public, &device.auth)
        .map_err(|e| Rejection::new(400, format!("cannot decrypt the aes128gcm body: {e}")))?;
    shared.check_fresh(id, decrypted.salt, &decrypted.sender_key, &decrypted.plaintext)?;
    let payload: Value = serde_json::from_slice(&decrypted.plaintext)
        .map_err(|e| Rejection::new(400, format!("decrypted payload is not JSON: {e}")))?;

    Ok(Delivery {
        subscription_id: id.to_owned(),
        payload,
        ttl: ttl_requested.min(MAX_TTL),
        ttl_requested,
        urgency,
        topic,
        received_at,
        body_len: body.len(),
        plaintext_len: decrypted.plaintext.len(),
        record_size: decrypted.record_size,
        vapid_subject: claims.sub,
        vapid_exp: claims.exp,
    })
}

// ---------------------------------------------------------------------------
// Header rules (RFC 8030 and the services' documented limits)
// ---------------------------------------------------------------------------

/// `TTL`: mandatory, a non-negative integer (delta-seconds). Returns the
/// value as sent (saturating), not yet capped.
pub fn parse_ttl(value: Option<&str>) -> Result<u64, Rejection> {
    let v = value.ok_or_else(|| Rejection::new(400, "missing TTL header (RFC 8030 §5.2: mandatory)"))?;
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::new(400, format!("TTL {v:?} is not a non-negative integer")));
    }
    Ok(v.parse::<u64>().unwrap_or(u64::MAX))
}

/// `Urgency`: one of `very-low`, `low`, `normal`, `high` (RFC 8030 §5.3).
pub fn check_urgency(value: &str) -> Result<(), Rejection> {
    match value.trim() {
        "very-low" | "low" | "normal" | "high" => Ok(()),
        other => Err(Rejection::new(400, format!("Urgency {other:?} is not very-low|low|normal|high"))),
    }
}

/// `Topic`: 1..=32 characters of the base64url alphabet (RFC 8030 §5.4),
/// and a length not ≡ 1 (mod 4), which Apple refuses.
pub fn check_topic(value: &str) -> Result<(), Rejection> {
    let t = value.trim();
    if t.is_empty() {
        return Err(Rejection::new(400, "empty Topic"));
    }
    if t.len() > MAX_TOPIC {
        return Err(Rejection::new(400, format!("Topic of {} characters exceeds {MAX_TOPIC}", t.len())));
    }
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Rejection::new(400, format!("Topic {t:?} has characters outside the base64url alphabet")));
    }
    if t.len() % 4 == 1 {
        return Err(Rejection::new(
            400,
            format!("Topic length {} is ≡ 1 (mod 4): not valid base64url (Apple)", t.len()),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// VAPID (RFC 8292)
// ---------------------------------------------------------------------------

/// The claims of a VAPID JWT whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub aud: String,
    pub exp: u64,
    pub sub: String,
}

/// Splits `vapid t=<JWT>, k=<key>` (parameters in any order, optional
/// quotes) into the token and the decoded 65-byte key.
pub fn parse_vapid_header(header: &str) -> Result<(String, Vec<u8>), Rejection> {
    let header = header.trim();
    let (scheme, params) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("webpush") || scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::new(
            401,
            format!("Authorization scheme {scheme:?} is the obsolete draft; use 'vapid t=<JWT>, k=<key>' (RFC 8292)"),
        ));
    }
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(Rejection::new(401, format!("Authorization scheme {scheme:?} is not vapid")));
    }
    let (mut t, mut k) = (None, None);
    for param in params.split(',') {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return Err(Rejection::new(401, format!("malformed vapid parameter {param:?}")));
        };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        match name.trim().to_ascii_lowercase().as_str() {
            "t" => t = Some(value.to_owned()),
            "k" => k = Some(value.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or_else(|| Rejection::new(401, "vapid Authorization without t (the JWT)"))?;
    let k = k.ok_or_else(|| Rejection::new(401, "vapid Authorization without k (the public key)"))?;
    let key = b64url_lenient(&k).ok_or_else(|| Rejection::new(401, "vapid k is not base64url"))?;
    if key.len() != 65 || key[0] != 0x04 {
        return Err(Rejection::new(
            401,
            format!("vapid k is not a 65-byte uncompressed P-256 point ({} bytes)", key.len()),
        ));
    }
    Ok((t, key))
}

/// Checks an ES256 JWT's form and signature (raw 64-byte `r‖s`) against `key`.
pub fn verify_jwt(token: &str, key: &VerifyingKey) -> Result<Claims, Rejection> {
    let bad = |why: String| Rejection::new(401, format!("VAPID JWT: {why}"));
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(bad(format!("{} parts, not 3", parts.len())));
    }
    let decode = |i: usize, what: &str| {
        URL_SAFE_NO_PAD.decode(parts[i]).map_err(|e| bad(format!("{what} is not unpadded base64url: {e}")))
    };
    let header: Value =
        serde_json::from_slice(&decode(0, "header")?).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    if header["alg"] != "ES256" {
        return Err(bad(format!("alg {} is not ES256", header["alg"])));
    }
    if let Some(typ) = header.get("typ") {
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(bad(format!("typ {typ} is not JWT")));
        }
    }
    let sig = decode(2, "signature")?;
    let sig = Signature::from_slice(&sig)
        .map_err(|_| bad(format!("signature of {} bytes is not a raw 64-byte r||s", sig.len())))?;
    let signed = &token[..parts[0].len() + 1 + parts[1].len()];
    key.verify(signed.as_bytes(), &sig).map_err(|_| bad("signature does not verify against k".into()))?;

    let claims: Value =
        serde_json::from_slice(&decode(1, "payload")?).map_err(|e| bad(format!("payload is not JSON: {e}")))?;
    let aud = claims["aud"].as_str().ok_or_else(|| Rejection::new(403, "BadJwtToken: no aud claim"))?;
    let exp = claims["exp"].as_f64().ok_or_else(|| Rejection::new(403, "BadJwtToken: no numeric exp claim"))?;
    let sub = claims["sub"].as_str().ok_or_else(|| Rejection::new(403, "BadJwtToken: no sub claim"))?;
    if exp < 0.0 {
        return Err(Rejection::new(403, "BadJwtToken: negative exp"));
    }
    Ok(Claims { aud: aud.to_owned(), exp: exp as u64, sub: sub.to_owned() })
}

/// `aud` equals `origin` exactly; `now < exp <= now + 24 h`; `sub` is a real
/// `mailto:` or `https:` contact, not `@localhost`.
pub fn check_claims(claims: &Claims, origin: &str, now: u64) -> Result<(), Rejection> {
    if claims.aud != origin {
        return Err(Rejection::new(
            403,
            format!("BadJwtToken: aud {:?} is not this service's origin {origin:?}", claims.aud),
        ));
    }
    if claims.exp <= now {
        return Err(Rejection::new(403, format!("BadJwtToken: expired (exp {} <= now {now})", claims.exp)));
    }
    if claims.exp > now + MAX_JWT_LIFETIME {
        return Err(Rejection::new(
            403,
            format!("BadJwtToken: exp {} is {} s ahead, more than 24 h (RFC 8292 §2)", claims.exp, claims.exp - now),
        ));
    }
    check_subject(&claims.sub).map_err(|why| Rejection::new(403, format!("BadJwtToken: sub {:?}: {why}", claims.sub)))
}

fn check_subject(sub: &str) -> Result<(), &'static str> {
    let is_local = |host: &str| {
        let h = host.to_ascii_lowercase();
        h == "localhost" || h.ends_with(".localhost")
    };
    if sub.to_ascii_lowercase().contains("@localhost") {
        return Err("@localhost is a placeholder (Apple refuses it)");
    }
    if let Some(addr) = sub.strip_prefix("mailto:") {
        let (local, domain) = addr.rsplit_once('@').ok_or("mailto: without an address")?;
        if local.is_empty() || domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err("mailto: address is malformed");
        }
        if is_local(domain) {
            return Err("mailto: address at localhost");
        }
        Ok(())
    } else if let Some(rest) = sub.strip_prefix("https:") {
        let host = rest.strip_prefix("//").ok_or("https: without //host")?;
        let host = host.split(['/', ':', '?', '#']).next().unwrap_or("");
        if host.is_empty() {
            return Err("https: without a host");
        }
        if is_local(host) {
            return Err("https: at localhost");
        }
        Ok(())
    } else {
        Err("must start with mailto: or https:")
    }
}

// ---------------------------------------------------------------------------
// aes128gcm decryption (RFC 8188 + RFC 8291)
// ---------------------------------------------------------------------------

/// A decrypted push message and what its header said.
#[derive(Clone, Debug)]
pub struct Decrypted {
    /// Without the delimiter and padding.
    pub plaintext: Vec<u8>,
    pub salt: [u8; 16],
    pub record_size: u32,
    /// The `keyid`: the sender's ephemeral public key (65 bytes).
    pub sender_key: Vec<u8>,
    pub padding_len: usize,
}

/// The keys of RFC 8291 §3.3–3.4 (names as in Appendix A).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedKeys {
    /// `PRK_key = HMAC-SHA-256(auth_secret, ecdh_secret)`.
    pub prk_key: [u8; 32],
    /// `IKM = HKDF-Expand(PRK_key, "WebPush: info" 0x00 ua_public as_public, 32)`.
    pub ikm: [u8; 32],
    /// `PRK = HMAC-SHA-256(salt, IKM)`.
    pub prk: [u8; 32],
    pub cek: [u8; 16],
    pub nonce: [u8; 12],
}

/// RFC 8291 §3.3–3.4 and RFC 8188 §2.2–2.3 key schedule.
pub fn derive_keys(ecdh_secret: &[u8], auth: &[u8], ua_public: &[u8], as_public: &[u8], salt: &[u8]) -> DerivedKeys {
    let (prk_key, hk) = Hkdf::<Sha256>::extract(Some(auth), ecdh_secret);
    let mut key_info = Vec::with_capacity(14 + ua_public.len() + as_public.len());
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    hk.expand(&key_info, &mut ikm).expect("32 bytes fit HKDF");
    let (prk, hk) = Hkdf::<Sha256>::extract(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).expect("16 bytes fit HKDF");
    let mut nonce = [0u8; 12];
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce).expect("12 bytes fit HKDF");
    DerivedKeys { prk_key: prk_key.into(), ikm, prk: prk.into(), cek, nonce }
}

/// Decrypts an `aes128gcm` push message body as the user agent holding
/// `ua_private` / `ua_public` / `auth` would: one record, keyid = the
/// sender's 65-byte ephemeral public key, last-record delimiter 0x02.
pub fn decrypt_aes128gcm(
    body: &[u8],
    ua_private: &SecretKey,
    ua_public: &[u8],
    auth: &[u8],
) -> Result<Decrypted, String> {
    if body.len() < 21 {
        return Err(format!("body of {} bytes is shorter than the 21-byte header", body.len()));
    }
    let salt: [u8; 16] = body[..16].try_into().expect("16 bytes");
    let record_size = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes"));
    let idlen = body[20] as usize;
    if idlen != 65 {
        return Err(format!("idlen {idlen}: keyid must be the sender's 65-byte uncompressed public key"));
    }
    if body.len() < 21 + idlen {
        return Err("body ends inside the keyid".into());
    }
    let sender_key = &body[21..21 + idlen];
    if sender_key[0] != 0x04 {
        return Err("keyid is not an uncompressed P-256 point".into());
    }
    if record_size < 18 {
        return Err(format!("rs {record_size} is below the minimum 18 (RFC 8188)"));
    }
    let ciphertext = &body[21 + idlen..];
    if ciphertext.len() < 17 {
        return Err(format!("record of {} bytes cannot hold a tag and a delimiter", ciphertext.len()));
    }
    if ciphertext.len() > record_size as usize {
        return Err(format!(
            "record of {} bytes exceeds rs {record_size}: push messages are one record (RFC 8291 §4)",
            ciphertext.len()
        ));
    }
    let as_public = PublicKey::from_sec1_bytes(sender_key).map_err(|_| "keyid is not a point on P-256".to_string())?;
    let shared = p256::ecdh::diffie_hellman(ua_private.to_nonzero_scalar(), as_public.as_affine());
    let keys = derive_keys(shared.raw_secret_bytes(), auth, ua_public, sender_key, &salt);
    let cipher = Aes128Gcm::new_from_slice(&keys.cek).expect("16-byte key");
    let mut plaintext = cipher
        .decrypt(&Nonce::from(keys.nonce), ciphertext)
        .map_err(|_| "AES-128-GCM authentication failed (wrong keys, auth secret or derivation)".to_string())?;
    let Some(last) = plaintext.iter().rposition(|&b| b != 0) else {
        return Err("record has no padding delimiter".into());
    };
    match plaintext[last] {
        2 => {}
        1 => return Err("delimiter 0x01 marks a non-final record; push messages are one record".into()),
        d => return Err(format!("padding delimiter is 0x{d:02x}, not 0x02")),
    }
    let padding_len = plaintext.len() - last - 1;
    plaintext.truncate(last);
    Ok(Decrypted { plaintext, salt, record_size, sender_key: sender_key.to_vec(), padding_len })
}

// ---------------------------------------------------------------------------
// Self-tests: no Herold involved
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| panic!("bad test vector {s}: {e}"))
    }

    // RFC 8291 Appendix A (also §5).
    const RFC_PLAINTEXT_B64: &str = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24";
    const RFC_AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const RFC_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const RFC_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const RFC_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const RFC_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const RFC_ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const RFC_PRK_KEY: &str = "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k";
    const RFC_IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
    const RFC_PRK: &str = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc";
    const RFC_CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const RFC_NONCE: &str = "4h_95klXJ5E_qnoN";
    const RFC_KEY_INFO: &str = "V2ViUHVzaDogaW5mbwAEJXGyvs3942BVGq8e0PTNNmwRzr5VX4m8t7GGpTM5FzFo7OLr4BhZe9MEebhuPI-OztV3ylkYfpJGmQ22ggCLDgT-M_SrDepxkU21WCP3O1SUj0EwbZIHMtu5pZpTKGSCIA5Zent7wmC6HCJ5mFgJkuk5cwAvMBKiiujwa7t45ewP";
    const RFC_HEADER: &str =
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const RFC_CIPHERTEXT: &str = "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ";
    const RFC_MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn public_of(private: &str) -> Vec<u8> {
        SecretKey::from_slice(&b64(private)).unwrap().public_key().to_encoded_point(false).as_bytes().to_vec()
    }

    /// Each typed-in vector is checked against the others, so a typo shows
    /// up as a failed step, not as a mystery.
    #[test]
    fn rfc8291_appendix_a_vectors_are_consistent() {
        assert_eq!(b64(RFC_PLAINTEXT_B64), b"When I grow up, I want to be a watermelon");
        assert_eq!(public_of(RFC_UA_PRIVATE), b64(RFC_UA_PUBLIC), "UA private key gives the UA public key");
        assert_eq!(public_of(RFC_AS_PRIVATE), b64(RFC_AS_PUBLIC), "AS private key gives the AS public key");
        let ua = SecretKey::from_slice(&b64(RFC_UA_PRIVATE)).unwrap();
        let as_pub = PublicKey::from_sec1_bytes(&b64(RFC_AS_PUBLIC)).unwrap();
        let ecdh = p256::ecdh::diffie_hellman(ua.to_nonzero_scalar(), as_pub.as_affine());
        assert_eq!(&ecdh.raw_secret_bytes()[..], b64(RFC_ECDH_SECRET), "ECDH shared secret");
        let mut info = b"WebPush: info\0".to_vec();
        info.extend(b64(RFC_UA_PUBLIC));
        info.extend(b64(RFC_AS_PUBLIC));
        assert_eq!(info, b64(RFC_KEY_INFO), "key info");
        let keys = derive_keys(
            &b64(RFC_ECDH_SECRET),
            &b64(RFC_AUTH),
            &b64(RFC_UA_PUBLIC),
            &b64(RFC_AS_PUBLIC),
            &b64(RFC_SALT),
        );
        assert_eq!(keys.prk_key.to_vec(), b64(RFC_PRK_KEY), "PRK_key");
        assert_eq!(keys.ikm.to_vec(), b64(RFC_IKM), "IKM");
        assert_eq!(keys.prk.to_vec(), b64(RFC_PRK), "PRK");
        assert_eq!(keys.cek.to_vec(), b64(RFC_CEK), "CEK");
        assert_eq!(keys.nonce.to_vec(), b64(RFC_NONCE), "NONCE");
        let mut message = b64(RFC_HEADER);
        assert_eq!(&message[..16], b64(RFC_SALT).as_slice(), "header starts with the salt");
        assert_eq!(&message[16..21], &[0, 0, 0x10, 0, 65], "rs 4096, idlen 65");
        message.extend(b64(RFC_CIPHERTEXT));
        assert_eq!(message, b64(RFC_MESSAGE), "message = header || ciphertext");
    }

    #[test]
    fn decrypts_the_rfc8291_appendix_a_message() {
        let ua = SecretKey::from_slice(&b64(RFC_UA_PRIVATE)).unwrap();
        let out = decrypt_aes128gcm(&b64(RFC_MESSAGE), &ua, &b64(RFC_UA_PUBLIC), &b64(RFC_AUTH)).expect("decrypts");
        assert_eq!(String::from_utf8(out.plaintext).unwrap(), "When I grow up, I want to be a watermelon");
        assert_eq!(out.record_size, 4096);
        assert_eq!(out.padding_len, 0);
        assert_eq!(out.sender_key, b64(RFC_AS_PUBLIC));

        // A wrong auth secret, or one flipped bit, fails authentication.
        assert!(decrypt_aes128gcm(&b64(RFC_MESSAGE), &ua, &b64(RFC_UA_PUBLIC), &[0u8; 16]).is_err());
        let mut tampered = b64(RFC_MESSAGE);
        *tampered.last_mut().unwrap() ^= 1;
        assert!(decrypt_aes128gcm(&tampered, &ua, &b64(RFC_UA_PUBLIC), &b64(RFC_AUTH)).is_err());
    }

    // ---- a tiny independent sender ----

    /// Encrypts as an application server (RFC 8291 §3, RFC 8188), with the
    /// given ephemeral key and salt, padding with `pad` zero bytes.
    fn encrypt_with(
        (as_secret, as_public): (&SecretKey, &[u8]),
        salt: [u8; 16],
        ua_public: &[u8],
        auth: &[u8],
        plaintext: &[u8],
        pad: usize,
    ) -> Vec<u8> {
        let ua = PublicKey::from_sec1_bytes(ua_public).unwrap();
        let ecdh = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua.as_affine());
        // Written out again, not via derive_keys, so sender and receiver are separate code.
        let hk = Hkdf::<Sha256>::new(Some(auth), ecdh.raw_secret_bytes());
        let mut ikm = [0u8; 32];
        hk.expand_multi_info(&[b"WebPush: info\0", ua_public, as_public], &mut ikm).unwrap();
        let hk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).unwrap();
        hk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
        let mut record = plaintext.to_vec();
        record.push(2);
        record.extend(std::iter::repeat_n(0u8, pad));
        let ct = Aes128Gcm::new_from_slice(&cek).unwrap().encrypt(&Nonce::from(nonce), record.as_slice()).unwrap();
        let mut body = salt.to_vec();
        body.extend(4096u32.to_be_bytes());
        body.push(65);
        body.extend(as_public);
        body.extend(ct);
        body
    }

    fn encrypt(sub: &Subscription, plaintext: &[u8]) -> Vec<u8> {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let eph = SecretKey::random(&mut rand::thread_rng());
        let eph_public = eph.public_key().to_encoded_point(false);
        encrypt_with((&eph, eph_public.as_bytes()), salt, &b64(&sub.p256dh), &b64(&sub.auth), plaintext, 0)
    }

    fn jwt(key: &SigningKey, claims: Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let sig: Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    struct Sender {
        key: SigningKey,
        public_b64: String,
    }

    impl Sender {
        fn new() -> Sender {
            let key = SigningKey::random(&mut rand::thread_rng());
            let public_b64 = URL_SAFE_NO_PAD.encode(key.verifying_key().to_encoded_point(false).as_bytes());
            Sender { key, public_b64 }
        }

        fn authorization(&self, aud: &str, exp: u64, sub: &str) -> String {
            let t = jwt(&self.key, json!({"aud": aud, "exp": exp, "sub": sub}));
            format!("vapid t={t}, k={}", self.public_b64)
        }

        fn good_authorization(&self, origin: &str) -> String {
            self.authorization(origin, system_now_secs() + 12 * 3600, "mailto:push@herold.example")
        }
    }

    /// A minimal HTTP/1.1 POST over a fresh connection; returns status and raw response.
    fn post(endpoint: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let rest = endpoint.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(host).unwrap();
        let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(req.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut res = Vec::new();
        stream.read_to_end(&mut res).unwrap();
        let res = String::from_utf8_lossy(&res).into_owned();
        let status = res.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, res)
    }

    fn send(
        push: &TestPushService,
        sender: &Sender,
        sub: &Subscription,
        payload: &Value,
        extra: &[(&str, &str)],
    ) -> (u16, String) {
        let auth = sender.good_authorization(push.origin());
        let mut headers = vec![
            ("TTL", "3600"),
            ("Urgency", "high"),
            ("Content-Encoding", "aes128gcm"),
            ("Content-Type", "application/octet-stream"),
            ("Authorization", auth.as_str()),
        ];
        for (k, v) in extra {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
            if !v.is_empty() {
                headers.push((k, v));
            }
        }
        post(&sub.endpoint, &headers, &encrypt(sub, payload.to_string().as_bytes()))
    }

    #[test]
    fn the_sender_reproduces_the_rfc8291_message() {
        let as_secret = SecretKey::from_slice(&b64(RFC_AS_PRIVATE)).unwrap();
        let salt: [u8; 16] = b64(RFC_SALT).try_into().unwrap();
        let body = encrypt_with(
            (&as_secret, &b64(RFC_AS_PUBLIC)),
            salt,
            &b64(RFC_UA_PUBLIC),
            &b64(RFC_AUTH),
            b"When I grow up, I want to be a watermelon",
            0,
        );
        assert_eq!(body, b64(RFC_MESSAGE));
    }

    #[test]
    fn vapid_jwt_with_wrong_aud_port_or_expired_exp_is_refused() {
        let sender = Sender::new();
        let key = VerifyingKey::from_sec1_bytes(&b64(&sender.public_b64)).unwrap();
        let origin = "http://127.0.0.1:4711";
        let now = 1_795_694_400;
        let check = |claims: Value| {
            let t = jwt(&sender.key, claims);
            verify_jwt(&t, &key).and_then(|c| check_claims(&c, origin, now))
        };

        check(json!({"aud": origin, "exp": now + 43_200, "sub": "mailto:ops@herold.example"})).expect("valid");
        check(json!({"aud": origin, "exp": now + 86_400, "sub": "https://herold.example/contact"})).expect("24 h");

        let refused = |claims: Value, what: &str| {
            let r = check(claims).expect_err(what);
            assert_eq!(r.status, 403, "{what}: {r}");
        };
        refused(json!({"aud": "http://127.0.0.1:4712", "exp": now + 3600, "sub": "mailto:a@b.example"}), "other port");
        refused(json!({"aud": "http://127.0.0.1", "exp": now + 3600, "sub": "mailto:a@b.example"}), "port dropped");
        refused(json!({"aud": "http://127.0.0.1:4711/", "exp": now + 3600, "sub": "mailto:a@b.example"}), "slash");
        refused(json!({"aud": origin, "exp": now - 1, "sub": "mailto:a@b.example"}), "expired");
        refused(json!({"aud": origin, "exp": now, "sub": "mailto:a@b.example"}), "expires now");
        refused(json!({"aud": origin, "exp": now + 86_401, "sub": "mailto:a@b.example"}), "more than 24 h");
        refused(json!({"aud": origin, "exp": now + 3600, "sub": "mailto:admin@localhost"}), "localhost");
        refused(json!({"aud": origin, "exp": now + 3600, "sub": "herold@example.org"}), "no scheme");

        // A signature by another key, or in DER form, does not verify.
        let other = Sender::new();
        let t = jwt(&other.key, json!({"aud": origin, "exp": now + 3600, "sub": "mailto:a@b.example"}));
        assert_eq!(verify_jwt(&t, &key).unwrap_err().status, 401);
        let (signed, _) = t.rsplit_once('.').unwrap();
        let t = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0x30u8; 70]));
        assert_eq!(verify_jwt(&t, &key).unwrap_err().status, 401, "DER-sized signature");
    }

    #[test]
    fn header_rules() {
        assert_eq!(parse_ttl(Some("0")), Ok(0));
        assert_eq!(parse_ttl(Some("99999999999999999999999")), Ok(u64::MAX));
        for bad in [None, Some(""), Some("-1"), Some("1.5"), Some("abc")] {
            assert_eq!(parse_ttl(bad).unwrap_err().status, 400, "{bad:?}");
        }
        for ok in ["very-low", "low", "normal", "high"] {
            check_urgency(ok).unwrap();
        }
        assert!(check_urgency("urgent").is_err());
        assert!(check_urgency("HIGH").is_err());
        check_topic("abcd").unwrap();
        check_topic(&"A".repeat(32)).unwrap();
        check_topic("a_b-C").unwrap_err(); // 5 ≡ 1 (mod 4)
        check_topic(&"A".repeat(33)).unwrap_err();
        check_topic("ab+/").unwrap_err();
        check_topic("a").unwrap_err();
        let (t, k) = parse_vapid_header(&format!("vapid k=\"{RFC_AS_PUBLIC}\", t=x.y.z")).unwrap();
        assert_eq!((t.as_str(), k), ("x.y.z", b64(RFC_AS_PUBLIC)));
        let (t, _) = parse_vapid_header(&format!("Vapid t=a.b.c,k={RFC_AS_PUBLIC}=")).unwrap();
        assert_eq!(t, "a.b.c");
        assert_eq!(parse_vapid_header("vapid t=x.y.z").unwrap_err().status, 401);
        assert_eq!(parse_vapid_header("vapid t=x.y.z, k=AAAA").unwrap_err().status, 401);
        assert_eq!(parse_vapid_header("WebPush x.y.z").unwrap_err().status, 401);
    }

    #[test]
    fn delivers_a_valid_push_and_records_it() {
        let sender = Sender::new();
        let push = TestPushService::start(&sender.public_b64);
        assert!(push.origin().starts_with("http://127.0.0.1:"));
        let sub = push.new_subscription();
        assert_eq!(sub.endpoint, format!("{}/push/{}", push.origin(), sub.id));
        assert_eq!(b64(&sub.p256dh).len(), 65);
        assert_eq!(b64(&sub.auth).len(), 16);
        assert_eq!(sub.to_json()["keys"]["p256dh"], sub.p256dh);
        assert!(sub.to_json()["expirationTime"].is_null());

        let payload = json!({"web_push": 8030, "notification": {"title": "Hallo", "body": "Welt", "navigate": "/"}});
        let (status, res) = send(&push, &sender, &sub, &payload, &[("Topic", "abcdefgh")]);
        assert_eq!(status, 201, "{res}");
        assert!(res.contains("TTL: 3600") || res.contains("ttl: 3600"), "{res}");
        assert!(push.wait_for(1, Duration::from_secs(5)));
        let d = &push.deliveries_for(&sub.id)[0];
        assert_eq!(d.payload, payload);
        assert_eq!((d.ttl, d.urgency.as_deref(), d.topic.as_deref()), (3600, Some("high"), Some("abcdefgh")));
        assert_eq!(d.vapid_subject, "mailto:push@herold.example");
        assert_eq!(push.count(), 1);

        // TTL above 30 days is accepted and recorded capped.
        let (status, res) = send(&push, &sender, &sub, &json!({"n": 2}), &[("TTL", "99999999")]);
        assert_eq!(status, 201, "{res}");
        let d = push.deliveries().pop().unwrap();
        assert_eq!((d.ttl, d.ttl_requested), (MAX_TTL, 99_999_999));

        // An unknown subscription is a 404, not a violation.
        let gone = Subscription { id: "nope".into(), endpoint: push.endpoint("nope"), ..sub.clone() };
        assert_eq!(send(&push, &sender, &gone, &json!({}), &[]).0, 404);

        push.assert_no_violations();
        let requests = push.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[2].outcome, Outcome::UnknownSubscription);
    }

    #[test]
    fn detects_protocol_violations() {
        let sender = Sender::new();
        let push = TestPushService::start(&sender.public_b64);
        let sub = push.new_subscription();
        let p = json!({"x": 1});
        let far = system_now_secs() + 3600;
        let wrong_aud =
            sender.authorization(&push.origin().replace("127.0.0.1:", "127.0.0.1:1"), far, "mailto:a@b.example");
        let expired = sender.authorization(push.origin(), system_now_secs() - 10, "mailto:a@b.example");
        let too_long = sender.authorization(push.origin(), system_now_secs() + 25 * 3600, "mailto:a@b.example");
        let localhost = sender.authorization(push.origin(), far, "mailto:herold@localhost");
        let other_key = Sender::new().good_authorization(push.origin());
        let cases: Vec<(&str, &str, u16, &str)> = vec![
            ("TTL", "", 400, "missing TTL"),
            ("TTL", "-5", 400, "TTL"),
            ("Urgency", "urgent", 400, "Urgency"),
            ("Topic", "this-topic-is-way-too-long-for-apple-and-rfc", 400, "Topic of"),
            ("Topic", "bad topic", 400, "alphabet"),
            ("Topic", "abcde", 400, "mod 4"),
            ("Content-Encoding", "aesgcm", 400, "aesgcm"),
            ("Content-Encoding", "", 400, "Content-Encoding"),
            ("Authorization", "", 401, "missing Authorization"),
            ("Authorization", "WebPush x.y.z", 401, "obsolete draft"),
            ("Authorization", &wrong_aud, 403, "aud"),
            ("Authorization", &expired, 403, "expired"),
            ("Authorization", &too_long, 403, "24 h"),
            ("Authorization", &localhost, 403, "localhost"),
            ("Authorization", &other_key, 403, "VapidPkHashMismatch"),
        ];
        for (i, &(header, value, status, reason)) in cases.iter().enumerate() {
            let (got, res) = send(&push, &sender, &sub, &p, &[(header, value)]);
            assert_eq!(got, status, "case {i} ({reason}): {res}");
            let v = push.violations();
            assert_eq!(v.len(), i + 1, "case {i} recorded");
            assert!(v[i].reason.contains(reason), "case {i}: {:?} should mention {reason:?}", v[i].reason);
            assert_eq!(v[i].status, status);
        }
        // Signed by another key but claiming k = the configured key: 401.
        let forged = jwt(&Sender::new().key, json!({"aud": push.origin(), "exp": far, "sub": "mailto:a@b.example"}));
        let forged = format!("vapid t={forged}, k={}", sender.public_b64);
        assert_eq!(send(&push, &sender, &sub, &p, &[("Authorization", &forged)]).0, 401);

        // Too large a body: 413.
        let big = json!({"pad": "x".repeat(4100)});
        let (got, res) = send(&push, &sender, &sub, &big, &[]);
        assert_eq!(got, 413, "{res}");

        // Garbage body, and a body encrypted for another device: 400.
        let auth = sender.good_authorization(push.origin());
        let headers = [("TTL", "60"), ("Content-Encoding", "aes128gcm"), ("Authorization", auth.as_str())];
        assert_eq!(post(&sub.endpoint, &headers, &[7u8; 200]).0, 400);
        let other = push.new_subscription();
        assert_eq!(post(&sub.endpoint, &headers, &encrypt(&other, b"{}")).0, 400);

        // Not JSON: 400. Reused salt and key for another message: 400. Same message again: fine.
        assert_eq!(post(&sub.endpoint, &headers, &encrypt(&sub, b"not json")).0, 400);
        let eph = SecretKey::random(&mut rand::thread_rng());
        let eph_public = eph.public_key().to_encoded_point(false);
        let eph = (&eph, eph_public.as_bytes());
        let one = encrypt_with(eph, [9; 16], &b64(&sub.p256dh), &b64(&sub.auth), b"{\"a\":1}", 0);
        let two = encrypt_with(eph, [9; 16], &b64(&sub.p256dh), &b64(&sub.auth), b"{\"a\":2}", 3);
        assert_eq!(post(&sub.endpoint, &headers, &one).0, 201);
        assert_eq!(post(&sub.endpoint, &headers, &one).0, 201, "a retry of the same body is fine");
        assert_eq!(post(&sub.endpoint, &headers, &two).0, 400);

        let n = push.violations().len();
        assert_eq!(n, cases.len() + 6);
        assert_eq!(push.count(), 2);
        assert_eq!(push.requests().len(), n + 2);
        assert!(push.requests().iter().all(|r| r.status != 0));
    }

    #[test]
    fn programmed_answers() {
        let sender = Sender::new();
        let push = TestPushService::start(&sender.public_b64);
        let (a, b) = (push.new_subscription(), push.new_subscription());
        let p = json!({"m": 1});

        push.program_for(&a.id, Program::status(410));
        push.program_all(Program::too_many_requests(7).times(2));
        push.program_all(Program::status(500).once());

        assert_eq!(send(&push, &sender, &a, &p, &[]).0, 410);
        assert_eq!(send(&push, &sender, &a, &p, &[]).0, 410, "forever");
        let (status, res) = send(&push, &sender, &b, &p, &[]);
        assert_eq!(status, 429);
        assert!(res.to_ascii_lowercase().contains("retry-after: 7"), "{res}");
        assert_eq!(send(&push, &sender, &b, &p, &[]).0, 429);
        assert_eq!(send(&push, &sender, &b, &p, &[]).0, 500);
        assert_eq!(send(&push, &sender, &b, &p, &[]).0, 201);
        assert_eq!(push.count(), 1);
        let statuses: Vec<u16> = push.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [410, 410, 429, 429, 500, 201]);
        assert_eq!(push.requests()[2].retry_after, Some(7));
        assert_eq!(push.requests()[2].outcome, Outcome::Programmed);

        // A slow answer.
        push.clear_programs();
        push.program_for(&b.id, Program::delay(Duration::from_millis(300)).once());
        let started = Instant::now();
        assert_eq!(send(&push, &sender, &b, &p, &[]).0, 201);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(push.count(), 2);

        // A client that gives up during a slow, failing answer: nothing delivered.
        push.program_for(&b.id, Program::status(503).with_delay(Duration::from_millis(800)).once());
        let auth = sender.good_authorization(push.origin());
        let body = encrypt(&b, b"{\"late\":true}");
        let rest = push.origin().strip_prefix("http://").unwrap().to_owned();
        let mut stream = TcpStream::connect(&rest).unwrap();
        let req = format!(
            "POST /push/{} HTTP/1.1\r\nHost: {rest}\r\nTTL: 60\r\nContent-Encoding: aes128gcm\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
            b.id,
            body.len()
        );
        stream.write_all(req.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(push.in_flight(), 1);
        drop(stream);
        assert!(push.wait_for_requests(8, Duration::from_secs(3)));
        assert_eq!(push.in_flight(), 0);
        let last = push.requests().pop().unwrap();
        assert_eq!((last.status, last.outcome), (503, Outcome::Programmed));
        assert_eq!(push.count(), 2);
        push.assert_no_violations();
    }

    #[actix_web::test]
    async fn async_wait_from_an_actix_test() {
        let sender = Sender::new();
        let push = TestPushService::start(&sender.public_b64);
        let subs = push.new_subscriptions(3);
        let (push2, subs2) = (push.clone(), subs.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            for s in &subs2 {
                assert_eq!(send(&push2, &sender, s, &json!({"id": s.id}), &[]).0, 201);
            }
        });
        assert!(push.wait_for_async(3, Duration::from_secs(10)).await);
        assert!(!push.wait_for_async(4, Duration::from_millis(50)).await);
        t.join().unwrap();
        for s in &subs {
            assert_eq!(push.deliveries_for(&s.id)[0].payload["id"], s.id);
        }
        push.assert_no_violations();
    }

    /// Bulk keygen and throughput. `PUSH_SERVICE_LOAD=20000` for the real size.
    #[test]
    fn many_devices_and_requests() {
        let n: usize = std::env::var("PUSH_SERVICE_LOAD").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let sender = Sender::new();
        let push = TestPushService::start(&sender.public_b64);
        let started = Instant::now();
        let subs = push.new_subscriptions(n);
        let keygen = started.elapsed();
        assert_eq!(subs.len(), n);
        let ids: std::collections::HashSet<_> = subs.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids.len(), n);
        let keys: std::collections::HashSet<_> = subs.iter().map(|s| s.p256dh.clone()).collect();
        assert_eq!(keys.len(), n);

        // Encrypt first (ephemeral keys stepped too), so the timing below is the service's.
        let started = Instant::now();
        let threads = 4;
        let chunk = n.div_ceil(threads);
        let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = subs
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let ephemeral = stepped_keys(part.len());
                        part.iter()
                            .zip(&ephemeral)
                            .map(|(sub, (secret, public))| {
                                let mut salt = [0u8; 16];
                                rand::thread_rng().fill_bytes(&mut salt);
                                let json = format!("{{\"to\":\"{}\"}}", sub.id);
                                encrypt_with(
                                    (secret, public),
                                    salt,
                                    &b64(&sub.p256dh),
                                    &b64(&sub.auth),
                                    json.as_bytes(),
                                    0,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let encrypting = started.elapsed();

        let started = Instant::now();
        std::thread::scope(|s| {
            for (part, part_bodies) in subs.chunks(chunk).zip(bodies.chunks(chunk)) {
                let (push, sender) = (&push, &sender);
                s.spawn(move || {
                    // Like Herold: one JWT per origin, reused.
                    let auth = sender.good_authorization(push.origin());
                    let headers = [("TTL", "60"), ("Content-Encoding", "aes128gcm"), ("Authorization", auth.as_str())];
                    for (sub, body) in part.iter().zip(part_bodies) {
                        let (status, res) = post(&sub.endpoint, &headers, body);
                        assert_eq!(status, 201, "{res}");
                    }
                });
            }
        });
        let serving = started.elapsed();
        assert!(push.wait_for(n, Duration::from_secs(10)));
        eprintln!(
            "{n} devices: keygen {keygen:?}; test sender encrypted in {encrypting:?}; \
             service checked, decrypted and recorded {n} pushes in {serving:?}"
        );
        for d in push.deliveries().iter().take(50) {
            assert_eq!(d.payload["to"], d.subscription_id);
        }
        push.assert_no_violations();
    }
}
