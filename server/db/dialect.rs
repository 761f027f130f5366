//! The named escape hatch: statements diesel's `MultiConnection` cannot
//! express through the common subset. Each function matches on the backend
//! and runs the same (or the backend's own) statement on the inner connection.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::schema::{memberships, subscriptions};
use super::DbConn;

/// Runs `$body` with `$c` bound to the inner connection of either backend.
macro_rules! on_inner {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            DbConn::Pg($c) => $body,
            DbConn::Sqlite($c) => $body,
        }
    };
}

/// Adds a subscription unless it exists (idempotent subscribe). Returns true
/// when a row was inserted.
pub fn insert_subscription(conn: &mut DbConn, device_id: &str, group_id: &str, now: i64) -> QueryResult<bool> {
    let row = (
        subscriptions::device_id.eq(device_id),
        subscriptions::group_id.eq(group_id),
        subscriptions::created_at.eq(now),
    );
    let n =
        on_inner!(conn, |c| diesel::insert_into(subscriptions::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(n > 0)
}

/// Adds a membership unless the user already has one in that organization.
pub fn insert_membership(
    conn: &mut DbConn,
    organization_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> QueryResult<bool> {
    let row = (
        memberships::organization_id.eq(organization_id),
        memberships::user_id.eq(user_id),
        memberships::role.eq(role),
        memberships::created_at.eq(now),
    );
    let n =
        on_inner!(conn, |c| diesel::insert_into(memberships::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(n > 0)
}

/// Serializes migrations of several instances starting at once on one
/// PostgreSQL (an advisory lock held for the session); SQLite needs nothing.
pub fn lock_for_migrations(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => c.batch_execute("SELECT pg_advisory_lock(4818110)"),
        DbConn::Sqlite(_) => Ok(()),
    }
}

pub fn unlock_after_migrations(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => c.batch_execute("SELECT pg_advisory_unlock(4818110)"),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Stores an installation secret unless another instance stored it first.
pub fn insert_secret_if_absent(conn: &mut DbConn, name: &str, value: &str, now: i64) -> QueryResult<()> {
    use super::schema::server_secrets;
    let row = (server_secrets::name.eq(name), server_secrets::value.eq(value), server_secrets::created_at.eq(now));
    on_inner!(conn, |c| diesel::insert_into(server_secrets::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(())
}
