//! The audit log: append-only record of what city admins, organization
//! owners and operators did, with who, what, when, target and reason.
//! Written in the same transaction as the action it records.

use diesel::prelude::*;

use crate::auth::secrets::new_id;
use crate::db::schema::audit_log;
use crate::db::DbConn;
use crate::error::ApiResult;

pub struct Entry<'a> {
    pub tenant_id: Option<&'a str>,
    /// `user:<id>`, `operator` (CLI) or `token:<id>`.
    pub actor: String,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub reason: Option<&'a str>,
}

pub fn record(conn: &mut DbConn, entry: Entry<'_>, now: i64) -> ApiResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::tenant_id.eq(entry.tenant_id),
            audit_log::actor.eq(&entry.actor),
            audit_log::action.eq(entry.action),
            audit_log::target_type.eq(entry.target_type),
            audit_log::target_id.eq(entry.target_id),
            audit_log::reason.eq(entry.reason),
            audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn user_actor(user_id: &str) -> String {
    format!("user:{user_id}")
}
