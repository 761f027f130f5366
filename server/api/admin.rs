//! City-admin endpoints (tenant-bound; an operator may act in every town).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::alerts::{self, NewAlert};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::messages::OwnMessageView;
use crate::model::{OrgStatus, Page, PageQuery};
use crate::orgs::{self, Decision, OrgView};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/tenants/{slug}/organizations", web::get().to(organizations))
        .route("/admin/organizations/{id}/{decision}", web::post().to(decide))
        .service(
            web::resource("/admin/tenants/{slug}/alerts")
                .route(web::post().to(send_alert))
                .route(web::get().to(list_alerts)),
        );
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct OrgListQuery {
    /// pending, approved, rejected or suspended.
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// The town's organizations, oldest first; `?status=pending` is the approval queue.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{slug}/organizations", tag = "admin",
    params(("slug" = String, Path), OrgListQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<OrgView>), (status = 401), (status = 403), (status = 404)))]
pub async fn organizations(
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    query: web::Query<OrgListQuery>,
) -> ApiResult<HttpResponse> {
    let query = query.into_inner();
    let status = OrgStatus::parse_filter("status", query.status.as_deref())?;
    let page = crate::model::PageQuery { cursor: query.cursor, limit: query.limit };
    let list = state.tx(move |c| orgs::list_for_admin(c, &user.id, &slug, status, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Required to reject or suspend; shown to the organization.
    pub reason: Option<String>,
}

/// Approves, rejects, suspends or reinstates an organization.
#[utoipa::path(post, path = "/api/v1/admin/organizations/{id}/{decision}", tag = "admin",
    params(("id" = String, Path), ("decision" = String, Path, description = "approve, reject, suspend or reinstate")),
    request_body(content = Option<ReasonBody>), security(("jwt" = [])),
    responses((status = 200, body = OrgView), (status = 401), (status = 404), (status = 409), (status = 422)))]
pub async fn decide(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (id, decision) = path.into_inner();
    let decision = match decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        "suspend" => Decision::Suspend,
        "reinstate" => Decision::Reinstate,
        _ => return Err(ApiError::NotFound("route")),
    };
    let reason = super::optional_json::<ReasonBody>(&body)?.and_then(|b| b.reason);
    let now = state.now_ms();
    let org = state.tx(move |c| orgs::decide(c, &user.id, &id, decision, reason.as_deref(), now)).await?;
    Ok(HttpResponse::Ok().json(org))
}

/// Sends a town-wide alert (urgency high) to every device following any of
/// the town's groups, each device once.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{slug}/alerts", tag = "admin",
    params(("slug" = String, Path)), request_body = NewAlert, security(("jwt" = [])),
    responses((status = 201, body = OwnMessageView), (status = 401), (status = 403), (status = 404), (status = 422), (status = 429)))]
pub async fn send_alert(
    _limit: crate::limits::Limited<crate::limits::Alerts>,
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    body: web::Json<NewAlert>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let alert = state.tx(move |c| alerts::send(c, &user.id, &slug, body.into_inner(), now)).await?;
    state.wake.notify_one();
    Ok(HttpResponse::Created().json(alert))
}

/// The town's alerts, newest first, with delivery statistics.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{slug}/alerts", tag = "admin",
    params(("slug" = String, Path), PageQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<OwnMessageView>), (status = 401), (status = 403), (status = 404)))]
pub async fn list_alerts(
    state: web::Data<AppState>,
    user: CurrentUser,
    slug: web::Path<String>,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let list = state.tx(move |c| alerts::list(c, &user.id, &slug, &page, now)).await?;
    Ok(HttpResponse::Ok().json(list))
}
