//! Organizations, their members, and the access rules every organization
//! write goes through. A stranger to an organization gets 404 (its existence
//! is not confirmed); a member whose role is too low gets 403.

use diesel::prelude::*;
use serde::Serialize;

use crate::accounts::{self, User};
use crate::audit::{self, user_actor};
use crate::auth::secrets::new_id;
use crate::db::schema::{city_admins, memberships, organizations, tenants, users};
use crate::db::{dialect, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::model::{page_of, ts, Category, OrgStatus, Page, PageQuery, Role};
use crate::validate;

/// `organizations.kind` of a town's own alert channel (see `alerts`): never
/// listed, never found by id, no members.
pub const SYSTEM_KIND: &str = "system";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = organizations)]
pub struct Org {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: i64,
    pub kind: String,
}

impl Org {
    pub fn status(&self) -> ApiResult<OrgStatus> {
        OrgStatus::from_db(&self.status)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: String,
    /// What the organization declared itself to be (same words as group categories).
    pub kind: Category,
    pub status: OrgStatus,
    pub status_reason: Option<String>,
    pub created_at: String,
    /// The caller's role, when the caller is a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// E-mail addresses of the owners (city-admin view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
}

fn view(org: Org, tenant_slug: String, role: Option<Role>) -> ApiResult<OrgView> {
    Ok(OrgView {
        status: org.status()?,
        id: org.id,
        tenant: tenant_slug,
        name: org.name,
        description: org.description,
        // Only the town's system organization (never shown) has another kind.
        kind: Category::parse(&org.kind).unwrap_or(Category::Other),
        status_reason: org.status_reason,
        created_at: ts(org.created_at),
        role,
        contacts: None,
    })
}

pub struct NewOrg<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tenant_slug: &'a str,
}

/// Creates an organization in status `pending` with `owner` as its owner.
pub fn create(conn: &mut DbConn, owner: &User, new: NewOrg<'_>, now: i64) -> ApiResult<OrgView> {
    create_with_kind(conn, owner, new, None, now)
}

/// Like `create`, with the declared kind (administration, church, club,
/// business, school, culture or other; default other).
pub fn create_with_kind(
    conn: &mut DbConn,
    owner: &User,
    new: NewOrg<'_>,
    kind: Option<&str>,
    now: i64,
) -> ApiResult<OrgView> {
    let kind = match kind.map(str::trim).filter(|k| !k.is_empty()) {
        None => Category::Other,
        Some(k) => Category::parse(k).ok_or_else(|| {
            ApiError::invalid("organization.kind", format!("organization.kind must be one of {}", Category::names()))
        })?,
    };
    let name = validate::text("organization.name", new.name, 2, 120, false)?;
    let description = validate::optional_text("organization.description", new.description, 1000, true)?;
    let tenant = crate::tenants::by_slug(conn, new.tenant_slug)
        .map_err(|_| ApiError::invalid("organization.tenant", format!("there is no town '{}'", new.tenant_slug)))?;
    let id = new_id();
    diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(&id),
            organizations::tenant_id.eq(&tenant.id),
            organizations::name.eq(&name),
            organizations::description.eq(&description),
            organizations::status.eq(OrgStatus::Pending.as_str()),
            organizations::kind.eq(kind.as_str()),
            organizations::created_at.eq(now),
            organizations::updated_at.eq(now),
        ))
        .execute(conn)?;
    dialect::insert_membership(conn, &id, &owner.id, Role::Owner.as_str(), now)?;
    let org = by_id(conn, &id)?;
    view(org, tenant.slug, Some(Role::Owner))
}

pub fn by_id(conn: &mut DbConn, id: &str) -> ApiResult<Org> {
    organizations::table
        .find(id)
        .filter(organizations::kind.ne(SYSTEM_KIND))
        .select(Org::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("organization"))
}

pub fn role_of(conn: &mut DbConn, user_id: &str, org_id: &str) -> ApiResult<Option<Role>> {
    let role: Option<String> = memberships::table
        .filter(memberships::organization_id.eq(org_id))
        .filter(memberships::user_id.eq(user_id))
        .select(memberships::role)
        .first(conn)
        .optional()?;
    role.as_deref().map(Role::from_db).transpose()
}

/// True when the user is city admin of the tenant, or an operator.
pub fn is_city_admin(conn: &mut DbConn, user_id: &str, tenant_id: &str) -> ApiResult<bool> {
    let platform: bool =
        users::table.find(user_id).select(users::is_platform_admin).first(conn).optional()?.unwrap_or(false);
    if platform {
        return Ok(true);
    }
    let n: i64 = city_admins::table
        .filter(city_admins::tenant_id.eq(tenant_id))
        .filter(city_admins::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Requires `user_id` to be a member with at least `min` (owner > editor).
pub fn require_role(conn: &mut DbConn, user_id: &str, org_id: &str, min: Role) -> ApiResult<(Org, Role)> {
    let org = by_id(conn, org_id)?;
    let role = role_of(conn, user_id, org_id)?.ok_or(ApiError::NotFound("organization"))?;
    if min == Role::Owner && role != Role::Owner {
        return Err(ApiError::forbidden("owner_required", "only an owner of the organization may do this"));
    }
    Ok((org, role))
}

/// Requires the organization to be approved (it may publish).
pub fn require_approved(org: &Org) -> ApiResult<()> {
    match org.status()? {
        OrgStatus::Approved => Ok(()),
        OrgStatus::Pending => {
            Err(ApiError::forbidden("organization_pending", "the town has not approved this organization yet"))
        }
        OrgStatus::Rejected => Err(ApiError::forbidden("organization_rejected", "the town rejected this organization")),
        OrgStatus::Suspended => {
            Err(ApiError::forbidden("organization_suspended", "the town suspended this organization"))
        }
    }
}

/// The organizations the user belongs to, with the user's role.
pub fn mine(conn: &mut DbConn, user_id: &str) -> ApiResult<Vec<OrgView>> {
    let rows: Vec<(Org, String, String)> = organizations::table
        .inner_join(memberships::table)
        .inner_join(tenants::table)
        .filter(memberships::user_id.eq(user_id))
        .order((organizations::created_at.asc(), organizations::id.asc()))
        .select((Org::as_select(), tenants::slug, memberships::role))
        .load(conn)?;
    rows.into_iter().map(|(org, slug, role)| view(org, slug, Some(Role::from_db(&role)?))).collect()
}

/// One organization as seen by a member or the tenant's city admin.
pub fn get(conn: &mut DbConn, user_id: &str, org_id: &str) -> ApiResult<OrgView> {
    let org = by_id(conn, org_id)?;
    let role = role_of(conn, user_id, org_id)?;
    if role.is_none() && !is_city_admin(conn, user_id, &org.tenant_id)? {
        return Err(ApiError::NotFound("organization"));
    }
    let slug = crate::tenants::by_id(conn, &org.tenant_id)?.slug;
    view(org, slug, role)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// False while the invitation has not been accepted.
    pub active: bool,
    pub added_at: String,
}

pub fn members(conn: &mut DbConn, user_id: &str, org_id: &str) -> ApiResult<Vec<MemberView>> {
    require_role(conn, user_id, org_id, Role::Editor)?;
    let rows: Vec<(String, String, Option<String>, String, i64)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::organization_id.eq(org_id))
        .order((memberships::created_at.asc(), users::id.asc()))
        .select((users::id, users::email, users::password_hash, memberships::role, memberships::created_at))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, email, hash, role, at)| {
            Ok(MemberView { user_id: id, email, role: Role::from_db(&role)?, active: hash.is_some(), added_at: ts(at) })
        })
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AddedMember {
    pub member: MemberView,
    /// For a new account only, shown once: the new member sets a password
    /// with it at `POST /auth/accept-invite` (valid 7 days).
    pub invite_token: Option<String>,
}

/// Adds a member by e-mail; an unknown e-mail gets an account with an invitation.
pub fn add_member(
    conn: &mut DbConn,
    actor: &str,
    org_id: &str,
    email: &str,
    role: Role,
    now: i64,
) -> ApiResult<AddedMember> {
    let (org, _) = require_role(conn, actor, org_id, Role::Owner)?;
    let email = validate::email(email)?;
    let (user, invite_token) = match accounts::by_email(conn, &email)? {
        Some(user) => (user, None),
        None => {
            let user = accounts::create_user(conn, &email, None, false, now)?;
            let token = accounts::invite(conn, &user.id, now)?;
            (user, Some(token))
        }
    };
    if !dialect::insert_membership(conn, org_id, &user.id, role.as_str(), now)? {
        return Err(ApiError::conflict("already_member", "this person is already a member"));
    }
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "member.add",
            target_type: "user",
            target_id: &user.id,
            reason: Some(role.as_str()),
        },
        now,
    )?;
    Ok(AddedMember {
        member: MemberView {
            user_id: user.id,
            email: user.email,
            role,
            active: user.password_hash.is_some(),
            added_at: ts(now),
        },
        invite_token,
    })
}

fn owner_count(conn: &mut DbConn, org_id: &str) -> ApiResult<i64> {
    Ok(memberships::table
        .filter(memberships::organization_id.eq(org_id))
        .filter(memberships::role.eq(Role::Owner.as_str()))
        .count()
        .get_result(conn)?)
}

/// Removes a member (an owner may remove anyone, a member may leave), never the last owner.
pub fn remove_member(conn: &mut DbConn, actor: &str, org_id: &str, member_id: &str, now: i64) -> ApiResult<()> {
    let (org, actor_role) = require_role(conn, actor, org_id, Role::Editor)?;
    if actor_role != Role::Owner && actor != member_id {
        return Err(ApiError::forbidden("owner_required", "only an owner may remove other members"));
    }
    let role = role_of(conn, member_id, org_id)?.ok_or(ApiError::NotFound("member"))?;
    if role == Role::Owner && owner_count(conn, org_id)? <= 1 {
        return Err(ApiError::conflict("last_owner", "an organization needs an owner; transfer ownership first"));
    }
    diesel::delete(
        memberships::table.filter(memberships::organization_id.eq(org_id)).filter(memberships::user_id.eq(member_id)),
    )
    .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "member.remove",
            target_type: "user",
            target_id: member_id,
            reason: None,
        },
        now,
    )
}

/// Changes a member's role (owners only), never demoting the last owner.
pub fn set_role(
    conn: &mut DbConn,
    actor: &str,
    org_id: &str,
    member_id: &str,
    role: Role,
    now: i64,
) -> ApiResult<MemberView> {
    let (org, _) = require_role(conn, actor, org_id, Role::Owner)?;
    let current = role_of(conn, member_id, org_id)?.ok_or(ApiError::NotFound("member"))?;
    if current == Role::Owner && role != Role::Owner && owner_count(conn, org_id)? <= 1 {
        return Err(ApiError::conflict("last_owner", "an organization needs an owner; make someone else owner first"));
    }
    diesel::update(
        memberships::table.filter(memberships::organization_id.eq(org_id)).filter(memberships::user_id.eq(member_id)),
    )
    .set(memberships::role.eq(role.as_str()))
    .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "member.role",
            target_type: "user",
            target_id: member_id,
            reason: Some(role.as_str()),
        },
        now,
    )?;
    members(conn, actor, org_id)?.into_iter().find(|m| m.user_id == member_id).ok_or(ApiError::NotFound("member"))
}

/// City admin: the tenant's organizations, optionally by status, oldest first
/// (the approval queue is worked in order of arrival).
pub fn list_for_admin(
    conn: &mut DbConn,
    actor: &str,
    tenant_slug: &str,
    status: Option<OrgStatus>,
    page: &PageQuery,
) -> ApiResult<Page<OrgView>> {
    let tenant = crate::tenants::by_slug(conn, tenant_slug)?;
    if !is_city_admin(conn, actor, &tenant.id)? {
        return Err(ApiError::forbidden("city_admin_required", "only the town's city admins may do this"));
    }
    let limit = page.limit()?;
    let mut query = organizations::table
        .filter(organizations::tenant_id.eq(&tenant.id))
        .filter(organizations::kind.ne(SYSTEM_KIND))
        .select(Org::as_select())
        .order((organizations::created_at.asc(), organizations::id.asc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(organizations::status.eq(status.as_str()));
    }
    if let Some((at, id)) = page.position()? {
        query = query.filter(
            organizations::created_at.gt(at).or(organizations::created_at.eq(at).and(organizations::id.gt(id))),
        );
    }
    let rows = query.load(conn)?;
    let page = page_of(rows, limit, |o| (o.created_at, o.id.clone()), |o| o);
    let mut items = Vec::with_capacity(page.items.len());
    for org in page.items {
        let contacts: Vec<String> = memberships::table
            .inner_join(users::table)
            .filter(memberships::organization_id.eq(&org.id))
            .filter(memberships::role.eq(Role::Owner.as_str()))
            .select(users::email)
            .load(conn)?;
        let mut v = view(org, tenant.slug.clone(), None)?;
        v.contacts = Some(contacts);
        items.push(v);
    }
    Ok(Page { items, next: page.next })
}

/// A city admin's decision about an organization.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    Approve,
    Reject,
    Suspend,
    Reinstate,
}

impl Decision {
    fn transition(self, from: OrgStatus) -> Option<OrgStatus> {
        use OrgStatus::*;
        match (self, from) {
            (Decision::Approve, Pending | Rejected) => Some(Approved),
            (Decision::Reject, Pending) => Some(Rejected),
            (Decision::Suspend, Approved | Pending) => Some(Suspended),
            (Decision::Reinstate, Suspended) => Some(Approved),
            _ => None,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Decision::Approve => "organization.approve",
            Decision::Reject => "organization.reject",
            Decision::Suspend => "organization.suspend",
            Decision::Reinstate => "organization.reinstate",
        }
    }
}

/// Applies a city admin's decision. Only the tenant's city admins (or an
/// operator) may; anyone else learns nothing about the organization (404).
pub fn decide(
    conn: &mut DbConn,
    actor: &str,
    org_id: &str,
    decision: Decision,
    reason: Option<&str>,
    now: i64,
) -> ApiResult<OrgView> {
    let org = by_id(conn, org_id)?;
    if !is_city_admin(conn, actor, &org.tenant_id)? {
        return Err(ApiError::NotFound("organization"));
    }
    let reason = reason.map(|r| validate::text("reason", r, 0, 500, true)).transpose()?.filter(|r| !r.is_empty());
    if matches!(decision, Decision::Reject | Decision::Suspend) && reason.is_none() {
        return Err(ApiError::invalid("reason", "give the organization a reason"));
    }
    let from = org.status()?;
    let to = decision.transition(from).ok_or_else(|| {
        ApiError::conflict(
            "invalid_transition",
            format!("an organization that is {} cannot be changed that way", from.as_str()),
        )
    })?;
    diesel::update(organizations::table.find(org_id))
        .set((
            organizations::status.eq(to.as_str()),
            organizations::status_reason.eq(&reason),
            organizations::updated_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: decision.action(),
            target_type: "organization",
            target_id: org_id,
            reason: reason.as_deref(),
        },
        now,
    )?;
    let slug = crate::tenants::by_id(conn, &org.tenant_id)?.slug;
    view(by_id(conn, org_id)?, slug, None)
}
