//! Town-wide alerts: a city admin sends a message of urgency `high` to every
//! device that follows any group of the town, each device once, however many
//! of the town's groups it follows. An alert is a message of kind `alert` in
//! the town's system channel (a group of status `system` owned by an
//! organization of kind `system`, both made on first use and never listed);
//! its fan-out job has scope `tenant`.

use diesel::prelude::*;
use serde::Deserialize;

use crate::audit::{self, user_actor};
use crate::auth::secrets::new_id;
use crate::db::schema::{broadcast_groups, messages as m, organizations};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::groups::{self, Group};
use crate::messages::{self, Kind, NewMessage, OwnMessageView};
use crate::model::{Category, GroupStatus, OrgStatus, Page, PageQuery, Urgency};
use crate::orgs;
use crate::tenants::{self, Tenant};

/// An alert expires after a day unless given a TTL: old warnings are noise.
pub const ALERT_TTL_DEFAULT: i32 = 24 * 3600;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlert {
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    /// Seconds a push service may hold the alert (60 s – 30 days; default 1 day).
    pub ttl: Option<i32>,
}

/// The town's system channel, made on first use.
fn channel(conn: &mut DbConn, tenant: &Tenant, now: i64) -> ApiResult<Group> {
    let existing: Option<String> = broadcast_groups::table
        .filter(broadcast_groups::tenant_id.eq(&tenant.id))
        .filter(broadcast_groups::status.eq(GroupStatus::System.as_str()))
        .select(broadcast_groups::id)
        .first(conn)
        .optional()?;
    if let Some(id) = existing {
        return groups::by_id(conn, &id);
    }
    let org_id = new_id();
    diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(&org_id),
            organizations::tenant_id.eq(&tenant.id),
            organizations::name.eq(&tenant.name),
            organizations::status.eq(OrgStatus::Approved.as_str()),
            organizations::kind.eq(orgs::SYSTEM_KIND),
            organizations::created_at.eq(now),
            organizations::updated_at.eq(now),
        ))
        .execute(conn)?;
    let group_id = new_id();
    diesel::insert_into(broadcast_groups::table)
        .values((
            broadcast_groups::id.eq(&group_id),
            broadcast_groups::tenant_id.eq(&tenant.id),
            broadcast_groups::organization_id.eq(&org_id),
            broadcast_groups::name.eq(&tenant.name),
            broadcast_groups::category.eq(Category::Administration.as_str()),
            broadcast_groups::verified.eq(true),
            broadcast_groups::status.eq(GroupStatus::System.as_str()),
            broadcast_groups::created_at.eq(now),
            broadcast_groups::updated_at.eq(now),
        ))
        .execute(conn)?;
    groups::by_id(conn, &group_id)
}

fn require_city_admin(conn: &mut DbConn, actor: &str, tenant_slug: &str) -> ApiResult<Tenant> {
    let tenant = tenants::by_slug(conn, tenant_slug)?;
    if !orgs::is_city_admin(conn, actor, &tenant.id)? {
        return Err(ApiError::forbidden("city_admin_required", "only the town's city admins may do this"));
    }
    Ok(tenant)
}

/// Sends a town-wide alert (urgency `high`), audit-logged.
pub fn send(conn: &mut DbConn, actor: &str, tenant_slug: &str, alert: NewAlert, now: i64) -> ApiResult<OwnMessageView> {
    let tenant = require_city_admin(conn, actor, tenant_slug)?;
    let group = channel(conn, &tenant, now)?;
    let input = NewMessage {
        title: alert.title,
        body: alert.body,
        url: alert.url,
        urgency: Some(Urgency::High),
        ttl: Some(alert.ttl.unwrap_or(ALERT_TTL_DEFAULT)),
        publish_at: None,
    };
    let id = messages::store(conn, &group, &user_actor(actor), input, Kind::Alert, now)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&tenant.id),
            actor: user_actor(actor),
            action: "alert.send",
            target_type: "message",
            target_id: &id,
            reason: None,
        },
        now,
    )?;
    messages::own_view(conn, &id, now)
}

/// The town's alerts, newest first, with their delivery statistics.
pub fn list(
    conn: &mut DbConn,
    actor: &str,
    tenant_slug: &str,
    page: &PageQuery,
    now: i64,
) -> ApiResult<Page<OwnMessageView>> {
    let tenant = require_city_admin(conn, actor, tenant_slug)?;
    let limit = page.limit()?;
    let mut query = m::table
        .filter(m::tenant_id.eq(&tenant.id))
        .filter(m::kind.eq(Kind::Alert.as_str()))
        .select((m::id, m::publish_at))
        .order((m::publish_at.desc(), m::id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some((at, id)) = page.position()? {
        query = query.filter(m::publish_at.lt(at).or(m::publish_at.eq(at).and(m::id.lt(id))));
    }
    let rows: Vec<(String, i64)> = query.load(conn)?;
    let page = crate::model::page_of(rows, limit, |(id, at)| (*at, id.clone()), |(id, _)| id);
    let items = page.items.iter().map(|id| messages::own_view(conn, id, now)).collect::<ApiResult<_>>()?;
    Ok(Page { items, next: page.next })
}
