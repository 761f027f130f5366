//! Moving a town between installations: `herold export --tenant S` writes
//! one tenant as JSON Lines; `herold import` reads it into another
//! installation — either backend, in one transaction, ids kept.
//!
//! Format (version 1), one JSON object per line, streamed both ways so a
//! town with 100,000 devices needs no more memory than a page of rows:
//! a header `{"herold_export": 1, "tenant": "wismar", "exported_at": …,
//! "herold_version": …, "vapid_public_key": …, "devices": N}`, then records
//! `{"record": "…", <columns>}` in the order they can be inserted — tenant,
//! user, organization, membership, city_admin, group, api_token, message,
//! device, subscription, subscriber_count, report, audit — and last an
//! `end` record with the count of each kind: a file cut off in transit is
//! refused instead of half imported.
//!
//! What moves, and what deliberately does not:
//! - users of the town (members of its organizations, its city admins):
//!   e-mail, password hash (their logins keep working), a pending
//!   invitation. Not the operator flag (operators belong to an
//!   installation), not failed-login counters. A user whose e-mail exists
//!   on the target already *is* that user there: the existing account is
//!   used and keeps its own password; the import says so.
//! - API tokens move (hashes only): the organizations' integrations keep
//!   posting. Refresh tokens do not: the target signs with its own JWT key,
//!   so everyone logs in once more.
//! - devices that follow a group of the town: the device row and nothing
//!   else (endpoint, its two keys, token hash, two times — DESIGN.md's
//!   privacy rule), so the PWA on the phone keeps its device token; and
//!   only their subscriptions to this town's groups (which other towns a
//!   device follows is none of this town's business). A device already on
//!   the target (it follows a town moved earlier) is kept as it is.
//! - messages with their delivery counters, reports, the audit log and the
//!   subscriber history. Outboxes do not move (fan-out jobs, delivery
//!   retries, device notices): a message whose fan-out had not finished
//!   (scheduled, or interrupted by the move) is marked `pending_fanout` and
//!   gets a fresh job on import — a scheduled one goes out at its time, an
//!   interrupted one is sent again from the start (at-least-once; the
//!   service worker's `tag` makes a repeat replace itself).
//!
//! VAPID: a push subscription is bound to the VAPID public key it was made
//! with; signed with another key, push services refuse it (403). The header
//! records the source's public key. The import refuses a town with devices
//! when the target signs with a different key, unless either
//! - the export was made with `--with-keys`, which adds the source's VAPID
//!   private key (the file is then as secret as the database), *and* the
//!   target has no devices yet: the target then takes over the source's
//!   key, so its later imports from that source match. This is how a whole
//!   installation moves, town by town. Running `herold serve` instances
//!   read the key at start: restart them after such an import.
//! - or `import --without-devices`: the town moves without residents'
//!   devices and subscriptions; residents subscribe again.
//!
//! This module must not touch another town's rows, and writes nothing on
//! the target unless the whole file imports.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::secrets::new_id;
use crate::config::Config;
use crate::db::schema::{
    api_tokens, audit_log, broadcast_groups, city_admins, devices, fanout_jobs, memberships, messages, organizations,
    reports, server_secrets, subscriber_counts, subscriptions, tenants, users,
};
use crate::db::{self, dialect, DbConn};
use crate::messages::Kind;
use crate::push::vapid::VapidKeys;
use crate::state::{self, VAPID_SECRET};

/// The format this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Rows read per query while exporting.
const PAGE: i64 = 1000;
/// Rows per multi-row `INSERT` while importing (7 columns × 500 stays far
/// below SQLite's and PostgreSQL's bind-parameter limits).
const INSERT_CHUNK: usize = 500;

/// The kinds of record, in file order.
pub const KINDS: &[&str] = &[
    "tenant",
    "user",
    "organization",
    "membership",
    "city_admin",
    "group",
    "api_token",
    "message",
    "device",
    "subscription",
    "subscriber_count",
    "report",
    "audit",
];

/// The first line of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub herold_export: u32,
    /// The tenant's slug.
    pub tenant: String,
    pub exported_at: String,
    pub herold_version: String,
    /// The key the town's devices subscribed with.
    pub vapid_public_key: String,
    /// Only with `export --with-keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapid_private_key: Option<String>,
    /// How many device records follow (their key decides whether the
    /// target's VAPID key matters).
    pub devices: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

/// What a town needs of a user; the operator flag and lock-out counters stay behind.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub invite_hash: Option<String>,
    pub invite_expires_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = organizations)]
pub struct OrganizationRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships)]
pub struct MembershipRow {
    pub organization_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = city_admins)]
pub struct CityAdminRow {
    pub tenant_id: String,
    pub user_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = broadcast_groups)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub organization_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub verified: bool,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: String,
    pub organization_id: String,
    pub group_id: String,
    pub name: String,
    pub token_hash: String,
    /// A user id.
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: String,
    pub group_id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub urgency: String,
    pub ttl_seconds: i32,
    pub publish_at: i64,
    pub hidden: bool,
    pub hidden_reason: Option<String>,
    /// `user:<id>` or `token:<id>`.
    pub created_by: String,
    pub created_at: i64,
    pub recipients: i64,
    pub delivered: i64,
    pub gone: i64,
    pub failed: i64,
    pub last_failure: Option<String>,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRecord {
    #[serde(flatten)]
    pub message: MessageRow,
    /// The fan-out had not finished at export time: import gives it a new job.
    #[serde(default)]
    pub pending_fanout: bool,
}

/// A resident device: exactly the columns of the privacy rule.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    pub id: String,
    pub token_hash: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscriptions)]
pub struct SubscriptionRow {
    pub device_id: String,
    pub group_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscriber_counts)]
pub struct SubscriberCountRow {
    pub group_id: String,
    pub day: String,
    pub subscribers: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = reports)]
pub struct ReportRow {
    pub id: String,
    pub tenant_id: String,
    pub message_id: String,
    /// Only when that device is exported too.
    pub device_id: Option<String>,
    pub reason: String,
    pub details: String,
    pub status: String,
    pub resolution: Option<String>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    /// `user:<id>`.
    pub resolved_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: Option<String>,
    /// `user:<id>`, `operator`, …
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// The last line: how many records of each kind came before it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndRecord {
    pub counts: BTreeMap<String, u64>,
}

/// One line after the header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Tenant(TenantRow),
    User(UserRow),
    Organization(OrganizationRow),
    Membership(MembershipRow),
    CityAdmin(CityAdminRow),
    Group(GroupRow),
    ApiToken(ApiTokenRow),
    Message(MessageRecord),
    Device(DeviceRow),
    Subscription(SubscriptionRow),
    SubscriberCount(SubscriberCountRow),
    Report(ReportRow),
    Audit(AuditRow),
    End(EndRecord),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Tenant(_) => "tenant",
            Record::User(_) => "user",
            Record::Organization(_) => "organization",
            Record::Membership(_) => "membership",
            Record::CityAdmin(_) => "city_admin",
            Record::Group(_) => "group",
            Record::ApiToken(_) => "api_token",
            Record::Message(_) => "message",
            Record::Device(_) => "device",
            Record::Subscription(_) => "subscription",
            Record::SubscriberCount(_) => "subscriber_count",
            Record::Report(_) => "report",
            Record::Audit(_) => "audit",
            Record::End(_) => "end",
        }
    }
}

/// Records per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    fn add(&mut self, kind: &str) {
        *self.0.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn get(&self, kind: &str) -> u64 {
        self.0.get(kind).copied().unwrap_or(0)
    }

    /// One line per kind, in file order.
    pub fn lines(&self) -> Vec<String> {
        KINDS.iter().map(|kind| format!("  {kind:<18}{:>9}", self.get(kind))).collect()
    }
}

// ---------------------------------------------------------------- export ----

struct Writer<'a> {
    out: &'a mut dyn Write,
    counts: Counts,
}

impl Writer<'_> {
    fn line<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *self.out, value)?;
        self.out.write_all(b"\n").context("writing the export")?;
        Ok(())
    }

    fn record(&mut self, record: Record) -> anyhow::Result<()> {
        self.counts.add(record.kind());
        self.line(&record)
    }
}

/// Reads a table page by page in key order (keyset pagination: `fetch`
/// gets the key of the last row so far, starting at `K::default()`, which
/// sorts before every id) and hands each page to `each`.
fn paged<R, K: Default>(
    conn: &mut DbConn,
    mut fetch: impl FnMut(&mut DbConn, &K) -> QueryResult<Vec<R>>,
    key: impl Fn(&R) -> K,
    mut each: impl FnMut(&mut DbConn, Vec<R>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after = K::default();
    loop {
        let rows = fetch(conn, &after)?;
        let full = rows.len() as i64 >= PAGE;
        match rows.last() {
            Some(last) => after = key(last),
            None => return Ok(()),
        }
        each(conn, rows)?;
        if !full {
            return Ok(());
        }
    }
}

/// Writes the town `slug` to `out`, read from one snapshot of the database.
pub fn export(
    conn: &mut DbConn,
    vapid: &VapidKeys,
    slug: &str,
    with_keys: bool,
    now: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Counts> {
    dialect::snapshot_transaction(conn, |conn| export_snapshot(conn, vapid, slug, with_keys, now, out))
}

fn export_snapshot(
    conn: &mut DbConn,
    vapid: &VapidKeys,
    slug: &str,
    with_keys: bool,
    now: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Counts> {
    let tenant: TenantRow = tenants::table
        .filter(tenants::slug.eq(slug))
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| anyhow!("there is no tenant '{slug}'"))?;
    let tid = tenant.id.clone();
    // Subqueries, not id lists: a town's ids may outnumber bind parameters.
    let town_orgs = || organizations::table.filter(organizations::tenant_id.eq(tid.clone())).select(organizations::id);
    let town_groups =
        || broadcast_groups::table.filter(broadcast_groups::tenant_id.eq(tid.clone())).select(broadcast_groups::id);
    // A device moves when it follows a group of the town. Pages of devices
    // are found by walking the subscriptions in device order (their primary
    // key), from where the last page ended: each page reads only its own
    // rows, however many devices the town has.
    let next_followers = |c: &mut DbConn, after: &str| -> QueryResult<Vec<String>> {
        subscriptions::table
            .filter(subscriptions::group_id.eq_any(town_groups()))
            .filter(subscriptions::device_id.gt(after))
            .select(subscriptions::device_id)
            .distinct()
            .order(subscriptions::device_id)
            .limit(PAGE)
            .load(c)
    };

    let device_count: i64 = subscriptions::table
        .filter(subscriptions::group_id.eq_any(town_groups()))
        .select(diesel::dsl::count(subscriptions::device_id).aggregate_distinct())
        .get_result(conn)?;
    let mut w = Writer { out, counts: Counts::default() };
    w.line(&Header {
        herold_export: FORMAT_VERSION,
        tenant: tenant.slug.clone(),
        exported_at: crate::model::ts(now),
        herold_version: env!("CARGO_PKG_VERSION").to_owned(),
        vapid_public_key: vapid.public_key().to_owned(),
        vapid_private_key: with_keys.then(|| vapid.to_stored()),
        devices: device_count as u64,
    })?;
    w.record(Record::Tenant(tenant))?;

    // The people first: memberships and city admins point at them.
    let members: Vec<MembershipRow> = memberships::table
        .filter(memberships::organization_id.eq_any(town_orgs()))
        .order((memberships::organization_id, memberships::user_id))
        .select(MembershipRow::as_select())
        .load(conn)?;
    let admins: Vec<CityAdminRow> = city_admins::table
        .filter(city_admins::tenant_id.eq(&tid))
        .order(city_admins::user_id)
        .select(CityAdminRow::as_select())
        .load(conn)?;
    let people: BTreeSet<&str> =
        members.iter().map(|m| m.user_id.as_str()).chain(admins.iter().map(|a| a.user_id.as_str())).collect();
    let people: Vec<&str> = people.into_iter().collect();
    for chunk in people.chunks(PAGE as usize) {
        let rows: Vec<UserRow> =
            users::table.filter(users::id.eq_any(chunk)).order(users::id).select(UserRow::as_select()).load(conn)?;
        for row in rows {
            w.record(Record::User(row))?;
        }
    }

    paged(
        conn,
        |c, after: &String| {
            organizations::table
                .filter(organizations::tenant_id.eq(&tid))
                .filter(organizations::id.gt(after))
                .order(organizations::id)
                .limit(PAGE)
                .select(OrganizationRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Organization(r))),
    )?;
    for row in members {
        w.record(Record::Membership(row))?;
    }
    for row in admins {
        w.record(Record::CityAdmin(row))?;
    }
    paged(
        conn,
        |c, after: &String| {
            broadcast_groups::table
                .filter(broadcast_groups::tenant_id.eq(&tid))
                .filter(broadcast_groups::id.gt(after))
                .order(broadcast_groups::id)
                .limit(PAGE)
                .select(GroupRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Group(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            api_tokens::table
                .filter(api_tokens::organization_id.eq_any(town_orgs()))
                .filter(api_tokens::id.gt(after))
                .order(api_tokens::id)
                .limit(PAGE)
                .select(ApiTokenRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::ApiToken(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            messages::table
                .filter(messages::tenant_id.eq(&tid))
                .filter(messages::id.gt(after))
                .order(messages::id)
                .limit(PAGE)
                .select(MessageRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |c, rows| {
            let ids: Vec<&str> = rows.iter().map(|m| m.id.as_str()).collect();
            let unfinished: HashSet<String> = fanout_jobs::table
                .filter(fanout_jobs::message_id.eq_any(&ids))
                .filter(fanout_jobs::state.ne("done"))
                .select(fanout_jobs::message_id)
                .load::<String>(c)?
                .into_iter()
                .collect();
            rows.into_iter().try_for_each(|message| {
                let pending_fanout = unfinished.contains(&message.id);
                w.record(Record::Message(MessageRecord { message, pending_fanout }))
            })
        },
    )?;
    paged(
        conn,
        |c, after: &String| {
            let ids = next_followers(c, after)?;
            devices::table.filter(devices::id.eq_any(&ids)).order(devices::id).select(DeviceRow::as_select()).load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Device(r))),
    )?;
    paged(
        conn,
        |c, (device, group): &(String, String)| {
            subscriptions::table
                .filter(subscriptions::group_id.eq_any(town_groups()))
                .filter(
                    subscriptions::device_id
                        .gt(device)
                        .or(subscriptions::device_id.eq(device).and(subscriptions::group_id.gt(group))),
                )
                .order((subscriptions::device_id, subscriptions::group_id))
                .limit(PAGE)
                .select(SubscriptionRow::as_select())
                .load(c)
        },
        |r| (r.device_id.clone(), r.group_id.clone()),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Subscription(r))),
    )?;
    paged(
        conn,
        |c, (group, day): &(String, String)| {
            subscriber_counts::table
                .filter(subscriber_counts::group_id.eq_any(town_groups()))
                .filter(
                    subscriber_counts::group_id
                        .gt(group)
                        .or(subscriber_counts::group_id.eq(group).and(subscriber_counts::day.gt(day))),
                )
                .order((subscriber_counts::group_id, subscriber_counts::day))
                .limit(PAGE)
                .select(SubscriberCountRow::as_select())
                .load(c)
        },
        |r| (r.group_id.clone(), r.day.clone()),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::SubscriberCount(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            reports::table
                .filter(reports::tenant_id.eq(&tid))
                .filter(reports::id.gt(after))
                .order(reports::id)
                .limit(PAGE)
                .select(ReportRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |c, rows| {
            rows.into_iter().try_for_each(|mut report| {
                // The reporting device moves only if it follows a group of
                // the town; otherwise the report stays, unlinked, as after
                // the device erased itself.
                if let Some(device) = &report.device_id {
                    let follows: i64 = subscriptions::table
                        .filter(subscriptions::device_id.eq(device))
                        .filter(subscriptions::group_id.eq_any(town_groups()))
                        .count()
                        .get_result(c)?;
                    if follows == 0 {
                        report.device_id = None;
                    }
                }
                w.record(Record::Report(report))
            })
        },
    )?;
    paged(
        conn,
        |c, after: &String| {
            audit_log::table
                .filter(audit_log::tenant_id.eq(&tid))
                .filter(audit_log::id.gt(after))
                .order(audit_log::id)
                .limit(PAGE)
                .select(AuditRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Audit(r))),
    )?;

    let counts = w.counts.clone();
    w.line(&Record::End(EndRecord { counts: counts.0.clone() }))?;
    w.out.flush().context("writing the export")?;
    Ok(counts)
}

// ---------------------------------------------------------------- import ----

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Leave the residents' devices and subscriptions behind.
    pub without_devices: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub tenant_slug: String,
    pub tenant_name: String,
    /// Records read, per kind.
    pub counts: Counts,
    /// E-mails of users that existed on the target and were used as they are.
    pub reused_users: Vec<String>,
    /// Devices that were on the target already (they follow a town moved earlier).
    pub existing_devices: u64,
    /// Fan-out jobs made for messages whose fan-out had not finished.
    pub fanout_jobs: u64,
    /// The target took over the source's VAPID key.
    pub vapid_key_replaced: bool,
}

/// Reads an export from `input` into the database in one transaction.
/// `vapid_public_key` is the target's current key.
pub fn import(
    conn: &mut DbConn,
    vapid_public_key: &str,
    input: &mut dyn BufRead,
    options: &ImportOptions,
    now: i64,
) -> anyhow::Result<ImportReport> {
    let mut lines = Lines { input, number: 0 };
    let Some(first) = lines.next()? else { bail!("the input is empty, not a herold export") };
    let probe: serde_json::Value =
        serde_json::from_str(&first).map_err(|_| anyhow!("the input is not a herold export (line 1 is not JSON)"))?;
    match probe.get("herold_export").and_then(|v| v.as_u64()) {
        Some(v) if v == FORMAT_VERSION as u64 => {}
        Some(v) => bail!("the export has format version {v}; this herold reads version {FORMAT_VERSION}"),
        None => bail!("the input is not a herold export (line 1 has no \"herold_export\")"),
    }
    let header: Header = serde_json::from_value(probe).context("line 1: the export's header")?;
    let result = dialect::write_transaction(conn, |conn| {
        let mut importer = Importer::new(&header, options, now);
        importer.run(conn, vapid_public_key, &mut lines)?;
        Ok::<_, anyhow::Error>(importer.report)
    });
    result.map_err(|e| anyhow!("{e:#}; nothing imported"))
}

/// Non-blank lines with their numbers.
struct Lines<'a> {
    input: &'a mut dyn BufRead,
    number: usize,
}

impl Lines<'_> {
    fn next(&mut self) -> anyhow::Result<Option<String>> {
        loop {
            let mut line = String::new();
            self.number += 1;
            if self.input.read_line(&mut line).with_context(|| format!("reading line {}", self.number))? == 0 {
                return Ok(None);
            }
            if !line.trim().is_empty() {
                return Ok(Some(line));
            }
        }
    }
}

struct Importer<'h> {
    header: &'h Header,
    options: &'h ImportOptions,
    now: i64,
    report: ImportReport,
    tenant_id: Option<String>,
    /// Exported user id → the id on the target.
    user_ids: HashMap<String, String>,
    org_ids: HashSet<String>,
    group_ids: HashSet<String>,
    message_ids: HashSet<String>,
    /// Devices of the file present on the target (inserted or found there).
    device_ids: HashSet<String>,
    devices: Vec<DeviceRow>,
    subscriptions: Vec<SubscriptionRow>,
    subscriber_counts: Vec<SubscriberCountRow>,
    ended: bool,
}

impl<'h> Importer<'h> {
    fn new(header: &'h Header, options: &'h ImportOptions, now: i64) -> Self {
        Importer {
            header,
            options,
            now,
            report: ImportReport::default(),
            tenant_id: None,
            user_ids: HashMap::new(),
            org_ids: HashSet::new(),
            group_ids: HashSet::new(),
            message_ids: HashSet::new(),
            device_ids: HashSet::new(),
            devices: Vec::new(),
            subscriptions: Vec::new(),
            subscriber_counts: Vec::new(),
            ended: false,
        }
    }

    fn run(&mut self, conn: &mut DbConn, vapid_public_key: &str, lines: &mut Lines<'_>) -> anyhow::Result<()> {
        while let Some(line) = lines.next()? {
            let number = lines.number;
            let record: Record = serde_json::from_str(&line).with_context(|| format!("line {number}"))?;
            if self.ended {
                bail!("line {number}: a {} record after the end line", record.kind());
            }
            if self.tenant_id.is_none() && !matches!(record, Record::Tenant(_)) {
                bail!("line {number}: the export must start with its tenant, not a {} record", record.kind());
            }
            if let Record::Tenant(tenant) = &record {
                self.start(conn, tenant, vapid_public_key).with_context(|| format!("line {number}"))?;
            }
            self.record(conn, record).with_context(|| format!("line {number}"))?;
        }
        if !self.ended {
            bail!("the export ends before its end line (cut off?)");
        }
        if self.report.fanout_jobs > 0 {
            dialect::notify_delivery(conn)?;
        }
        Ok(())
    }

    /// Checks before the first write: the town is new here, and the devices
    /// will work with this installation's VAPID key.
    fn start(&mut self, conn: &mut DbConn, tenant: &TenantRow, vapid_public_key: &str) -> anyhow::Result<()> {
        if self.tenant_id.is_some() {
            bail!("a second tenant record: an export holds one town");
        }
        if tenant.slug != self.header.tenant {
            bail!("the tenant record is '{}', the header says '{}'", tenant.slug, self.header.tenant);
        }
        let taken: i64 = tenants::table
            .filter(tenants::slug.eq(&tenant.slug).or(tenants::id.eq(&tenant.id)))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            bail!("tenant '{}' exists already on this installation", tenant.slug);
        }
        self.settle_vapid_key(conn, vapid_public_key)?;
        self.tenant_id = Some(tenant.id.clone());
        self.report.tenant_slug = tenant.slug.clone();
        self.report.tenant_name = tenant.name.clone();
        Ok(())
    }

    fn settle_vapid_key(&mut self, conn: &mut DbConn, ours: &str) -> anyhow::Result<()> {
        let theirs = &self.header.vapid_public_key;
        if self.options.without_devices || self.header.devices == 0 || theirs == ours {
            return Ok(());
        }
        let short = |key: &str| format!("{}…", key.chars().take(12).collect::<String>());
        let Some(private) = &self.header.vapid_private_key else {
            bail!(
                "the export's {} devices are subscribed with VAPID key {}, but this installation signs with {}: \
                 push services would refuse every message to them. Export with --with-keys to move the key too \
                 (into an installation without devices), or import with --without-devices (residents subscribe again)",
                self.header.devices,
                short(theirs),
                short(ours)
            );
        };
        let keys = VapidKeys::from_stored(private).map_err(|e| anyhow!("the export's VAPID private key: {e}"))?;
        if keys.public_key() != theirs {
            bail!("the export's VAPID private key does not belong to its public key {}", short(theirs));
        }
        let here: i64 = devices::table.count().get_result(conn)?;
        if here > 0 {
            bail!(
                "the export's devices are subscribed with VAPID key {}, this installation signs with {} and has \
                 {here} devices of its own, which taking over the export's key would cut off; import with \
                 --without-devices instead (residents subscribe again)",
                short(theirs),
                short(ours)
            );
        }
        let updated = diesel::update(server_secrets::table.find(VAPID_SECRET))
            .set((server_secrets::value.eq(private), server_secrets::created_at.eq(self.now)))
            .execute(conn)?;
        if updated == 0 {
            dialect::insert_secret_if_absent(conn, VAPID_SECRET, private, self.now)?;
        }
        self.report.vapid_key_replaced = true;
        Ok(())
    }

    fn tenant_id(&self) -> &str {
        self.tenant_id.as_deref().unwrap_or_default()
    }

    fn same_town(&self, tenant_id: &str, what: &str, id: &str) -> anyhow::Result<()> {
        if tenant_id != self.tenant_id() {
            bail!("{what} {id} belongs to another town");
        }
        Ok(())
    }

    fn known(set: &HashSet<String>, id: &str, what: &str) -> anyhow::Result<()> {
        if !set.contains(id) {
            bail!("{what} {id} is not in the export before this line");
        }
        Ok(())
    }

    fn user(&self, id: &str) -> anyhow::Result<String> {
        self.user_ids.get(id).cloned().ok_or_else(|| anyhow!("user {id} is not in the export before this line"))
    }

    /// `user:<id>` with the id as it is on the target; anything else as it is.
    fn actor(&self, actor: String) -> String {
        match actor.strip_prefix("user:").and_then(|id| self.user_ids.get(id)) {
            Some(id) => format!("user:{id}"),
            None => actor,
        }
    }

    fn record(&mut self, conn: &mut DbConn, record: Record) -> anyhow::Result<()> {
        let kind = record.kind();
        if kind != "device" {
            self.flush_devices(conn)?;
        }
        if kind != "subscription" {
            self.flush_subscriptions(conn)?;
        }
        if kind != "subscriber_count" {
            self.flush_subscriber_counts(conn)?;
        }
        if kind != "end" {
            self.report.counts.add(kind);
        }
        match record {
            Record::Tenant(row) => {
                diesel::insert_into(tenants::table).values(&row).execute(conn)?;
            }
            Record::User(mut row) => {
                row.email = row.email.trim().to_lowercase();
                let existing: Option<String> =
                    users::table.filter(users::email.eq(&row.email)).select(users::id).first(conn).optional()?;
                if let Some(id) = existing {
                    self.user_ids.insert(row.id, id);
                    self.report.reused_users.push(row.email);
                    return Ok(());
                }
                let exported = row.id.clone();
                let id_taken: i64 = users::table.find(&row.id).count().get_result(conn)?;
                if id_taken > 0 {
                    row.id = new_id();
                }
                if let Some(invite) = &row.invite_hash {
                    let taken: i64 = users::table.filter(users::invite_hash.eq(invite)).count().get_result(conn)?;
                    if taken > 0 {
                        row.invite_hash = None;
                        row.invite_expires_at = None;
                    }
                }
                diesel::insert_into(users::table).values(&row).execute(conn)?;
                self.user_ids.insert(exported, row.id);
            }
            Record::Organization(row) => {
                self.same_town(&row.tenant_id, "organization", &row.id)?;
                diesel::insert_into(organizations::table).values(&row).execute(conn)?;
                self.org_ids.insert(row.id);
            }
            Record::Membership(mut row) => {
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                row.user_id = self.user(&row.user_id)?;
                diesel::insert_into(memberships::table).values(&row).execute(conn)?;
            }
            Record::CityAdmin(mut row) => {
                self.same_town(&row.tenant_id, "city admin", &row.user_id)?;
                row.user_id = self.user(&row.user_id)?;
                diesel::insert_into(city_admins::table).values(&row).execute(conn)?;
            }
            Record::Group(row) => {
                self.same_town(&row.tenant_id, "group", &row.id)?;
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                diesel::insert_into(broadcast_groups::table).values(&row).execute(conn)?;
                self.group_ids.insert(row.id);
            }
            Record::ApiToken(mut row) => {
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                Self::known(&self.group_ids, &row.group_id, "group")?;
                if let Some(id) = self.user_ids.get(&row.created_by) {
                    row.created_by = id.clone();
                }
                diesel::insert_into(api_tokens::table).values(&row).execute(conn)?;
            }
            Record::Message(MessageRecord { message: mut row, pending_fanout }) => {
                self.same_town(&row.tenant_id, "message", &row.id)?;
                Self::known(&self.group_ids, &row.group_id, "group")?;
                row.created_by = self.actor(row.created_by);
                if pending_fanout {
                    // The fan-out starts over here: its counters with it.
                    (row.recipients, row.delivered, row.gone, row.failed) = (0, 0, 0, 0);
                    row.last_failure = None;
                }
                diesel::insert_into(messages::table).values(&row).execute(conn)?;
                if pending_fanout {
                    let scope = if row.kind == Kind::Alert.as_str() { Kind::Alert } else { Kind::Message }.scope();
                    diesel::insert_into(fanout_jobs::table)
                        .values((
                            fanout_jobs::id.eq(new_id()),
                            fanout_jobs::message_id.eq(&row.id),
                            fanout_jobs::run_at.eq(row.publish_at),
                            fanout_jobs::state.eq("pending"),
                            fanout_jobs::created_at.eq(self.now),
                            fanout_jobs::scope.eq(scope),
                        ))
                        .execute(conn)?;
                    self.report.fanout_jobs += 1;
                }
                self.message_ids.insert(row.id);
            }
            Record::Device(row) => {
                if !self.options.without_devices {
                    self.devices.push(row);
                    if self.devices.len() >= INSERT_CHUNK {
                        self.flush_devices(conn)?;
                    }
                }
            }
            Record::Subscription(row) => {
                if !self.options.without_devices {
                    Self::known(&self.group_ids, &row.group_id, "group")?;
                    Self::known(&self.device_ids, &row.device_id, "device")?;
                    self.subscriptions.push(row);
                    if self.subscriptions.len() >= INSERT_CHUNK {
                        self.flush_subscriptions(conn)?;
                    }
                }
            }
            Record::SubscriberCount(row) => {
                Self::known(&self.group_ids, &row.group_id, "group")?;
                self.subscriber_counts.push(row);
                if self.subscriber_counts.len() >= INSERT_CHUNK {
                    self.flush_subscriber_counts(conn)?;
                }
            }
            Record::Report(mut row) => {
                self.same_town(&row.tenant_id, "report", &row.id)?;
                Self::known(&self.message_ids, &row.message_id, "message")?;
                if row.device_id.as_ref().is_some_and(|d| !self.device_ids.contains(d)) {
                    row.device_id = None;
                }
                row.resolved_by = row.resolved_by.map(|a| self.actor(a));
                diesel::insert_into(reports::table).values(&row).execute(conn)?;
            }
            Record::Audit(mut row) => {
                self.same_town(row.tenant_id.as_deref().unwrap_or_default(), "audit entry", &row.id)?;
                row.actor = self.actor(row.actor);
                if row.target_type == "user" {
                    if let Some(id) = self.user_ids.get(&row.target_id) {
                        row.target_id = id.clone();
                    }
                }
                diesel::insert_into(audit_log::table).values(&row).execute(conn)?;
            }
            Record::End(end) => {
                let read = &self.report.counts.0;
                for kind in end.counts.keys().chain(read.keys()) {
                    let (said, found) = (end.counts.get(kind).copied().unwrap_or(0), self.report.counts.get(kind));
                    if said != found {
                        bail!("the end line counts {said} {kind} records, the export has {found} (damaged file?)");
                    }
                }
                self.ended = true;
            }
        }
        Ok(())
    }

    /// Inserts the buffered devices; ones already here stay as they are.
    fn flush_devices(&mut self, conn: &mut DbConn) -> anyhow::Result<()> {
        if self.devices.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.devices);
        let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
        let here: HashSet<String> = devices::table
            .filter(devices::id.eq_any(&ids))
            .select(devices::id)
            .load::<String>(conn)?
            .into_iter()
            .collect();
        self.report.existing_devices += here.len() as u64;
        let new: Vec<DeviceRow> = rows.iter().filter(|d| !here.contains(&d.id)).cloned().collect();
        dialect::insert_rows::<_, DeviceRow>(conn, devices::table, new.as_slice())?;
        self.device_ids.extend(rows.into_iter().map(|d| d.id));
        Ok(())
    }

    fn flush_subscriptions(&mut self, conn: &mut DbConn) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.subscriptions);
        dialect::insert_rows::<_, SubscriptionRow>(conn, subscriptions::table, rows.as_slice())?;
        Ok(())
    }

    fn flush_subscriber_counts(&mut self, conn: &mut DbConn) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.subscriber_counts);
        dialect::insert_rows::<_, SubscriberCountRow>(conn, subscriber_counts::table, rows.as_slice())?;
        Ok(())
    }
}

// ------------------------------------------------------------------ CLI ----

/// Connects (applying migrations, so a fresh target gets its schema) and
/// loads the installation's keys.
fn open(config: Option<&Path>) -> anyhow::Result<(db::PooledConn, state::Keys, i64)> {
    let config = Config::load(config)?;
    let pool = db::pool(&config.backend, Some(1)).map_err(|e| anyhow!(e))?;
    let mut conn = pool.get().context("connecting to the database")?;
    db::run_migrations(&mut conn).map_err(|e| anyhow!(e))?;
    let now = crate::state::Clock::system().now_ms();
    let keys = state::load_keys(&mut conn, now).map_err(|e| anyhow!(e))?;
    Ok((conn, keys, now))
}

fn summary(counts: &Counts) -> String {
    counts.lines().join("\n")
}

/// `herold export --tenant S [--output FILE] [--with-keys]`.
pub fn export_command(
    config: Option<&Path>,
    tenant: &str,
    output: Option<&Path>,
    with_keys: bool,
) -> anyhow::Result<()> {
    let (mut conn, keys, now) = open(config)?;
    let Some(path) = output else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let counts = export(&mut conn, &keys.vapid, tenant, with_keys, now, &mut out)?;
        // Standard output is the export: the summary goes to standard error.
        eprintln!("exported town '{tenant}':\n{}", summary(&counts));
        if with_keys {
            eprintln!("the export holds this installation's VAPID private key: keep it as secret as the database");
        }
        return Ok(());
    };
    // Created new and readable by its owner only: it holds password hashes,
    // push endpoints and keys (and with --with-keys the VAPID private key).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!("export: {} exists already; choose a new file", path.display()),
        _ => anyhow!("export: cannot create {}: {e}", path.display()),
    })?;
    let mut out = std::io::BufWriter::new(file);
    let written = export(&mut conn, &keys.vapid, tenant, with_keys, now, &mut out).and_then(|counts| {
        out.into_inner().map_err(|e| anyhow!(e.into_error())).and_then(|f| Ok(f.sync_all()?)).map(|_| counts)
    });
    match written {
        Ok(counts) => {
            println!("exported town '{tenant}' to {}:\n{}", path.display(), summary(&counts));
            if with_keys {
                println!("the file holds this installation's VAPID private key: keep it as secret as the database");
            }
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(path);
            Err(e.context("export"))
        }
    }
}

/// `herold import [--input FILE] [--without-devices]`.
pub fn import_command(config: Option<&Path>, input: Option<&Path>, without_devices: bool) -> anyhow::Result<()> {
    let (mut conn, keys, now) = open(config)?;
    let options = ImportOptions { without_devices };
    let report = match input {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("import: cannot open {}", path.display()))?;
            import(&mut conn, keys.vapid.public_key(), &mut std::io::BufReader::new(file), &options, now)
        }
        None => import(&mut conn, keys.vapid.public_key(), &mut std::io::stdin().lock(), &options, now),
    }
    .map_err(|e| e.context("import"))?;
    println!("imported town '{}' ({}):\n{}", report.tenant_slug, report.tenant_name, summary(&report.counts));
    for email in &report.reused_users {
        println!("user {email} existed here already: that account was used, with the password it has here");
    }
    if report.existing_devices > 0 {
        println!(
            "{} devices were here already (they follow a town moved earlier) and were kept",
            report.existing_devices
        );
    }
    if without_devices && report.counts.get("device") > 0 {
        println!("{} devices and their subscriptions were left out (--without-devices)", report.counts.get("device"));
    }
    if report.fanout_jobs > 0 {
        println!("{} messages whose fan-out had not finished will be sent from here", report.fanout_jobs);
    }
    if report.vapid_key_replaced {
        println!(
            "this installation now signs with the source's VAPID key: restart every running herold serve \
             so it uses it"
        );
    }
    Ok(())
}
