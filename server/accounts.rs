//! Organization accounts: registration, login, refresh-token rotation,
//! logout, invitations. Password hashing (argon2id, slow on purpose) runs
//! outside database transactions; callers pass hashes in.

use diesel::prelude::*;
use serde::Serialize;

use crate::auth::jwt::ACCESS_TTL_SECS;
use crate::auth::secrets::{self, hash_secret, new_id, new_secret};
use crate::db::schema::{city_admins, refresh_tokens, tenants, users};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::state::Keys;

pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub is_platform_admin: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub user: UserView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
}

pub fn by_email(conn: &mut DbConn, email: &str) -> ApiResult<Option<User>> {
    Ok(users::table.filter(users::email.eq(email)).select(User::as_select()).first(conn).optional()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> ApiResult<User> {
    users::table.find(id).select(User::as_select()).first(conn).optional()?.ok_or(ApiError::Unauthenticated)
}

/// Creates a user with a password hash (or an invitation when `None`).
pub fn create_user(
    conn: &mut DbConn,
    email: &str,
    password_hash: Option<&str>,
    platform_admin: bool,
    now: i64,
) -> ApiResult<User> {
    if by_email(conn, email)?.is_some() {
        return Err(ApiError::conflict("email_taken", "an account with this e-mail exists; log in instead"));
    }
    let user = User {
        id: new_id(),
        email: email.to_owned(),
        password_hash: password_hash.map(str::to_owned),
        is_platform_admin: platform_admin,
    };
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user.id),
            users::email.eq(&user.email),
            users::password_hash.eq(&user.password_hash),
            users::is_platform_admin.eq(platform_admin),
            users::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(user)
}

/// Issues an access token and a refresh token of a new (or given) family.
pub fn issue_tokens(
    conn: &mut DbConn,
    keys: &Keys,
    user: &User,
    family: Option<String>,
    now: i64,
) -> ApiResult<TokenPair> {
    let refresh = new_secret(secrets::REFRESH_PREFIX);
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(new_id()),
            refresh_tokens::user_id.eq(&user.id),
            refresh_tokens::family_id.eq(family.unwrap_or_else(new_id)),
            refresh_tokens::token_hash.eq(hash_secret(&refresh)),
            refresh_tokens::expires_at.eq(now + REFRESH_TTL_MS),
            refresh_tokens::created_at.eq(now),
        ))
        .execute(conn)?;
    let access = keys.jwt.issue(&user.id, now).map_err(ApiError::Internal)?;
    Ok(TokenPair {
        access_token: access,
        token_type: "Bearer",
        expires_in: ACCESS_TTL_SECS,
        refresh_token: refresh,
        user: UserView { id: user.id.clone(), email: user.email.clone() },
    })
}

/// Rotates a refresh token. Presenting a token that was already rotated
/// means it leaked (or a client raced itself): the whole family is revoked.
/// `Ok(None)` means "invalid or expired": not an `Err`, so that the family's
/// revocation commits instead of rolling back with the transaction.
pub fn refresh(conn: &mut DbConn, keys: &Keys, token: &str, now: i64) -> ApiResult<Option<TokenPair>> {
    let row: Option<(String, String, String, i64, Option<i64>)> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_secret(token)))
        .select((
            refresh_tokens::id,
            refresh_tokens::user_id,
            refresh_tokens::family_id,
            refresh_tokens::expires_at,
            refresh_tokens::revoked_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, user_id, family, expires_at, revoked_at)) = row else { return Ok(None) };
    if revoked_at.is_some() {
        revoke_family(conn, &family, now)?;
        return Ok(None);
    }
    if expires_at <= now {
        return Ok(None);
    }
    diesel::update(refresh_tokens::table.find(&id)).set(refresh_tokens::revoked_at.eq(now)).execute(conn)?;
    let user = by_id(conn, &user_id)?;
    issue_tokens(conn, keys, &user, Some(family), now).map(Some)
}

fn revoke_family(conn: &mut DbConn, family: &str, now: i64) -> ApiResult<()> {
    diesel::update(
        refresh_tokens::table.filter(refresh_tokens::family_id.eq(family)).filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Revokes the refresh token's family (this login session). Unknown tokens
/// are ignored: logging out twice is not an error.
pub fn logout(conn: &mut DbConn, token: &str, now: i64) -> ApiResult<()> {
    let family: Option<String> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash_secret(token)))
        .select(refresh_tokens::family_id)
        .first(conn)
        .optional()?;
    if let Some(family) = family {
        revoke_family(conn, &family, now)?;
    }
    Ok(())
}

/// Revokes every session of a user (password set, account removed).
pub fn revoke_all(conn: &mut DbConn, user_id: &str, now: i64) -> ApiResult<()> {
    diesel::update(
        refresh_tokens::table.filter(refresh_tokens::user_id.eq(user_id)).filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// Creates a pending invitation for a user without a password; returns the secret.
pub fn invite(conn: &mut DbConn, user_id: &str, now: i64) -> ApiResult<String> {
    let secret = new_secret(secrets::INVITE_PREFIX);
    diesel::update(users::table.find(user_id).filter(users::password_hash.is_null()))
        .set((users::invite_hash.eq(hash_secret(&secret)), users::invite_expires_at.eq(now + INVITE_TTL_MS)))
        .execute(conn)?;
    Ok(secret)
}

/// Consumes an invitation: sets the password, returns the user.
pub fn accept_invite(conn: &mut DbConn, token: &str, password_hash: &str, now: i64) -> ApiResult<User> {
    let invalid =
        || ApiError::BadCredentials("invitation invalid or expired; ask the organization's owner for a new one".into());
    let row: Option<(String, Option<i64>)> = users::table
        .filter(users::invite_hash.eq(hash_secret(token)))
        .select((users::id, users::invite_expires_at))
        .first(conn)
        .optional()?;
    let (id, expires) = row.ok_or_else(invalid)?;
    if expires.is_none_or(|e| e <= now) {
        return Err(invalid());
    }
    diesel::update(users::table.find(&id))
        .set((
            users::password_hash.eq(password_hash),
            users::invite_hash.eq(None::<String>),
            users::invite_expires_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    by_id(conn, &id)
}

/// Slugs of the tenants this user administers (all, for an operator).
pub fn city_admin_tenants(conn: &mut DbConn, user: &User) -> ApiResult<Vec<String>> {
    let query = tenants::table.select(tenants::slug).order(tenants::slug.asc());
    Ok(if user.is_platform_admin {
        query.load(conn)?
    } else {
        query.inner_join(city_admins::table).filter(city_admins::user_id.eq(&user.id)).load(conn)?
    })
}

/// Makes `user_id` city admin of `tenant_id` (CLI).
pub fn grant_city_admin(conn: &mut DbConn, tenant_id: &str, user_id: &str, now: i64) -> ApiResult<()> {
    let exists: i64 = city_admins::table
        .filter(city_admins::tenant_id.eq(tenant_id))
        .filter(city_admins::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(city_admins::table)
            .values((
                city_admins::tenant_id.eq(tenant_id),
                city_admins::user_id.eq(user_id),
                city_admins::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn set_password(conn: &mut DbConn, user_id: &str, password_hash: &str) -> ApiResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(password_hash),
            users::invite_hash.eq(None::<String>),
            users::invite_expires_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn grant_platform(conn: &mut DbConn, user_id: &str) -> ApiResult<()> {
    diesel::update(users::table.find(user_id)).set(users::is_platform_admin.eq(true)).execute(conn)?;
    Ok(())
}
