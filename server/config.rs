//! Configuration: defaults, then an optional TOML file, then the environment.
//! The environment variable names are part of the contract (DESIGN.md).
//! A bad value stops start-up with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::db::Backend;
use crate::delivery::DeliveryConfig;
use crate::limits::{Limit, LimitsConfig, Rate};

/// Raw settings as read; keys are the variable names without `HEROLD_`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
struct RawConfig {
    database_url: Option<String>,
    listen: String,
    public_url: String,
    data_dir: String,
    vapid_subject: Option<String>,
    push_allowed_origins: String,
    push_ca_file: Option<String>,
    log: String,
    max_body_bytes: usize,
    access_log: bool,
    push_timeout_secs: u64,
    push_concurrency: usize,
    push_max_attempts: i32,
    delivery_batch_size: i64,
    delivery_lease_secs: i64,
    delivery_workers: usize,
    delivery_poll_secs: u64,
    device_retention_days: i64,
    rate_limit_login: String,
    rate_limit_register: String,
    rate_limit_devices: String,
    rate_limit_reports: String,
    rate_limit_alerts: String,
    rate_limit_test_notifications: String,
    rate_limit_issues: String,
    rate_limit_questions: String,
    rate_limit_votes: String,
    trusted_proxies: String,
    login_lockout_failures: u32,
    login_lockout_minutes: i64,
    shutdown_grace_secs: u64,
    shutdown_timeout_secs: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            database_url: None,
            listen: "127.0.0.1:8080".into(),
            public_url: "http://localhost:8080".into(),
            data_dir: "./data".into(),
            vapid_subject: None,
            push_allowed_origins: String::new(),
            push_ca_file: None,
            log: "info".into(),
            max_body_bytes: 64 * 1024,
            access_log: true,
            push_timeout_secs: 10,
            push_concurrency: 64,
            push_max_attempts: 8,
            delivery_batch_size: 500,
            delivery_lease_secs: 60,
            delivery_workers: 2,
            delivery_poll_secs: 1,
            device_retention_days: 60,
            rate_limit_login: "10/minute".into(),
            rate_limit_register: "5/hour".into(),
            rate_limit_devices: "30/hour".into(),
            rate_limit_reports: "20/hour".into(),
            rate_limit_alerts: "10/hour".into(),
            rate_limit_test_notifications: "5/hour".into(),
            rate_limit_issues: "20/hour".into(),
            rate_limit_questions: "30/hour".into(),
            rate_limit_votes: "120/hour".into(),
            trusted_proxies: String::new(),
            login_lockout_failures: 10,
            login_lockout_minutes: 15,
            shutdown_grace_secs: 5,
            shutdown_timeout_secs: 30,
        }
    }
}

/// The validated configuration handed to the rest of the program.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub vapid_subject: String,
    /// Extra push-service origins (`scheme://host[:port]`) besides the built-in ones.
    pub push_allowed_origins: Vec<Url>,
    pub push_ca_file: Option<PathBuf>,
    pub log: String,
    pub max_body_bytes: usize,
    pub access_log: bool,
    pub delivery: DeliveryConfig,
    /// Delivery workers per process (each walks one batch at a time); 0
    /// serves HTTP only and leaves delivery to other instances.
    pub delivery_workers: usize,
    /// Rate limits per client address, trusted proxies, login lock-out.
    pub limits: LimitsConfig,
    /// How long `/readyz` answers 503 "draining" after SIGTERM while the
    /// server still serves, so load balancers take the instance out first.
    pub shutdown_grace: std::time::Duration,
    /// The bound on the whole stop after SIGTERM (grace included).
    pub shutdown_timeout: std::time::Duration,
}

/// An error that names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

fn bad(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { variable: variable.to_owned(), message: message.into() }
}

impl Config {
    /// Reads defaults → `file` (TOML, if given) → environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(bad("HEROLD_CONFIG", format!("{} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::raw().only(&["DATABASE_URL"])).merge(Env::prefixed("HEROLD_").ignore(&["CONFIG"]));
        let raw: RawConfig = figment.extract().map_err(|e| {
            let key = e.path.first().cloned().unwrap_or_default();
            let variable = if key == "database_url" {
                "DATABASE_URL".to_owned()
            } else {
                format!("HEROLD_{}", key.to_uppercase())
            };
            bad(&variable, e.kind.to_string())
        })?;
        Self::validate(raw)
    }

    /// Builds a configuration from explicit values (tests, tools). Rate
    /// limits are off: tests and tools send many requests from one address
    /// (or none); a test of the limits sets `limits.rates` itself.
    pub fn for_database(database_url: &str, data_dir: PathBuf) -> Result<Self, ConfigError> {
        let raw = RawConfig {
            database_url: Some(database_url.to_owned()),
            data_dir: data_dir.to_string_lossy().into_owned(),
            ..RawConfig::default()
        };
        let mut config = Self::validate(raw)?;
        config.limits = config.limits.without_rates();
        Ok(config)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let limits = limits_config(&raw)?;
        let data_dir = PathBuf::from(&raw.data_dir);
        let database_url =
            raw.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("herold.db").display()));
        let backend = Backend::from_url(&database_url).map_err(|m| bad("DATABASE_URL", m))?;
        let listen: SocketAddr = raw
            .listen
            .parse()
            .map_err(|_| bad("HEROLD_LISTEN", format!("'{}' is not an address like 127.0.0.1:8080", raw.listen)))?;
        let public_url = Url::parse(&raw.public_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| bad("HEROLD_PUBLIC_URL", format!("'{}' is not an absolute http(s) URL", raw.public_url)))?;
        let vapid_subject = match raw.vapid_subject {
            Some(s) if s.starts_with("mailto:") || s.starts_with("https:") => s,
            Some(s) => return Err(bad("HEROLD_VAPID_SUBJECT", format!("'{s}' must be a mailto: or https: contact"))),
            None => default_vapid_subject(&public_url),
        };
        let mut push_allowed_origins = Vec::new();
        for item in raw.push_allowed_origins.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = Url::parse(item)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    bad(
                        "HEROLD_PUSH_ALLOWED_ORIGINS",
                        format!("'{item}' is not an origin like https://push.example.org:8443"),
                    )
                })?;
            push_allowed_origins.push(url);
        }
        let push_ca_file = raw.push_ca_file.filter(|s| !s.is_empty()).map(PathBuf::from);
        if let Some(path) = &push_ca_file {
            if !path.is_file() {
                return Err(bad("HEROLD_PUSH_CA_FILE", format!("{} is not a readable file", path.display())));
            }
        }
        if raw.max_body_bytes < 1024 {
            return Err(bad("HEROLD_MAX_BODY_BYTES", "must be at least 1024"));
        }
        let positive = |variable: &str, value: i64, max: i64| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(bad(variable, format!("{value} is not between 1 and {max}")))
            }
        };
        positive("HEROLD_PUSH_TIMEOUT_SECS", raw.push_timeout_secs as i64, 300)?;
        positive("HEROLD_PUSH_CONCURRENCY", raw.push_concurrency as i64, 10_000)?;
        positive("HEROLD_PUSH_MAX_ATTEMPTS", raw.push_max_attempts as i64, 100)?;
        positive("HEROLD_DELIVERY_BATCH_SIZE", raw.delivery_batch_size, 100_000)?;
        positive("HEROLD_DELIVERY_LEASE_SECS", raw.delivery_lease_secs, 86_400)?;
        if raw.delivery_workers > 256 {
            return Err(bad("HEROLD_DELIVERY_WORKERS", "must be between 0 (HTTP only) and 256"));
        }
        positive("HEROLD_DELIVERY_POLL_SECS", raw.delivery_poll_secs as i64, 3600)?;
        positive("HEROLD_SHUTDOWN_TIMEOUT_SECS", raw.shutdown_timeout_secs as i64, 3600)?;
        if raw.shutdown_grace_secs >= raw.shutdown_timeout_secs {
            return Err(bad(
                "HEROLD_SHUTDOWN_GRACE_SECS",
                format!(
                    "{} must be less than HEROLD_SHUTDOWN_TIMEOUT_SECS ({}), which bounds the whole stop",
                    raw.shutdown_grace_secs, raw.shutdown_timeout_secs
                ),
            ));
        }
        positive("HEROLD_DEVICE_RETENTION_DAYS", raw.device_retention_days, 3650)?;
        let delivery = DeliveryConfig {
            batch_size: raw.delivery_batch_size,
            per_origin_concurrency: raw.push_concurrency,
            concurrency: (raw.push_concurrency * 4).max(64),
            request_timeout: std::time::Duration::from_secs(raw.push_timeout_secs),
            lease_ms: raw.delivery_lease_secs * 1000,
            max_attempts: raw.push_max_attempts,
            poll_interval: std::time::Duration::from_secs(raw.delivery_poll_secs),
            device_retention_ms: raw.device_retention_days * 24 * 3600 * 1000,
        };
        tracing_subscriber::EnvFilter::try_new(&raw.log)
            .map_err(|e| bad("HEROLD_LOG", format!("'{}': {e}", raw.log)))?;
        Ok(Config {
            backend,
            listen,
            public_url,
            data_dir,
            vapid_subject,
            push_allowed_origins,
            push_ca_file,
            log: raw.log,
            max_body_bytes: raw.max_body_bytes,
            access_log: raw.access_log,
            delivery,
            delivery_workers: raw.delivery_workers,
            limits,
            shutdown_grace: std::time::Duration::from_secs(raw.shutdown_grace_secs),
            shutdown_timeout: std::time::Duration::from_secs(raw.shutdown_timeout_secs),
        })
    }
}

/// Each limit with the text of its `HEROLD_RATE_LIMIT_*` setting.
fn rate_settings(raw: &RawConfig) -> [(Limit, &String); Limit::ALL.len()] {
    [
        (Limit::Login, &raw.rate_limit_login),
        (Limit::Register, &raw.rate_limit_register),
        (Limit::Devices, &raw.rate_limit_devices),
        (Limit::Reports, &raw.rate_limit_reports),
        (Limit::Alerts, &raw.rate_limit_alerts),
        (Limit::TestNotifications, &raw.rate_limit_test_notifications),
        (Limit::Issues, &raw.rate_limit_issues),
        (Limit::Questions, &raw.rate_limit_questions),
        (Limit::Votes, &raw.rate_limit_votes),
    ]
}

fn limits_config(raw: &RawConfig) -> Result<LimitsConfig, ConfigError> {
    let mut limits = LimitsConfig::default();
    for (limit, text) in rate_settings(raw) {
        limits.set_rate(limit, Rate::parse(&limit.variable(), text)?);
    }
    limits.trusted_proxies = LimitsConfig::parse_proxies(&raw.trusted_proxies)?;
    if raw.login_lockout_failures > 1000 {
        return Err(bad("HEROLD_LOGIN_LOCKOUT_FAILURES", "must be between 0 (off) and 1000"));
    }
    if !(1..=24 * 60).contains(&raw.login_lockout_minutes) {
        return Err(bad("HEROLD_LOGIN_LOCKOUT_MINUTES", "must be between 1 and 1440"));
    }
    limits.lockout_failures = raw.login_lockout_failures;
    limits.lockout_ms = raw.login_lockout_minutes * 60 * 1000;
    Ok(limits)
}

/// `mailto:` address at the public URL's host. Apple refuses `@localhost`
/// subjects (WEBPUSH.md), so a local instance gets a `.invalid`-free
/// placeholder an operator is told to replace.
fn default_vapid_subject(public_url: &Url) -> String {
    let host = public_url.host_str().unwrap_or("localhost");
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
        "mailto:admin@herold.example.org".to_owned()
    } else {
        format!("mailto:admin@{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new limit needs its setting: every limit is read from the
    /// configuration, and the default texts are the limits' defaults.
    #[test]
    fn every_rate_limit_has_a_setting_with_its_default() {
        let raw = RawConfig::default();
        let settings = rate_settings(&raw);
        for limit in Limit::ALL {
            let (_, text) =
                settings.iter().find(|(l, _)| *l == limit).unwrap_or_else(|| panic!("{limit:?} has no setting"));
            assert_eq!(Rate::parse(&limit.variable(), text).ok().flatten(), Some(limit.default_rate()), "{limit:?}");
        }
    }
}
