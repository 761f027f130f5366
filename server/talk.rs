//! What residents' issue reports and question hours share: the pseudonym an
//! organization sees instead of a device, and blocks (a device an
//! organization no longer hears from).
//!
//! Must not: reveal a device id, push endpoint or anything that links one
//! organization's pseudonym to another's.

use std::collections::HashSet;

use diesel::prelude::*;
use ring::hmac;
use serde::Serialize;

use crate::audit::{self, user_actor, Entry};
use crate::auth::secrets::new_id;
use crate::db::schema::device_blocks;
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::model::Role;
use crate::model::{ts, Page, PageQuery};
use crate::orgs;

/// Crockford's base32 without the look-alikes: easy to read out on the phone.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The device's stable pseudonym for one organization, such as `K7QM-2XTP`:
/// an HMAC of both ids under the installation's key, so two organizations
/// cannot link one resident and nobody can get back to the device.
pub fn pseudonym(key: &[u8], organization_id: &str, device_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, format!("{organization_id}\n{device_id}").as_bytes());
    let bits = u64::from_be_bytes(tag.as_ref()[..8].try_into().unwrap_or_default());
    let chars: String = (0..8).map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// The language a resident's notifications are written in: `en` or `de`.
pub fn lang(requested: Option<&str>) -> &'static str {
    match requested {
        Some(l) if l.trim().to_ascii_lowercase().starts_with("en") => "en",
        _ => "de",
    }
}

/// Refuses with 403 `blocked` when the organization blocked this device.
pub fn ensure_not_blocked(conn: &mut DbConn, organization_id: &str, device_id: &str) -> ApiResult<()> {
    let blocked: i64 = device_blocks::table
        .filter(device_blocks::organization_id.eq(organization_id))
        .filter(device_blocks::device_id.eq(device_id))
        .count()
        .get_result(conn)?;
    if blocked > 0 {
        return Err(ApiError::forbidden("blocked", "this organization does not accept messages from this device"));
    }
    Ok(())
}

pub fn is_blocked(conn: &mut DbConn, organization_id: &str, device_id: &str) -> ApiResult<bool> {
    Ok(ensure_not_blocked(conn, organization_id, device_id).is_err())
}

/// The (organization, device) blocks of these devices, in one query.
pub fn blocked_pairs(conn: &mut DbConn, device_ids: &[&str]) -> ApiResult<HashSet<(String, String)>> {
    let pairs: Vec<(String, String)> = device_blocks::table
        .filter(device_blocks::device_id.eq_any(device_ids))
        .select((device_blocks::organization_id, device_blocks::device_id))
        .load(conn)?;
    Ok(pairs.into_iter().collect())
}

/// Blocks a device for an organization (idempotent); audit-logged with the
/// pseudonym as target. The caller has checked that `actor` is a member.
pub fn block(
    conn: &mut DbConn,
    actor: &str,
    org: &orgs::Org,
    device_id: &str,
    author: &str,
    reason: &str,
    now: i64,
) -> ApiResult<()> {
    let reason = crate::validate::text("reason", reason, 1, 500, true)?;
    if is_blocked(conn, &org.id, device_id)? {
        return Ok(());
    }
    let inserted = diesel::insert_into(device_blocks::table)
        .values((
            device_blocks::id.eq(new_id()),
            device_blocks::organization_id.eq(&org.id),
            device_blocks::device_id.eq(device_id),
            device_blocks::author.eq(author),
            device_blocks::reason.eq(&reason),
            device_blocks::created_by.eq(user_actor(actor)),
            device_blocks::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        // Two members blocked the same device at the same moment: one block.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            return Ok(())
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "device.block",
            target_type: "pseudonym",
            target_id: author,
            reason: Some(&reason),
        },
        now,
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockView {
    pub id: String,
    /// The blocked device's pseudonym for this organization.
    pub author: String,
    pub reason: String,
    pub created_at: String,
}

/// An organization's blocks, newest first (any member may read them).
pub fn blocks(conn: &mut DbConn, actor: &str, org_id: &str, page: &PageQuery) -> ApiResult<Page<BlockView>> {
    orgs::require_role(conn, actor, org_id, Role::Editor)?;
    let limit = page.limit()?;
    let mut query = device_blocks::table
        .filter(device_blocks::organization_id.eq(org_id))
        .select((device_blocks::id, device_blocks::author, device_blocks::reason, device_blocks::created_at))
        .into_boxed();
    if let Some((at, id)) = page.position()? {
        query = query.filter(
            device_blocks::created_at.lt(at).or(device_blocks::created_at.eq(at).and(device_blocks::id.lt(id))),
        );
    }
    let rows: Vec<(String, String, String, i64)> =
        query.order((device_blocks::created_at.desc(), device_blocks::id.desc())).limit(limit + 1).load(conn)?;
    Ok(crate::model::page_of(
        rows,
        limit,
        |r| (r.3, r.0.clone()),
        |(id, author, reason, at)| BlockView { id, author, reason, created_at: ts(at) },
    ))
}

/// Lifts a block; audit-logged.
pub fn unblock(conn: &mut DbConn, actor: &str, org_id: &str, block_id: &str, now: i64) -> ApiResult<()> {
    let (org, _) = orgs::require_role(conn, actor, org_id, Role::Editor)?;
    let author: String = device_blocks::table
        .filter(device_blocks::id.eq(block_id))
        .filter(device_blocks::organization_id.eq(org_id))
        .select(device_blocks::author)
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("block"))?;
    diesel::delete(device_blocks::table.find(block_id)).execute(conn)?;
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "device.unblock",
            target_type: "pseudonym",
            target_id: &author,
            reason: None,
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_organization_and_unlinkable_across() {
        let key = b"test key";
        let a = pseudonym(key, "org-a", "device-1");
        assert_eq!(a, pseudonym(key, "org-a", "device-1"));
        assert_ne!(a, pseudonym(key, "org-b", "device-1"));
        assert_ne!(a, pseudonym(key, "org-a", "device-2"));
        assert_ne!(a, pseudonym(b"other key", "org-a", "device-1"));
        assert_eq!(a.len(), 9);
        assert!(a.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))), "{a}");
    }
}
