//! The delivery engine: workers claim fan-out jobs and due retries from the
//! database (the durable outbox), send each device its encrypted,
//! VAPID-signed push, and record the outcomes. At-least-once: the job's
//! cursor advances only after a batch is recorded, so a crash re-sends at
//! most the batch in flight (the notification `tag` hides the duplicate).
//! No database connection is held while requests are in flight.

pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::db::{DbConn, Pool};
use crate::model::ts;
use crate::push::crypto;
use crate::push::payload::{self, Notification};
use crate::push::sender::{Outcome, PushClient, PushClientConfig, PushRequest};
use crate::push::vapid::VapidSigner;
use crate::state::AppState;
use store::{BatchResult, ClaimedJob, ClaimedRetry, MessageInfo, Target};

/// Tunables of the engine (from the configuration).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Devices per batch: the most a crash can deliver twice.
    pub batch_size: i64,
    /// Requests in flight per push-service origin.
    pub per_origin_concurrency: usize,
    /// Requests in flight per engine.
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// How long a claimed job or retry stays with one worker without news.
    pub lease_ms: i64,
    /// Attempts per device before a delivery counts as failed.
    pub max_attempts: i32,
    pub poll_interval: Duration,
    /// Devices not seen for this long are purged.
    pub device_retention_ms: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_size: 500,
            per_origin_concurrency: 64,
            concurrency: 256,
            request_timeout: Duration::from_secs(10),
            lease_ms: 60_000,
            max_attempts: 8,
            poll_interval: Duration::from_secs(1),
            device_retention_ms: 60 * 24 * 3600 * 1000,
        }
    }
}

/// First retry after 30 s, doubling up to an hour, with ±20 % jitter.
fn backoff_ms(attempts: i32, retry_after_secs: Option<u64>) -> i64 {
    let base = 30_000i64.saturating_mul(1i64 << (attempts.clamp(1, 8) - 1)).min(3_600_000);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    let backoff = (base as f64 * jitter) as i64;
    match retry_after_secs {
        Some(secs) => backoff.max(secs.min(7 * 24 * 3600) as i64 * 1000),
        None => backoff,
    }
}

/// What every device receives for `message` (before encryption): the same
/// plaintext for all of them.
pub fn message_payload(public_url: &url::Url, message: &MessageInfo) -> Vec<u8> {
    let navigate = format!("{}/m/{}", public_url.as_str().trim_end_matches('/'), message.id);
    let published_at = ts(message.publish_at);
    payload::build(&Notification {
        message_id: &message.id,
        group_id: &message.group_id,
        group_name: &message.group_name,
        tenant: &message.tenant,
        verified: message.verified,
        title: &message.title,
        body: &message.body,
        url: message.url.as_deref(),
        urgency: &message.urgency,
        published_at: &published_at,
        kind: &message.kind,
        navigate: &navigate,
    })
}

/// `Topic` header: a 32-character base64url hash of the message id, so a
/// repeated delivery replaces a queued one (Apple rejects lengths ≡ 1 mod 4).
pub fn topic(message_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(message_id.as_bytes()))[..32].to_owned()
}

/// What the requests of one batch have in common.
struct Shared {
    plaintext: Vec<u8>,
    topic: String,
}

fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// One engine per process; any number of processes may share a database.
pub struct Delivery {
    state: AppState,
    client: PushClient,
    signer: VapidSigner,
    config: DeliveryConfig,
    slots: Arc<tokio::sync::Semaphore>,
    /// Origins that answered 429 with `Retry-After`: no requests until then.
    paused: Mutex<HashMap<String, i64>>,
    stop: AtomicBool,
}

impl Delivery {
    pub fn new(state: AppState, config: DeliveryConfig) -> Result<Arc<Self>, String> {
        let extra_ca_pem = match &state.config.push_ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("HEROLD_PUSH_CA_FILE: {}: {e}", path.display()))?)
            }
            None => None,
        };
        let trusted_hosts = state
            .config
            .push_allowed_origins
            .iter()
            .filter_map(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
            .collect();
        let client = PushClient::new(PushClientConfig {
            timeout: config.request_timeout,
            per_origin_concurrency: config.per_origin_concurrency,
            extra_ca_pem,
            trusted_hosts,
        })?;
        let signer = VapidSigner::new(&state.keys.vapid, &state.config.vapid_subject)?;
        Ok(Arc::new(Delivery {
            slots: Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1))),
            state,
            client,
            signer,
            config,
            paused: Default::default(),
            stop: AtomicBool::new(false),
        }))
    }

    async fn db<T: Send + 'static>(
        pool: &Pool,
        work: impl FnOnce(&mut DbConn) -> diesel::QueryResult<T> + Send + 'static,
    ) -> Result<T, String> {
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| format!("database pool: {e}"))?;
            work(&mut conn).map_err(|e| format!("database: {e}"))
        })
        .await
        .map_err(|e| format!("blocking task: {e}"))?
    }

    /// Does one unit of work (a batch of a job, or a batch of retries).
    /// Returns whether there was any.
    pub async fn step(self: &Arc<Self>) -> Result<bool, String> {
        let now = self.state.now_ms();
        let lease = self.config.lease_ms;
        if let Some(job) = Self::db(&self.state.pool, move |c| store::claim_job(c, now, lease)).await? {
            self.run_job_batch(job).await?;
            return Ok(true);
        }
        let limit = self.config.batch_size;
        let retries = Self::db(&self.state.pool, move |c| store::claim_retries(c, now, lease, limit)).await?;
        if retries.is_empty() {
            return Ok(false);
        }
        self.run_retries(retries).await?;
        Ok(true)
    }

    /// Works until nothing is due (tests, and after a wake-up).
    pub async fn run_until_idle(self: &Arc<Self>) -> Result<(), String> {
        while self.step().await? {}
        Ok(())
    }

    async fn run_job_batch(self: &Arc<Self>, job: ClaimedJob) -> Result<(), String> {
        let message = Arc::new(job.message);
        let now = self.state.now_ms();
        let (walk, scope, cursor, limit) =
            (message.clone(), job.scope.clone(), job.cursor.clone(), self.config.batch_size);
        // A message hidden (or expired) before its fan-out is not sent.
        let expired = message.publish_at + message.ttl_seconds as i64 * 1000 <= now;
        let targets = if message.hidden || expired {
            Vec::new()
        } else {
            Self::db(&self.state.pool, move |c| store::next_targets(c, &walk, &scope, cursor.as_deref(), limit)).await?
        };
        let done = (targets.len() as i64) < limit;
        let new_cursor = targets.last().map(|t| t.device_id.clone()).or(job.cursor.clone());
        // A slow push service can keep a batch in flight longer than the
        // lease: renew it meanwhile, or another worker would send it again.
        let heartbeat = tokio::spawn(self.clone().keep_leased(job.job_id.clone()));
        let outcomes = self.send_all(&message, targets.clone()).await;
        heartbeat.abort();
        let mut result = BatchResult::default();
        let now = self.state.now_ms();
        for (target, outcome) in targets.iter().zip(outcomes) {
            self.apply(&message, &target.device_id, 0, None, outcome, now, &mut result);
        }
        let (message_id, job_id) = (message.id.clone(), job.job_id.clone());
        Self::db(&self.state.pool, move |c| {
            store::record(c, &message_id, &result, Some((&job_id, new_cursor.as_deref(), done)), now)
        })
        .await?;
        if done {
            self.finished(&message, now).await;
        }
        Ok(())
    }

    /// Renews a claimed job's lease every third of its length until aborted.
    async fn keep_leased(self: Arc<Self>, job_id: String) {
        let lease = self.config.lease_ms;
        loop {
            tokio::time::sleep(Duration::from_millis((lease / 3).max(100) as u64)).await;
            let (id, until) = (job_id.clone(), self.state.now_ms() + lease);
            if let Err(e) = Self::db(&self.state.pool, move |c| store::renew_lease(c, &id, until)).await {
                tracing::warn!(error = %e, "could not renew a fan-out lease");
            }
        }
    }

    async fn run_retries(self: &Arc<Self>, retries: Vec<ClaimedRetry>) -> Result<(), String> {
        // Group by message: each message's counters are recorded together.
        let mut by_message: HashMap<String, (Arc<MessageInfo>, Vec<(Target, String, i32)>)> = HashMap::new();
        for r in retries {
            by_message
                .entry(r.message.id.clone())
                .or_insert_with(|| (Arc::new(r.message.clone()), Vec::new()))
                .1
                .push((r.target, r.retry_id, r.attempts));
        }
        for (_, (message, items)) in by_message {
            let outcomes = self.send_all(&message, items.iter().map(|(t, _, _)| t.clone()).collect()).await;
            let now = self.state.now_ms();
            let mut result = BatchResult::default();
            for ((target, retry_id, attempts), outcome) in items.iter().zip(outcomes) {
                self.apply(&message, &target.device_id, *attempts, Some(retry_id), outcome, now, &mut result);
            }
            let message_id = message.id.clone();
            Self::db(&self.state.pool, move |c| store::record(c, &message_id, &result, None, now)).await?;
        }
        Ok(())
    }

    /// Sends the message to every target concurrently (bounded per engine and
    /// per origin); the outcomes come back in the targets' order.
    async fn send_all(self: &Arc<Self>, message: &Arc<MessageInfo>, targets: Vec<Target>) -> Vec<Outcome> {
        let mut set = JoinSet::new();
        let count = targets.len();
        // The plaintext and the topic are the same for every device: made once.
        let shared = Arc::new(Shared {
            plaintext: message_payload(&self.state.config.public_url, message),
            topic: topic(&message.id),
        });
        for (index, target) in targets.into_iter().enumerate() {
            let Ok(permit) = self.slots.clone().acquire_owned().await else { break };
            let engine = self.clone();
            let message = message.clone();
            let shared = shared.clone();
            set.spawn(async move {
                let outcome = engine.send_one(&message, &shared, &target).await;
                drop(permit);
                (index, outcome)
            });
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; count];
        while let Some(joined) = set.join_next().await {
            if let Ok((index, outcome)) = joined {
                outcomes[index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Retry { reason: "worker task failed".into(), retry_after: None }))
            .collect()
    }

    async fn send_one(&self, message: &MessageInfo, shared: &Shared, target: &Target) -> Outcome {
        // The allowlist is enforced again at send time: a list changed since
        // the device registered, or a row written by hand, must not slip through.
        let endpoint = match self.state.allowlist.check(&target.endpoint) {
            Ok(url) => url,
            Err(reason) => return Outcome::Rejected(format!("endpoint refused: {reason}")),
        };
        let origin = origin_of(&endpoint);
        let now = self.state.now_ms();
        if let Some(until) = self.paused.lock().unwrap_or_else(|e| e.into_inner()).get(&origin).copied() {
            if until > now {
                return Outcome::Deferred { seconds: ((until - now) / 1000).max(1) as u64 };
            }
        }
        let (Ok(p256dh), Ok(auth)) = (URL_SAFE_NO_PAD.decode(&target.p256dh), URL_SAFE_NO_PAD.decode(&target.auth))
        else {
            return Outcome::Rejected("stored keys are not base64url".into());
        };
        let body = match crypto::encrypt(&p256dh, &auth, &shared.plaintext) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected(e.to_string()),
        };
        let authorization = match self.signer.authorization(&origin, now) {
            Ok(value) => value,
            Err(e) => return Outcome::Retry { reason: e, retry_after: None },
        };
        // TTL counts from now: what is left of the message's lifetime.
        let remaining = (message.publish_at + message.ttl_seconds as i64 * 1000 - now) / 1000;
        let outcome = self
            .client
            .send(PushRequest {
                endpoint: &endpoint,
                origin: &origin,
                body,
                ttl: remaining.clamp(0, u32::MAX as i64) as u32,
                urgency: &message.urgency,
                topic: Some(&shared.topic),
                authorization: &authorization,
            })
            .await;
        if let Outcome::Retry { retry_after: Some(secs), .. } = &outcome {
            let until = self.state.now_ms() + (*secs).min(3600) as i64 * 1000;
            self.paused.lock().unwrap_or_else(|e| e.into_inner()).insert(origin.clone(), until);
        }
        let host = endpoint.host_str().unwrap_or("unknown");
        self.state.metrics.deliveries.with_label_values(&[outcome.label(), host]).inc();
        outcome
    }

    /// Turns one outcome into the batch's effects (WEBPUSH.md's table).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        message: &MessageInfo,
        device_id: &str,
        attempts: i32,
        retry_id: Option<&String>,
        outcome: Outcome,
        now: i64,
        result: &mut BatchResult,
    ) {
        let finish = |result: &mut BatchResult| {
            if let Some(id) = retry_id {
                result.finished_retries.push(id.clone());
            }
        };
        match outcome {
            Outcome::Delivered => {
                result.delivered += 1;
                finish(result);
            }
            Outcome::Gone(_) => {
                // The device row goes, and its retry rows with it.
                result.gone_devices.push(device_id.to_owned());
            }
            Outcome::Rejected(reason) => {
                tracing::warn!(message_id = %message.id, %reason, "push rejected; not retried");
                result.failed += 1;
                result.last_failure = Some(reason);
                finish(result);
            }
            Outcome::AuthFailed(reason) => {
                tracing::error!(
                    message_id = %message.id, %reason,
                    "push service refused our VAPID credentials: check the VAPID key and HEROLD_VAPID_SUBJECT"
                );
                result.failed += 1;
                result.last_failure = Some(reason);
                finish(result);
            }
            Outcome::Deferred { seconds } => {
                let next_at = now + seconds as i64 * 1000;
                let reason = "push service asked to wait".to_owned();
                if next_at >= message.publish_at + message.ttl_seconds as i64 * 1000 {
                    result.failed += 1;
                    result.last_failure = Some(format!("expired: {reason}"));
                    finish(result);
                    return;
                }
                match retry_id {
                    Some(id) => result.rescheduled.push((id.clone(), attempts, next_at, reason)),
                    None => result.new_retries.push((device_id.to_owned(), attempts, next_at, reason)),
                }
            }
            Outcome::Retry { reason, retry_after } => {
                let attempts = attempts + 1;
                let next_at = now + backoff_ms(attempts, retry_after);
                let expires = message.publish_at + message.ttl_seconds as i64 * 1000;
                if attempts >= self.config.max_attempts || next_at >= expires {
                    result.failed += 1;
                    result.last_failure = Some(format!("gave up after {attempts} attempts: {reason}"));
                    finish(result);
                } else if let Some(id) = retry_id {
                    result.rescheduled.push((id.clone(), attempts, next_at, reason));
                } else {
                    result.new_retries.push((device_id.to_owned(), attempts, next_at, reason));
                }
            }
        }
    }

    async fn finished(&self, message: &MessageInfo, now: i64) {
        let seconds = (now - message.publish_at.max(message.created_at)).max(0) as f64 / 1000.0;
        self.state.metrics.fanout_seconds.with_label_values(&["message"]).observe(seconds);
        let message_id = message.id.clone();
        let counts = Self::db(&self.state.pool, move |c| {
            use crate::db::schema::messages::dsl::*;
            use diesel::prelude::*;
            messages.find(&message_id).select((recipients, delivered, gone, failed)).first::<(i64, i64, i64, i64)>(c)
        })
        .await;
        if let Ok((recipients, delivered, gone, failed)) = counts {
            tracing::info!(
                message_id = %message.id, group_id = %message.group_id, recipients, delivered, gone, failed,
                pending_retries = recipients - delivered - gone - failed, seconds,
                "fan-out walked"
            );
        }
    }

    /// Asks the workers to stop after their current batch.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.wake.notify_waiters();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A worker: work while there is work, else wait for a wake-up or the poll.
    pub async fn worker(self: Arc<Self>) {
        while !self.stopping() {
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "delivery step failed; retrying"),
            }
            if self.stopping() {
                break;
            }
            tokio::select! {
                _ = self.state.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Hourly: purge devices unseen for the retention time.
    pub async fn janitor(self: Arc<Self>) {
        while !self.stopping() {
            let before = self.state.now_ms() - self.config.device_retention_ms;
            match Self::db(&self.state.pool, move |c| store::purge_stale_devices(c, before)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(devices = n, "purged devices not seen within the retention time"),
                Err(e) => tracing::warn!(error = %e, "device purge failed"),
            }
            for _ in 0..3600 {
                if self.stopping() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The engine running on its own multi-threaded runtime (encryption uses
/// every core) beside actix's workers.
pub struct DeliveryHandle {
    engine: Arc<Delivery>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeliveryHandle {
    pub fn start(engine: Arc<Delivery>, workers: usize) -> Result<Self, String> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("herold-delivery")
            .enable_all()
            .build()
            .map_err(|e| format!("delivery runtime: {e}"))?;
        let e = engine.clone();
        let thread = std::thread::Builder::new()
            .name("herold-delivery".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = JoinSet::new();
                    for _ in 0..workers.max(1) {
                        set.spawn(e.clone().worker());
                    }
                    set.spawn(e.clone().janitor());
                    while set.join_next().await.is_some() {}
                });
            })
            .map_err(|e| format!("delivery thread: {e}"))?;
        Ok(DeliveryHandle { engine, thread: Some(thread) })
    }

    /// Stops after the batches in flight (bounded by the request timeout).
    pub fn shutdown(mut self) {
        self.engine.request_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
