//! Resident devices: a push endpoint, its two keys, a token hash, two times —
//! nothing else (DESIGN.md, privacy rules). A device follows groups of any
//! town; erasing it erases its subscriptions in the same statement (cascade).

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::secrets::{self, hash_secret, new_id, new_secret};
use crate::db::schema::{broadcast_groups, devices, subscriptions};
use crate::db::{dialect, DbConn};
use crate::error::{ApiError, ApiResult};
use crate::groups::{self, GroupView};
use crate::push::allowlist::{check_keys, PushAllowlist};

/// A device may follow this many groups (a whole town's directory fits).
pub const MAX_SUBSCRIPTIONS: i64 = 500;

/// A browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscription {
    pub endpoint: String,
    /// Ignored: push services do not set it in practice, and Herold learns
    /// of expired subscriptions from the push service's answer.
    #[allow(dead_code)]
    #[schema(value_type = Option<f64>)]
    pub expiration_time: Option<serde_json::Value>,
    pub keys: PushKeys,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewDevice {
    /// The device's bearer token, shown once. Keep it on the device.
    pub device_token: String,
}

fn checked(allowlist: &PushAllowlist, sub: &PushSubscription) -> ApiResult<(String, String, String)> {
    let endpoint = allowlist.check(sub.endpoint.trim()).map_err(|m| ApiError::Invalid {
        code: "push_endpoint_refused",
        message: m,
        field: Some("endpoint"),
    })?;
    let p256dh = sub.keys.p256dh.trim().trim_end_matches('=');
    let auth = sub.keys.auth.trim().trim_end_matches('=');
    check_keys(p256dh, auth).map_err(|(field, m)| ApiError::Invalid {
        code: "push_keys_invalid",
        message: m.into(),
        field: Some(field),
    })?;
    Ok((endpoint.to_string(), p256dh.to_owned(), auth.to_owned()))
}

pub fn create(conn: &mut DbConn, allowlist: &PushAllowlist, sub: &PushSubscription, now: i64) -> ApiResult<NewDevice> {
    let (endpoint, p256dh, auth) = checked(allowlist, sub)?;
    let token = new_secret(secrets::DEVICE_PREFIX);
    diesel::insert_into(devices::table)
        .values((
            devices::id.eq(new_id()),
            devices::token_hash.eq(hash_secret(&token)),
            devices::endpoint.eq(endpoint),
            devices::p256dh.eq(p256dh),
            devices::auth.eq(auth),
            devices::created_at.eq(now),
            devices::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(NewDevice { device_token: token })
}

/// The browser's subscription changed (`pushsubscriptionchange`, app start).
pub fn update_push(
    conn: &mut DbConn,
    allowlist: &PushAllowlist,
    device_id: &str,
    sub: &PushSubscription,
    now: i64,
) -> ApiResult<()> {
    let (endpoint, p256dh, auth) = checked(allowlist, sub)?;
    diesel::update(devices::table.find(device_id))
        .set((
            devices::endpoint.eq(endpoint),
            devices::p256dh.eq(p256dh),
            devices::auth.eq(auth),
            devices::last_seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Erases the device with everything it wrote (`store::delete_devices`).
pub fn erase(conn: &mut DbConn, device_id: &str) -> ApiResult<()> {
    crate::delivery::store::delete_devices(conn, &[device_id.to_owned()])?;
    Ok(())
}

pub fn subscriptions(conn: &mut DbConn, device_id: &str) -> ApiResult<Vec<GroupView>> {
    let ids: Vec<String> = subscriptions::table
        .inner_join(broadcast_groups::table)
        .filter(subscriptions::device_id.eq(device_id))
        .order((subscriptions::created_at.asc(), subscriptions::group_id.asc()))
        .select(subscriptions::group_id)
        .load(conn)?;
    // A followed group that was suspended or archived is still listed (with
    // its status) so the resident can unfollow it.
    ids.iter().map(|id| groups::member_view(conn, id)).collect()
}

/// Follows a group (idempotent); only groups residents can see.
pub fn subscribe(conn: &mut DbConn, device_id: &str, group_id: &str, now: i64) -> ApiResult<GroupView> {
    groups::visible(conn, group_id)?;
    let count: i64 = subscriptions::table.filter(subscriptions::device_id.eq(device_id)).count().get_result(conn)?;
    if count >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::conflict(
            "too_many_subscriptions",
            format!("a device can follow at most {MAX_SUBSCRIPTIONS} groups"),
        ));
    }
    if dialect::insert_subscription(conn, device_id, group_id, now)? {
        groups::adjust_subscribers(conn, group_id, 1)?;
    }
    groups::public_view(conn, group_id)
}

/// Unfollows a group (idempotent: unfollowing twice is fine).
pub fn unsubscribe(conn: &mut DbConn, device_id: &str, group_id: &str) -> ApiResult<()> {
    let removed = diesel::delete(
        subscriptions::table
            .filter(subscriptions::device_id.eq(device_id))
            .filter(subscriptions::group_id.eq(group_id)),
    )
    .execute(conn)?;
    groups::adjust_subscribers(conn, group_id, -(removed as i64))?;
    Ok(())
}
