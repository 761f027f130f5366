//! Organization API tokens: an owner names a token and binds it to one group
//! of the organization; the token may post messages to that group and do
//! nothing else. The secret (`hapi_…`, 256 random bits) is shown once, at
//! creation; only its SHA-256 is stored. Revocation takes effect at the next
//! request: every use looks the hash up, nothing is cached.
//!
//! Tokens belong to the organization, not to the owner who made them: they
//! keep working when that person leaves, until an owner revokes them.
//! Creation and revocation are audit-logged.

use diesel::prelude::*;
use serde::Serialize;

use crate::audit::{self, user_actor};
use crate::auth::secrets::{hash_secret, new_id, new_secret};
use crate::db::schema::{api_tokens, broadcast_groups, users};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::groups;
use crate::model::{ts, GroupStatus, Role};
use crate::orgs;
use crate::validate;

pub const PREFIX: &str = "hapi";
pub const NAME_MAX: usize = 80;
/// Active (unrevoked) tokens an organization may hold at once.
pub const ACTIVE_MAX: i64 = 50;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct ApiToken {
    id: String,
    group_id: String,
    name: String,
    created_by: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenGroup {
    pub id: String,
    pub name: String,
}

/// What owners see of a token: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The one group this token may post to.
    pub group: TokenGroup,
    /// E-mail of the owner who created it (null once that account is gone).
    pub created_by: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Set once revoked; a revoked token is refused.
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The bearer secret (`hapi_…`), shown this once: store it now.
    pub secret: String,
    #[serde(flatten)]
    pub token: TokenView,
}

/// An authenticated API token: who may post where.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub id: String,
    pub group_id: String,
}

fn view(conn: &mut DbConn, token: ApiToken) -> ApiResult<TokenView> {
    let group_name: String =
        broadcast_groups::table.find(&token.group_id).select(broadcast_groups::name).first(conn)?;
    let created_by: Option<String> =
        users::table.find(&token.created_by).select(users::email).first(conn).optional()?;
    Ok(TokenView {
        id: token.id,
        name: token.name,
        group: TokenGroup { id: token.group_id, name: group_name },
        created_by,
        created_at: ts(token.created_at),
        last_used_at: token.last_used_at.map(ts),
        revoked_at: token.revoked_at.map(ts),
    })
}

/// Creates a token for one group of the organization (owners only).
pub fn create(
    conn: &mut DbConn,
    actor: &str,
    org_id: &str,
    name: &str,
    group_id: &str,
    now: i64,
) -> ApiResult<CreatedToken> {
    let (org, _) = orgs::require_role(conn, actor, org_id, Role::Owner)?;
    let name = validate::text("name", name, 1, NAME_MAX, false)?;
    let no_group = || ApiError::invalid("group_id", "the organization has no such group");
    if group_id.chars().any(char::is_control) {
        return Err(no_group());
    }
    let group = groups::by_id(conn, group_id).map_err(|_| no_group())?;
    if group.organization_id != org.id {
        return Err(no_group());
    }
    let status = group.status()?;
    if status == GroupStatus::Archived {
        return Err(ApiError::conflict("group_archived", "the group is archived"));
    }
    // A suspended group may be reinstated (its tokens work again then);
    // anything else is no group of the organization's to post to.
    if status != GroupStatus::Active && status != GroupStatus::Suspended {
        return Err(no_group());
    }
    let active: i64 = api_tokens::table
        .filter(api_tokens::organization_id.eq(&org.id))
        .filter(api_tokens::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    if active >= ACTIVE_MAX {
        return Err(ApiError::conflict(
            "too_many_tokens",
            format!("an organization may hold {ACTIVE_MAX} active API tokens; revoke one first"),
        ));
    }
    let secret = new_secret(PREFIX);
    let id = new_id();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::id.eq(&id),
            api_tokens::organization_id.eq(&org.id),
            api_tokens::group_id.eq(&group.id),
            api_tokens::name.eq(&name),
            api_tokens::token_hash.eq(hash_secret(&secret)),
            api_tokens::created_by.eq(actor),
            api_tokens::created_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "api_token.create",
            target_type: "api_token",
            target_id: &id,
            reason: Some(&format!("{name} (group {})", group.name)),
        },
        now,
    )?;
    let token = by_id(conn, &org.id, &id)?;
    Ok(CreatedToken { secret, token: view(conn, token)? })
}

fn by_id(conn: &mut DbConn, org_id: &str, id: &str) -> ApiResult<ApiToken> {
    api_tokens::table
        .find(id)
        .filter(api_tokens::organization_id.eq(org_id))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("API token"))
}

/// The organization's tokens, newest first, revoked ones included (owners only).
pub fn list(conn: &mut DbConn, actor: &str, org_id: &str) -> ApiResult<Vec<TokenView>> {
    orgs::require_role(conn, actor, org_id, Role::Owner)?;
    let tokens: Vec<ApiToken> = api_tokens::table
        .filter(api_tokens::organization_id.eq(org_id))
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .select(ApiToken::as_select())
        .load(conn)?;
    tokens.into_iter().map(|t| view(conn, t)).collect()
}

/// Revokes a token (owners only). Revoking twice changes nothing.
pub fn revoke(conn: &mut DbConn, actor: &str, org_id: &str, token_id: &str, now: i64) -> ApiResult<()> {
    let (org, _) = orgs::require_role(conn, actor, org_id, Role::Owner)?;
    let token = by_id(conn, &org.id, token_id)?;
    if token.revoked_at.is_some() {
        return Ok(());
    }
    diesel::update(api_tokens::table.find(&token.id)).set(api_tokens::revoked_at.eq(now)).execute(conn)?;
    audit::record(
        conn,
        audit::Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "api_token.revoke",
            target_type: "api_token",
            target_id: &token.id,
            reason: Some(&token.name),
        },
        now,
    )
}

/// The unrevoked token with this secret, if any; marks it used at `now`.
pub fn authenticate(conn: &mut DbConn, secret: &str, now: i64) -> ApiResult<Option<TokenIdentity>> {
    let found: Option<(String, String)> = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash_secret(secret)))
        .filter(api_tokens::revoked_at.is_null())
        .select((api_tokens::id, api_tokens::group_id))
        .first(conn)
        .optional()?;
    let Some((id, group_id)) = found else { return Ok(None) };
    diesel::update(api_tokens::table.find(&id)).set(api_tokens::last_used_at.eq(now)).execute(conn)?;
    Ok(Some(TokenIdentity { id, group_id }))
}
