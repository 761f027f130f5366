//! Abuse limits: request rates per client address (login, registration,
//! device creation, reports, alerts, residents' issues, questions and votes —
//! those also per device) and the login lock-out's settings.
//!
//! Rates are kept in memory only — a GCRA bucket per (limit, address) in
//! `governor`'s keyed store, driven by the app clock — never stored in the
//! database and never logged: the address is a key, nothing more. Each
//! instance counts on its own, so N instances behind a load balancer allow up
//! to N times the rate; that is the price of keeping addresses out of shared
//! storage.
//!
//! A handler opts in with the [`Limited`] extractor, placed first among its
//! arguments so that a refused request costs no body parsing:
//! `async fn login(_limit: Limited<Login>, …)`.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::state::{AppState, Clock};

/// The rate-limited actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Login,
    Register,
    Devices,
    Reports,
    Alerts,
    TestNotifications,
    Issues,
    Questions,
    Votes,
}

impl Limit {
    pub const ALL: [Limit; 9] = [
        Limit::Login,
        Limit::Register,
        Limit::Devices,
        Limit::Reports,
        Limit::Alerts,
        Limit::TestNotifications,
        Limit::Issues,
        Limit::Questions,
        Limit::Votes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::Register => "register",
            Limit::Devices => "devices",
            Limit::Reports => "reports",
            Limit::Alerts => "alerts",
            Limit::TestNotifications => "test_notifications",
            Limit::Issues => "issues",
            Limit::Questions => "questions",
            Limit::Votes => "votes",
        }
    }

    /// The environment variable that sets this limit.
    pub fn variable(self) -> String {
        format!("HEROLD_RATE_LIMIT_{}", self.name().to_uppercase())
    }

    /// Defaults: generous for people, tight for scripts.
    pub fn default_rate(self) -> Rate {
        match self {
            Limit::Login => Rate::new(10, 60),
            Limit::Register => Rate::new(5, 3600),
            Limit::Devices => Rate::new(30, 3600),
            Limit::Reports => Rate::new(20, 3600),
            Limit::Alerts => Rate::new(10, 3600),
            // Each one is a real push signed with the town's key: a flood could
            // make a push service throttle the whole origin.
            Limit::TestNotifications => Rate::new(5, 3600),
            // A resident's issue reports and their photos (one each).
            Limit::Issues => Rate::new(20, 3600),
            // Questions in a question hour and posts to an issue's thread.
            Limit::Questions => Rate::new(30, 3600),
            // Upvotes and their withdrawal in a question hour: each one goes
            // out to every listener of the session.
            Limit::Votes => Rate::new(120, 3600),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `count` requests per `per`, as a burst of `count` that refills evenly
/// (GCRA): after a burst, one more every `per / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    /// `count` ≥ 1 per `secs` ≥ 1 (a zero becomes one).
    pub fn new(count: u32, secs: u64) -> Rate {
        Rate { count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN), per: Duration::from_secs(secs.max(1)) }
    }

    /// Reads `off`, or `N/unit` with unit `second`, `minute`, `hour` or
    /// `day` (also `s`, `min`, `m`, `h`, `d`, and plurals).
    pub fn parse(variable: &str, text: &str) -> Result<Option<Rate>, ConfigError> {
        let text = text.trim().to_ascii_lowercase();
        if matches!(text.as_str(), "off" | "none") {
            return Ok(None);
        }
        let bad = || ConfigError {
            variable: variable.to_owned(),
            message: format!("'{text}' is not a rate like 10/minute, 5/hour or off"),
        };
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let secs = match unit.trim().trim_end_matches('s') {
            "" | "second" | "sec" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Some(Rate::new(count, secs)))
    }
}

/// The abuse-limit settings of `Config`.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// One entry per [`Limit`], in `Limit::ALL` order; `None` is off.
    pub rates: [Option<Rate>; Limit::ALL.len()],
    /// Reverse proxies whose `X-Forwarded-For` is believed (`HEROLD_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
    /// Consecutive failed logins that lock an account; 0 disables the lock-out.
    pub lockout_failures: u32,
    /// How long a locked account stays locked.
    pub lockout_ms: i64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            rates: Limit::ALL.map(|l| Some(l.default_rate())),
            trusted_proxies: Vec::new(),
            lockout_failures: 10,
            lockout_ms: 15 * 60 * 1000,
        }
    }
}

impl LimitsConfig {
    pub fn rate(&self, limit: Limit) -> Option<Rate> {
        self.rates[limit.index()]
    }

    pub fn set_rate(&mut self, limit: Limit, rate: Option<Rate>) {
        self.rates[limit.index()] = rate;
    }

    /// Every rate limit off (tests and tools that send many requests from
    /// one address; the lock-out stays).
    pub fn without_rates(mut self) -> Self {
        self.rates = [None; Limit::ALL.len()];
        self
    }

    /// Reads `HEROLD_TRUSTED_PROXIES`: addresses or networks, comma-separated.
    pub fn parse_proxies(text: &str) -> Result<Vec<IpNet>, ConfigError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>().or_else(|_| item.parse::<IpAddr>().map(IpNet::from)).map_err(|_| ConfigError {
                    variable: "HEROLD_TRUSTED_PROXIES".into(),
                    message: format!("'{item}' is not an address or network like 10.0.0.2 or 172.16.0.0/12"),
                })
            })
            .collect()
    }
}

/// The app clock as `governor` sees it: nanoseconds since the epoch, so that
/// tests that pin and move the app clock move the buckets too.
#[derive(Clone)]
struct AppClock(Clock);

impl governor::clock::Clock for AppClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_ms().max(0) as u64 * 1_000_000)
    }
}

type Buckets<K> = RateLimiter<K, DashMapStateStore<K>, AppClock, NoOpMiddleware<Nanos>>;

/// Forgotten buckets are swept every so many checks (per limit), so memory
/// stays bounded by the addresses seen within one refill period.
const SWEEP_EVERY: u64 = 1024;

/// The in-memory buckets of every limit; one per app (`AppState`).
pub struct RateLimits {
    buckets: Vec<Option<Buckets<IpAddr>>>,
    /// The same rates per resident device (issues, questions): a device
    /// behind a shared address (a town hall's Wi-Fi, carrier NAT) is held to
    /// its own share, and one device cannot hop addresses to go faster.
    device_buckets: Vec<Option<Buckets<String>>>,
    checks: AtomicU64,
    trusted: Vec<IpNet>,
}

impl RateLimits {
    pub fn new(config: &LimitsConfig, clock: Clock) -> Self {
        RateLimits {
            buckets: Self::limiters(config, &clock),
            device_buckets: Self::limiters(config, &clock),
            checks: AtomicU64::new(0),
            trusted: config.trusted_proxies.clone(),
        }
    }

    fn limiters<K: std::hash::Hash + Eq + Clone>(config: &LimitsConfig, clock: &Clock) -> Vec<Option<Buckets<K>>> {
        Limit::ALL
            .iter()
            .map(|l| {
                let rate = config.rate(*l)?;
                let quota = Quota::with_period(rate.per / rate.count.get())?.allow_burst(rate.count);
                Some(RateLimiter::new(quota, DashMapStateStore::default(), AppClock(clock.clone())))
            })
            .collect()
    }

    /// Counts one request of `limit` from the request's client; refuses
    /// with 429 and the seconds to wait when its bucket is empty.
    pub fn check(&self, limit: Limit, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(buckets) = self.buckets.get(limit.index()).and_then(Option::as_ref) else { return Ok(()) };
        self.sweep();
        take(buckets, limit, &client_key(req, &self.trusted))
    }

    /// Counts one request of `limit` from a resident device (on top of its
    /// address's count, which the [`Limited`] extractor takes).
    pub fn check_device(&self, limit: Limit, device_id: &str) -> Result<(), ApiError> {
        let Some(buckets) = self.device_buckets.get(limit.index()).and_then(Option::as_ref) else { return Ok(()) };
        self.sweep();
        take(buckets, limit, &device_id.to_owned())
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for b in self.buckets.iter().flatten() {
                b.retain_recent();
                b.shrink_to_fit();
            }
            for b in self.device_buckets.iter().flatten() {
                b.retain_recent();
                b.shrink_to_fit();
            }
        }
    }
}

fn take<K: std::hash::Hash + Eq + Clone>(buckets: &Buckets<K>, limit: Limit, key: &K) -> Result<(), ApiError> {
    buckets.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(buckets.clock()));
        // Whole seconds, rounded up, at least one: `Retry-After: 0` invites a hot loop.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::info!(limit = limit.name(), "rate limit reached");
        ApiError::TooManyRequests(secs.max(1))
    })
}

/// The bucket key of a request's client. Without a peer address (in-process
/// test requests) every request shares one bucket. A peer on the trusted
/// proxy list is replaced by the nearest untrusted hop of `X-Forwarded-For`.
/// IPv6 clients are keyed by their /64: one host usually holds a whole /64.
pub fn client_key(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = canonical(peer);
    if is_trusted(&client) {
        // Each proxy appends the address it received from; read from the
        // right, the first address no trusted proxy vouches for is the client.
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = canonical(ip);
            if !is_trusted(&client) {
                break;
            }
        }
    }
    match client {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, dual-stack sockets) are IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Which limit a [`Limited`] extractor applies.
pub trait LimitKind {
    const LIMIT: Limit;
}

macro_rules! limit_kinds {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        $($(#[$meta])* pub struct $name; impl LimitKind for $name { const LIMIT: Limit = Limit::$name; })+
    };
}

limit_kinds!(
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/register`.
    Register,
    /// `POST /devices`.
    Devices,
    /// `POST /messages/{id}/reports`.
    Reports,
    /// `POST /admin/tenants/{slug}/alerts`.
    Alerts,
    /// `POST /devices/me/test-notification`.
    TestNotifications,
    /// `POST /groups/{id}/issues` and each photo upload (also per device).
    Issues,
    /// `POST /sessions/{id}/questions` and resident posts to an issue (also per device).
    Questions,
    /// `PUT` and `DELETE /sessions/{id}/questions/{qid}/vote` (also per device).
    Votes,
);

/// Extractor: counts the request against limit `L` of its client address,
/// or answers 429 `rate_limited` with `Retry-After`.
pub struct Limited<L: LimitKind>(PhantomData<L>);

impl<L: LimitKind> FromRequest for Limited<L> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => state.limits.check(L::LIMIT, req).map(|()| Limited(PhantomData)),
            None => Err(ApiError::Internal("AppState missing".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn rates_parse() {
        let r = |t| Rate::parse("X", t);
        assert_eq!(r("10/minute").ok().flatten(), Some(Rate::new(10, 60)));
        assert_eq!(r("5/h").ok().flatten(), Some(Rate::new(5, 3600)));
        assert_eq!(r(" 30 / hours ").ok().flatten(), Some(Rate::new(30, 3600)));
        assert_eq!(r("2/s").ok().flatten(), Some(Rate::new(2, 1)));
        assert_eq!(r("1/day").ok().flatten(), Some(Rate::new(1, 86_400)));
        assert!(matches!(r("off"), Ok(None)));
        for bad in ["", "10", "ten/minute", "0/minute", "10/fortnight", "-1/h"] {
            assert!(r(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_keys() {
        let trusted = LimitsConfig::parse_proxies("10.0.0.0/8, ::1").unwrap_or_default();
        let key = |peer: &str, xff: Option<&str>| {
            let mut req = TestRequest::default();
            if !peer.is_empty() {
                req = req.peer_addr(peer.parse().unwrap_or_else(|_| panic!("{peer}")));
            }
            if let Some(xff) = xff {
                req = req.insert_header(("X-Forwarded-For", xff));
            }
            client_key(&req.to_http_request(), &trusted).to_string()
        };
        assert_eq!(key("", None), "0.0.0.0");
        assert_eq!(key("203.0.113.7:5000", None), "203.0.113.7");
        // An untrusted peer's header is ignored.
        assert_eq!(key("203.0.113.7:5000", Some("198.51.100.1")), "203.0.113.7");
        // Behind trusted proxies: the nearest untrusted hop, never a spoofed one further left.
        assert_eq!(key("10.0.0.2:5000", Some("1.2.3.4, 198.51.100.1, 10.0.0.9")), "198.51.100.1");
        assert_eq!(key("[::1]:5000", Some("198.51.100.1:4711")), "198.51.100.1");
        assert_eq!(key("10.0.0.2:5000", None), "10.0.0.2");
        assert_eq!(key("10.0.0.2:5000", Some("garbage")), "10.0.0.2");
        // IPv6 by /64; IPv4-mapped as IPv4.
        assert_eq!(key("[2001:db8:1:2:3:4:5:6]:5000", None), "2001:db8:1:2::");
        assert_eq!(key("[::ffff:203.0.113.7]:5000", None), "203.0.113.7");
        assert!(LimitsConfig::parse_proxies("10.0.0.0/33").is_err());
    }
}
