//! Moving a town between installations: `herold export --tenant S` writes
//! one tenant as JSON Lines; `herold import` reads it into another
//! installation — either backend, in one transaction, ids kept.
//!
//! Format (version 2), one JSON object per line, streamed both ways so a
//! town with 100,000 devices needs no more memory than a page of rows:
//! a header `{"herold_export": 2, "tenant": "wismar", "exported_at": …,
//! "herold_version": …, "vapid_public_key": …, "pseudonym_key_id": …,
//! "devices": N}`, then records `{"record": "…", <columns>}` in the order
//! they can be inserted — tenant, user, organization, membership,
//! city_admin, group, intake, api_token, message, device, subscription,
//! subscriber_count, report, issue, issue_post, issue_photo, block,
//! session, question, vote, audit — and last an `end` record with the count
//! of each kind: a file cut off in transit is refused instead of half
//! imported. Version 1 (before residents could talk back: no intake …
//! vote records, no pseudonym key) still imports.
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
//! - devices that follow a group of the town, or wrote to it (an issue
//!   report, a question or a vote in a question hour) or were blocked by
//!   one of its organizations: the device row and nothing else (endpoint,
//!   its two keys, token hash, two times — DESIGN.md's privacy rule), so
//!   the PWA on the phone keeps its device token and its reports; and only
//!   their subscriptions to this town's groups (which other towns a device
//!   follows is none of this town's business). A device already on the
//!   target (it follows a town moved earlier) is kept as it is.
//! - what residents said to the town: groups' intake settings, issue
//!   reports with their conversation and photos (base64 of the stored
//!   JPEG), blocks, question hours with their questions and votes. Stored
//!   pseudonyms (`author`) move as they are. Without the devices
//!   (`--without-devices`) what a device owns stays behind as when it
//!   erases itself: its reports (posts, photos), the blocks of it, its
//!   votes and its questions, except publicly answered ones, which stay
//!   without the device link.
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
//! Pseudonyms: an organization sees a resident as an HMAC of its own id and
//! the device id under the installation's pseudonym key. The header has a
//! fingerprint of the source's key; `--with-keys` adds the key itself, and
//! the import takes it over under the VAPID key's rule (the town has
//! devices, the target none yet), so a resident who reports again after
//! the move keeps their pseudonym. Otherwise stored pseudonyms stay as they
//! are and the import says that new reports get new ones (blocks hold, they
//! are kept by device).
//!
//! This module must not touch another town's rows, and writes nothing on
//! the target unless the whole file imports.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::secrets::hash_secret;
use crate::auth::secrets::new_id;
use crate::config::Config;
use crate::db::schema::{
    api_tokens, audit_log, broadcast_groups, city_admins, device_blocks, devices, fanout_jobs, group_intakes,
    issue_photos, issue_posts, issues, memberships, messages, organizations, qa_questions, qa_sessions, qa_votes,
    reports, server_secrets, subscriber_counts, subscriptions, tenants, users,
};
use crate::db::{self, dialect, DbConn};
use crate::messages::Kind;
use crate::push::vapid::VapidKeys;
use crate::state::{self, Keys, PSEUDONYM_SECRET, VAPID_SECRET};

/// The format this binary writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format it reads (version 1 lacks residents' reports and question hours).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Rows read per query while exporting.
const PAGE: i64 = 1000;
/// Photos read per query: up to a few MB each.
const PHOTO_PAGE: i64 = 16;
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
    "intake",
    "api_token",
    "message",
    "device",
    "subscription",
    "subscriber_count",
    "report",
    "issue",
    "issue_post",
    "issue_photo",
    "block",
    "session",
    "question",
    "vote",
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
    /// Which key the stored pseudonyms were made with ([`key_id`]; not in
    /// version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_id: Option<String>,
    /// Only with `export --with-keys`: the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key: Option<String>,
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

/// Whether a group takes issue reports; `categories` is a JSON array.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = group_intakes)]
pub struct IntakeRow {
    pub group_id: String,
    pub open: bool,
    pub categories: String,
    pub board: bool,
    pub updated_at: i64,
}

/// A resident's issue report.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = issues)]
pub struct IssueRow {
    pub id: String,
    pub tenant_id: String,
    pub organization_id: String,
    pub group_id: String,
    pub device_id: String,
    /// The device's pseudonym for the organization, as stored.
    pub author: String,
    pub category: String,
    pub body: String,
    /// As text in the file ([`exact_coordinate`]).
    #[serde(default, with = "exact_coordinate")]
    pub lat: Option<f64>,
    #[serde(default, with = "exact_coordinate")]
    pub lon: Option<f64>,
    pub address: Option<String>,
    pub lang: String,
    pub status: String,
    pub public: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = issue_posts)]
pub struct IssuePostRow {
    pub id: String,
    pub issue_id: String,
    pub from_org: bool,
    pub user_id: Option<String>,
    pub body: Option<String>,
    pub status: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = issue_photos)]
pub struct IssuePhotoRow {
    pub id: String,
    pub issue_id: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    /// The length of `data`.
    pub bytes: i32,
    /// The stored image, base64 (standard alphabet, padded) in the file.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    pub created_at: i64,
}

/// A device an organization no longer hears from.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = device_blocks)]
pub struct BlockRow {
    pub id: String,
    pub organization_id: String,
    pub device_id: String,
    pub author: String,
    pub reason: String,
    /// `user:<id>`.
    pub created_by: String,
    pub created_at: i64,
}

/// A question hour.
#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = qa_sessions)]
pub struct SessionRow {
    pub id: String,
    pub tenant_id: String,
    pub organization_id: String,
    pub group_id: String,
    pub title: String,
    pub description: String,
    pub starts_at: i64,
    pub ends_at: i64,
    /// The scheduled message announcing it (a message of the town).
    pub message_id: Option<String>,
    pub cancelled: bool,
    pub version: i64,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = qa_questions)]
pub struct QuestionRow {
    pub id: String,
    pub session_id: String,
    /// None once the device erased itself (a publicly answered question stays).
    pub device_id: Option<String>,
    pub author: String,
    pub body: String,
    pub lang: String,
    pub status: String,
    pub answer: Option<String>,
    pub answer_public: bool,
    pub answered_by: Option<String>,
    pub answered_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = qa_votes)]
pub struct VoteRow {
    pub question_id: String,
    pub device_id: String,
    pub created_at: i64,
}

/// Bytes as one base64 string in JSON.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// A coordinate as text, such as `"53.891234567890123"`: Rust's own parser
/// reads back exactly the `f64` that was written, where serde_json's
/// default number parsing may miss by one unit in the last place. A plain
/// number is read too.
mod exact_coordinate {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Coordinate {
            Text(String),
            Number(f64),
        }
        match Option::<Coordinate>::deserialize(d)? {
            None => Ok(None),
            Some(Coordinate::Number(n)) => Ok(Some(n)),
            Some(Coordinate::Text(t)) => t.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A fingerprint of a pseudonym key: tells two keys apart, reveals nothing of them.
pub fn key_id(key: &[u8]) -> String {
    hash_secret(&String::from_utf8_lossy(key)).chars().take(16).collect()
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
    Intake(IntakeRow),
    ApiToken(ApiTokenRow),
    Message(MessageRecord),
    Device(DeviceRow),
    Subscription(SubscriptionRow),
    SubscriberCount(SubscriberCountRow),
    Report(ReportRow),
    Issue(IssueRow),
    IssuePost(IssuePostRow),
    IssuePhoto(IssuePhotoRow),
    Block(BlockRow),
    Session(SessionRow),
    Question(QuestionRow),
    Vote(VoteRow),
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
            Record::Intake(_) => "intake",
            Record::ApiToken(_) => "api_token",
            Record::Message(_) => "message",
            Record::Device(_) => "device",
            Record::Subscription(_) => "subscription",
            Record::SubscriberCount(_) => "subscriber_count",
            Record::Report(_) => "report",
            Record::Issue(_) => "issue",
            Record::IssuePost(_) => "issue_post",
            Record::IssuePhoto(_) => "issue_photo",
            Record::Block(_) => "block",
            Record::Session(_) => "session",
            Record::Question(_) => "question",
            Record::Vote(_) => "vote",
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
    fetch: impl FnMut(&mut DbConn, &K) -> QueryResult<Vec<R>>,
    key: impl Fn(&R) -> K,
    each: impl FnMut(&mut DbConn, Vec<R>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    paged_by(conn, PAGE, fetch, key, each)
}

/// [`paged`] with pages of `page` rows (`fetch` must use the same limit).
fn paged_by<R, K: Default>(
    conn: &mut DbConn,
    page: i64,
    mut fetch: impl FnMut(&mut DbConn, &K) -> QueryResult<Vec<R>>,
    key: impl Fn(&R) -> K,
    mut each: impl FnMut(&mut DbConn, Vec<R>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after = K::default();
    loop {
        let rows = fetch(conn, &after)?;
        let full = rows.len() as i64 >= page;
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
/// `keys` are the installation's (their public parts go into the header,
/// with `with_keys` the private ones too).
pub fn export(
    conn: &mut DbConn,
    keys: &Keys,
    slug: &str,
    with_keys: bool,
    now: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Counts> {
    dialect::snapshot_transaction(conn, |conn| export_snapshot(conn, keys, slug, with_keys, now, out))
}

fn export_snapshot(
    conn: &mut DbConn,
    keys: &Keys,
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
    let town_issues = || issues::table.filter(issues::tenant_id.eq(tid.clone())).select(issues::id);
    let town_sessions = || qa_sessions::table.filter(qa_sessions::tenant_id.eq(tid.clone())).select(qa_sessions::id);
    let town_questions =
        || qa_questions::table.filter(qa_questions::session_id.eq_any(town_sessions())).select(qa_questions::id);
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
    // Devices that wrote to the town (or were blocked by it) move too, so
    // their reports keep their device. Those that follow no group of the
    // town are few: held in memory and written after the followers.
    let mut writers: BTreeSet<String> = BTreeSet::new();
    writers.extend(issues::table.filter(issues::tenant_id.eq(&tid)).select(issues::device_id).distinct().load(conn)?);
    writers.extend(
        qa_questions::table
            .filter(qa_questions::session_id.eq_any(town_sessions()))
            .select(qa_questions::device_id)
            .distinct()
            .load::<Option<String>>(conn)?
            .into_iter()
            .flatten(),
    );
    writers.extend(
        qa_votes::table
            .filter(qa_votes::question_id.eq_any(town_questions()))
            .select(qa_votes::device_id)
            .distinct()
            .load::<String>(conn)?,
    );
    writers.extend(
        device_blocks::table
            .filter(device_blocks::organization_id.eq_any(town_orgs()))
            .select(device_blocks::device_id)
            .distinct()
            .load::<String>(conn)?,
    );
    let writers: Vec<String> = writers.into_iter().collect();
    let mut non_followers: BTreeSet<String> = BTreeSet::new();
    for chunk in writers.chunks(PAGE as usize) {
        let following: HashSet<String> = subscriptions::table
            .filter(subscriptions::device_id.eq_any(chunk))
            .filter(subscriptions::group_id.eq_any(town_groups()))
            .select(subscriptions::device_id)
            .distinct()
            .load::<String>(conn)?
            .into_iter()
            .collect();
        non_followers.extend(chunk.iter().filter(|d| !following.contains(*d)).cloned());
    }
    let non_followers: Vec<String> = non_followers.into_iter().collect();

    let mut w = Writer { out, counts: Counts::default() };
    w.line(&Header {
        herold_export: FORMAT_VERSION,
        tenant: tenant.slug.clone(),
        exported_at: crate::model::ts(now),
        herold_version: env!("CARGO_PKG_VERSION").to_owned(),
        vapid_public_key: keys.vapid.public_key().to_owned(),
        vapid_private_key: with_keys.then(|| keys.vapid.to_stored()),
        pseudonym_key_id: Some(key_id(&keys.pseudonym)),
        pseudonym_key: with_keys.then(|| String::from_utf8_lossy(&keys.pseudonym).into_owned()),
        devices: device_count as u64 + non_followers.len() as u64,
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
            group_intakes::table
                .filter(group_intakes::group_id.eq_any(town_groups()))
                .filter(group_intakes::group_id.gt(after))
                .order(group_intakes::group_id)
                .limit(PAGE)
                .select(IntakeRow::as_select())
                .load(c)
        },
        |r| r.group_id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Intake(r))),
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
    for chunk in non_followers.chunks(PAGE as usize) {
        let rows: Vec<DeviceRow> = devices::table
            .filter(devices::id.eq_any(chunk))
            .order(devices::id)
            .select(DeviceRow::as_select())
            .load(conn)?;
        for row in rows {
            w.record(Record::Device(row))?;
        }
    }
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
                // the town (or wrote to it); otherwise the report stays,
                // unlinked, as after the device erased itself.
                if let Some(device) = &report.device_id {
                    let follows: i64 = subscriptions::table
                        .filter(subscriptions::device_id.eq(device))
                        .filter(subscriptions::group_id.eq_any(town_groups()))
                        .count()
                        .get_result(c)?;
                    if follows == 0 && non_followers.binary_search(device).is_err() {
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
            issues::table
                .filter(issues::tenant_id.eq(&tid))
                .filter(issues::id.gt(after))
                .order(issues::id)
                .limit(PAGE)
                .select(IssueRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Issue(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            issue_posts::table
                .filter(issue_posts::issue_id.eq_any(town_issues()))
                .filter(issue_posts::id.gt(after))
                .order(issue_posts::id)
                .limit(PAGE)
                .select(IssuePostRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::IssuePost(r))),
    )?;
    paged_by(
        conn,
        PHOTO_PAGE,
        |c, after: &String| {
            issue_photos::table
                .filter(issue_photos::issue_id.eq_any(town_issues()))
                .filter(issue_photos::id.gt(after))
                .order(issue_photos::id)
                .limit(PHOTO_PAGE)
                .select(IssuePhotoRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::IssuePhoto(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            device_blocks::table
                .filter(device_blocks::organization_id.eq_any(town_orgs()))
                .filter(device_blocks::id.gt(after))
                .order(device_blocks::id)
                .limit(PAGE)
                .select(BlockRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Block(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            qa_sessions::table
                .filter(qa_sessions::tenant_id.eq(&tid))
                .filter(qa_sessions::id.gt(after))
                .order(qa_sessions::id)
                .limit(PAGE)
                .select(SessionRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Session(r))),
    )?;
    paged(
        conn,
        |c, after: &String| {
            qa_questions::table
                .filter(qa_questions::session_id.eq_any(town_sessions()))
                .filter(qa_questions::id.gt(after))
                .order(qa_questions::id)
                .limit(PAGE)
                .select(QuestionRow::as_select())
                .load(c)
        },
        |r| r.id.clone(),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Question(r))),
    )?;
    paged(
        conn,
        |c, (question, device): &(String, String)| {
            qa_votes::table
                .filter(qa_votes::question_id.eq_any(town_questions()))
                .filter(
                    qa_votes::question_id
                        .gt(question)
                        .or(qa_votes::question_id.eq(question).and(qa_votes::device_id.gt(device))),
                )
                .order((qa_votes::question_id, qa_votes::device_id))
                .limit(PAGE)
                .select(VoteRow::as_select())
                .load(c)
        },
        |r| (r.question_id.clone(), r.device_id.clone()),
        |_, rows| rows.into_iter().try_for_each(|r| w.record(Record::Vote(r))),
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
    /// The target took over the source's pseudonym key.
    pub pseudonym_key_replaced: bool,
    /// The source's pseudonym key differs from the target's and stays
    /// behind: residents who write again get new pseudonyms.
    pub pseudonyms_change: bool,
    /// Records not imported because their device stayed behind
    /// (`--without-devices`), per kind.
    pub left_out: Counts,
    /// Publicly answered questions kept without their device link.
    pub unlinked_questions: u64,
}

/// Reads an export from `input` into the database in one transaction.
/// `keys` are the target's current keys.
pub fn import(
    conn: &mut DbConn,
    keys: &Keys,
    input: &mut dyn BufRead,
    options: &ImportOptions,
    now: i64,
) -> anyhow::Result<ImportReport> {
    let mut lines = Lines { input, number: 0 };
    let Some(first) = lines.next()? else { bail!("the input is empty, not a herold export") };
    let probe: serde_json::Value =
        serde_json::from_str(&first).map_err(|_| anyhow!("the input is not a herold export (line 1 is not JSON)"))?;
    match probe.get("herold_export").and_then(|v| v.as_u64()) {
        Some(v) if (OLDEST_FORMAT_VERSION as u64..=FORMAT_VERSION as u64).contains(&v) => {}
        Some(v) => bail!(
            "the export has format version {v}; this herold reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
        ),
        None => bail!("the input is not a herold export (line 1 has no \"herold_export\")"),
    }
    let header: Header = serde_json::from_value(probe).context("line 1: the export's header")?;
    let result = dialect::write_transaction(conn, |conn| {
        let mut importer = Importer::new(&header, options, now);
        importer.run(conn, keys, &mut lines)?;
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
    issue_ids: HashSet<String>,
    session_ids: HashSet<String>,
    question_ids: HashSet<String>,
    /// Left behind with their device (`--without-devices`): what hangs on
    /// them is left behind too.
    dropped_issues: HashSet<String>,
    dropped_questions: HashSet<String>,
    devices: Vec<DeviceRow>,
    subscriptions: Vec<SubscriptionRow>,
    subscriber_counts: Vec<SubscriberCountRow>,
    votes: Vec<VoteRow>,
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
            issue_ids: HashSet::new(),
            session_ids: HashSet::new(),
            question_ids: HashSet::new(),
            dropped_issues: HashSet::new(),
            dropped_questions: HashSet::new(),
            devices: Vec::new(),
            subscriptions: Vec::new(),
            subscriber_counts: Vec::new(),
            votes: Vec::new(),
            ended: false,
        }
    }

    fn run(&mut self, conn: &mut DbConn, keys: &Keys, lines: &mut Lines<'_>) -> anyhow::Result<()> {
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
                self.start(conn, tenant, keys).with_context(|| format!("line {number}"))?;
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
    /// will work with this installation's VAPID key (and keep their
    /// pseudonyms where that can be had).
    fn start(&mut self, conn: &mut DbConn, tenant: &TenantRow, keys: &Keys) -> anyhow::Result<()> {
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
        self.settle_vapid_key(conn, keys.vapid.public_key())?;
        self.settle_pseudonym_key(conn, &keys.pseudonym)?;
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

    /// Takes over the source's pseudonym key under the VAPID key's rule:
    /// the export carries it (`--with-keys`), the town's devices come along,
    /// and this installation has no devices whose pseudonyms it would change.
    /// Otherwise the stored pseudonyms move as they are, and a resident who
    /// writes again gets a new one.
    fn settle_pseudonym_key(&mut self, conn: &mut DbConn, ours: &[u8]) -> anyhow::Result<()> {
        let Some(theirs_id) = &self.header.pseudonym_key_id else {
            // Version 1: nothing was made with a pseudonym key yet.
            return Ok(());
        };
        if *theirs_id == key_id(ours) || self.options.without_devices || self.header.devices == 0 {
            return Ok(());
        }
        let Some(theirs) = &self.header.pseudonym_key else {
            self.report.pseudonyms_change = true;
            return Ok(());
        };
        if key_id(theirs.as_bytes()) != *theirs_id {
            bail!("the export's pseudonym key does not match its fingerprint {theirs_id}");
        }
        let here: i64 = devices::table.count().get_result(conn)?;
        if here > 0 {
            self.report.pseudonyms_change = true;
            return Ok(());
        }
        let updated = diesel::update(server_secrets::table.find(PSEUDONYM_SECRET))
            .set((server_secrets::value.eq(theirs), server_secrets::created_at.eq(self.now)))
            .execute(conn)?;
        if updated == 0 {
            dialect::insert_secret_if_absent(conn, PSEUDONYM_SECRET, theirs, self.now)?;
        }
        self.report.pseudonym_key_replaced = true;
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

    /// A user named as `user:<id>` or by the bare id, as it is on the target.
    fn user_ref(&self, user: String) -> String {
        match self.user_ids.get(&user) {
            Some(id) => id.clone(),
            None => self.actor(user),
        }
    }

    /// Without the devices, what a device owns stays behind with it.
    fn leave_out(&mut self, kind: &str) {
        self.report.left_out.add(kind);
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
        if kind != "vote" {
            self.flush_votes(conn)?;
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
            Record::Intake(row) => {
                Self::known(&self.group_ids, &row.group_id, "group")?;
                diesel::insert_into(group_intakes::table).values(&row).execute(conn)?;
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
                    let scope = Kind::parse(&row.kind).unwrap_or(Kind::Message).scope();
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
            Record::Issue(row) => {
                self.same_town(&row.tenant_id, "issue", &row.id)?;
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                Self::known(&self.group_ids, &row.group_id, "group")?;
                if self.options.without_devices {
                    self.leave_out("issue");
                    self.dropped_issues.insert(row.id);
                    return Ok(());
                }
                Self::known(&self.device_ids, &row.device_id, "device")?;
                diesel::insert_into(issues::table).values(&row).execute(conn)?;
                self.issue_ids.insert(row.id);
            }
            Record::IssuePost(mut row) => {
                if self.dropped_issues.contains(&row.issue_id) {
                    self.leave_out("issue_post");
                    return Ok(());
                }
                Self::known(&self.issue_ids, &row.issue_id, "issue")?;
                row.user_id = row.user_id.map(|u| self.user_ref(u));
                diesel::insert_into(issue_posts::table).values(&row).execute(conn)?;
            }
            Record::IssuePhoto(row) => {
                if self.dropped_issues.contains(&row.issue_id) {
                    self.leave_out("issue_photo");
                    return Ok(());
                }
                Self::known(&self.issue_ids, &row.issue_id, "issue")?;
                diesel::insert_into(issue_photos::table).values(&row).execute(conn)?;
            }
            Record::Block(mut row) => {
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                if self.options.without_devices {
                    self.leave_out("block");
                    return Ok(());
                }
                Self::known(&self.device_ids, &row.device_id, "device")?;
                row.created_by = self.user_ref(row.created_by);
                diesel::insert_into(device_blocks::table).values(&row).execute(conn)?;
            }
            Record::Session(mut row) => {
                self.same_town(&row.tenant_id, "session", &row.id)?;
                Self::known(&self.org_ids, &row.organization_id, "organization")?;
                Self::known(&self.group_ids, &row.group_id, "group")?;
                row.created_by = self.user_ref(row.created_by);
                diesel::insert_into(qa_sessions::table).values(&row).execute(conn)?;
                self.session_ids.insert(row.id);
            }
            Record::Question(mut row) => {
                Self::known(&self.session_ids, &row.session_id, "session")?;
                if let Some(device) = &row.device_id {
                    if self.options.without_devices {
                        // The erase rule: a public answer stays in the
                        // session's record, without the device.
                        if !row.answer_public {
                            self.leave_out("question");
                            self.dropped_questions.insert(row.id);
                            return Ok(());
                        }
                        row.device_id = None;
                        self.report.unlinked_questions += 1;
                    } else {
                        Self::known(&self.device_ids, device, "device")?;
                    }
                }
                row.answered_by = row.answered_by.map(|u| self.user_ref(u));
                diesel::insert_into(qa_questions::table).values(&row).execute(conn)?;
                self.question_ids.insert(row.id);
            }
            Record::Vote(row) => {
                if self.options.without_devices {
                    self.leave_out("vote");
                    return Ok(());
                }
                Self::known(&self.question_ids, &row.question_id, "question")?;
                Self::known(&self.device_ids, &row.device_id, "device")?;
                self.votes.push(row);
                if self.votes.len() >= INSERT_CHUNK {
                    self.flush_votes(conn)?;
                }
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
                // The groups' stored subscriber counts, from what arrived.
                let groups: Vec<String> = self.group_ids.iter().cloned().collect();
                crate::groups::recount_subscribers(conn, &groups)?;
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

    fn flush_votes(&mut self, conn: &mut DbConn) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.votes);
        dialect::insert_rows::<_, VoteRow>(conn, qa_votes::table, rows.as_slice())?;
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
        let counts = export(&mut conn, &keys, tenant, with_keys, now, &mut out)?;
        // Standard output is the export: the summary goes to standard error.
        eprintln!("exported town '{tenant}':\n{}", summary(&counts));
        if with_keys {
            eprintln!(
                "the export holds this installation's VAPID private key and pseudonym key: keep it as secret as \
                 the database"
            );
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
    let written = export(&mut conn, &keys, tenant, with_keys, now, &mut out).and_then(|counts| {
        out.into_inner().map_err(|e| anyhow!(e.into_error())).and_then(|f| Ok(f.sync_all()?)).map(|_| counts)
    });
    match written {
        Ok(counts) => {
            println!("exported town '{tenant}' to {}:\n{}", path.display(), summary(&counts));
            if with_keys {
                println!(
                    "the file holds this installation's VAPID private key and pseudonym key: keep it as secret as \
                     the database"
                );
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
            import(&mut conn, &keys, &mut std::io::BufReader::new(file), &options, now)
        }
        None => import(&mut conn, &keys, &mut std::io::stdin().lock(), &options, now),
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
    let left_out: Vec<String> = KINDS
        .iter()
        .filter(|kind| report.left_out.get(kind) > 0)
        .map(|kind| format!("{} {kind}", report.left_out.get(kind)))
        .collect();
    if !left_out.is_empty() {
        println!("left out with the devices, as when a device erases itself: {}", left_out.join(", "));
    }
    if report.unlinked_questions > 0 {
        println!("{} publicly answered questions stay, without their device", report.unlinked_questions);
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
    if report.pseudonym_key_replaced {
        println!(
            "this installation now makes residents' pseudonyms with the source's key: restart every running \
             herold serve so it uses it"
        );
    }
    // Only worth saying when the town holds pseudonyms that could differ from new ones.
    if report.pseudonyms_change && ["issue", "question", "block"].iter().any(|k| report.counts.get(k) > 0) {
        println!(
            "the source made residents' pseudonyms with another key: stored reports and questions keep theirs, \
             but a resident who writes again gets a new one (export with --with-keys into an installation \
             without devices to keep them)"
        );
    }
    Ok(())
}
