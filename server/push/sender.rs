//! Sends one encrypted message to one push endpoint and classifies the answer
//! (WEBPUSH.md, "What the answer means"). One pooled client (keep-alive,
//! HTTP/2 where offered, rustls), a per-request timeout, bounded concurrency
//! per push-service origin, and a resolver that refuses loopback, private and
//! link-local addresses unless the operator allowed that origin explicitly.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::Semaphore;
use url::Url;

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the push service accepted it.
    Delivered,
    /// 404/410: the subscription is gone; delete the device.
    Gone(u16),
    /// 400/413 and other 4xx: our request is wrong; do not retry.
    Rejected(String),
    /// 401/403: VAPID or key problem; alert the operator, never delete.
    AuthFailed(String),
    /// 429/406/5xx/timeout/connection error: try later (after `retry_after` s if given).
    Retry { reason: String, retry_after: Option<u64> },
    /// Not sent: the origin asked us to wait (`Retry-After`); not an attempt.
    Deferred { seconds: u64 },
}

impl Outcome {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Gone(_) => "gone",
            Outcome::Rejected(_) => "rejected",
            Outcome::AuthFailed(_) => "auth_failed",
            Outcome::Retry { .. } => "retry",
            Outcome::Deferred { .. } => "deferred",
        }
    }
}

/// One request to a push service.
pub struct PushRequest<'a> {
    pub endpoint: &'a Url,
    pub origin: &'a str,
    pub body: Vec<u8>,
    pub ttl: u32,
    pub urgency: &'a str,
    pub topic: Option<&'a str>,
    pub authorization: &'a str,
}

pub struct PushClientConfig {
    pub timeout: Duration,
    pub per_origin_concurrency: usize,
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Hosts of `HEROLD_PUSH_ALLOWED_ORIGINS`: may resolve to any address.
    pub trusted_hosts: HashSet<String>,
}

pub struct PushClient {
    http: reqwest::Client,
    per_origin_concurrency: usize,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl PushClient {
    pub fn new(config: PushClientConfig) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(config.per_origin_concurrency)
            .http2_adaptive_window(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Herold/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { trusted_hosts: config.trusted_hosts }));
        if let Some(pem) = config.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("HEROLD_PUSH_CA_FILE: not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err("HEROLD_PUSH_CA_FILE: no certificate in the file".into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| format!("push HTTP client: {e}"))?;
        Ok(PushClient {
            http,
            per_origin_concurrency: config.per_origin_concurrency.max(1),
            limits: Default::default(),
        })
    }

    fn limit(&self, origin: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits.entry(origin.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_origin_concurrency))).clone()
    }

    /// Sends, waiting for a slot of the request's origin first, so one slow
    /// push service holds only its own slots.
    pub async fn send(&self, req: PushRequest<'_>) -> Outcome {
        let limit = self.limit(req.origin);
        let Ok(_permit) = limit.acquire().await else {
            return Outcome::Retry { reason: "shutting down".into(), retry_after: None };
        };
        let mut request = self
            .http
            .post(req.endpoint.clone())
            .header("TTL", req.ttl.to_string())
            .header("Urgency", req.urgency)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", req.authorization)
            .body(req.body);
        if let Some(topic) = req.topic {
            request = request.header("Topic", topic);
        }
        match request.send().await {
            Ok(response) => classify(response).await,
            Err(e) if e.is_timeout() => Outcome::Retry { reason: "timeout".into(), retry_after: None },
            Err(e) => Outcome::Retry { reason: format!("connection: {}", without_url(&e)), retry_after: None },
        }
    }
}

/// reqwest errors print the URL, which is the device's endpoint: keep it out of logs.
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = String::from("request failed");
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

async fn classify(response: reqwest::Response) -> Outcome {
    let status = response.status().as_u16();
    let retry_after =
        response.headers().get("Retry-After").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let reason = |body: String| {
        let body: String = body.chars().take(200).collect();
        if body.trim().is_empty() {
            format!("{status}")
        } else {
            format!("{status} {}", body.trim())
        }
    };
    match status {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Gone(status),
        401 | 403 => Outcome::AuthFailed(reason(response.text().await.unwrap_or_default())),
        // 406 is Edge's (WNS) throttle answer.
        429 | 406 | 408 | 500..=599 => Outcome::Retry { reason: format!("{status}"), retry_after },
        _ => Outcome::Rejected(reason(response.text().await.unwrap_or_default())),
    }
}

/// True for addresses a push service may live at: not loopback, private,
/// link-local, unique-local, carrier-grade NAT, multicast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves push-service hosts, dropping non-public addresses (SSRF guard on
/// the resolved address, not just the name).
struct GuardedResolver {
    trusted_hosts: HashSet<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let trusted = self.trusted_hosts.contains(&host);
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs = reachable(&host, trusted, resolved)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The resolved addresses of `host` a push request may go to: all of them
/// for a host the operator allowed, else only public ones (a name that
/// resolves to a private address is the classic SSRF, DNS rebinding its
/// late variant: hence the check on every resolution, not at registration).
fn reachable(host: &str, trusted: bool, resolved: impl Iterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = resolved.filter(|a| trusted || is_public(a.ip())).collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no public address"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_only() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["142.250.185.74", "2a00:1450:4001:82b::200a"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), 0)).collect()
    }

    #[test]
    fn a_name_resolving_to_private_addresses_is_refused_unless_allowed() {
        // DNS rebinding: a harmless-looking name that answers with the metadata service.
        let private = addrs(&["169.254.169.254", "10.0.0.7", "::1"]);
        let refused = reachable("push.example", false, private.clone().into_iter()).unwrap_err();
        assert!(refused.contains("no public address"), "{refused}");
        // Only the public answers of a mixed resolution are used.
        let mixed = addrs(&["127.0.0.1", "142.250.185.74", "fd00::1"]);
        assert_eq!(reachable("push.example", false, mixed.into_iter()).unwrap(), addrs(&["142.250.185.74"]));
        // An origin of HEROLD_PUSH_ALLOWED_ORIGINS (a test or private push service) may be anywhere.
        assert_eq!(reachable("push.internal", true, private.clone().into_iter()).unwrap(), private);
    }

    fn resolver(trusted: &[&str]) -> GuardedResolver {
        GuardedResolver { trusted_hosts: trusted.iter().map(|h| h.to_string()).collect() }
    }

    async fn resolve(resolver: &GuardedResolver, host: &str) -> Result<Vec<SocketAddr>, String> {
        let name: Name = host.parse().map_err(|_| "bad name".to_owned())?;
        resolver.resolve(name).await.map(|addrs| addrs.collect()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn the_resolver_refuses_localhost_unless_its_origin_is_allowed() {
        let refused = resolve(&resolver(&[]), "localhost").await.unwrap_err();
        assert!(refused.contains("no public address"), "{refused}");
        let refused = resolve(&resolver(&["push.example"]), "localhost").await.unwrap_err();
        assert!(refused.contains("no public address"), "another host's permission does not carry over: {refused}");
        let allowed = resolve(&resolver(&["localhost"]), "localhost").await.expect("allowed");
        assert!(!allowed.is_empty() && allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }

    /// A one-connection-at-a-time HTTP server on loopback answering `201`,
    /// counting the connections it accepted.
    fn loopback_push_service() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        (port, accepted)
    }

    fn client(trusted: &[&str]) -> PushClient {
        PushClient::new(PushClientConfig {
            timeout: Duration::from_secs(5),
            per_origin_concurrency: 2,
            extra_ca_pem: None,
            trusted_hosts: trusted.iter().map(|h| h.to_string()).collect(),
        })
        .expect("client")
    }

    async fn send(client: &PushClient, endpoint: &Url) -> Outcome {
        let origin = endpoint.origin().ascii_serialization();
        client
            .send(PushRequest {
                endpoint,
                origin: &origin,
                body: vec![0; 100],
                ttl: 60,
                urgency: "normal",
                topic: None,
                authorization: "vapid t=x, k=y",
            })
            .await
    }

    #[tokio::test]
    async fn the_client_never_connects_to_loopback_unless_its_host_is_allowed() {
        let (port, accepted) = loopback_push_service();
        let endpoint = Url::parse(&format!("http://localhost:{port}/push/abc")).unwrap();
        match send(&client(&[]), &endpoint).await {
            Outcome::Retry { reason, .. } => assert!(reason.contains("no public address"), "{reason}"),
            other => panic!("sent to loopback: {other:?}"),
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "a connection reached the private address");
        // The same endpoint once the operator allowed its host.
        assert_eq!(send(&client(&["localhost"]), &endpoint).await, Outcome::Delivered);
        assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }
}
