//! The push client's HTTPS path against a real TLS push service: rustls
//! trusting an extra CA from `push_ca_file` (`HEROLD_PUSH_CA_FILE`), HTTP/2
//! negotiated by ALPN when the push service offers it, HTTP/1.1 when it does
//! not, and one kept-alive connection instead of a handshake per
//! notification. The push service is the benchmarks' HTTPS sink
//! (`benches/support/sink.rs`, certificates from `benches/support/certs.rs`),
//! started in-process; it answers `201` and counts handshakes and protocols.
//! Decryption and VAPID are checked elsewhere (`delivery.rs`); this file owns
//! only the transport.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use herold::db::schema::delivery_retries;
use herold::delivery::{Delivery, DeliveryConfig};
use herold::AppState;

use crate::harness::*;

#[allow(dead_code)]
#[path = "../../benches/support/certs.rs"]
mod certs;
#[allow(dead_code)]
#[path = "../../benches/support/sink.rs"]
mod sink;

/// A push service at `https://localhost:<port>` whose certificate is signed
/// by a throw-away CA nobody trusts unless told to.
struct HttpsPushService {
    sink: sink::Sink,
    origin: String,
    ca_pem: PathBuf,
    _dir: tempfile::TempDir,
}

impl HttpsPushService {
    fn start() -> HttpsPushService {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = certs::write(dir.path());
        let sink = sink::Sink::start(&files.leaf_der, &files.key_der);
        let origin = format!("https://localhost:{}", sink.port);
        HttpsPushService { sink, origin, ca_pem: files.ca_pem, _dir: dir }
    }

    /// Notifications answered `201`.
    fn delivered(&self) -> u64 {
        self.sink.counter.count.load(Ordering::SeqCst)
    }

    /// Of those, the ones that came over HTTP/2.
    fn over_h2(&self) -> u64 {
        self.sink.counter.h2.load(Ordering::SeqCst)
    }

    /// TLS connections clients opened.
    fn handshakes(&self) -> u64 {
        self.sink.counter.handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes that did not complete.
    fn refused_handshakes(&self) -> u64 {
        self.sink.counter.refused_handshakes.load(Ordering::SeqCst)
    }

    fn malformed(&self) -> u64 {
        self.sink.counter.bad.load(Ordering::SeqCst)
    }
}

/// A second engine on the same database whose configuration also names
/// `push_ca_file`: what a `herold serve` started with `HEROLD_PUSH_CA_FILE`
/// would run. Each engine has its own pooled client. One request at a time
/// per origin, so the handshake count says whether the connection is kept:
/// requests racing to a fresh origin would each open one before ALPN says h2
/// (hyper's pool cannot know earlier), and finish those in the background.
fn engine_trusting(d: &Delivering, ca_pem: &std::path::Path) -> Arc<Delivery> {
    let mut config = (*d.app.state.config).clone();
    config.push_ca_file = Some(ca_pem.to_owned());
    let state = AppState { config: Arc::new(config), ..d.app.state.clone() };
    let engine = DeliveryConfig { per_origin_concurrency: 1, ..DeliverySetup::batch(500).engine };
    Delivery::new(state, engine).expect("engine with the CA file")
}

async fn retry_count(d: &Delivering) -> i64 {
    use diesel::prelude::*;
    d.app.with_conn(|c| delivery_retries::table.count().get_result(c).expect("count")).await
}

const DEVICES: u64 = 5;

async fn scenario(kind: Db) {
    let push = HttpsPushService::start();
    let setup = DeliverySetup { also_allowed: vec![push.origin.clone()], ..DeliverySetup::batch(500) };
    let Some(d) = Delivering::with_setup(kind, setup).await else { return };
    assert!(d.app.state.config.push_ca_file.is_none(), "the harness's own engine trusts only public roots");

    d.app.with_tenant("wismar").await;
    let admin = d.app.city_admin("wismar", "rathaus@wismar.de").await;
    let parish = d.app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
    let group = d.app.group(&parish, "Gemeindebrief", "church").await;
    // Real browser keys (the strict test service makes them), endpoints on the HTTPS sink.
    for sub in d.push.new_subscriptions(DEVICES as usize) {
        let sub = crate::push_service::Subscription { endpoint: format!("{}/push/{}", push.origin, sub.id), ..sub };
        let body = d.app.post("/api/v1/devices", None, sub.to_json()).await.expect(201);
        let device = Device { token: body["device_token"].as_str().expect("device token").to_owned() };
        d.follow(&device, &group).await;
    }

    // Without the CA file the push service's certificate is not trusted:
    // nothing is sent, every device waits for a retry, nothing is lost.
    let first = d.app.message(&parish.user, &group, "Adventskonzert").await;
    d.deliver().await;
    assert_eq!(push.delivered(), 0, "no request may pass an untrusted certificate");
    // The sink notices the client's alert on its own threads: give it a moment.
    let waited = std::time::Instant::now();
    while push.refused_handshakes() == 0 && waited.elapsed() < std::time::Duration::from_secs(5) {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(push.refused_handshakes() > 0, "the client did try TLS and refused the certificate");
    assert_eq!(push.handshakes(), 0);
    let stats = d.stats(&parish.user, &first).await;
    assert_eq!(stats["delivered"], 0, "{stats}");
    assert_eq!(stats["failed"], 0, "a TLS failure is a connection error, retried: {stats}");
    assert_eq!(stats["pending"], DEVICES, "{stats}");
    assert_eq!(retry_count(&d).await, DEVICES as i64);

    // With it, the retries arrive — over HTTP/2, which the sink offers by ALPN.
    let trusting = engine_trusting(&d, &push.ca_pem);
    d.app.advance(60_000);
    trusting.run_until_idle().await.expect("delivery");
    assert_eq!(push.delivered(), DEVICES, "every device got its notification");
    assert_eq!(push.malformed(), 0);
    assert_eq!(push.over_h2(), DEVICES, "HTTP/2 when the push service offers it");
    let stats = d.stats(&parish.user, &first).await;
    assert_eq!(stats["delivered"], DEVICES, "{stats}");
    assert_eq!(stats["pending"], 0, "{stats}");
    assert_eq!(retry_count(&d).await, 0);
    assert_eq!(push.handshakes(), 1, "{DEVICES} requests, one connection");

    // The next message rides the kept-alive connection: no new handshake.
    let second = d.app.message(&parish.user, &group, "Krippenspiel").await;
    trusting.run_until_idle().await.expect("delivery");
    assert_eq!(push.delivered(), 2 * DEVICES);
    assert_eq!(push.over_h2(), 2 * DEVICES);
    assert_eq!(push.handshakes(), 1, "the pooled connection is reused");
    assert_eq!(d.stats(&parish.user, &second).await["delivered"], DEVICES);

    // A push service that offers only HTTP/1.1 still gets every notification
    // (a fresh engine, so a fresh connection negotiates again).
    push.sink.offer_h2(false);
    let third = d.app.message(&parish.user, &group, "Sternsinger").await;
    engine_trusting(&d, &push.ca_pem).run_until_idle().await.expect("delivery");
    assert_eq!(push.delivered(), 3 * DEVICES);
    assert_eq!(push.over_h2(), 2 * DEVICES, "HTTP/1.1 where HTTP/2 is not offered");
    assert_eq!(d.stats(&parish.user, &third).await["delivered"], DEVICES);
}

mod a_private_push_service_is_reached_over_https_with_its_ca_file {
    use super::*;

    #[actix_web::test]
    async fn sqlite() {
        scenario(Db::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        scenario(Db::Postgres).await;
    }
}
