//! Broadcast groups: created and edited by their organization's owners,
//! listed in the town's public directory while both the group is active and
//! its organization approved.

use std::collections::HashMap;

use diesel::dsl::count_star;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audit::{self, user_actor};
use crate::auth::secrets::new_id;
use crate::db::schema::{broadcast_groups, organizations, subscriber_counts, subscriptions, tenants};
use crate::db::{lower, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::model::{encode_cursor, ts, Category, GroupStatus, OrgStatus, Page, PageQuery, Role};
use crate::orgs;
use crate::validate;

pub const NAME_MAX: usize = 80;
pub const DESCRIPTION_MAX: usize = 1000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = broadcast_groups)]
pub struct Group {
    pub id: String,
    pub tenant_id: String,
    pub organization_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub verified: bool,
    pub status: String,
    pub created_at: i64,
    /// Kept by `adjust_subscribers` wherever subscriptions change.
    pub subscriber_count: i64,
}

impl Group {
    pub fn status(&self) -> ApiResult<GroupStatus> {
        GroupStatus::from_db(&self.status)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub id: String,
    pub tenant: String,
    pub organization: OrgRef,
    pub name: String,
    pub description: String,
    pub category: Category,
    /// An official group of the town (badge in directory and notifications).
    pub verified: bool,
    pub status: GroupStatus,
    pub subscriber_count: i64,
    pub created_at: String,
}

/// A group joined with what its views need.
pub(crate) type GroupRow = (Group, String, String, String);

/// Groups joined with their tenant's slug and organization's name and status.
macro_rules! rows_query {
    () => {
        broadcast_groups::table.inner_join(organizations::table).inner_join(tenants::table).select((
            Group::as_select(),
            tenants::slug,
            organizations::name,
            organizations::status,
        ))
    };
}

/// Moves a group's stored subscriber count by `delta`, in the caller's
/// transaction (the row lock orders concurrent changes).
pub fn adjust_subscribers(conn: &mut DbConn, group_id: &str, delta: i64) -> QueryResult<()> {
    if delta != 0 {
        diesel::update(broadcast_groups::table.find(group_id))
            .set(broadcast_groups::subscriber_count.eq(broadcast_groups::subscriber_count + delta))
            .execute(conn)?;
    }
    Ok(())
}

/// Counts the groups' subscriptions afresh (after an import).
pub fn recount_subscribers(conn: &mut DbConn, group_ids: &[String]) -> QueryResult<()> {
    for chunk in group_ids.chunks(500) {
        let counts: HashMap<String, i64> = subscriptions::table
            .filter(subscriptions::group_id.eq_any(chunk))
            .group_by(subscriptions::group_id)
            .select((subscriptions::group_id, count_star()))
            .load::<(String, i64)>(conn)?
            .into_iter()
            .collect();
        for id in chunk {
            diesel::update(broadcast_groups::table.find(id))
                .set(broadcast_groups::subscriber_count.eq(counts.get(id).copied().unwrap_or(0)))
                .execute(conn)?;
        }
    }
    Ok(())
}

pub(crate) fn views(rows: Vec<GroupRow>) -> ApiResult<Vec<GroupView>> {
    rows.into_iter()
        .map(|(g, slug, org_name, _)| {
            Ok(GroupView {
                subscriber_count: g.subscriber_count,
                category: Category::from_db(&g.category)?,
                status: g.status()?,
                organization: OrgRef { id: g.organization_id, name: org_name },
                tenant: slug,
                id: g.id,
                name: g.name,
                description: g.description,
                verified: g.verified,
                created_at: ts(g.created_at),
            })
        })
        .collect()
}

pub fn by_id(conn: &mut DbConn, id: &str) -> ApiResult<Group> {
    broadcast_groups::table
        .find(id)
        .select(Group::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("group"))
}

/// A group residents may see and follow: active, of an approved organization.
pub fn visible(conn: &mut DbConn, id: &str) -> ApiResult<Group> {
    resident_facing(conn, id, &[GroupStatus::Active])
}

/// A group whose published messages residents may read: like `visible`, but
/// an archived group's past messages stay readable (its followers keep them),
/// and so do the town's alerts (its system channel).
pub fn readable(conn: &mut DbConn, id: &str) -> ApiResult<Group> {
    resident_facing(conn, id, &[GroupStatus::Active, GroupStatus::Archived, GroupStatus::System])
}

fn resident_facing(conn: &mut DbConn, id: &str, statuses: &[GroupStatus]) -> ApiResult<Group> {
    let (group, org_status): (Group, String) = broadcast_groups::table
        .inner_join(organizations::table)
        .filter(broadcast_groups::id.eq(id))
        .select((Group::as_select(), organizations::status))
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("group"))?;
    if !statuses.contains(&group.status()?) || org_status != OrgStatus::Approved.as_str() {
        return Err(ApiError::NotFound("group"));
    }
    Ok(group)
}

pub fn public_view(conn: &mut DbConn, id: &str) -> ApiResult<GroupView> {
    visible(conn, id)?;
    let row = rows_query!().filter(broadcast_groups::id.eq(id)).first(conn)?;
    Ok(views(vec![row])?.remove(0))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DirectoryQuery {
    /// Words to find in name or description.
    pub q: Option<String>,
    pub category: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The town's directory: official groups first, then by name.
pub fn directory(conn: &mut DbConn, tenant_slug: &str, query: &DirectoryQuery) -> ApiResult<Page<GroupView>> {
    let tenant = crate::tenants::by_slug(conn, tenant_slug)?;
    let paging = PageQuery { cursor: query.cursor.clone(), limit: query.limit };
    let limit = paging.limit()?;
    // Directories are small (a town has hundreds of groups, not millions) and
    // sorted by name: the cursor is an offset.
    let offset = paging.position()?.map(|(o, _)| o).unwrap_or(0).max(0);
    let mut q = rows_query!()
        .filter(broadcast_groups::tenant_id.eq(&tenant.id))
        .filter(broadcast_groups::status.eq(GroupStatus::Active.as_str()))
        .filter(organizations::status.eq(OrgStatus::Approved.as_str()))
        .order((broadcast_groups::verified.desc(), lower(broadcast_groups::name).asc(), broadcast_groups::id.asc()))
        .limit(limit + 1)
        .offset(offset)
        .into_boxed();
    if let Some(cat) = query.category.as_deref().filter(|c| !c.is_empty()) {
        let cat = Category::parse(cat)
            .ok_or_else(|| ApiError::invalid("category", format!("category must be one of {}", Category::names())))?;
        q = q.filter(broadcast_groups::category.eq(cat.as_str()));
    }
    if let Some(text) = query.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let text = validate::text("q", text, 1, 100, false)?;
        for word in text.split_whitespace() {
            let escaped = word.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let pattern = format!("%{escaped}%");
            q = q.filter(
                lower(broadcast_groups::name).like(pattern.clone()).escape('\\').or(lower(
                    broadcast_groups::description,
                )
                .like(pattern)
                .escape('\\')),
            );
        }
    }
    let mut rows: Vec<GroupRow> = q.load(conn)?;
    let next = (rows.len() as i64 > limit).then(|| {
        rows.truncate(limit as usize);
        encode_cursor(offset + limit, "d")
    });
    Ok(Page { items: views(rows)?, next })
}

pub struct GroupInput<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub category: Option<&'a str>,
}

fn category(value: &str) -> ApiResult<Category> {
    Category::parse(value)
        .ok_or_else(|| ApiError::invalid("category", format!("category must be one of {}", Category::names())))
}

/// Creates a group of an organization (owners only; the organization may
/// still be pending: its groups appear once the town approves it).
pub fn create(conn: &mut DbConn, actor: &str, org_id: &str, input: GroupInput<'_>, now: i64) -> ApiResult<GroupView> {
    let (org, _) = orgs::require_role(conn, actor, org_id, Role::Owner)?;
    if matches!(org.status()?, OrgStatus::Suspended | OrgStatus::Rejected) {
        orgs::require_approved(&org)?;
    }
    let name = validate::text("name", input.name.unwrap_or_default(), 2, NAME_MAX, false)?;
    let description = validate::optional_text("description", input.description, DESCRIPTION_MAX, true)?;
    let category = category(input.category.unwrap_or("other"))?;
    let id = new_id();
    diesel::insert_into(broadcast_groups::table)
        .values((
            broadcast_groups::id.eq(&id),
            broadcast_groups::tenant_id.eq(&org.tenant_id),
            broadcast_groups::organization_id.eq(&org.id),
            broadcast_groups::name.eq(&name),
            broadcast_groups::description.eq(&description),
            broadcast_groups::category.eq(category.as_str()),
            broadcast_groups::status.eq(GroupStatus::Active.as_str()),
            broadcast_groups::created_at.eq(now),
            broadcast_groups::updated_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "group.create",
            target_type: "group",
            target_id: &id,
            reason: None,
        },
        now,
    )?;
    member_view(conn, &id)
}

pub fn member_view(conn: &mut DbConn, id: &str) -> ApiResult<GroupView> {
    let row = rows_query!().filter(broadcast_groups::id.eq(id)).first(conn)?;
    Ok(views(vec![row])?.remove(0))
}

/// Who may manage a group: its organization's owners, or the town's city admin.
fn require_manager(conn: &mut DbConn, actor: &str, group: &Group) -> ApiResult<bool> {
    match orgs::role_of(conn, actor, &group.organization_id)? {
        Some(Role::Owner) => Ok(false),
        Some(Role::Editor) => Err(ApiError::forbidden("owner_required", "only an owner may change the group")),
        None if orgs::is_city_admin(conn, actor, &group.tenant_id)? => Ok(true),
        None => Err(ApiError::NotFound("group")),
    }
}

pub fn update(conn: &mut DbConn, actor: &str, id: &str, input: GroupInput<'_>, now: i64) -> ApiResult<GroupView> {
    let group = by_id(conn, id)?;
    require_manager(conn, actor, &group)?;
    if group.status()? == GroupStatus::Archived {
        return Err(ApiError::conflict("group_archived", "an archived group cannot be changed"));
    }
    let name = input.name.map(|n| validate::text("name", n, 2, NAME_MAX, false)).transpose()?;
    let description =
        input.description.map(|d| validate::text("description", d, 0, DESCRIPTION_MAX, true)).transpose()?;
    let category = input.category.map(category).transpose()?;
    diesel::update(broadcast_groups::table.find(id))
        .set((
            broadcast_groups::name.eq(name.unwrap_or(group.name.clone())),
            broadcast_groups::description.eq(description.unwrap_or(group.description.clone())),
            broadcast_groups::category.eq(category.map(Category::as_str).unwrap_or(&group.category)),
            broadcast_groups::updated_at.eq(now),
        ))
        .execute(conn)?;
    // Recorded for owners and city admins alike: the town sees who renamed what.
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&group.tenant_id),
            actor: user_actor(actor),
            action: "group.update",
            target_type: "group",
            target_id: id,
            reason: None,
        },
        now,
    )?;
    member_view(conn, id)
}

/// Archives a group: it leaves the directory and takes no more messages;
/// its published messages stay readable by its followers.
pub fn archive(conn: &mut DbConn, actor: &str, id: &str, now: i64) -> ApiResult<()> {
    let group = by_id(conn, id)?;
    if orgs::role_of(conn, actor, &group.organization_id)?.is_none() {
        return Err(ApiError::NotFound("group"));
    }
    orgs::require_role(conn, actor, &group.organization_id, Role::Owner)?;
    diesel::update(broadcast_groups::table.find(id))
        .set((broadcast_groups::status.eq(GroupStatus::Archived.as_str()), broadcast_groups::updated_at.eq(now)))
        .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&group.tenant_id),
            actor: user_actor(actor),
            action: "group.archive",
            target_type: "group",
            target_id: id,
            reason: None,
        },
        now,
    )
}

/// The organization's own groups, every status (members only).
pub fn of_org(conn: &mut DbConn, actor: &str, org_id: &str) -> ApiResult<Vec<GroupView>> {
    orgs::require_role(conn, actor, org_id, Role::Editor)?;
    let rows = rows_query!()
        .filter(broadcast_groups::organization_id.eq(org_id))
        .order((broadcast_groups::created_at.asc(), broadcast_groups::id.asc()))
        .load(conn)?;
    views(rows)
}

/// One day of a group's subscriber count (UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriberDay {
    /// `YYYY-MM-DD`
    pub day: String,
    pub subscribers: i64,
}

/// How many devices followed the group on each of the last 30 days, oldest
/// first, today's figure live. Aggregates only; for the group's organization
/// and the town's city admin.
pub fn subscriber_history(conn: &mut DbConn, actor: &str, id: &str, now: i64) -> ApiResult<Vec<SubscriberDay>> {
    let group = by_id(conn, id)?;
    let allowed = orgs::role_of(conn, actor, &group.organization_id)?.is_some()
        || orgs::is_city_admin(conn, actor, &group.tenant_id)?;
    if !allowed || group.status()? == GroupStatus::System {
        return Err(ApiError::NotFound("group"));
    }
    let today = crate::model::day(now);
    let since = crate::model::day(now - 29 * 24 * 3600 * 1000);
    let mut days: Vec<SubscriberDay> = subscriber_counts::table
        .filter(subscriber_counts::group_id.eq(id))
        .filter(subscriber_counts::day.ge(&since))
        .filter(subscriber_counts::day.lt(&today))
        .order(subscriber_counts::day.asc())
        .select((subscriber_counts::day, subscriber_counts::subscribers))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .map(|(day, subscribers)| SubscriberDay { day, subscribers })
        .collect();
    let live: i64 = subscriptions::table.filter(subscriptions::group_id.eq(id)).select(count_star()).first(conn)?;
    days.push(SubscriberDay { day: today, subscribers: live });
    Ok(days)
}

/// The link a poster's QR code carries: the group's page in the PWA.
pub fn poster_link(conn: &mut DbConn, public_url: &url::Url, id: &str) -> ApiResult<String> {
    let group = by_id(conn, id)?;
    if group.status()? == GroupStatus::System {
        return Err(ApiError::NotFound("group"));
    }
    Ok(format!("{}/g/{}", public_url.as_str().trim_end_matches('/'), group.id))
}
