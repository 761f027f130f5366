//! Organization API tokens: owners create (the secret once), list and
//! revoke them. Posting with a token is `POST /groups/{id}/messages`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::model::Page;
use crate::state::AppState;
use crate::tokens::{self, CreatedToken, TokenView};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/organizations/{id}/tokens", web::get().to(list_tokens))
        .route("/organizations/{id}/tokens", web::post().to(create_token))
        .route("/organizations/{id}/tokens/{token_id}", web::delete().to(revoke_token));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "Website".
    pub name: String,
    /// The one group of the organization the token may post to.
    pub group_id: String,
}

/// Creates an API token for one group (owners only). The secret is in this
/// answer only; it posts with `Authorization: Bearer hapi_…`.
#[utoipa::path(post, path = "/api/v1/organizations/{id}/tokens", tag = "organizations", params(("id" = String, Path)),
    request_body = NewToken, security(("jwt" = [])),
    responses((status = 201, body = CreatedToken), (status = 401), (status = 403, description = "not an owner"),
              (status = 404), (status = 409, description = "group archived, or too many tokens"), (status = 422)))]
pub async fn create_token(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<NewToken>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let created = state.tx(move |c| tokens::create(c, &user.id, &id, &body.name, &body.group_id, now)).await?;
    Ok(HttpResponse::Created().json(created))
}

/// The organization's API tokens, revoked ones included; never a secret (owners only).
#[utoipa::path(get, path = "/api/v1/organizations/{id}/tokens", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])),
    responses((status = 200, body = Page<TokenView>), (status = 401), (status = 403), (status = 404)))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let items = state.tx(move |c| tokens::list(c, &user.id, &id)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

/// Revokes an API token at once (owners only).
#[utoipa::path(delete, path = "/api/v1/organizations/{id}/tokens/{token_id}", tag = "organizations",
    params(("id" = String, Path), ("token_id" = String, Path)), security(("jwt" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let (org_id, token_id) = path.into_inner();
    state.tx(move |c| tokens::revoke(c, &user.id, &org_id, &token_id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}
