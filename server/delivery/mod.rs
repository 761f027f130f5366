//! The delivery engine: workers claim fan-out jobs and due retries from the
//! database (the durable outbox), send each device its encrypted,
//! VAPID-signed push, and record the outcomes. At-least-once: the job's
//! cursor advances only after a batch is recorded, so a crash re-sends at
//! most the batch in flight (the notification `tag` hides the duplicate).
//! No database connection is held while requests are in flight.
//!
//! Workers wake on new work (locally, and on PostgreSQL from every instance
//! through `LISTEN/NOTIFY`) and poll as the fallback. A stop finishes the
//! batches in flight, or at its bound cuts them off and gives their leases
//! back ([`DeliveryHandle::shutdown_by`]).

pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::db::{DbConn, Pool};
use crate::messages::Kind;
use crate::model::ts;
use crate::push::crypto;
use crate::push::payload::{self, Notification};
use crate::push::sender::{Outcome, PushClient, PushClientConfig, PushRequest};
use crate::push::vapid::VapidSigner;
use crate::state::AppState;
use store::{BatchResult, ClaimedJob, ClaimedNotice, ClaimedRetry, MessageInfo, NoticeResult, Target};

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
    // A question hour's notice opens the session page (its link, our own URL).
    let navigate = match message.url.as_deref() {
        Some(url) if message.kind == Kind::Session.as_str() => url.to_owned(),
        _ => format!("{}/m/{}", public_url.as_str().trim_end_matches('/'), message.id),
    };
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

/// Work this engine has claimed and not yet recorded, with the lease expiry
/// it wrote: what an abandoned stop gives back ([`DeliveryHandle::shutdown_by`]).
/// Updated inside the blocking database tasks, so a claim that committed is
/// known even when the worker awaiting it was cancelled.
#[derive(Default)]
struct Held {
    jobs: HashMap<String, i64>,
    retries: HashMap<String, i64>,
    notices: HashMap<String, i64>,
}

type HeldWork = Arc<Mutex<Held>>;

fn held(work: &HeldWork) -> std::sync::MutexGuard<'_, Held> {
    work.lock().unwrap_or_else(|e| e.into_inner())
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
    held: HeldWork,
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
            held: Default::default(),
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
        let (lease, until) = (self.config.lease_ms, now + self.config.lease_ms);
        let work = self.held.clone();
        let job = Self::db(&self.state.pool, move |c| {
            let job = store::claim_job(c, now, lease)?;
            if let Some(job) = &job {
                held(&work).jobs.insert(job.job_id.clone(), until);
            }
            Ok(job)
        })
        .await?;
        if let Some(job) = job {
            self.run_job_batch(job).await?;
            return Ok(true);
        }
        let limit = self.config.batch_size;
        let work = self.held.clone();
        let retries = Self::db(&self.state.pool, move |c| {
            let retries = store::claim_retries(c, now, lease, limit)?;
            held(&work).retries.extend(retries.iter().map(|r| (r.retry_id.clone(), until)));
            Ok(retries)
        })
        .await?;
        if !retries.is_empty() {
            self.run_retries(retries).await?;
            return Ok(true);
        }
        // No more than can be in flight at once: claimed notices are not
        // lease-renewed, so none may wait behind the others for a send slot.
        let notice_limit = limit.min(self.config.concurrency.max(1) as i64);
        let work = self.held.clone();
        let notices = Self::db(&self.state.pool, move |c| {
            let notices = store::claim_notices(c, now, lease, notice_limit)?;
            held(&work).notices.extend(notices.iter().map(|n| (n.notice_id.clone(), until)));
            Ok(notices)
        })
        .await?;
        if notices.is_empty() {
            return Ok(false);
        }
        self.run_notices(notices).await?;
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
        if let Some(why) = message.withheld() {
            return self.withhold(&message, Some(job.job_id), Vec::new(), why, now).await;
        }
        let (walk, scope, cursor, limit) =
            (message.clone(), job.scope.clone(), job.cursor.clone(), self.config.batch_size);
        // A message expired before its fan-out is not sent.
        let expired = message.publish_at + message.ttl_seconds as i64 * 1000 <= now;
        let targets = if expired {
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
        let (message_id, job_id, work) = (message.id.clone(), job.job_id.clone(), self.held.clone());
        Self::db(&self.state.pool, move |c| {
            store::record(c, &message_id, &result, Some((&job_id, new_cursor.as_deref(), done)), now)?;
            held(&work).jobs.remove(&job_id);
            Ok(())
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
            let (id, until, work) = (job_id.clone(), self.state.now_ms() + lease, self.held.clone());
            let renewed = Self::db(&self.state.pool, move |c| {
                store::renew_lease(c, &id, until)?;
                if let Some(held_until) = held(&work).jobs.get_mut(&id) {
                    *held_until = until;
                }
                Ok(())
            });
            if let Err(e) = renewed.await {
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
            let retry_ids: Vec<String> = items.iter().map(|(_, id, _)| id.clone()).collect();
            if let Some(why) = message.withheld() {
                self.withhold(&message, None, retry_ids, why, self.state.now_ms()).await?;
                continue;
            }
            let outcomes = self.send_all(&message, items.iter().map(|(t, _, _)| t.clone()).collect()).await;
            let now = self.state.now_ms();
            let mut result = BatchResult::default();
            for ((target, retry_id, attempts), outcome) in items.iter().zip(outcomes) {
                self.apply(&message, &target.device_id, *attempts, Some(retry_id), outcome, now, &mut result);
            }
            let (message_id, work) = (message.id.clone(), self.held.clone());
            Self::db(&self.state.pool, move |c| {
                store::record(c, &message_id, &result, None, now)?;
                let mut held = held(&work);
                for id in &retry_ids {
                    held.retries.remove(id);
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Ends the delivery of a message that must not be pushed any more
    /// (hidden, its group or organization suspended): nothing is sent, the
    /// claimed job is finished, the message's retries (`retries`: the ones
    /// this worker holds) are dropped.
    async fn withhold(
        &self,
        message: &MessageInfo,
        job_id: Option<String>,
        retries: Vec<String>,
        why: &'static str,
        now: i64,
    ) -> Result<(), String> {
        let (message_id, work) = (message.id.clone(), self.held.clone());
        Self::db(&self.state.pool, move |c| {
            store::withhold(c, &message_id, job_id.as_deref(), now)?;
            let mut held = held(&work);
            if let Some(id) = &job_id {
                held.jobs.remove(id);
            }
            for id in &retries {
                held.retries.remove(id);
            }
            Ok(())
        })
        .await?;
        tracing::info!(message_id = %message.id, group_id = %message.group_id, reason = why, "delivery withheld");
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
        // TTL counts from now: what is left of the message's lifetime.
        let expires = message.publish_at + message.ttl_seconds as i64 * 1000;
        self.push(target, &shared.plaintext, expires, &message.urgency, Some(&shared.topic)).await
    }

    /// Encrypts `plaintext` for one device and sends it, VAPID-signed, with
    /// the lifetime left until `expires_at`.
    async fn push(
        &self,
        target: &Target,
        plaintext: &[u8],
        expires_at: i64,
        urgency: &str,
        topic: Option<&str>,
    ) -> Outcome {
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
        let body = match crypto::encrypt(&p256dh, &auth, plaintext) {
            Ok(body) => body,
            Err(e) => return Outcome::Rejected(e.to_string()),
        };
        let authorization = match self.signer.authorization(&origin, now) {
            Ok(value) => value,
            Err(e) => return Outcome::Retry { reason: e, retry_after: None },
        };
        let remaining = (expires_at - now) / 1000;
        let outcome = self
            .client
            .send(PushRequest {
                endpoint: &endpoint,
                origin: &origin,
                body,
                ttl: remaining.clamp(0, u32::MAX as i64) as u32,
                urgency,
                topic,
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

    /// Sends notices meant for one device each (test notifications), with
    /// the same outcome rules as messages: gone devices are deleted,
    /// transient failures retried with backoff until the notice expires.
    async fn run_notices(self: &Arc<Self>, notices: Vec<ClaimedNotice>) -> Result<(), String> {
        let mut set = JoinSet::new();
        let mut result = NoticeResult::default();
        let mut notice_ids = Vec::new();
        let claimed_at = self.state.now_ms();
        for notice in notices {
            // Too late to be of use (a test notification after ten minutes): dropped unsent.
            if notice.expires_at <= claimed_at {
                notice_ids.push(notice.notice_id.clone());
                result.finished.push(notice.notice_id);
                continue;
            }
            let Ok(permit) = self.slots.clone().acquire_owned().await else { break };
            let engine = self.clone();
            set.spawn(async move {
                let outcome = engine
                    .push(&notice.target, notice.payload.as_bytes(), notice.expires_at, &notice.urgency, None)
                    .await;
                drop(permit);
                (notice, outcome)
            });
        }
        let now = self.state.now_ms();
        while let Some(joined) = set.join_next().await {
            let Ok((notice, outcome)) = joined else { continue };
            let deferred = matches!(outcome, Outcome::Deferred { .. });
            notice_ids.push(notice.notice_id.clone());
            let retry_at = match outcome {
                Outcome::Delivered => None,
                Outcome::Gone(_) => {
                    result.gone_devices.push(notice.target.device_id.clone());
                    continue;
                }
                Outcome::Rejected(reason) | Outcome::AuthFailed(reason) => {
                    tracing::warn!(notice_id = %notice.notice_id, %reason, "device notice refused; not retried");
                    None
                }
                Outcome::Deferred { seconds } => Some(now + seconds as i64 * 1000),
                Outcome::Retry { retry_after, .. } => Some(now + backoff_ms(notice.attempts + 1, retry_after)),
            };
            // Waiting out a paused origin is no failed attempt.
            let attempts = if deferred { notice.attempts } else { notice.attempts + 1 };
            match retry_at {
                Some(at) if at < notice.expires_at && attempts < self.config.max_attempts => {
                    result.rescheduled.push((notice.notice_id, attempts, at))
                }
                _ => result.finished.push(notice.notice_id),
            }
        }
        let work = self.held.clone();
        Self::db(&self.state.pool, move |c| {
            store::record_notices(c, &result)?;
            let mut held = held(&work);
            for id in &notice_ids {
                held.notices.remove(id);
            }
            Ok(())
        })
        .await
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
                    result.last_failure = Some(if attempts >= self.config.max_attempts {
                        format!("gave up after {attempts} attempts: {reason}")
                    } else {
                        // The next try would come after the push service may no longer deliver it.
                        format!("expired after {attempts} attempts: {reason}")
                    });
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
            // Registered before looking for work, so a wake-up that comes
            // while this worker is busy or finding nothing is not lost.
            let woken = self.state.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "delivery step failed; retrying"),
            }
            if self.stopping() {
                break;
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Hourly: purge devices unseen for the retention time, and write the
    /// day's subscriber counts.
    pub async fn janitor(self: Arc<Self>) {
        while !self.stopping() {
            let now = self.state.now_ms();
            if let Err(e) = Self::db(&self.state.pool, move |c| store::snapshot_subscriber_counts(c, now)).await {
                tracing::warn!(error = %e, "subscriber count snapshot failed");
            }
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

/// Wakes this engine's workers when any instance commits delivery work on
/// PostgreSQL (`NOTIFY herold_jobs`, sent by `db::dialect::notify_delivery`).
///
/// diesel reads notifications only without waiting
/// (`PgConnection::notifications_iter`: `PQconsumeInput` + `PQnotifies`) and
/// exposes no socket to wait on, so this thread looks every 50 ms — a
/// non-blocking read on an idle connection, cheap beside the database poll it
/// shortcuts. The poll stays as the fallback: for a lost connection, and for
/// work that comes due later (scheduled messages, retries).
fn listen_for_work(engine: Arc<Delivery>) {
    const LOOK_EVERY: Duration = Duration::from_millis(50);
    // A connection cut without a FIN (a NAT timeout) is noticed only by using it.
    const CHECK_EVERY: Duration = Duration::from_secs(30);
    let pause = |d: Duration| {
        let until = Instant::now() + d;
        while !engine.stopping() && Instant::now() < until {
            std::thread::sleep(LOOK_EVERY);
        }
    };
    let mut failing = false;
    while !engine.stopping() {
        let mut listener = match crate::db::dialect::JobListener::connect(&engine.state.config.backend) {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot LISTEN for new delivery work; polling only until it works");
                }
                failing = true;
                pause(Duration::from_secs(5));
                continue;
            }
        };
        if failing {
            tracing::info!("listening for new delivery work again");
            failing = false;
        }
        // Whatever was committed while nobody listened.
        engine.state.wake.notify_waiters();
        let mut checked = Instant::now();
        while !engine.stopping() {
            let alive = match listener.take() {
                Ok(0) => Ok(()),
                Ok(_) => {
                    engine.state.wake.notify_waiters();
                    Ok(())
                }
                Err(e) => Err(e),
            }
            .and_then(|()| {
                if checked.elapsed() < CHECK_EVERY {
                    return Ok(());
                }
                checked = Instant::now();
                listener.check()
            });
            if let Err(e) = alive {
                tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                break;
            }
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

/// How the engine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every batch in flight finished and was recorded.
    Finished,
    /// The bound ran out first: the batches in flight were cut off and
    /// `released` leases (fan-out jobs, retries, notices) given back, so any
    /// instance resumes that work at once. The devices of a cut-off batch
    /// may receive the message twice (at-least-once; the `Topic` and the
    /// notification tag fold the duplicate).
    Abandoned { released: usize },
}

/// The engine running on its own multi-threaded runtime (encryption uses
/// every core) beside actix's workers.
pub struct DeliveryHandle {
    engine: Arc<Delivery>,
    /// Cuts the batches in flight off (a stop that ran out of time).
    abort: Arc<tokio::sync::Notify>,
    /// Says that the runtime is down and nothing of the engine runs any more.
    stopped: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl DeliveryHandle {
    /// Starts `workers` workers (0: this instance delivers nothing and only
    /// runs the janitor) and, on PostgreSQL, the `LISTEN` thread.
    pub fn start(engine: Arc<Delivery>, workers: usize) -> Result<Self, String> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("herold-delivery")
            .enable_all()
            .build()
            .map_err(|e| format!("delivery runtime: {e}"))?;
        let (e, abort) = (engine.clone(), Arc::new(tokio::sync::Notify::new()));
        let (cut_off, (done, stopped)) = (abort.clone(), std::sync::mpsc::channel());
        let thread = std::thread::Builder::new()
            .name("herold-delivery".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = JoinSet::new();
                    for _ in 0..workers {
                        set.spawn(e.clone().worker());
                    }
                    set.spawn(e.clone().janitor());
                    tokio::select! {
                        _ = async { while set.join_next().await.is_some() {} } => {}
                        _ = cut_off.notified() => {}
                    }
                });
                // Cancels whatever still runs (batches in flight, their lease
                // renewals) and waits briefly for database work they already
                // started, so the leases given back afterwards are final.
                runtime.shutdown_timeout(Duration::from_secs(2));
                let _ = done.send(());
            })
            .map_err(|e| format!("delivery thread: {e}"))?;
        let listener = if workers > 0 && engine.state.config.backend.is_postgres() {
            let e = engine.clone();
            let spawned = std::thread::Builder::new().name("herold-listen".into()).spawn(move || listen_for_work(e));
            Some(spawned.map_err(|e| format!("listener thread: {e}"))?)
        } else {
            None
        };
        Ok(DeliveryHandle { engine, abort, stopped, thread: Some(thread), listener })
    }

    /// Stops after the batches in flight, however long they take.
    pub fn shutdown(self) -> Stopped {
        self.stop(None)
    }

    /// Stops after the batches in flight, or at `deadline` cuts them off and
    /// gives their leases back ([`Stopped::Abandoned`]).
    pub fn shutdown_by(self, deadline: Instant) -> Stopped {
        self.stop(Some(deadline))
    }

    fn stop(mut self, deadline: Option<Instant>) -> Stopped {
        self.engine.request_stop();
        let finished = match deadline {
            None => self.stopped.recv().is_ok(),
            Some(at) => self.stopped.recv_timeout(at.saturating_duration_since(Instant::now())).is_ok(),
        };
        if !finished {
            self.abort.notify_one();
            // The runtime's shutdown above is bounded (2 s); a thread stuck
            // beyond that is left behind rather than holding the exit.
            let _ = self.stopped.recv_timeout(Duration::from_secs(5));
        }
        if let Some(thread) = self.thread.take() {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        if let Some(listener) = self.listener.take() {
            // It looks at the stop flag every 50 ms (unless it is connecting).
            let until = Instant::now() + Duration::from_millis(500);
            while !listener.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if finished {
            return Stopped::Finished;
        }
        let work = std::mem::take(&mut *held(&self.engine.held));
        if work.jobs.is_empty() && work.retries.is_empty() && work.notices.is_empty() {
            return Stopped::Abandoned { released: 0 };
        }
        let released = self.engine.state.pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
            store::release_leases(&mut c, &work.jobs, &work.retries, &work.notices).map_err(|e| e.to_string())
        });
        match released {
            Ok(released) => Stopped::Abandoned { released },
            Err(e) => {
                tracing::warn!(error = %e, "could not give back the leases; they run out by themselves");
                Stopped::Abandoned { released: 0 }
            }
        }
    }
}
