//! Public endpoints: the towns, their group directories, group pages and
//! feeds, published messages, and the VAPID public key.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::groups::{self, DirectoryQuery, GroupView};
use crate::messages::{self, MessageView, OwnMessageView};
use crate::model::{Page, PageQuery};
use crate::state::AppState;
use crate::tenants::{self, TenantView};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants", web::get().to(list_tenants))
        .route("/tenants/{slug}/groups", web::get().to(directory))
        .route("/groups/{id}", web::get().to(group))
        .route("/groups/{id}/messages", web::get().to(group_messages))
        .route("/messages/{id}", web::get().to(message))
        .route("/push/vapid-public-key", web::get().to(vapid_public_key))
        .route("/groups/{id}/qr.svg", web::get().to(group_qr));
}

/// The towns on this installation.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "public",
    responses((status = 200, body = Page<TenantView>)))]
pub async fn list_tenants(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let items = state.tx(tenants::list).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

/// A town's group directory: official groups first, text search, category filter.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/groups", tag = "public",
    params(("slug" = String, Path), DirectoryQuery),
    responses((status = 200, body = Page<GroupView>), (status = 404, description = "no such town")))]
pub async fn directory(
    state: web::Data<AppState>,
    slug: web::Path<String>,
    query: web::Query<DirectoryQuery>,
) -> ApiResult<HttpResponse> {
    let page = state.tx(move |c| groups::directory(c, &slug, &query)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A group's public page with its subscriber count.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "public",
    params(("id" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404)))]
pub async fn group(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let view = state.tx(move |c| groups::public_view(c, &id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A group's messages, newest first. Anyone gets the public feed; a member of
/// the group's organization (access token) gets every message with its
/// status and delivery statistics.
#[utoipa::path(get, path = "/api/v1/groups/{id}/messages", tag = "public",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<MessageView>, description = "public feed"),
              (status = 200, body = Page<OwnMessageView>, description = "member view"),
              (status = 404)))]
pub async fn group_messages(
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
    id: web::Path<String>,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let list = state
        .tx(move |c| {
            if let Some(user) = user {
                if messages::is_member_of_group(c, &user.id, &id).unwrap_or(false) {
                    return to_json(messages::for_members(c, &user.id, &id, &page, now)?);
                }
            }
            to_json(messages::feed(c, &id, &page, now)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One published message (the full text a notification links to).
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "public",
    params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404)))]
pub async fn message(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let view = state.tx(move |c| messages::public(c, &id, now)).await?;
    Ok(HttpResponse::Ok().json(view))
}

fn to_json(value: impl Serialize) -> ApiResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| crate::error::ApiError::Internal(format!("serialize: {e}")))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VapidKey {
    /// Uncompressed P-256 point, base64url: the `applicationServerKey`.
    pub public_key: String,
}

/// The server's VAPID public key, for `pushManager.subscribe()`.
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "public",
    responses((status = 200, body = VapidKey)))]
pub async fn vapid_public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(VapidKey { public_key: state.keys.vapid.public_key().to_owned() })
}

/// A QR code (SVG) of the group's link `/g/{id}`, for the poster a shop
/// prints for its window.
#[utoipa::path(get, path = "/api/v1/groups/{id}/qr.svg", tag = "public",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml"), (status = 404)))]
pub async fn group_qr(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let public_url = state.config.public_url.clone();
    let link = state.tx(move |c| groups::poster_link(c, &public_url, &id)).await?;
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| crate::error::ApiError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(svg))
}
