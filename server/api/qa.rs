//! Question hours: scheduling, reading, asking, voting, answering and the
//! live stream. The rules live in `crate::qa`, the stream in `crate::live`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::{secrets, CurrentDevice, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::limits::{Limit, Limited, Questions, Votes};
use crate::model::{Page, PageQuery};
use crate::qa::{self, NewAnswer, NewQuestion, NewSession, QuestionView, Reason, SessionView, Viewer};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups/{id}/sessions", web::post().to(create_session))
        .route("/groups/{id}/sessions", web::get().to(group_sessions))
        .route("/sessions/{id}", web::get().to(session))
        .route("/sessions/{id}", web::delete().to(cancel_session))
        .route("/sessions/{id}/events", web::get().to(session_events))
        .route("/sessions/{id}/end", web::post().to(end_session))
        .route("/sessions/{id}/questions", web::post().to(ask))
        .route("/sessions/{id}/questions/{qid}/vote", web::put().to(vote))
        .route("/sessions/{id}/questions/{qid}/vote", web::delete().to(unvote))
        .route("/sessions/{id}/questions/{qid}/answer", web::post().to(answer))
        .route("/sessions/{id}/questions/{qid}/dismiss", web::post().to(dismiss))
        .route("/sessions/{id}/questions/{qid}/block", web::post().to(block));
}

/// Optional authentication: anonymous, a device token (`mine`, `voted`) or
/// a staff JWT (the staff's view when a member of the session's
/// organization). A token that is not valid reads as anonymous, as on the
/// other public routes.
pub struct Reader(Viewer);

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_device = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .map(|(_, token)| token.trim().starts_with(secrets::DEVICE_PREFIX));
        match is_device {
            None => Box::pin(async { Ok(Reader(Viewer::Public)) }),
            Some(true) => {
                let device = CurrentDevice::from_request(req, payload);
                Box::pin(
                    async move { Ok(Reader(device.await.map(|d| Viewer::Device(d.id)).unwrap_or(Viewer::Public))) },
                )
            }
            Some(false) => {
                let user = CurrentUser::from_request(req, payload);
                Box::pin(async move { Ok(Reader(user.await.map(|u| Viewer::User(u.id)).unwrap_or(Viewer::Public))) })
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct QuestionPath {
    pub id: String,
    pub qid: String,
}

/// Schedules a question hour; its group's subscribers get a push when it opens.
#[utoipa::path(post, path = "/api/v1/groups/{id}/sessions", tag = "sessions",
    params(("id" = String, Path)), request_body = NewSession, security(("jwt" = [])),
    responses((status = 201, body = SessionView), (status = 401), (status = 403, description = "organization not approved, group suspended"),
              (status = 404), (status = 409, description = "group archived"), (status = 422)))]
pub async fn create_session(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<NewSession>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let public_url = state.config.public_url.clone();
    let view = state.tx(move |c| qa::create(c, &user.id, &id, body.into_inner(), &public_url, now)).await?;
    // A session that opens now sends its notice now.
    state.wake.notify_one();
    Ok(HttpResponse::Created().json(view))
}

/// A group's question hours, newest start first (cancelled ones left out).
#[utoipa::path(get, path = "/api/v1/groups/{id}/sessions", tag = "sessions",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<SessionView>), (status = 404)))]
pub async fn group_sessions(
    state: web::Data<AppState>,
    reader: Reader,
    id: web::Path<String>,
    page: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let page = state.tx(move |c| qa::list(c, &id, &reader.0, &page, now)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A question hour with its questions (most votes first). With a device
/// token: `mine`, `voted` and private answers to this device; with a staff
/// token of its organization: authors, dismissed questions, all answers.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path)), security((), ("device" = []), ("jwt" = [])),
    responses((status = 200, body = SessionView), (status = 404)))]
pub async fn session(state: web::Data<AppState>, reader: Reader, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let view = state.tx(move |c| qa::get(c, &id, &reader.0, now)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The live stream (`text/event-stream`): `event: question` with a question
/// as the public sees it on every change (`status: dismissed` means drop
/// it), `event: session` when the session's state changes; `id` is the
/// session's version, `Last-Event-ID` resumes; `: ping` every 15 s.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/events", tag = "sessions",
    params(("id" = String, Path), ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", description = "server-sent events"), (status = 404),
              (status = 429, description = "this client address holds too many streams"),
              (status = 503, description = "too many listeners on this instance, or it is shutting down")))]
pub async fn session_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if state.is_draining() {
        return Err(ApiError::Unavailable);
    }
    let id = id.into_inner();
    let sid = id.clone();
    state.tx(move |c| qa::ensure_public(c, &sid)).await?;
    let since =
        req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let client = crate::limits::client_key(&req, &state.config.limits.trusted_proxies);
    let stream = state.live.listen(&state, &id, client, since)?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx would otherwise hold events back in its buffer.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// Asks a question (the session must be open).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/questions", tag = "sessions",
    params(("id" = String, Path)), request_body = NewQuestion, security(("device" = [])),
    responses((status = 201, body = QuestionView), (status = 401), (status = 403, description = "blocked"), (status = 404),
              (status = 409, description = "session_not_open"), (status = 422),
              (status = 429, description = "rate limited (per client address and per device)")))]
pub async fn ask(
    _limit: Limited<Questions>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    id: web::Path<String>,
    body: web::Json<NewQuestion>,
) -> ApiResult<HttpResponse> {
    state.limits.check_device(Limit::Questions, &device.id)?;
    let now = state.now_ms();
    let key = state.keys.clone();
    let sid = id.clone();
    let question = state.tx(move |c| qa::ask(c, &key.pseudonym, &device.id, &sid, body.into_inner(), now)).await?;
    state.live.poke(&id);
    Ok(HttpResponse::Created().json(question))
}

/// Upvotes a question (idempotent: one vote per device).
#[utoipa::path(put, path = "/api/v1/sessions/{id}/questions/{qid}/vote", tag = "sessions",
    params(("id" = String, Path), ("qid" = String, Path)), security(("device" = [])),
    responses((status = 200, body = QuestionView), (status = 401), (status = 403, description = "blocked"), (status = 404),
              (status = 409, description = "session_not_open"),
              (status = 429, description = "rate limited (per client address and per device)")))]
pub async fn vote(
    _limit: Limited<Votes>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    path: web::Path<QuestionPath>,
) -> ApiResult<HttpResponse> {
    set_vote(state, device, path.into_inner(), true).await
}

/// Withdraws this device's upvote (idempotent).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/questions/{qid}/vote", tag = "sessions",
    params(("id" = String, Path), ("qid" = String, Path)), security(("device" = [])),
    responses((status = 200, body = QuestionView), (status = 401), (status = 403, description = "blocked"), (status = 404),
              (status = 409, description = "session_not_open"),
              (status = 429, description = "rate limited (per client address and per device)")))]
pub async fn unvote(
    _limit: Limited<Votes>,
    state: web::Data<AppState>,
    device: CurrentDevice,
    path: web::Path<QuestionPath>,
) -> ApiResult<HttpResponse> {
    set_vote(state, device, path.into_inner(), false).await
}

async fn set_vote(
    state: web::Data<AppState>,
    device: CurrentDevice,
    path: QuestionPath,
    up: bool,
) -> ApiResult<HttpResponse> {
    // Every toggle goes out to every listener: one device must not flood them.
    state.limits.check_device(Limit::Votes, &device.id)?;
    let now = state.now_ms();
    let QuestionPath { id, qid } = path;
    let sid = id.clone();
    let question = state.tx(move |c| qa::vote(c, &device.id, &sid, &qid, up, now)).await?;
    state.live.poke(&id);
    Ok(HttpResponse::Ok().json(question))
}

/// Answers a question, publicly (everyone sees it) or privately (only the
/// asker); the asker gets it by push either way.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/questions/{qid}/answer", tag = "sessions",
    params(("id" = String, Path), ("qid" = String, Path)), request_body = NewAnswer, security(("jwt" = [])),
    responses((status = 200, body = QuestionView), (status = 401), (status = 404), (status = 409, description = "session_cancelled"),
              (status = 422)))]
pub async fn answer(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<QuestionPath>,
    body: web::Json<NewAnswer>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let QuestionPath { id, qid } = path.into_inner();
    let public_url = state.config.public_url.clone();
    let sid = id.clone();
    let question = state.tx(move |c| qa::answer(c, &user.id, &public_url, &sid, &qid, body.into_inner(), now)).await?;
    state.wake.notify_one();
    state.live.poke(&id);
    Ok(HttpResponse::Ok().json(question))
}

/// Takes a question out of the public view (audit-logged).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/questions/{qid}/dismiss", tag = "sessions",
    params(("id" = String, Path), ("qid" = String, Path)), request_body = Reason, security(("jwt" = [])),
    responses((status = 200, body = QuestionView), (status = 401), (status = 404), (status = 422)))]
pub async fn dismiss(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<QuestionPath>,
    body: Option<web::Json<Reason>>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let QuestionPath { id, qid } = path.into_inner();
    let reason = body.map(web::Json::into_inner).unwrap_or_default();
    let sid = id.clone();
    let question = state.tx(move |c| qa::dismiss(c, &user.id, &sid, &qid, reason, now)).await?;
    state.live.poke(&id);
    Ok(HttpResponse::Ok().json(question))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    #[serde(default)]
    pub reason: String,
}

/// Blocks the asking device from the organization (audit-logged): it can
/// no longer ask, vote or report to it.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/questions/{qid}/block", tag = "sessions",
    params(("id" = String, Path), ("qid" = String, Path)), request_body = BlockRequest, security(("jwt" = [])),
    responses((status = 204), (status = 401), (status = 404), (status = 422)))]
pub async fn block(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<QuestionPath>,
    body: web::Json<BlockRequest>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let QuestionPath { id, qid } = path.into_inner();
    state.tx(move |c| qa::block(c, &user.id, &id, &qid, &body.reason, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends an open question hour now.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/end", tag = "sessions",
    params(("id" = String, Path)), security(("jwt" = [])),
    responses((status = 200, body = SessionView), (status = 401), (status = 404), (status = 409, description = "session_not_open")))]
pub async fn end_session(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let sid = id.clone();
    let view = state.tx(move |c| qa::end(c, &user.id, &sid, now)).await?;
    state.live.poke(&id);
    Ok(HttpResponse::Ok().json(view))
}

/// Cancels a question hour before it begins; the push that would have
/// opened it is withdrawn (audit-logged).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path)), security(("jwt" = [])),
    responses((status = 204), (status = 401), (status = 404), (status = 409, description = "session_started")))]
pub async fn cancel_session(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let sid = id.clone();
    state.tx(move |c| qa::cancel(c, &user.id, &sid, now)).await?;
    state.live.poke(&id);
    Ok(HttpResponse::NoContent().finish())
}
