//! Login lock-out per account: after `lockout_failures` consecutive wrong
//! passwords the account refuses every login — the right password too — for
//! `lockout_ms`; a successful login resets the count. Kept in
//! `users.failed_logins` / `users.locked_until`, so every instance agrees.
//!
//! An unknown e-mail is never locked (there is nothing to count on), so a
//! lock tells that the address has an account; registration (`email_taken`)
//! says as much already. Password checks stay outside these functions: they
//! are slow and must not run inside a transaction.

use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::limits::LimitsConfig;

/// Seconds left of a lock at `now`, if the account is locked.
pub fn locked_for(conn: &mut DbConn, user_id: &str, now: i64) -> ApiResult<Option<u64>> {
    let until: Option<i64> = users::table.find(user_id).select(users::locked_until).first(conn).optional()?.flatten();
    Ok(until.filter(|u| *u > now).map(|u| ((u - now) as u64).div_ceil(1000)))
}

/// Refuses with `account_locked` while the account is locked.
pub fn require_unlocked(conn: &mut DbConn, user_id: &str, now: i64) -> ApiResult<()> {
    match locked_for(conn, user_id, now)? {
        Some(secs) => Err(ApiError::AccountLocked(secs)),
        None => Ok(()),
    }
}

/// Counts a wrong password. Returns the lock's seconds when this failure
/// locked the account. The caller must commit (not return an `Err` from its
/// transaction), or the count is rolled back with it.
pub fn record_failure(conn: &mut DbConn, user_id: &str, policy: &LimitsConfig, now: i64) -> ApiResult<Option<u64>> {
    if policy.lockout_failures == 0 {
        return Ok(None);
    }
    // One atomic increment: concurrent failures all count.
    diesel::update(users::table.find(user_id)).set(users::failed_logins.eq(users::failed_logins + 1)).execute(conn)?;
    let failures: i32 = users::table.find(user_id).select(users::failed_logins).first(conn)?;
    if failures < policy.lockout_failures as i32 {
        return Ok(None);
    }
    // Locked; the count starts over, so the next lock takes as many failures again.
    let until = now + policy.lockout_ms;
    diesel::update(users::table.find(user_id))
        .set((users::failed_logins.eq(0), users::locked_until.eq(until)))
        .execute(conn)?;
    Ok(Some((policy.lockout_ms as u64).div_ceil(1000)))
}

/// A successful login: refused if the account got locked meanwhile,
/// otherwise the failure count starts over.
pub fn record_success(conn: &mut DbConn, user_id: &str, now: i64) -> ApiResult<()> {
    require_unlocked(conn, user_id, now)?;
    diesel::update(users::table.find(user_id).filter(users::failed_logins.ne(0).or(users::locked_until.is_not_null())))
        .set((users::failed_logins.eq(0), users::locked_until.eq(None::<i64>)))
        .execute(conn)?;
    Ok(())
}
