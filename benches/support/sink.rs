//! The local HTTPS push sink of the benchmarks (`benches/fanout.rs`,
//! `benches/scale.rs`): a child process that answers every plausible Web
//! Push request `201` over HTTP/2 or HTTP/1.1 (ALPN switchable) and counts.
//! Spoken to line by line on stdin/stdout: `alpn h1|h2`, `expect N` (resets
//! the count; prints `reached N` when the N-th request is answered), `cpu`,
//! `count`. Prints `port P` when listening.
//!
//! The API tests start it in-process instead ([`Sink::start`]) to prove
//! Herold's HTTPS path: it counts TLS handshakes (completed and refused) and
//! the requests that came over HTTP/2.

use std::io::{BufRead, Write};

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// User + system CPU time of this (sink) process so far.
fn cpu_seconds() -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    t(ru.ru_utime) + t(ru.ru_stime)
}

#[derive(Default)]
pub struct Counter {
    /// Plausible Web Push requests answered `201`.
    pub count: AtomicU64,
    target: AtomicU64,
    pub bad: AtomicU64,
    bytes: AtomicU64,
    /// Of `count`, those that came over HTTP/2.
    pub h2: AtomicU64,
    /// TLS handshakes completed: connections opened by clients.
    pub handshakes: AtomicU64,
    /// TLS handshakes that failed (e.g. the client did not trust our certificate).
    pub refused_handshakes: AtomicU64,
}

/// A sink serving on `127.0.0.1:port` from its own runtime until dropped.
pub struct Sink {
    pub port: u16,
    pub counter: Arc<Counter>,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    h1: Arc<rustls::ServerConfig>,
    h2: Arc<rustls::ServerConfig>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sink {
    /// Listens with the `localhost` certificate (DER files of `certs.rs`),
    /// offering HTTP/2 and HTTP/1.1 by ALPN.
    pub fn start(cert: &std::path::Path, key: &std::path::Path) -> Sink {
        let cert = CertificateDer::from(std::fs::read(cert).expect("leaf"));
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(std::fs::read(key).expect("key")));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let make = |alpn: &[&[u8]]| {
            let mut c = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key.clone_key())
                .expect("certificate");
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        };
        let h2 = make(&[b"h2", b"http/1.1"]);
        let h1 = make(&[b"http/1.1"]);
        let current = Arc::new(RwLock::new(h2.clone()));
        let counter = Arc::new(Counter::default());

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
            .thread_name("sink")
            .enable_all()
            .build()
            .expect("runtime");
        // Bound outside the runtime: no `block_on`, which panics when the
        // caller is itself async (a test).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("addr").port();
        let (current_, counter_) = (current.clone(), counter.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            accept(listener, current_, counter_).await
        });
        Sink { port, counter, current, h1, h2, runtime: Some(runtime) }
    }

    /// Offers HTTP/1.1 only (`false`) or HTTP/2 and HTTP/1.1 (`true`) to new connections.
    pub fn offer_h2(&self, on: bool) {
        *self.current.write().unwrap() = if on { self.h2.clone() } else { self.h1.clone() };
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Not a plain drop: that panics when the owner is itself async (a test).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

pub fn main(args: &[String]) {
    let [cert, key] = args else { panic!("sink <leaf.der> <key.der>") };
    let sink = Sink::start(cert.as_ref(), key.as_ref());
    let counter = sink.counter.clone();
    out(&format!("port {}", sink.port));

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("alpn"), Some("h1")) => {
                sink.offer_h2(false);
                out("ok");
            }
            (Some("alpn"), _) => {
                sink.offer_h2(true);
                out("ok");
            }
            (Some("expect"), Some(n)) => {
                counter.count.store(0, Ordering::SeqCst);
                counter.bad.store(0, Ordering::SeqCst);
                counter.target.store(n.parse().unwrap_or(0), Ordering::SeqCst);
                out("ok");
            }
            (Some("cpu"), _) => out(&format!("cpu {}", cpu_seconds())),
            (Some("count"), _) => out(&format!(
                "count {} bad {} bytes {}",
                counter.count.load(Ordering::SeqCst),
                counter.bad.load(Ordering::SeqCst),
                counter.bytes.load(Ordering::SeqCst)
            )),
            _ => out("error unknown command"),
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    counter: Arc<Counter>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(current.read().unwrap().clone());
        let counter = counter.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                counter.refused_handshakes.fetch_add(1, Ordering::Relaxed);
                return;
            };
            counter.handshakes.fetch_add(1, Ordering::Relaxed);
            let service = hyper::service::service_fn(move |req| handle(req, counter.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Accepts what looks like a Web Push request (RFC 8030/8291/8292 headers
/// present, an aes128gcm body); does not decrypt — the test suite does.
async fn handle(req: Request<Incoming>, counter: Arc<Counter>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || !req.uri().path().starts_with("/push/") {
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    let http2 = req.version() == hyper::Version::HTTP_2;
    let headers = req.headers();
    let plausible = headers.contains_key("ttl")
        && headers.get("content-encoding").is_some_and(|v| v == "aes128gcm")
        && headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("vapid t="));
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(empty(StatusCode::BAD_REQUEST)),
    };
    // salt 16 + rs 4 + idlen 1 + key 65 + tag 16 + delimiter 1
    if !plausible || body.len() < 103 || body[20] != 65 {
        counter.bad.fetch_add(1, Ordering::Relaxed);
        return Ok(empty(StatusCode::BAD_REQUEST));
    }
    counter.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if http2 {
        counter.h2.fetch_add(1, Ordering::Relaxed);
    }
    let n = counter.count.fetch_add(1, Ordering::SeqCst) + 1;
    if n == counter.target.load(Ordering::SeqCst) {
        out(&format!("reached {n}"));
    }
    let mut response = empty(StatusCode::CREATED);
    response.headers_mut().insert("location", hyper::header::HeaderValue::from_static("/m/1"));
    Ok(response)
}
