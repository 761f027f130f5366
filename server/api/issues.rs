//! Residents' issue reports: a group's intake settings, reports with photos
//! from a device, the organization's inbox and answers, blocks, and the
//! group's public board. Domain rules live in `crate::issues`.

use actix_web::{web, HttpResponse};

use crate::auth::{CurrentDevice, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::issues::{
    self, BlockRequest, BoardIssue, InboxQuery, Intake, IssueUpdate, IssueView, NewIssue, NewPost, PhotoBytes,
    PhotoView, PostView, Reply,
};
use crate::limits::{Issues, Limit, Limited, Questions};
use crate::model::{Page, PageQuery};
use crate::photos;
use crate::state::AppState;
use crate::talk::{self, BlockView};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups/{id}/intake", web::get().to(intake))
        .route("/groups/{id}/intake", web::put().to(set_intake))
        .route("/groups/{id}/issues", web::post().to(create_issue))
        .route("/groups/{id}/board", web::get().to(board))
        .route("/groups/{id}/board/{issue_id}/photos/{photo_id}", web::get().to(board_photo))
        .service(
            web::resource("/devices/me/issues/{id}/photos")
                // Photos come as raw bytes, up to 10 MiB: far above the JSON limit.
                .app_data(web::PayloadConfig::new(photos::MAX_UPLOAD_BYTES))
                .route(web::post().to(upload_photo)),
        )
        .route("/devices/me/issues", web::get().to(my_issues))
        .route("/devices/me/issues/{id}", web::get().to(my_issue))
        .route("/devices/me/issues/{id}", web::delete().to(delete_my_issue))
        .route("/devices/me/issues/{id}/posts", web::post().to(post_to_my_issue))
        .route("/devices/me/issues/{id}/photos/{photo_id}", web::get().to(my_photo))
        .route("/organizations/{id}/issues", web::get().to(org_issues))
        .route("/organizations/{id}/blocks", web::get().to(blocks))
        .route("/organizations/{id}/blocks/{block_id}", web::delete().to(unblock))
        .route("/issues/{id}", web::get().to(org_issue))
        .route("/issues/{id}", web::patch().to(update_issue))
        .route("/issues/{id}/replies", web::post().to(reply))
        .route("/issues/{id}/photos/{photo_id}", web::get().to(org_photo))
        .route("/issues/{id}/block", web::post().to(block));
}

/// Extractor: one of the instance's upload slots, taken before the body is
/// read, so at most `state::UPLOAD_SLOTS` photos (10 MiB each) are held in
/// memory at once; when all are taken the upload is refused at once with 429
/// and `Retry-After` rather than queued.
pub struct UploadSlot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl actix_web::FromRequest for UploadSlot {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => state
                .upload_slots
                .clone()
                .try_acquire_owned()
                .map(UploadSlot)
                .map_err(|_| ApiError::TooManyRequests(UPLOAD_RETRY_SECS)),
            None => Err(ApiError::Internal("AppState missing".into())),
        })
    }
}

/// When to try again after all upload slots were taken.
const UPLOAD_RETRY_SECS: u64 = 5;

fn image(photo: PhotoBytes, cache: &'static str) -> HttpResponse {
    let (content_type, data) = photo;
    HttpResponse::Ok().content_type(content_type).insert_header(("Cache-Control", cache)).body(data)
}

/// Whether a group takes reports, and under which categories (for its
/// organization's members also while the group is not public).
#[utoipa::path(get, path = "/api/v1/groups/{id}/intake", tag = "issues", params(("id" = String, Path)),
    responses((status = 200, body = Intake), (status = 404)))]
pub async fn intake(
    state: web::Data<AppState>,
    user: Option<CurrentUser>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let intake = state.tx(move |c| issues::intake(c, user.as_ref().map(|u| u.id.as_str()), &id)).await?;
    Ok(HttpResponse::Ok().json(intake))
}

/// Opens or closes a group for reports, sets its categories and board (members).
#[utoipa::path(put, path = "/api/v1/groups/{id}/intake", tag = "issues", params(("id" = String, Path)),
    request_body = Intake, security(("jwt" = [])),
    responses((status = 200, body = Intake), (status = 401), (status = 404), (status = 422)))]
pub async fn set_intake(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<Intake>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let intake = state.tx(move |c| issues::set_intake(c, &user.id, &id, body.into_inner(), now)).await?;
    Ok(HttpResponse::Ok().json(intake))
}

/// A device reports an issue to a group open for reports.
#[utoipa::path(post, path = "/api/v1/groups/{id}/issues", tag = "issues", params(("id" = String, Path)),
    request_body = NewIssue, security(("device" = [])),
    responses((status = 201, body = IssueView), (status = 401), (status = 403, description = "blocked"),
              (status = 404), (status = 409, description = "intake_closed"), (status = 422), (status = 429)))]
pub async fn create_issue(
    _limit: Limited<Issues>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
    body: web::Json<NewIssue>,
) -> ApiResult<HttpResponse> {
    state.limits.check_device(Limit::Issues, &device.id)?;
    let now = state.now_ms();
    let keys = state.keys.clone();
    let issue = state.tx(move |c| issues::create(c, &keys.pseudonym, &device.id, &id, body.into_inner(), now)).await?;
    Ok(HttpResponse::Created().json(issue))
}

/// Adds a photo (JPEG, PNG or WebP, raw bytes, ≤ 10 MiB) to the device's
/// report; stored re-encoded, without metadata.
#[utoipa::path(post, path = "/api/v1/devices/me/issues/{id}/photos", tag = "issues", params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/jpeg"), security(("device" = [])),
    responses((status = 201, body = PhotoView), (status = 401), (status = 404),
              (status = 409, description = "too_many_photos"), (status = 413),
              (status = 422, description = "invalid_image"), (status = 429)))]
pub async fn upload_photo(
    _limit: Limited<Issues>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
    _slot: UploadSlot,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    state.limits.check_device(Limit::Issues, &device.id)?;
    let (device_id, issue_id) = (device.id.clone(), id.clone());
    // Refused uploads cost no decoding.
    state.tx(move |c| issues::photo_allowed(c, &device_id, &issue_id)).await?;
    let processed = {
        let _slot = state.photo_slots.acquire().await.map_err(|_| ApiError::Unavailable)?;
        web::block(move || photos::reencode(&body)).await??
    };
    let now = state.now_ms();
    let photo = state.tx(move |c| issues::add_photo(c, &device.id, &id, processed, now)).await?;
    Ok(HttpResponse::Created().json(photo))
}

/// The device's reports, newest activity first.
#[utoipa::path(get, path = "/api/v1/devices/me/issues", tag = "issues", params(PageQuery), security(("device" = [])),
    responses((status = 200, body = Page<IssueView>), (status = 401)))]
pub async fn my_issues(
    state: web::Data<AppState>,
    device: CurrentDevice,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| issues::mine(c, &device.id, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One of the device's reports with its thread.
#[utoipa::path(get, path = "/api/v1/devices/me/issues/{id}", tag = "issues", params(("id" = String, Path)),
    security(("device" = [])), responses((status = 200, body = IssueView), (status = 401), (status = 404)))]
pub async fn my_issue(
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let issue = state.tx(move |c| issues::my_issue(c, &device.id, &id)).await?;
    Ok(HttpResponse::Ok().json(issue))
}

/// Deletes one of the device's reports with its thread and photos.
#[utoipa::path(delete, path = "/api/v1/devices/me/issues/{id}", tag = "issues", params(("id" = String, Path)),
    security(("device" = [])), responses((status = 204), (status = 401), (status = 404)))]
pub async fn delete_my_issue(
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.tx(move |c| issues::delete_mine(c, &device.id, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The resident adds to the thread of their report.
#[utoipa::path(post, path = "/api/v1/devices/me/issues/{id}/posts", tag = "issues", params(("id" = String, Path)),
    request_body = NewPost, security(("device" = [])),
    responses((status = 201, body = PostView), (status = 401), (status = 403, description = "blocked"),
              (status = 404), (status = 422), (status = 429)))]
pub async fn post_to_my_issue(
    _limit: Limited<Questions>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
    body: web::Json<NewPost>,
) -> ApiResult<HttpResponse> {
    state.limits.check_device(Limit::Questions, &device.id)?;
    let now = state.now_ms();
    let post = state.tx(move |c| issues::resident_post(c, &device.id, &id, body.into_inner(), now)).await?;
    Ok(HttpResponse::Created().json(post))
}

/// A photo of the device's own report.
#[utoipa::path(get, path = "/api/v1/devices/me/issues/{id}/photos/{photo_id}", tag = "issues",
    params(("id" = String, Path), ("photo_id" = String, Path)), security(("device" = [])),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 401), (status = 404)))]
pub async fn my_photo(
    state: web::Data<AppState>,
    device: CurrentDevice,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, photo_id) = path.into_inner();
    let photo = state.tx(move |c| issues::my_photo(c, &device.id, &id, &photo_id)).await?;
    Ok(image(photo, "private, max-age=86400"))
}

/// The organization's report inbox, newest activity first.
#[utoipa::path(get, path = "/api/v1/organizations/{id}/issues", tag = "issues",
    params(("id" = String, Path), InboxQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<IssueView>), (status = 401), (status = 404), (status = 422)))]
pub async fn org_issues(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    query: web::Query<InboxQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| issues::for_org(c, &user.id, &id, &query)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// A report with its thread, as the organization sees it (with pseudonym).
#[utoipa::path(get, path = "/api/v1/issues/{id}", tag = "issues", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 200, body = IssueView), (status = 401), (status = 404)))]
pub async fn org_issue(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let issue = state.tx(move |c| issues::org_issue(c, &user.id, &id)).await?;
    Ok(HttpResponse::Ok().json(issue))
}

/// Answers a report and/or sets its status; the resident gets a push.
#[utoipa::path(post, path = "/api/v1/issues/{id}/replies", tag = "issues", params(("id" = String, Path)),
    request_body = Reply, security(("jwt" = [])),
    responses((status = 201, body = IssueView), (status = 401), (status = 404), (status = 409), (status = 422)))]
pub async fn reply(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<Reply>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let public_url = state.config.public_url.clone();
    let issue = state.tx(move |c| issues::reply(c, &public_url, &user.id, &id, body.into_inner(), now)).await?;
    Ok(HttpResponse::Created().json(issue))
}

/// Sets a report's status (the resident gets a push) or its place on the board.
#[utoipa::path(patch, path = "/api/v1/issues/{id}", tag = "issues", params(("id" = String, Path)),
    request_body = IssueUpdate, security(("jwt" = [])),
    responses((status = 200, body = IssueView), (status = 401), (status = 404),
              (status = 409, description = "board_disabled"), (status = 422)))]
pub async fn update_issue(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<IssueUpdate>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let public_url = state.config.public_url.clone();
    let issue = state.tx(move |c| issues::update(c, &public_url, &user.id, &id, body.into_inner(), now)).await?;
    Ok(HttpResponse::Ok().json(issue))
}

/// A photo of a report, for the organization.
#[utoipa::path(get, path = "/api/v1/issues/{id}/photos/{photo_id}", tag = "issues",
    params(("id" = String, Path), ("photo_id" = String, Path)), security(("jwt" = [])),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 401), (status = 404)))]
pub async fn org_photo(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, photo_id) = path.into_inner();
    let photo = state.tx(move |c| issues::org_photo(c, &user.id, &id, &photo_id)).await?;
    Ok(image(photo, "private, max-age=86400"))
}

/// Blocks the report's device from further reports, posts and questions to
/// this organization.
#[utoipa::path(post, path = "/api/v1/issues/{id}/block", tag = "issues", params(("id" = String, Path)),
    request_body = BlockRequest, security(("jwt" = [])),
    responses((status = 204), (status = 401), (status = 404), (status = 422)))]
pub async fn block(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<BlockRequest>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    state.tx(move |c| issues::block_author(c, &user.id, &id, &body.reason, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The organization's blocked devices (by pseudonym).
#[utoipa::path(get, path = "/api/v1/organizations/{id}/blocks", tag = "issues",
    params(("id" = String, Path), PageQuery), security(("jwt" = [])),
    responses((status = 200, body = Page<BlockView>), (status = 401), (status = 404)))]
pub async fn blocks(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| talk::blocks(c, &user.id, &id, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Lifts a block.
#[utoipa::path(delete, path = "/api/v1/organizations/{id}/blocks/{block_id}", tag = "issues",
    params(("id" = String, Path), ("block_id" = String, Path)), security(("jwt" = [])),
    responses((status = 204), (status = 401), (status = 404)))]
pub async fn unblock(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, block_id) = path.into_inner();
    let now = state.now_ms();
    state.tx(move |c| talk::unblock(c, &user.id, &id, &block_id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A group's public board: reports its organization published (no author,
/// position or address).
#[utoipa::path(get, path = "/api/v1/groups/{id}/board", tag = "issues", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<BoardIssue>), (status = 404)))]
pub async fn board(
    state: web::Data<AppState>,
    id: web::Path<String>,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let list = state.tx(move |c| issues::board(c, &id, &page)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// A photo of a published report.
#[utoipa::path(get, path = "/api/v1/groups/{id}/board/{issue_id}/photos/{photo_id}", tag = "issues",
    params(("id" = String, Path), ("issue_id" = String, Path), ("photo_id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404)))]
pub async fn board_photo(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, issue_id, photo_id) = path.into_inner();
    let photo = state.tx(move |c| issues::board_photo(c, &id, &issue_id, &photo_id)).await?;
    // Short: a report taken off the board should not linger in caches.
    Ok(image(photo, "public, max-age=300"))
}
