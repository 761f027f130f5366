//! Messages: posted by an organization's editors (or its API tokens) to one
//! of its groups. Posting writes the message and its fan-out job in one
//! transaction — the durable outbox the delivery workers drain.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::secrets::new_id;
use crate::db::schema::{broadcast_groups, fanout_jobs, messages, organizations, subscriptions, tenants};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::groups;
use crate::model::{page_of, parse_ts, ts, GroupStatus, OrgStatus, Page, PageQuery, Role, Urgency};
use crate::orgs;
use crate::validate;

pub const TITLE_MAX: usize = 120;
pub const BODY_MAX: usize = 4000;
/// Default time a push service keeps an undelivered message: three days.
pub const TTL_DEFAULT: i32 = 3 * 24 * 3600;
/// Mozilla caps TTL at 30 days (WEBPUSH.md).
pub const TTL_MAX: i32 = 30 * 24 * 3600;
/// How far ahead a message may be scheduled.
const SCHEDULE_HORIZON_MS: i64 = 366 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
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
    pub created_at: i64,
    pub recipients: i64,
    pub delivered: i64,
    pub gone: i64,
    pub failed: i64,
    pub last_failure: Option<String>,
    pub kind: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub urgency: Option<Urgency>,
    /// Seconds a push service may hold the message for an offline device (60 s – 30 days).
    pub ttl: Option<i32>,
    /// RFC 3339; a future time schedules the message.
    pub publish_at: Option<String>,
}

/// What residents see of a message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub group: MessageGroup,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub urgency: Urgency,
    pub published_at: String,
    /// `message` (a group's post) or `alert` (the town's alert).
    pub kind: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageGroup {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub verified: bool,
}

/// What the organization sees of its own messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OwnMessageView {
    #[serde(flatten)]
    pub message: MessageView,
    /// `scheduled`, `published` or `hidden`.
    pub status: &'static str,
    pub hidden_reason: Option<String>,
    pub ttl: i32,
    pub created_at: String,
    pub stats: Stats,
}

/// Aggregate delivery counters; never who.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub recipients: i64,
    pub delivered: i64,
    pub gone: i64,
    pub failed: i64,
    pub pending: i64,
    /// State of the fan-out: `scheduled`, `pending`, `running` or `done`.
    pub fanout: String,
    /// Why the last failed delivery failed (e.g. `413` from a push service).
    pub last_failure: Option<String>,
}

type Row = (Message, String, bool, String);

macro_rules! rows_query {
    () => {
        messages::table.inner_join(broadcast_groups::table.inner_join(tenants::table)).select((
            Message::as_select(),
            broadcast_groups::name,
            broadcast_groups::verified,
            tenants::slug,
        ))
    };
}

fn view((m, group_name, verified, slug): Row) -> ApiResult<MessageView> {
    Ok(MessageView {
        urgency: Urgency::from_db(&m.urgency)?,
        group: MessageGroup { id: m.group_id, name: group_name, tenant: slug, verified },
        id: m.id,
        title: m.title,
        body: m.body,
        url: m.url,
        published_at: ts(m.publish_at),
        kind: m.kind,
    })
}

/// Who posts: a member (`user:<id>`) or an API token (`token:<id>`).
pub enum Poster<'a> {
    User(&'a str),
    Token { id: &'a str, group_id: &'a str },
}

/// Posts a message and writes its fan-out job in the same transaction.
pub fn post(
    conn: &mut DbConn,
    poster: Poster<'_>,
    group_id: &str,
    input: NewMessage,
    now: i64,
) -> ApiResult<OwnMessageView> {
    let group = groups::by_id(conn, group_id)?;
    let org = orgs::by_id(conn, &group.organization_id)?;
    let created_by = match poster {
        Poster::User(user_id) => {
            if orgs::role_of(conn, user_id, &org.id)?.is_none() {
                return Err(ApiError::NotFound("group"));
            }
            format!("user:{user_id}")
        }
        Poster::Token { id, group_id: scope } => {
            if scope != group_id {
                return Err(ApiError::forbidden("token_scope", "this API token may post to its own group only"));
            }
            format!("token:{id}")
        }
    };
    orgs::require_approved(&org)?;
    match group.status()? {
        GroupStatus::Active => {}
        GroupStatus::Archived => return Err(ApiError::conflict("group_archived", "the group is archived")),
        GroupStatus::Suspended => return Err(ApiError::forbidden("group_suspended", "the town suspended this group")),
        GroupStatus::System => return Err(ApiError::NotFound("group")),
    }
    let id = store(conn, &group, &created_by, input, Kind::Message, now)?;
    own_view(conn, &id, now)
}

/// What a message is, and who receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A group's post, for the group's subscribers.
    Message,
    /// The town's alert, for every device following any group of the town.
    Alert,
    /// "The question hour is open": a group's message, scheduled at the
    /// session's start, whose link is the session page (`qa`).
    Session,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Alert => "alert",
            Kind::Session => "session",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        [Kind::Message, Kind::Alert, Kind::Session].into_iter().find(|k| k.as_str() == text)
    }

    pub fn scope(self) -> &'static str {
        match self {
            Kind::Message | Kind::Session => "group",
            Kind::Alert => "tenant",
        }
    }
}

/// Validates `input` and writes the message with its fan-out job (one
/// transaction: the caller's). Authorization is the caller's business.
pub fn store(
    conn: &mut DbConn,
    group: &groups::Group,
    created_by: &str,
    input: NewMessage,
    kind: Kind,
    now: i64,
) -> ApiResult<String> {
    let title = validate::text("title", &input.title, 1, TITLE_MAX, false)?;
    let body = validate::text("body", &input.body, 1, BODY_MAX, true)?;
    let url = input.url.as_deref().filter(|u| !u.trim().is_empty()).map(|u| validate::link("url", u)).transpose()?;
    let ttl = input.ttl.unwrap_or(TTL_DEFAULT);
    if !(60..=TTL_MAX).contains(&ttl) {
        return Err(ApiError::invalid("ttl", format!("ttl must be between 60 and {TTL_MAX} seconds")));
    }
    let publish_at = match input.publish_at.as_deref() {
        None => now,
        Some(t) => {
            let at = parse_ts("publish_at", t)?;
            if at > now + SCHEDULE_HORIZON_MS {
                return Err(ApiError::invalid("publish_at", "publish_at may be at most a year ahead"));
            }
            // A time in the past means "now": a slow client must not backdate.
            at.max(now)
        }
    };
    let urgency = input.urgency.unwrap_or(Urgency::Normal);
    let id = new_id();
    diesel::insert_into(messages::table)
        .values((
            messages::id.eq(&id),
            messages::tenant_id.eq(&group.tenant_id),
            messages::group_id.eq(&group.id),
            messages::title.eq(&title),
            messages::body.eq(&body),
            messages::url.eq(&url),
            messages::urgency.eq(urgency.as_str()),
            messages::ttl_seconds.eq(ttl),
            messages::publish_at.eq(publish_at),
            messages::created_by.eq(created_by),
            messages::created_at.eq(now),
            messages::kind.eq(kind.as_str()),
        ))
        .execute(conn)?;
    diesel::insert_into(fanout_jobs::table)
        .values((
            fanout_jobs::id.eq(new_id()),
            fanout_jobs::message_id.eq(&id),
            fanout_jobs::run_at.eq(publish_at),
            fanout_jobs::state.eq("pending"),
            fanout_jobs::created_at.eq(now),
            fanout_jobs::scope.eq(kind.scope()),
        ))
        .execute(conn)?;
    // Wakes the workers of every instance on commit (a scheduled message is
    // found by their poll when it comes due).
    if publish_at <= now {
        crate::db::dialect::notify_delivery(conn)?;
    }
    Ok(id)
}

/// Withdraws a scheduled message before it goes out: the message and its
/// fan-out job go, so nobody ever gets it. Not yet due, its job is held by
/// no worker; a message already due (its fan-out may be running) is left
/// alone. False when there was nothing to withdraw.
pub fn withdraw_scheduled(conn: &mut DbConn, message_id: &str, now: i64) -> ApiResult<bool> {
    let scheduled = messages::table
        .find(message_id)
        .filter(messages::publish_at.gt(now))
        .select(messages::id)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if scheduled {
        diesel::delete(fanout_jobs::table.filter(fanout_jobs::message_id.eq(message_id))).execute(conn)?;
        diesel::delete(messages::table.find(message_id)).execute(conn)?;
    }
    Ok(scheduled)
}

pub(crate) fn own_view(conn: &mut DbConn, id: &str, now: i64) -> ApiResult<OwnMessageView> {
    let row: Row = rows_query!().filter(messages::id.eq(id)).first(conn)?;
    let mut list = own_views(conn, vec![row], now)?;
    list.pop().ok_or(ApiError::NotFound("message"))
}

fn own_views(conn: &mut DbConn, rows: Vec<Row>, now: i64) -> ApiResult<Vec<OwnMessageView>> {
    let ids: Vec<String> = rows.iter().map(|r| r.0.id.clone()).collect();
    let jobs: Vec<(String, String)> = fanout_jobs::table
        .filter(fanout_jobs::message_id.eq_any(&ids))
        .select((fanout_jobs::message_id, fanout_jobs::state))
        .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let m = &row.0;
            let status = if m.hidden {
                "hidden"
            } else if m.publish_at > now {
                "scheduled"
            } else {
                "published"
            };
            let job =
                jobs.iter().find(|(mid, _)| *mid == m.id).map(|(_, s)| s.clone()).unwrap_or_else(|| "done".into());
            let fanout = if m.publish_at > now { "scheduled".to_owned() } else { job };
            let stats = Stats {
                recipients: m.recipients,
                delivered: m.delivered,
                gone: m.gone,
                failed: m.failed,
                pending: (m.recipients - m.delivered - m.gone - m.failed).max(0),
                fanout,
                last_failure: m.last_failure.clone(),
            };
            let (hidden_reason, ttl, created_at) = (m.hidden_reason.clone(), m.ttl_seconds, ts(m.created_at));
            Ok(OwnMessageView { message: view(row)?, status, hidden_reason, ttl, created_at, stats })
        })
        .collect()
}

/// Keyset filter "older than the cursor" on (publish_at, id), newest first.
macro_rules! before_cursor {
    ($query:expr, $page:expr) => {{
        let mut q = $query;
        if let Some((at, id)) = $page.position()? {
            q = q.filter(messages::publish_at.lt(at).or(messages::publish_at.eq(at).and(messages::id.lt(id))));
        }
        q.order((messages::publish_at.desc(), messages::id.desc()))
    }};
}

/// A group's public feed: published, not hidden, newest first.
pub fn feed(conn: &mut DbConn, group_id: &str, page: &PageQuery, now: i64) -> ApiResult<Page<MessageView>> {
    groups::visible(conn, group_id)?;
    let limit = page.limit()?;
    let q = rows_query!()
        .filter(messages::group_id.eq(group_id))
        .filter(messages::hidden.eq(false))
        .filter(messages::publish_at.le(now))
        .limit(limit + 1)
        .into_boxed();
    let rows: Vec<Row> = before_cursor!(q, page).load(conn)?;
    let page = page_of(rows, limit, |r| (r.0.publish_at, r.0.id.clone()), |r| r);
    Ok(Page { items: page.items.into_iter().map(view).collect::<ApiResult<_>>()?, next: page.next })
}

/// All of a group's messages with status and statistics, for its organization's members.
pub fn for_members(
    conn: &mut DbConn,
    actor: &str,
    group_id: &str,
    page: &PageQuery,
    now: i64,
) -> ApiResult<Page<OwnMessageView>> {
    let group = groups::by_id(conn, group_id)?;
    orgs::require_role(conn, actor, &group.organization_id, Role::Editor).map_err(|_| ApiError::NotFound("group"))?;
    let limit = page.limit()?;
    let q = rows_query!().filter(messages::group_id.eq(group_id)).limit(limit + 1).into_boxed();
    let rows: Vec<Row> = before_cursor!(q, page).load(conn)?;
    let page = page_of(rows, limit, |r| (r.0.publish_at, r.0.id.clone()), |r| r);
    Ok(Page { items: own_views(conn, page.items, now)?, next: page.next })
}

/// True when `actor` is a member of the group's organization.
pub fn is_member_of_group(conn: &mut DbConn, actor: &str, group_id: &str) -> ApiResult<bool> {
    let group = groups::by_id(conn, group_id)?;
    Ok(orgs::role_of(conn, actor, &group.organization_id)?.is_some())
}

/// One published message, as residents see it. A message the town hid is
/// `410 message_removed` with the reason: a device that got it as a
/// notification shows it as removed.
pub fn public(conn: &mut DbConn, id: &str, now: i64) -> ApiResult<MessageView> {
    let row: Row = rows_query!()
        .filter(messages::id.eq(id))
        .filter(messages::publish_at.le(now))
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("message"))?;
    if row.0.hidden {
        return Err(crate::moderation::removed(row.0.hidden_reason));
    }
    groups::readable(conn, &row.0.group_id).map_err(|_| ApiError::NotFound("message"))?;
    view(row)
}

/// A message with its statistics, for its organization's members.
pub fn stats(conn: &mut DbConn, actor: &str, id: &str, now: i64) -> ApiResult<OwnMessageView> {
    let group_id: String = messages::table
        .find(id)
        .select(messages::group_id)
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("message"))?;
    if !is_member_of_group(conn, actor, &group_id)? {
        return Err(ApiError::NotFound("message"));
    }
    own_view(conn, id, now)
}

/// The device's inbox: messages of every group it follows, newest first.
pub fn inbox(conn: &mut DbConn, device_id: &str, page: &PageQuery, now: i64) -> ApiResult<Page<MessageView>> {
    let limit = page.limit()?;
    // What the device follows, and so which towns' alerts reach it.
    let followed: Vec<(String, String)> = subscriptions::table
        .inner_join(broadcast_groups::table)
        .filter(subscriptions::device_id.eq(device_id))
        .select((subscriptions::group_id, broadcast_groups::tenant_id))
        .load(conn)?;
    let (group_ids, mut tenant_ids): (Vec<String>, Vec<String>) = followed.into_iter().unzip();
    tenant_ids.sort();
    tenant_ids.dedup();
    let q = rows_query!()
        .inner_join(organizations::table.on(organizations::id.eq(broadcast_groups::organization_id)))
        .filter(
            messages::group_id
                .eq_any(group_ids)
                .or(messages::kind.eq(Kind::Alert.as_str()).and(messages::tenant_id.eq_any(tenant_ids))),
        )
        .filter(messages::hidden.eq(false))
        .filter(messages::publish_at.le(now))
        // An archived group's messages stay readable by its followers; a
        // suspended group's or organization's do not.
        .filter(broadcast_groups::status.ne(GroupStatus::Suspended.as_str()))
        .filter(organizations::status.eq(OrgStatus::Approved.as_str()))
        .limit(limit + 1)
        .into_boxed();
    let rows: Vec<Row> = before_cursor!(q, page).load(conn)?;
    let page = page_of(rows, limit, |r| (r.0.publish_at, r.0.id.clone()), |r| r);
    Ok(Page { items: page.items.into_iter().map(view).collect::<ApiResult<_>>()?, next: page.next })
}
