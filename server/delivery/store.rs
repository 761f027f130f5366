//! The delivery pipeline's database side: claiming fan-out jobs and due
//! retries with a lease, reading a batch of targets, and recording a batch's
//! outcomes in one transaction. Never called while a request is in flight:
//! each function takes a connection, works, and gives it back.

use diesel::expression_methods::AggregateExpressionMethods;
use diesel::prelude::*;

use crate::auth::secrets::new_id;
use crate::db::schema::{
    broadcast_groups, delivery_retries, device_blocks, device_notices, devices, fanout_jobs, issues, messages,
    organizations, qa_questions, qa_votes, subscriptions, tenants,
};
use crate::db::{dialect, DbConn};
use crate::messages::Kind;
use crate::model::{GroupStatus, OrgStatus};

/// A claimed fan-out job: the message and where the walk stands.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job_id: String,
    pub message: MessageInfo,
    /// Last device id delivered to (keyset cursor over the group's subscriptions).
    pub cursor: Option<String>,
    /// `group` (the group's subscribers) or `tenant` (every device of the town, once).
    pub scope: String,
}

/// What a payload needs to know about a message.
#[derive(Debug, Clone, Queryable)]
pub struct MessageInfo {
    pub id: String,
    pub group_id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub urgency: String,
    pub ttl_seconds: i32,
    pub publish_at: i64,
    pub hidden: bool,
    pub created_at: i64,
    pub group_name: String,
    pub verified: bool,
    pub tenant: String,
    /// `message`, `alert` or `session` (see `messages::Kind`).
    pub kind: String,
    pub tenant_id: String,
    pub group_status: String,
    pub organization_status: String,
}

impl MessageInfo {
    /// Why the message must not be pushed (any more), if it must not: hidden
    /// by the town, or its group or organization no longer in good standing.
    /// Read afresh at every claim, so a suspension stops a running fan-out
    /// at its next batch and its waiting retries. The town's alerts go out
    /// through its system channel (group status `system`).
    pub fn withheld(&self) -> Option<&'static str> {
        if self.hidden {
            return Some("hidden");
        }
        if self.organization_status != OrgStatus::Approved.as_str() {
            return Some("organization not approved");
        }
        let channel = if self.kind == Kind::Alert.as_str() { GroupStatus::System } else { GroupStatus::Active };
        if self.group_status != channel.as_str() {
            return Some("group not active");
        }
        None
    }
}

/// One device to send to.
#[derive(Debug, Clone, Queryable)]
pub struct Target {
    pub device_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

macro_rules! message_info {
    () => {
        messages::table
            .inner_join(broadcast_groups::table.inner_join(tenants::table).inner_join(organizations::table))
            .select((
                messages::id,
                messages::group_id,
                messages::title,
                messages::body,
                messages::url,
                messages::urgency,
                messages::ttl_seconds,
                messages::publish_at,
                messages::hidden,
                messages::created_at,
                broadcast_groups::name,
                broadcast_groups::verified,
                tenants::slug,
                messages::kind,
                messages::tenant_id,
                broadcast_groups::status,
                organizations::status,
            ))
    };
}

pub fn message_info(conn: &mut DbConn, message_id: &str) -> QueryResult<Option<MessageInfo>> {
    message_info!().filter(messages::id.eq(message_id)).first(conn).optional()
}

/// Claims the oldest due job nobody holds, leasing it until `now + lease_ms`.
/// On a fresh walk (no cursor) the message's recipient count is set.
pub fn claim_job(conn: &mut DbConn, now: i64, lease_ms: i64) -> QueryResult<Option<ClaimedJob>> {
    // Reads, then writes: on SQLite the write lock must be taken first.
    dialect::write_transaction(conn, |conn| {
        let Some((job_id, message_id, cursor, scope)) = dialect::select_due_job(conn, now)? else {
            return Ok(None);
        };
        let claimed = diesel::update(
            fanout_jobs::table
                .find(&job_id)
                .filter(fanout_jobs::leased_until.is_null().or(fanout_jobs::leased_until.lt(now))),
        )
        .set((
            fanout_jobs::state.eq("running"),
            fanout_jobs::leased_until.eq(now + lease_ms),
            fanout_jobs::attempts.eq(fanout_jobs::attempts + 1),
        ))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        let Some(message) = message_info(conn, &message_id)? else {
            finish_job(conn, &job_id, now)?;
            return Ok(None);
        };
        if cursor.is_none() {
            let recipients: i64 = if scope == TENANT_SCOPE {
                subscriptions::table
                    .inner_join(broadcast_groups::table)
                    .filter(broadcast_groups::tenant_id.eq(&message.tenant_id))
                    .select(diesel::dsl::count(subscriptions::device_id).aggregate_distinct())
                    .get_result(conn)?
            } else {
                subscriptions::table.filter(subscriptions::group_id.eq(&message.group_id)).count().get_result(conn)?
            };
            diesel::update(messages::table.find(&message.id)).set(messages::recipients.eq(recipients)).execute(conn)?;
        }
        Ok(Some(ClaimedJob { job_id, message, cursor, scope }))
    })
}

pub const TENANT_SCOPE: &str = "tenant";

/// The next `limit` devices after `cursor` that follow the message's group
/// (scope `group`) or any group of its town (scope `tenant`, each device once).
///
/// Both walk an index in device-id order and stop after `limit` rows, so a
/// batch costs the same at the end of a 100,000-device walk as at its start
/// (a `DISTINCT … ORDER BY` over the join sorted every remaining row on
/// every batch instead).
pub fn next_targets(
    conn: &mut DbConn,
    message: &MessageInfo,
    scope: &str,
    cursor: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Target>> {
    let columns = (devices::id, devices::endpoint, devices::p256dh, devices::auth);
    if scope == TENANT_SCOPE {
        // Devices in id order that follow at least one group of the town.
        let follows_the_town = subscriptions::table
            .inner_join(broadcast_groups::table)
            .filter(subscriptions::device_id.eq(devices::id))
            .filter(broadcast_groups::tenant_id.eq(message.tenant_id.clone()));
        let mut query = devices::table
            .filter(diesel::dsl::exists(follows_the_town))
            .select(columns)
            .order(devices::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(devices::id.gt(cursor.to_owned()));
        }
        return query.load(conn);
    }
    // The group's subscriptions in device order (index `subscriptions_by_group`);
    // (device, group) is their key, so each device comes once.
    let mut query = subscriptions::table
        .inner_join(devices::table)
        .filter(subscriptions::group_id.eq(message.group_id.clone()))
        .select(columns)
        .order(subscriptions::device_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(cursor) = cursor {
        query = query.filter(subscriptions::device_id.gt(cursor.to_owned()));
    }
    query.load(conn)
}

/// Extends the lease of a job whose batch is still in flight.
pub fn renew_lease(conn: &mut DbConn, job_id: &str, until: i64) -> QueryResult<()> {
    diesel::update(fanout_jobs::table.find(job_id).filter(fanout_jobs::state.ne("done")))
        .set(fanout_jobs::leased_until.eq(until))
        .execute(conn)?;
    Ok(())
}

/// Ends a message's delivery unsent (see [`MessageInfo::withheld`]): the
/// job (if given) is finished, the message's waiting retries are dropped,
/// and its recipients are cut to the devices the walk has dealt with, so
/// that nothing shows as pending that will never be sent.
pub fn withhold(conn: &mut DbConn, message_id: &str, job_id: Option<&str>, now: i64) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::delete(delivery_retries::table.filter(delivery_retries::message_id.eq(message_id))).execute(conn)?;
        diesel::update(messages::table.find(message_id))
            .set(messages::recipients.eq(messages::delivered + messages::gone + messages::failed))
            .execute(conn)?;
        if let Some(job_id) = job_id {
            finish_job(conn, job_id, now)?;
        }
        Ok(())
    })
}

pub fn finish_job(conn: &mut DbConn, job_id: &str, now: i64) -> QueryResult<()> {
    diesel::update(fanout_jobs::table.find(job_id))
        .set((
            fanout_jobs::state.eq("done"),
            fanout_jobs::leased_until.eq(None::<i64>),
            fanout_jobs::finished_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives back leases an instance cut off at shutdown, so the work is due
/// again at once for every instance. A row is released only while its
/// `leased_until` is still the expiry this instance wrote: a lease that ran
/// out and was taken by another instance stays with that one.
pub fn release_leases(
    conn: &mut DbConn,
    jobs: &std::collections::HashMap<String, i64>,
    retries: &std::collections::HashMap<String, i64>,
    notices: &std::collections::HashMap<String, i64>,
) -> QueryResult<usize> {
    dialect::write_transaction(conn, |conn| {
        let mut released = 0;
        for (id, until) in jobs {
            released += diesel::update(fanout_jobs::table.find(id).filter(fanout_jobs::leased_until.eq(until)))
                .set(fanout_jobs::leased_until.eq(None::<i64>))
                .execute(conn)?;
        }
        for (id, until) in retries {
            released +=
                diesel::update(delivery_retries::table.find(id).filter(delivery_retries::leased_until.eq(until)))
                    .set(delivery_retries::leased_until.eq(None::<i64>))
                    .execute(conn)?;
        }
        for (id, until) in notices {
            released += diesel::update(device_notices::table.find(id).filter(device_notices::leased_until.eq(until)))
                .set(device_notices::leased_until.eq(None::<i64>))
                .execute(conn)?;
        }
        // Idle workers of other instances take it up now, not at their next poll.
        if released > 0 {
            dialect::notify_delivery(conn)?;
        }
        Ok(released)
    })
}

/// A due retry, leased to this worker.
#[derive(Debug, Clone)]
pub struct ClaimedRetry {
    pub retry_id: String,
    pub attempts: i32,
    pub message: MessageInfo,
    pub target: Target,
}

/// Claims up to `limit` due retries, leasing them until `now + lease_ms`.
pub fn claim_retries(conn: &mut DbConn, now: i64, lease_ms: i64, limit: i64) -> QueryResult<Vec<ClaimedRetry>> {
    // Reads, then writes: on SQLite the write lock must be taken first.
    dialect::write_transaction(conn, |conn| {
        let ids = dialect::select_due_retries(conn, now, limit)?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let n = diesel::update(
                delivery_retries::table
                    .find(&id)
                    .filter(delivery_retries::leased_until.is_null().or(delivery_retries::leased_until.lt(now))),
            )
            .set(delivery_retries::leased_until.eq(now + lease_ms))
            .execute(conn)?;
            if n == 0 {
                continue;
            }
            let (message_id, attempts, target): (String, i32, Target) = delivery_retries::table
                .inner_join(devices::table)
                .filter(delivery_retries::id.eq(&id))
                .select((
                    delivery_retries::message_id,
                    delivery_retries::attempts,
                    (devices::id, devices::endpoint, devices::p256dh, devices::auth),
                ))
                .first(conn)?;
            match message_info(conn, &message_id)? {
                Some(message) => claimed.push(ClaimedRetry { retry_id: id, attempts, message, target }),
                None => {
                    diesel::delete(delivery_retries::table.find(&id)).execute(conn)?;
                }
            }
        }
        Ok(claimed)
    })
}

/// The effect of one batch, applied in one transaction.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub delivered: i64,
    pub failed: i64,
    pub last_failure: Option<String>,
    /// Devices whose push service said they are gone.
    pub gone_devices: Vec<String>,
    /// (device, attempts so far, next attempt at, reason) for new retries of a walk.
    pub new_retries: Vec<(String, i32, i64, String)>,
    /// Retries that are finished (delivered, failed or gone): delete the rows.
    pub finished_retries: Vec<String>,
    /// Retries to try again: (retry id, attempts so far, next at, reason).
    pub rescheduled: Vec<(String, i32, i64, String)>,
}

/// Records a batch's outcomes for `message_id`; advances the job's cursor
/// (or finishes it) when `job` is given.
pub fn record(
    conn: &mut DbConn,
    message_id: &str,
    result: &BatchResult,
    job: Option<(&str, Option<&str>, bool)>,
    now: i64,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let gone = result.gone_devices.len() as i64;
        if result.delivered + result.failed + gone > 0 {
            diesel::update(messages::table.find(message_id))
                .set((
                    messages::delivered.eq(messages::delivered + result.delivered),
                    messages::failed.eq(messages::failed + result.failed),
                    messages::gone.eq(messages::gone + gone),
                ))
                .execute(conn)?;
        }
        if let Some(reason) = &result.last_failure {
            diesel::update(messages::table.find(message_id)).set(messages::last_failure.eq(reason)).execute(conn)?;
        }
        delete_devices(conn, &result.gone_devices)?;
        for (device_id, attempts, next_at, reason) in &result.new_retries {
            diesel::insert_into(delivery_retries::table)
                .values((
                    delivery_retries::id.eq(new_id()),
                    delivery_retries::message_id.eq(message_id),
                    delivery_retries::device_id.eq(device_id),
                    delivery_retries::attempts.eq(attempts),
                    delivery_retries::next_at.eq(next_at),
                    delivery_retries::last_error.eq(reason),
                    delivery_retries::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        if !result.finished_retries.is_empty() {
            diesel::delete(delivery_retries::table.filter(delivery_retries::id.eq_any(&result.finished_retries)))
                .execute(conn)?;
        }
        for (retry_id, attempts, next_at, reason) in &result.rescheduled {
            diesel::update(delivery_retries::table.find(retry_id))
                .set((
                    delivery_retries::attempts.eq(attempts),
                    delivery_retries::next_at.eq(next_at),
                    delivery_retries::leased_until.eq(None::<i64>),
                    delivery_retries::last_error.eq(reason),
                ))
                .execute(conn)?;
        }
        if let Some((job_id, cursor, done)) = job {
            if done {
                finish_job(conn, job_id, now)?;
            } else {
                // The lease is released with the cursor: the next batch may be
                // claimed by any worker of any instance.
                diesel::update(fanout_jobs::table.find(job_id))
                    .set((fanout_jobs::cursor.eq(cursor), fanout_jobs::leased_until.eq(None::<i64>)))
                    .execute(conn)?;
            }
        }
        Ok(())
    })
}

/// Jobs due or running, and retries waiting: the queue depth for `/metrics`.
pub fn queue_depth(conn: &mut DbConn, now: i64) -> QueryResult<(i64, i64, i64)> {
    let due: i64 = fanout_jobs::table
        .filter(fanout_jobs::state.ne("done"))
        .filter(fanout_jobs::run_at.le(now))
        .count()
        .get_result(conn)?;
    let scheduled: i64 = fanout_jobs::table
        .filter(fanout_jobs::state.ne("done"))
        .filter(fanout_jobs::run_at.gt(now))
        .count()
        .get_result(conn)?;
    let retries: i64 = delivery_retries::table.count().get_result(conn)?;
    Ok((due, scheduled, retries))
}

/// Deletes devices not seen since `before` (iOS drops subscriptions silently).
pub fn purge_stale_devices(conn: &mut DbConn, before: i64) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let stale: Vec<String> =
            devices::table.filter(devices::last_seen_at.lt(before)).select(devices::id).limit(10_000).load(conn)?;
        delete_devices(conn, &stale)
    })
}

/// Deletes devices with everything that hangs on them: subscriptions (and
/// their groups' subscriber counts), pending notices (and, by cascade,
/// retries), what the residents wrote. Gone devices, purged devices and a
/// resident's erasure all go through here.
pub fn delete_devices(conn: &mut DbConn, ids: &[String]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let followed: Vec<(String, i64)> = subscriptions::table
        .filter(subscriptions::device_id.eq_any(ids))
        .group_by(subscriptions::group_id)
        .select((subscriptions::group_id, diesel::dsl::count_star()))
        .load(conn)?;
    diesel::delete(subscriptions::table.filter(subscriptions::device_id.eq_any(ids))).execute(conn)?;
    for (group_id, n) in followed {
        crate::groups::adjust_subscribers(conn, &group_id, -n)?;
    }
    diesel::delete(device_notices::table.filter(device_notices::device_id.eq_any(ids))).execute(conn)?;
    // What the resident wrote goes with the device: reports with their
    // threads and photos, votes, blocks, and questions — except those
    // answered publicly, which stay in the session's record, unlinked.
    // Counted first as a change of their sessions, so that live streams
    // drop the questions and the votes (a deleted row has no version).
    crate::qa::touch_for_erasure(conn, ids)?;
    let issue_ids: Vec<String> = issues::table.filter(issues::device_id.eq_any(ids)).select(issues::id).load(conn)?;
    crate::issues::delete(conn, &issue_ids)?;
    diesel::delete(device_blocks::table.filter(device_blocks::device_id.eq_any(ids))).execute(conn)?;
    diesel::delete(qa_votes::table.filter(qa_votes::device_id.eq_any(ids))).execute(conn)?;
    let asked = || qa_questions::table.filter(qa_questions::device_id.eq_any(ids));
    let gone_questions = asked().filter(qa_questions::answer_public.eq(false)).select(qa_questions::id);
    diesel::delete(qa_votes::table.filter(qa_votes::question_id.eq_any(gone_questions))).execute(conn)?;
    diesel::delete(asked().filter(qa_questions::answer_public.eq(false))).execute(conn)?;
    diesel::update(asked()).set(qa_questions::device_id.eq(None::<String>)).execute(conn)?;
    diesel::delete(devices::table.filter(devices::id.eq_any(ids))).execute(conn)
}

/// A due notice for one device, leased to this worker.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub notice_id: String,
    pub attempts: i32,
    pub payload: String,
    pub urgency: String,
    pub expires_at: i64,
    pub target: Target,
}

/// Claims up to `limit` due device notices, leasing them until `now + lease_ms`.
pub fn claim_notices(conn: &mut DbConn, now: i64, lease_ms: i64, limit: i64) -> QueryResult<Vec<ClaimedNotice>> {
    dialect::write_transaction(conn, |conn| {
        let ids = dialect::select_due_notices(conn, now, limit)?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let n = diesel::update(
                device_notices::table
                    .find(&id)
                    .filter(device_notices::leased_until.is_null().or(device_notices::leased_until.lt(now))),
            )
            .set(device_notices::leased_until.eq(now + lease_ms))
            .execute(conn)?;
            if n == 0 {
                continue;
            }
            let (attempts, payload, urgency, expires_at, target) = device_notices::table
                .inner_join(devices::table)
                .filter(device_notices::id.eq(&id))
                .select((
                    device_notices::attempts,
                    device_notices::payload,
                    device_notices::urgency,
                    device_notices::expires_at,
                    (devices::id, devices::endpoint, devices::p256dh, devices::auth),
                ))
                .first::<(i32, String, String, i64, Target)>(conn)?;
            claimed.push(ClaimedNotice { notice_id: id, attempts, payload, urgency, expires_at, target });
        }
        Ok(claimed)
    })
}

/// What became of a batch of notices.
#[derive(Debug, Default)]
pub struct NoticeResult {
    /// Delivered or given up: the rows go.
    pub finished: Vec<String>,
    /// Devices whose push service said they are gone (their notices go with them).
    pub gone_devices: Vec<String>,
    /// (notice id, attempts so far, next attempt at).
    pub rescheduled: Vec<(String, i32, i64)>,
}

pub fn record_notices(conn: &mut DbConn, result: &NoticeResult) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::delete(device_notices::table.filter(device_notices::id.eq_any(&result.finished))).execute(conn)?;
        delete_devices(conn, &result.gone_devices)?;
        for (id, attempts, next_at) in &result.rescheduled {
            diesel::update(device_notices::table.find(id))
                .set((
                    device_notices::attempts.eq(attempts),
                    device_notices::next_at.eq(next_at),
                    device_notices::leased_until.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Writes today's (UTC) subscriber count of every group, replacing an
/// earlier figure of the same day: the history behind the dashboard's chart.
pub fn snapshot_subscriber_counts(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    let day = crate::model::day(now);
    dialect::write_transaction(conn, |conn| {
        // One statement for all groups (diesel's multi-backend connection has
        // no batch insert), an upsert so that two instances' janitors running
        // at once both succeed (`WHERE true`: SQLite's parser needs it before
        // ON CONFLICT in INSERT … SELECT). `day` is our own `YYYY-MM-DD`.
        debug_assert!(day.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
        let written = diesel::sql_query(format!(
            "INSERT INTO subscriber_counts (group_id, day, subscribers) \
             SELECT g.id, '{day}', g.subscriber_count \
             FROM broadcast_groups g WHERE true \
             ON CONFLICT (group_id, day) DO UPDATE SET subscribers = excluded.subscribers"
        ))
        .execute(conn)?;
        Ok(written)
    })
}
