//! Moderation by the town: its city admins (or the operator) verify,
//! suspend and reinstate groups, hide and restore messages, work the queue
//! of residents' reports, and read the audit log. Residents flag messages
//! here too.
//!
//! Every action is written to the audit log in the transaction that does
//! it. Nothing here deletes: a suspension or a hide can be undone, reports
//! and audit rows stay. A city admin of another town, an organization member
//! or a stranger learns nothing about a group, message or report of the
//! town (404); the town's lists answer 403 to anyone but its city admins.
//! Reports never show which device made them.

use std::collections::HashMap;

use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audit::{self, user_actor};
use crate::auth::secrets::new_id;
use crate::db::schema::{api_tokens, audit_log, broadcast_groups, messages, organizations, reports, tenants, users};
use crate::db::{lower, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::groups::{self, Group, GroupView, OrgRef};
use crate::model::{
    encode_cursor, page_of, ts, GroupStatus, OrgStatus, Page, PageQuery, ReportReason, ReportStatus, Resolution,
};
use crate::orgs;
use crate::tenants::Tenant;
use crate::validate;

/// Longest reason or note a city admin may give.
pub const REASON_MAX: usize = 500;
/// Longest text a resident may add to a report.
pub const REPORT_TEXT_MAX: usize = 500;

/// What a resident gets when opening a message the town hid.
pub fn removed(reason: Option<String>) -> ApiError {
    ApiError::Gone { code: "message_removed", message: "the town removed this message".into(), reason }
}

/// The tenant `slug`, if `actor` is its city admin (or an operator).
fn city_admin_of(conn: &mut DbConn, actor: &str, slug: &str) -> ApiResult<Tenant> {
    let tenant = crate::tenants::by_slug(conn, slug)?;
    if !orgs::is_city_admin(conn, actor, &tenant.id)? {
        return Err(ApiError::forbidden("city_admin_required", "only the town's city admins may do this"));
    }
    Ok(tenant)
}

fn is_operator(conn: &mut DbConn, actor: &str) -> ApiResult<bool> {
    Ok(users::table.find(actor).select(users::is_platform_admin).first(conn).optional()?.unwrap_or(false))
}

/// A trimmed reason or note; blank counts as none.
fn reason_text(field: &'static str, value: Option<&str>) -> ApiResult<Option<String>> {
    Ok(value.map(|r| validate::text(field, r, 0, REASON_MAX, true)).transpose()?.filter(|r| !r.is_empty()))
}

#[allow(clippy::too_many_arguments)]
fn record(
    conn: &mut DbConn,
    tenant_id: &str,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    audit::record(
        conn,
        audit::Entry { tenant_id: Some(tenant_id), actor: user_actor(actor), action, target_type, target_id, reason },
        now,
    )
}

fn refused(message: &str) -> ApiError {
    ApiError::conflict("invalid_transition", message.to_owned())
}

/// Offset cursors for the console's short, non-chronological lists (a town
/// has hundreds of groups and a handful of reported messages, not millions).
fn offset_of(page: &PageQuery) -> ApiResult<i64> {
    Ok(page.position()?.map(|(o, _)| o).unwrap_or(0).max(0))
}

fn offset_page<T>(mut items: Vec<T>, offset: i64, limit: i64) -> (Vec<T>, Option<String>) {
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(offset + limit, "o")
    });
    (items, next)
}

// ---- groups ----

/// What a city admin may do to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// The "official" badge, for the town hall and its institutions.
    Verify,
    Unverify,
    /// Off the directory, feeds and inboxes, no posting; subscribers are kept.
    Suspend,
    Reinstate,
}

impl GroupAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "verify" => Some(GroupAction::Verify),
            "unverify" => Some(GroupAction::Unverify),
            "suspend" => Some(GroupAction::Suspend),
            "reinstate" => Some(GroupAction::Reinstate),
            _ => None,
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            GroupAction::Verify => "group.verify",
            GroupAction::Unverify => "group.unverify",
            GroupAction::Suspend => "group.suspend",
            GroupAction::Reinstate => "group.reinstate",
        }
    }
}

/// A group of the town `actor` administers; the town's own alert channel is
/// not moderated. Anyone else learns nothing (404).
fn moderated_group(conn: &mut DbConn, actor: &str, id: &str) -> ApiResult<Group> {
    let group = groups::by_id(conn, id)?;
    if group.status()? == GroupStatus::System || !orgs::is_city_admin(conn, actor, &group.tenant_id)? {
        return Err(ApiError::NotFound("group"));
    }
    Ok(group)
}

/// Verifies, unverifies, suspends (with a reason) or reinstates a group.
pub fn act_on_group(
    conn: &mut DbConn,
    actor: &str,
    id: &str,
    action: GroupAction,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<GroupView> {
    let group = moderated_group(conn, actor, id)?;
    let reason = reason_text("reason", reason)?;
    apply_to_group(conn, actor, &group, action, reason.as_deref(), now)?;
    groups::member_view(conn, id)
}

fn apply_to_group(
    conn: &mut DbConn,
    actor: &str,
    group: &Group,
    action: GroupAction,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    use GroupAction::*;
    if action == Suspend && reason.is_none() {
        return Err(ApiError::invalid("reason", "say why the group is suspended"));
    }
    let status = group.status()?;
    let (verified, to) = match (action, status) {
        (_, GroupStatus::Archived) => return Err(refused("an archived group cannot be changed")),
        (_, GroupStatus::System) => return Err(refused("the town's alert channel is not moderated")),
        (Verify, _) if group.verified => return Err(refused("the group is verified already")),
        (Verify, _) => (true, status),
        (Unverify, _) if !group.verified => return Err(refused("the group is not verified")),
        (Unverify, _) => (false, status),
        (Suspend, GroupStatus::Active) => (group.verified, GroupStatus::Suspended),
        (Suspend, _) => return Err(refused("the group is suspended already")),
        (Reinstate, GroupStatus::Suspended) => (group.verified, GroupStatus::Active),
        (Reinstate, _) => return Err(refused("only a suspended group can be reinstated")),
    };
    diesel::update(broadcast_groups::table.find(&group.id))
        .set((
            broadcast_groups::verified.eq(verified),
            broadcast_groups::status.eq(to.as_str()),
            broadcast_groups::updated_at.eq(now),
        ))
        .execute(conn)?;
    record(conn, &group.tenant_id, actor, action.audit_action(), "group", &group.id, reason, now)
}

/// A group as the town's console shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminGroupView {
    #[serde(flatten)]
    pub group: GroupView,
    /// The group reaches residents only while its organization is approved.
    pub organization_status: OrgStatus,
    /// Why the town suspended the group (while it is suspended).
    pub suspension_reason: Option<String>,
}

/// Every group of the town (but its alert channel), by name; optionally of one status.
pub fn town_groups(
    conn: &mut DbConn,
    actor: &str,
    slug: &str,
    status: Option<GroupStatus>,
    page: &PageQuery,
) -> ApiResult<Page<AdminGroupView>> {
    let tenant = city_admin_of(conn, actor, slug)?;
    if status == Some(GroupStatus::System) {
        return Err(ApiError::invalid("status", "status must be one of active, archived, suspended"));
    }
    let (limit, offset) = (page.limit()?, offset_of(page)?);
    let mut query = broadcast_groups::table
        .inner_join(organizations::table)
        .inner_join(tenants::table)
        .select((Group::as_select(), tenants::slug, organizations::name, organizations::status))
        .filter(broadcast_groups::tenant_id.eq(&tenant.id))
        .filter(broadcast_groups::status.ne(GroupStatus::System.as_str()))
        .order((lower(broadcast_groups::name).asc(), broadcast_groups::id.asc()))
        .limit(limit + 1)
        .offset(offset)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(broadcast_groups::status.eq(status.as_str()));
    }
    let rows: Vec<groups::GroupRow> = query.load(conn)?;
    let (rows, next) = offset_page(rows, offset, limit);
    let org_status: Vec<OrgStatus> = rows.iter().map(|r| OrgStatus::from_db(&r.3)).collect::<ApiResult<_>>()?;
    let suspended: Vec<String> =
        rows.iter().filter(|r| r.0.status == GroupStatus::Suspended.as_str()).map(|r| r.0.id.clone()).collect();
    // The reason lives in the audit log: the latest suspension of each group.
    let mut reasons: HashMap<String, Option<String>> = HashMap::new();
    if !suspended.is_empty() {
        let found: Vec<(String, Option<String>)> = audit_log::table
            .filter(audit_log::target_type.eq("group"))
            .filter(audit_log::action.eq(GroupAction::Suspend.audit_action()))
            .filter(audit_log::target_id.eq_any(&suspended))
            .order((audit_log::created_at.asc(), audit_log::id.asc()))
            .select((audit_log::target_id, audit_log::reason))
            .load(conn)?;
        reasons.extend(found);
    }
    let items = groups::views(rows)?
        .into_iter()
        .zip(org_status)
        .map(|(group, organization_status)| {
            let suspension_reason =
                if group.status == GroupStatus::Suspended { reasons.get(&group.id).cloned().flatten() } else { None };
            AdminGroupView { group, organization_status, suspension_reason }
        })
        .collect();
    Ok(Page { items, next })
}

// ---- messages ----

/// A message with what moderation needs to judge it.
#[derive(Debug, Queryable)]
struct MessageContext {
    id: String,
    tenant_id: String,
    title: String,
    body: String,
    kind: String,
    hidden: bool,
    hidden_reason: Option<String>,
    publish_at: i64,
    group_id: String,
    group_name: String,
    group_verified: bool,
    group_status: String,
    organization_id: String,
    organization_name: String,
    tenant_slug: String,
}

fn context(conn: &mut DbConn, id: &str) -> ApiResult<Option<MessageContext>> {
    Ok(messages::table
        .inner_join(broadcast_groups::table.inner_join(organizations::table).inner_join(tenants::table))
        .filter(messages::id.eq(id))
        .select((
            messages::id,
            messages::tenant_id,
            messages::title,
            messages::body,
            messages::kind,
            messages::hidden,
            messages::hidden_reason,
            messages::publish_at,
            broadcast_groups::id,
            broadcast_groups::name,
            broadcast_groups::verified,
            broadcast_groups::status,
            organizations::id,
            organizations::name,
            tenants::slug,
        ))
        .first(conn)
        .optional()?)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModeratedGroup {
    pub id: String,
    pub name: String,
    pub verified: bool,
    pub status: GroupStatus,
}

/// A message as the town's moderators see it, hidden or not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModeratedMessage {
    pub id: String,
    pub tenant: String,
    /// `message`, or `alert` for the town's own alerts.
    pub kind: String,
    pub title: String,
    pub body: String,
    pub group: ModeratedGroup,
    pub organization: OrgRef,
    pub hidden: bool,
    pub hidden_reason: Option<String>,
    pub published_at: String,
}

fn moderated_view(m: MessageContext) -> ApiResult<ModeratedMessage> {
    Ok(ModeratedMessage {
        group: ModeratedGroup {
            status: GroupStatus::from_db(&m.group_status)?,
            id: m.group_id,
            name: m.group_name,
            verified: m.group_verified,
        },
        organization: OrgRef { id: m.organization_id, name: m.organization_name },
        id: m.id,
        tenant: m.tenant_slug,
        kind: m.kind,
        title: m.title,
        body: m.body,
        hidden: m.hidden,
        hidden_reason: m.hidden_reason,
        published_at: ts(m.publish_at),
    })
}

fn message_view(conn: &mut DbConn, id: &str) -> ApiResult<ModeratedMessage> {
    moderated_view(context(conn, id)?.ok_or(ApiError::NotFound("message"))?)
}

/// A message of the town `actor` administers; anyone else learns nothing.
fn moderated_message(conn: &mut DbConn, actor: &str, id: &str) -> ApiResult<MessageContext> {
    let message = context(conn, id)?.ok_or(ApiError::NotFound("message"))?;
    if !orgs::is_city_admin(conn, actor, &message.tenant_id)? {
        return Err(ApiError::NotFound("message"));
    }
    Ok(message)
}

/// Hides a message (with a reason residents get to see) from feeds and
/// inboxes; one not yet fanned out is not sent either.
pub fn hide_message(
    conn: &mut DbConn,
    actor: &str,
    id: &str,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<ModeratedMessage> {
    let message = moderated_message(conn, actor, id)?;
    let reason = reason_text("reason", reason)?
        .ok_or_else(|| ApiError::invalid("reason", "say why the message is hidden; residents see the reason"))?;
    if message.hidden {
        return Err(refused("the message is hidden already"));
    }
    set_hidden(conn, actor, &message, &reason, now)?;
    message_view(conn, id)
}

fn set_hidden(conn: &mut DbConn, actor: &str, message: &MessageContext, reason: &str, now: i64) -> ApiResult<()> {
    diesel::update(messages::table.find(&message.id))
        .set((messages::hidden.eq(true), messages::hidden_reason.eq(reason)))
        .execute(conn)?;
    record(conn, &message.tenant_id, actor, "message.hide", "message", &message.id, Some(reason), now)
}

/// Puts a hidden message back into feeds and inboxes.
pub fn restore_message(
    conn: &mut DbConn,
    actor: &str,
    id: &str,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<ModeratedMessage> {
    let message = moderated_message(conn, actor, id)?;
    let reason = reason_text("reason", reason)?;
    if !message.hidden {
        return Err(refused("the message is not hidden"));
    }
    diesel::update(messages::table.find(id))
        .set((messages::hidden.eq(false), messages::hidden_reason.eq(None::<String>)))
        .execute(conn)?;
    record(conn, &message.tenant_id, actor, "message.restore", "message", id, reason.as_deref(), now)?;
    message_view(conn, id)
}

// ---- residents' reports ----

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// spam, offensive, false_information or other.
    pub reason: String,
    /// Up to 500 characters.
    pub text: Option<String>,
}

/// What the device gets back: its report, nothing of anybody else's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportReceipt {
    pub id: String,
    pub message_id: String,
    pub reason: ReportReason,
    pub text: String,
    pub created_at: String,
}

/// A device flags a message it can see; once per device and message.
pub fn report(
    conn: &mut DbConn,
    device_id: &str,
    message_id: &str,
    input: &NewReport,
    now: i64,
) -> ApiResult<ReportReceipt> {
    let reason = ReportReason::parse(input.reason.trim())
        .ok_or_else(|| ApiError::invalid("reason", format!("reason must be one of {}", ReportReason::names())))?;
    let text = validate::optional_text("text", input.text.as_deref(), REPORT_TEXT_MAX, true)?;
    // What a resident cannot read (scheduled, hidden, of a suspended group)
    // cannot be reported either.
    match crate::messages::public(conn, message_id, now) {
        Ok(_) => {}
        Err(ApiError::NotFound(_) | ApiError::Gone { .. }) => return Err(ApiError::NotFound("message")),
        Err(other) => return Err(other),
    }
    let tenant_id: String = messages::table.find(message_id).select(messages::tenant_id).first(conn)?;
    let already_reported = || ApiError::conflict("already_reported", "this device has reported the message already");
    let earlier: i64 = reports::table
        .filter(reports::message_id.eq(message_id))
        .filter(reports::device_id.eq(device_id))
        .count()
        .get_result(conn)?;
    if earlier > 0 {
        return Err(already_reported());
    }
    let id = new_id();
    diesel::insert_into(reports::table)
        .values((
            reports::id.eq(&id),
            reports::tenant_id.eq(&tenant_id),
            reports::message_id.eq(message_id),
            reports::device_id.eq(device_id),
            reports::reason.eq(reason.as_str()),
            reports::details.eq(&text),
            reports::status.eq(ReportStatus::Open.as_str()),
            reports::created_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| match e {
            // Two reports of one device racing: the unique index decides.
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                already_reported()
            }
            other => other.into(),
        })?;
    Ok(ReportReceipt { id, message_id: message_id.to_owned(), reason, text, created_at: ts(now) })
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ReasonCounts {
    pub spam: i64,
    pub offensive: i64,
    pub false_information: i64,
    pub other: i64,
}

/// A resident's own words, without anything that tells who wrote them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportText {
    pub reason: ReportReason,
    pub text: String,
    pub reported_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResolutionView {
    pub action: Resolution,
    pub resolved_at: String,
    /// E-mail of the city admin who resolved it.
    pub resolved_by: Option<String>,
}

/// One reported message in the town's queue, with all its reports of that status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportItem {
    /// A report of this message: `POST /admin/reports/{id}/resolve` resolves them all.
    pub id: String,
    pub status: ReportStatus,
    pub message: ModeratedMessage,
    pub report_count: i64,
    pub reasons: ReasonCounts,
    /// The texts residents wrote (reports without text are only counted).
    pub texts: Vec<ReportText>,
    pub first_reported_at: String,
    pub last_reported_at: String,
    /// How the town resolved them (resolved reports only).
    pub resolution: Option<ResolutionView>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = reports)]
struct ReportRow {
    id: String,
    reason: String,
    details: String,
    resolution: Option<String>,
    created_at: i64,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
}

/// The town's reported messages: most reports first, then the longest waiting.
pub fn queue(
    conn: &mut DbConn,
    actor: &str,
    slug: &str,
    status: ReportStatus,
    page: &PageQuery,
) -> ApiResult<Page<ReportItem>> {
    let tenant = city_admin_of(conn, actor, slug)?;
    let (limit, offset) = (page.limit()?, offset_of(page)?);
    let rows: Vec<(String, i64)> = reports::table
        .filter(reports::tenant_id.eq(&tenant.id))
        .filter(reports::status.eq(status.as_str()))
        .group_by(reports::message_id)
        .select((reports::message_id, count_star()))
        .order((count_star().desc(), min(reports::created_at).asc(), reports::message_id.asc()))
        .limit(limit + 1)
        .offset(offset)
        .load(conn)?;
    let (rows, next) = offset_page(rows, offset, limit);
    let items = rows.into_iter().map(|(message_id, _)| item(conn, &message_id, status)).collect::<ApiResult<_>>()?;
    Ok(Page { items, next })
}

fn item(conn: &mut DbConn, message_id: &str, status: ReportStatus) -> ApiResult<ReportItem> {
    let rows: Vec<ReportRow> = reports::table
        .filter(reports::message_id.eq(message_id))
        .filter(reports::status.eq(status.as_str()))
        .order((reports::created_at.asc(), reports::id.asc()))
        .select(ReportRow::as_select())
        .load(conn)?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(ApiError::NotFound("report"));
    };
    let (id, first_at, last_at) = (first.id.clone(), first.created_at, last.created_at);
    // The latest resolution decides what the message's resolved reports say.
    let latest = rows.iter().filter(|r| r.resolved_at.is_some()).max_by_key(|r| r.resolved_at);
    let resolution = match latest {
        Some(r) => Some(ResolutionView {
            action: Resolution::from_db(r.resolution.as_deref().unwrap_or_default())?,
            resolved_at: ts(r.resolved_at.unwrap_or_default()),
            resolved_by: match r.resolved_by.as_deref().and_then(|a| a.strip_prefix("user:")) {
                Some(user_id) => users::table.find(user_id).select(users::email).first::<String>(conn).optional()?,
                None => r.resolved_by.clone(),
            },
        }),
        None => None,
    };
    let mut reasons = ReasonCounts::default();
    let mut texts = Vec::new();
    for r in &rows {
        let reason = ReportReason::from_db(&r.reason)?;
        *match reason {
            ReportReason::Spam => &mut reasons.spam,
            ReportReason::Offensive => &mut reasons.offensive,
            ReportReason::FalseInformation => &mut reasons.false_information,
            ReportReason::Other => &mut reasons.other,
        } += 1;
        if !r.details.is_empty() {
            texts.push(ReportText { reason, text: r.details.clone(), reported_at: ts(r.created_at) });
        }
    }
    Ok(ReportItem {
        id,
        status,
        message: message_view(conn, message_id)?,
        report_count: rows.len() as i64,
        reasons,
        texts,
        first_reported_at: ts(first_at),
        last_reported_at: ts(last_at),
        resolution,
    })
}

/// Resolves every open report of the reported message: hides it (the note
/// is the reason residents see), dismisses the reports, or suspends its group.
pub fn resolve(
    conn: &mut DbConn,
    actor: &str,
    report_id: &str,
    action: &str,
    note: Option<&str>,
    now: i64,
) -> ApiResult<ReportItem> {
    let (message_id, tenant_id): (String, String) = reports::table
        .find(report_id)
        .select((reports::message_id, reports::tenant_id))
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("report"))?;
    if !orgs::is_city_admin(conn, actor, &tenant_id)? {
        return Err(ApiError::NotFound("report"));
    }
    let action = Resolution::parse(action.trim())
        .ok_or_else(|| ApiError::invalid("action", format!("action must be one of {}", Resolution::names())))?;
    let note = reason_text("note", note)?;
    let open = reports::table
        .filter(reports::message_id.eq(&message_id))
        .filter(reports::status.eq(ReportStatus::Open.as_str()));
    let open_count: i64 = open.count().get_result(conn)?;
    if open_count == 0 {
        return Err(ApiError::conflict("already_resolved", "the reports of this message are resolved already"));
    }
    let message = context(conn, &message_id)?.ok_or(ApiError::NotFound("message"))?;
    match action {
        Resolution::Dismiss => {}
        Resolution::HideMessage => {
            if !message.hidden {
                let reason = note.clone().unwrap_or_else(|| "removed after residents' reports".to_owned());
                set_hidden(conn, actor, &message, &reason, now)?;
            }
        }
        Resolution::SuspendGroup => {
            let group = groups::by_id(conn, &message.group_id)?;
            if group.status()? != GroupStatus::Suspended {
                let reason = note.clone().unwrap_or_else(|| "suspended after residents' reports".to_owned());
                apply_to_group(conn, actor, &group, GroupAction::Suspend, Some(&reason), now)?;
            }
        }
    }
    diesel::update(open)
        .set((
            reports::status.eq(ReportStatus::Resolved.as_str()),
            reports::resolution.eq(action.as_str()),
            reports::resolved_at.eq(now),
            reports::resolved_by.eq(user_actor(actor)),
        ))
        .execute(conn)?;
    let summary = match &note {
        Some(note) => format!("{}: {note}", action.as_str()),
        None => action.as_str().to_owned(),
    };
    record(conn, &tenant_id, actor, "report.resolve", "message", &message_id, Some(&summary), now)?;
    item(conn, &message_id, ReportStatus::Resolved)
}

// ---- audit log ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// e.g. `group.suspend`, `message.hide`, `organization.approve`.
    pub action: Option<String>,
    /// An e-mail address, `operator`, or a raw actor (`user:<id>`, `token:<id>`).
    pub actor: Option<String>,
    /// e.g. `group`, `message`, `organization`, `user`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// A town's slug (operator's list across towns only).
    pub tenant: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One audit record: who did what, when, to what, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    /// The town's slug; `null` for installation-wide actions (operator).
    pub tenant: Option<String>,
    /// The person's e-mail, `operator` (the CLI), or an API token's name.
    pub actor: String,
    /// `user`, `operator` or `token`.
    pub actor_type: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub reason: Option<String>,
    pub created_at: String,
}

type AuditRow = (String, Option<String>, String, String, String, String, Option<String>, i64);

/// The town's audit log, newest first (its city admins and the operator).
pub fn town_audit(conn: &mut DbConn, actor: &str, slug: &str, query: &AuditQuery) -> ApiResult<Page<AuditEntry>> {
    let tenant = city_admin_of(conn, actor, slug)?;
    if query.tenant.as_deref().is_some_and(|t| !t.is_empty() && t != tenant.slug) {
        return Err(ApiError::invalid("tenant", "a town's audit log is that town's only"));
    }
    audit_page(conn, Some(&tenant.id), query)
}

/// The audit log of every town and of the installation, newest first (operator only).
pub fn all_audit(conn: &mut DbConn, actor: &str, query: &AuditQuery) -> ApiResult<Page<AuditEntry>> {
    if !is_operator(conn, actor)? {
        return Err(ApiError::forbidden("operator_required", "only an operator may read every town's audit log"));
    }
    let tenant = match query.tenant.as_deref().filter(|t| !t.is_empty()) {
        Some(slug) => Some(crate::tenants::by_slug(conn, slug)?.id),
        None => None,
    };
    audit_page(conn, tenant.as_deref(), query)
}

fn filter_value(field: &'static str, value: &Option<String>) -> ApiResult<Option<String>> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| validate::text(field, v, 1, 200, false))
        .transpose()
}

fn audit_page(conn: &mut DbConn, tenant_id: Option<&str>, query: &AuditQuery) -> ApiResult<Page<AuditEntry>> {
    let page = PageQuery { cursor: query.cursor.clone(), limit: query.limit };
    let limit = page.limit()?;
    let action = filter_value("action", &query.action)?;
    let target_type = filter_value("target_type", &query.target_type)?;
    let target_id = filter_value("target_id", &query.target_id)?;
    let actor = match filter_value("actor", &query.actor)? {
        Some(who) if who.contains('@') => {
            match users::table
                .filter(users::email.eq(who.to_lowercase()))
                .select(users::id)
                .first::<String>(conn)
                .optional()?
            {
                Some(id) => Some(user_actor(&id)),
                // Nobody by that address has done anything.
                None => return Ok(Page { items: Vec::new(), next: None }),
            }
        }
        other => other,
    };
    let mut q = audit_log::table
        .select((
            audit_log::id,
            audit_log::tenant_id,
            audit_log::actor,
            audit_log::action,
            audit_log::target_type,
            audit_log::target_id,
            audit_log::reason,
            audit_log::created_at,
        ))
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some(tenant_id) = tenant_id {
        q = q.filter(audit_log::tenant_id.eq(tenant_id.to_owned()));
    }
    if let Some(action) = action {
        q = q.filter(audit_log::action.eq(action));
    }
    if let Some(actor) = actor {
        q = q.filter(audit_log::actor.eq(actor));
    }
    if let Some(target_type) = target_type {
        q = q.filter(audit_log::target_type.eq(target_type));
    }
    if let Some(target_id) = target_id {
        q = q.filter(audit_log::target_id.eq(target_id));
    }
    if let Some((at, id)) = page.position()? {
        q = q.filter(audit_log::created_at.lt(at).or(audit_log::created_at.eq(at).and(audit_log::id.lt(id))));
    }
    let rows: Vec<AuditRow> = q.load(conn)?;
    let page = page_of(rows, limit, |r| (r.7, r.0.clone()), |r| r);

    // Names for the ids: e-mails of people, slugs of towns, names of tokens.
    let ids_after = |prefix: &str| -> Vec<String> {
        page.items.iter().filter_map(|r| r.2.strip_prefix(prefix).map(str::to_owned)).collect()
    };
    let (user_ids, token_ids) = (ids_after("user:"), ids_after("token:"));
    let tenant_ids: Vec<String> = page.items.iter().filter_map(|r| r.1.clone()).collect();
    let emails: HashMap<String, String> = users::table
        .filter(users::id.eq_any(&user_ids))
        .select((users::id, users::email))
        .load(conn)?
        .into_iter()
        .collect();
    let tokens: HashMap<String, String> = api_tokens::table
        .filter(api_tokens::id.eq_any(&token_ids))
        .select((api_tokens::id, api_tokens::name))
        .load(conn)?
        .into_iter()
        .collect();
    let slugs: HashMap<String, String> = tenants::table
        .filter(tenants::id.eq_any(&tenant_ids))
        .select((tenants::id, tenants::slug))
        .load(conn)?
        .into_iter()
        .collect();
    let items = page
        .items
        .into_iter()
        .map(|(id, tenant_id, actor, action, target_type, target_id, reason, created_at)| {
            let (actor, actor_type) = if let Some(user) = actor.strip_prefix("user:") {
                (emails.get(user).cloned().unwrap_or(actor.clone()), "user")
            } else if let Some(token) = actor.strip_prefix("token:") {
                (tokens.get(token).cloned().unwrap_or(actor.clone()), "token")
            } else {
                (actor, "operator")
            };
            AuditEntry {
                id,
                tenant: tenant_id.and_then(|t| slugs.get(&t).cloned()),
                actor,
                actor_type: actor_type.to_owned(),
                action,
                target_type,
                target_id,
                reason,
                created_at: ts(created_at),
            }
        })
        .collect();
    Ok(Page { items, next: page.next })
}
