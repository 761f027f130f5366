//! Resident endpoints: register a device, keep its push subscription fresh,
//! follow and unfollow groups, read the inbox, erase everything.

use actix_web::{web, HttpResponse};

use crate::auth::CurrentDevice;
use crate::devices::{self, NewDevice, PushSubscription};
use crate::error::ApiResult;
use crate::groups::GroupView;
use crate::limits::{Devices, Limited, TestNotifications};
use crate::messages::{self, MessageView};
use crate::model::{Page, PageQuery};
use crate::notices::{self, TestRequest};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/devices", web::post().to(create_device))
        .route("/devices/me/push", web::put().to(update_push))
        .route("/devices/me", web::delete().to(erase_device))
        .route("/devices/me/subscriptions", web::get().to(list_subscriptions))
        .route("/devices/me/subscriptions/{group_id}", web::put().to(subscribe))
        .route("/devices/me/subscriptions/{group_id}", web::delete().to(unsubscribe))
        .route("/devices/me/inbox", web::get().to(inbox))
        .route("/devices/me/test-notification", web::post().to(test_notification));
}

/// Registers a browser's push subscription; returns the device token once.
#[utoipa::path(post, path = "/api/v1/devices", tag = "residents",
    request_body = PushSubscription,
    responses((status = 201, body = NewDevice), (status = 422, description = "endpoint not on the push-service allowlist, or bad keys"),
              (status = 429, description = "rate limited (per client address)")))]
pub async fn create_device(
    _limit: Limited<Devices>,
    state: web::Data<AppState>,
    body: web::Json<PushSubscription>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let allowlist = state.allowlist.clone();
    let device = state.tx(move |c| devices::create(c, &allowlist, &body, now)).await?;
    Ok(HttpResponse::Created().json(device))
}

/// Replaces the device's push subscription (after `pushsubscriptionchange`).
#[utoipa::path(put, path = "/api/v1/devices/me/push", tag = "residents",
    request_body = PushSubscription, security(("device" = [])),
    responses((status = 204), (status = 401), (status = 422)))]
pub async fn update_push(
    state: web::Data<AppState>,
    device: CurrentDevice,
    body: web::Json<PushSubscription>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let allowlist = state.allowlist.clone();
    state.tx(move |c| devices::update_push(c, &allowlist, &device.id, &body, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Erases the device and everything about it.
#[utoipa::path(delete, path = "/api/v1/devices/me", tag = "residents", security(("device" = [])),
    responses((status = 204), (status = 401)))]
pub async fn erase_device(state: web::Data<AppState>, device: CurrentDevice) -> ApiResult<HttpResponse> {
    state.tx(move |c| devices::erase(c, &device.id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The groups this device follows.
#[utoipa::path(get, path = "/api/v1/devices/me/subscriptions", tag = "residents", security(("device" = [])),
    responses((status = 200, body = Page<GroupView>), (status = 401)))]
pub async fn list_subscriptions(state: web::Data<AppState>, device: CurrentDevice) -> ApiResult<HttpResponse> {
    let items = state.tx(move |c| devices::subscriptions(c, &device.id)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

/// Follows a group (idempotent).
#[utoipa::path(put, path = "/api/v1/devices/me/subscriptions/{group_id}", tag = "residents",
    params(("group_id" = String, Path)), security(("device" = [])),
    responses((status = 200, body = GroupView), (status = 401), (status = 404)))]
pub async fn subscribe(
    state: web::Data<AppState>,
    device: CurrentDevice,
    group_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let view = state.tx(move |c| devices::subscribe(c, &device.id, &group_id, now)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Unfollows a group (idempotent).
#[utoipa::path(delete, path = "/api/v1/devices/me/subscriptions/{group_id}", tag = "residents",
    params(("group_id" = String, Path)), security(("device" = [])),
    responses((status = 204), (status = 401)))]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    device: CurrentDevice,
    group_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.tx(move |c| devices::unsubscribe(c, &device.id, &group_id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Messages of every followed group, newest first.
#[utoipa::path(get, path = "/api/v1/devices/me/inbox", tag = "residents",
    params(PageQuery), security(("device" = [])),
    responses((status = 200, body = Page<MessageView>), (status = 401)))]
pub async fn inbox(
    state: web::Data<AppState>,
    device: CurrentDevice,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let page = state.tx(move |c| messages::inbox(c, &device.id, &page, now)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Sends this device a test notification (replacing one not yet sent): the
/// resident's check that notifications reach the phone.
#[utoipa::path(post, path = "/api/v1/devices/me/test-notification", tag = "residents",
    request_body = TestRequest, security(("device" = [])),
    responses((status = 202, description = "queued; the delivery workers send it at once"), (status = 401),
              (status = 429, description = "rate limited (per client address)")))]
pub async fn test_notification(
    _limit: Limited<TestNotifications>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    body: Option<web::Json<TestRequest>>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let lang = body.and_then(|b| b.into_inner().lang);
    let public_url = state.config.public_url.clone();
    state.tx(move |c| notices::enqueue_test(c, &public_url, &device.id, lang.as_deref(), now)).await?;
    state.wake.notify_one();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "queued" })))
}
