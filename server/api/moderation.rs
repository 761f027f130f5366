//! Moderation endpoints: residents flag messages; the town's city admins
//! (an operator: every town's) verify and suspend groups, hide and restore
//! messages, resolve reports and read the audit log. The audit log is
//! append-only: no route changes or deletes an entry.

use actix_web::{web, HttpResponse, Resource};
use serde::Deserialize;

use super::admin::ReasonBody;
use crate::auth::{CurrentDevice, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::groups::GroupView;
use crate::model::{GroupStatus, Page, PageQuery, ReportStatus};
use crate::moderation::{
    self, AdminGroupView, AuditEntry, AuditQuery, GroupAction, ModeratedMessage, NewReport, ReportItem, ReportReceipt,
};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(report_resource())
        .route("/admin/tenants/{slug}/groups", web::get().to(town_groups))
        .route("/admin/groups/{id}/{action}", web::post().to(group_action))
        .route("/admin/messages/{id}/{action}", web::post().to(message_action))
        .route("/admin/tenants/{slug}/reports", web::get().to(reports))
        .route("/admin/reports/{id}/resolve", web::post().to(resolve))
        .route("/admin/tenants/{slug}/audit", web::get().to(town_audit))
        .route("/admin/audit", web::get().to(all_audit));
}

/// `POST /messages/{id}/reports` as a resource of its own, so that a rate
/// limiter can wrap exactly this route (`report_resource().wrap(…)`).
pub fn report_resource() -> Resource {
    web::resource("/messages/{id}/reports").route(web::post().to(report))
}

/// Flags a message the device can see (once per device and message).
#[utoipa::path(post, path = "/api/v1/messages/{id}/reports", tag = "residents",
    params(("id" = String, Path)), request_body = NewReport, security(("device" = [])),
    responses((status = 201, body = ReportReceipt), (status = 401), (status = 404),
              (status = 409, description = "already_reported"), (status = 422), (status = 429)))]
pub async fn report(
    _limit: crate::limits::Limited<crate::limits::Reports>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
    body: web::Json<NewReport>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let receipt = state.tx(move |c| moderation::report(c, &device.id, &id, &body, now)).await?;
    Ok(HttpResponse::Created().json(receipt))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GroupListQuery {
    /// active, archived or suspended.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Every group of the town with its status, by name (the console's list).
#[utoipa::path(get, path = "/api/v1/admin/tenants/{slug}/groups", tag = "admin",
    params(("slug" = String, Path), GroupListQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<AdminGroupView>), (status = 401), (status = 403), (status = 404)))]
pub async fn town_groups(
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    query: web::Query<GroupListQuery>,
) -> ApiResult<HttpResponse> {
    let query = query.into_inner();
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            GroupStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "status must be one of active, archived, suspended".to_owned())
            })
        })
        .transpose()?;
    let page = PageQuery { cursor: query.cursor, limit: query.limit };
    let list = state.tx(move |c| moderation::town_groups(c, &user.id, &slug, status, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Verifies (official badge), unverifies, suspends (reason required) or reinstates a group.
#[utoipa::path(post, path = "/api/v1/admin/groups/{id}/{action}", tag = "admin",
    params(("id" = String, Path), ("action" = String, Path, description = "verify, unverify, suspend or reinstate")),
    request_body(content = Option<ReasonBody>), security(("jwt" = [])),
    responses((status = 200, body = GroupView), (status = 401), (status = 404), (status = 409), (status = 422)))]
pub async fn group_action(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let action = GroupAction::parse(&action).ok_or(ApiError::NotFound("route"))?;
    let reason = super::optional_json::<ReasonBody>(&body)?.and_then(|b| b.reason);
    let now = state.now_ms();
    let group = state.tx(move |c| moderation::act_on_group(c, &user.id, &id, action, reason.as_deref(), now)).await?;
    Ok(HttpResponse::Ok().json(group))
}

/// Hides a message (reason required, shown to residents who open it) or restores it.
#[utoipa::path(post, path = "/api/v1/admin/messages/{id}/{action}", tag = "admin",
    params(("id" = String, Path), ("action" = String, Path, description = "hide or restore")),
    request_body(content = Option<ReasonBody>), security(("jwt" = [])),
    responses((status = 200, body = ModeratedMessage), (status = 401), (status = 404), (status = 409), (status = 422)))]
pub async fn message_action(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let hide = match action.as_str() {
        "hide" => true,
        "restore" => false,
        _ => return Err(ApiError::NotFound("route")),
    };
    let reason = super::optional_json::<ReasonBody>(&body)?.and_then(|b| b.reason);
    let now = state.now_ms();
    let message = state
        .tx(move |c| {
            if hide {
                moderation::hide_message(c, &user.id, &id, reason.as_deref(), now)
            } else {
                moderation::restore_message(c, &user.id, &id, reason.as_deref(), now)
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(message))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportListQuery {
    /// open (default) or resolved.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The town's report queue: one item per reported message, most reports first, then oldest.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{slug}/reports", tag = "admin",
    params(("slug" = String, Path), ReportListQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<ReportItem>), (status = 401), (status = 403), (status = 404)))]
pub async fn reports(
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    query: web::Query<ReportListQuery>,
) -> ApiResult<HttpResponse> {
    let query = query.into_inner();
    let status = ReportStatus::parse_filter("status", query.status.as_deref())?.unwrap_or(ReportStatus::Open);
    let page = PageQuery { cursor: query.cursor, limit: query.limit };
    let list = state.tx(move |c| moderation::queue(c, &user.id, &slug, status, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// hide_message, dismiss or suspend_group.
    pub action: String,
    /// Recorded in the audit log; the reason residents see when the message is hidden.
    pub note: Option<String>,
}

/// Resolves every open report of the reported message, with the action taken.
#[utoipa::path(post, path = "/api/v1/admin/reports/{id}/resolve", tag = "admin",
    params(("id" = String, Path, description = "any report of the message")), request_body = ResolveBody,
    security(("jwt" = [])),
    responses((status = 200, body = ReportItem), (status = 401), (status = 404),
              (status = 409, description = "already_resolved, or the group cannot be suspended"), (status = 422)))]
pub async fn resolve(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<ResolveBody>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let ResolveBody { action, note } = body.into_inner();
    let item = state.tx(move |c| moderation::resolve(c, &user.id, &id, &action, note.as_deref(), now)).await?;
    Ok(HttpResponse::Ok().json(item))
}

/// The town's audit log, newest first, filterable (its city admins and the operator).
#[utoipa::path(get, path = "/api/v1/admin/tenants/{slug}/audit", tag = "admin",
    params(("slug" = String, Path), AuditQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<AuditEntry>), (status = 401), (status = 403), (status = 404)))]
pub async fn town_audit(
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| moderation::town_audit(c, &user.id, &slug, &query)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Every town's audit log and the installation's, newest first (operator only).
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    params(AuditQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<AuditEntry>), (status = 401), (status = 403)))]
pub async fn all_audit(
    state: web::Data<AppState>,
    user: CurrentUser,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| moderation::all_audit(c, &user.id, &query)).await?;
    Ok(HttpResponse::Ok().json(list))
}
