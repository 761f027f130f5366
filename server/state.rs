//! What every handler is handed: configuration, the pool, the installation's
//! keys and the clock. Nothing global: a test can build two apps side by side.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use diesel::prelude::*;

use crate::auth::jwt::JwtKeys;
use crate::auth::secrets;
use crate::config::Config;
use crate::db::schema::server_secrets;
use crate::db::{self, DbConn, Pool};
use crate::error::ApiResult;
use crate::push::allowlist::PushAllowlist;
use crate::push::vapid::VapidKeys;

/// Wall-clock time in UTC milliseconds; tests may pin and move it.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Clock(None)
    }

    pub fn fixed(at_ms: i64) -> Self {
        Clock(Some(Arc::new(AtomicI64::new(at_ms))))
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }

    /// Moves a fixed clock forward; a system clock ignores it.
    pub fn advance_ms(&self, ms: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// Photos decoded at once per instance (`AppState::photo_slots`).
const PHOTO_SLOTS: usize = 2;
/// Photo uploads held in memory at once per instance (`AppState::upload_slots`).
pub const UPLOAD_SLOTS: usize = 8;

pub struct Keys {
    pub jwt: JwtKeys,
    pub vapid: VapidKeys,
    /// Keys the HMAC behind residents' pseudonyms (`talk::pseudonym`).
    pub pseudonym: Vec<u8>,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub keys: Arc<Keys>,
    pub clock: Clock,
    pub allowlist: Arc<PushAllowlist>,
    /// Wakes delivery workers when a message is posted.
    pub wake: Arc<tokio::sync::Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Per-address request rates, in memory only.
    pub limits: Arc<crate::limits::RateLimits>,
    /// Set on SIGTERM: `/readyz` answers 503 so load balancers stop routing
    /// here while the server still serves for the grace period.
    pub draining: Arc<AtomicBool>,
    /// The question hours' live streams on this instance.
    pub live: Arc<crate::live::Hub>,
    /// Photos decoded at once: each may take a few hundred MiB for a moment.
    pub photo_slots: Arc<tokio::sync::Semaphore>,
    /// Photo uploads whose bodies (up to 10 MiB) may be held at once.
    pub upload_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Connects, migrates and loads (or creates) the installation's keys.
    pub fn open(config: Config, clock: Clock) -> Result<Self, String> {
        let pool = db::pool(&config.backend, None)?;
        let mut conn = pool.get().map_err(|e| format!("cannot connect to the database: {e}"))?;
        db::run_migrations(&mut conn)?;
        let keys = load_keys(&mut conn, clock.now_ms())?;
        drop(conn);
        let allowlist = PushAllowlist::new(&config.push_allowed_origins);
        let limits = crate::limits::RateLimits::new(&config.limits, clock.clone());
        Ok(AppState {
            config: Arc::new(config),
            pool,
            keys: Arc::new(keys),
            clock,
            allowlist: Arc::new(allowlist),
            wake: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            limits: Arc::new(limits),
            draining: Arc::new(AtomicBool::new(false)),
            live: Arc::new(crate::live::Hub::default()),
            photo_slots: Arc::new(tokio::sync::Semaphore::new(PHOTO_SLOTS)),
            upload_slots: Arc::new(tokio::sync::Semaphore::new(UPLOAD_SLOTS)),
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Marks this instance as shutting down (see `draining`).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs blocking database work on the blocking pool, in one transaction
    /// (on SQLite one that takes the write lock up front: `dialect::write_transaction`).
    pub async fn tx<T, F>(&self, work: F) -> ApiResult<T>
    where
        F: FnOnce(&mut DbConn) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            let conn: &mut DbConn = &mut conn;
            db::dialect::write_transaction(conn, work)
        })
        .await?
    }
}

/// The `server_secrets` row of the VAPID private key (`herold import` may replace it).
pub const VAPID_SECRET: &str = "vapid_private_key";
const JWT_SECRET: &str = "jwt_hs256_key";
/// The `server_secrets` row behind residents' pseudonyms (carried by `herold export --with-keys`).
pub const PSEUDONYM_SECRET: &str = "pseudonym_hmac_key";

/// Reads a named secret, creating it with `make` if absent. Several instances
/// starting at once agree: the first insert wins and everyone reads it back.
fn secret_or_create(conn: &mut DbConn, name: &str, now: i64, make: impl FnOnce() -> String) -> Result<String, String> {
    let existing: Option<String> = server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first(conn)
        .optional()
        .map_err(|e| format!("reading {name}: {e}"))?;
    if let Some(value) = existing {
        return Ok(value);
    }
    crate::db::dialect::insert_secret_if_absent(conn, name, &make(), now)
        .map_err(|e| format!("storing {name}: {e}"))?;
    server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .first(conn)
        .map_err(|e| format!("reading {name}: {e}"))
}

pub fn load_keys(conn: &mut DbConn, now: i64) -> Result<Keys, String> {
    let vapid = secret_or_create(conn, VAPID_SECRET, now, || VapidKeys::generate().to_stored())?;
    let jwt = secret_or_create(conn, JWT_SECRET, now, || secrets::new_secret("jwt"))?;
    let pseudonym = secret_or_create(conn, PSEUDONYM_SECRET, now, || secrets::new_secret("psn"))?;
    Ok(Keys {
        jwt: JwtKeys::from_secret(jwt.as_bytes()),
        vapid: VapidKeys::from_stored(&vapid)?,
        pseudonym: pseudonym.into_bytes(),
    })
}
