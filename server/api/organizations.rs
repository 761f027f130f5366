//! Organization endpoints: accounts (register, login, refresh, logout,
//! invitations), organizations and members, groups, posting messages.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::accounts::{self, TokenPair};
use crate::auth::{password, CurrentPoster, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::groups::{self, GroupInput, GroupView};
use crate::limits::{Limited, Login, Register};
use crate::lockout;
use crate::messages::{self, NewMessage, OwnMessageView};
use crate::model::{Page, Role};
use crate::orgs::{self, AddedMember, MemberView, NewOrg, OrgView};
use crate::state::AppState;
use crate::validate;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/accept-invite", web::post().to(accept_invite))
        .route("/me", web::get().to(me))
        .route("/organizations", web::post().to(create_organization))
        .route("/organizations/mine", web::get().to(my_organizations))
        .route("/organizations/{id}", web::get().to(organization))
        .route("/organizations/{id}/members", web::get().to(members))
        .route("/organizations/{id}/members", web::post().to(add_member))
        .route("/organizations/{id}/members/{user_id}", web::patch().to(change_member))
        .route("/organizations/{id}/members/{user_id}", web::delete().to(remove_member))
        .route("/organizations/{id}/groups", web::get().to(organization_groups))
        .route("/organizations/{id}/groups", web::post().to(create_group))
        .route("/groups/{id}", web::patch().to(update_group))
        .route("/groups/{id}", web::delete().to(archive_group))
        .route("/groups/{id}/messages", web::post().to(post_message))
        .route("/messages/{id}/stats", web::get().to(message_stats))
        .route("/groups/{id}/subscriber-history", web::get().to(subscriber_history));
}

/// Hashes a password on the blocking pool (argon2id is slow on purpose).
async fn hash_password(password: String) -> ApiResult<String> {
    validate::password(&password)?;
    web::block(move || password::hash(&password)).await?.map_err(ApiError::Internal)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgInput {
    pub name: String,
    /// The town's slug.
    pub tenant: String,
    pub description: Option<String>,
    /// administration, church, club, business, school, culture or other (default).
    pub kind: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub organization: OrgInput,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Registered {
    #[serde(flatten)]
    pub tokens: TokenPair,
    /// The new organization, `pending` until the town approves it.
    pub organization: OrgView,
}

/// Registers a person and a new organization (pending the town's approval).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "accounts", request_body = Registration,
    responses((status = 201, body = Registered), (status = 409, description = "e-mail taken"), (status = 422),
              (status = 429, description = "rate limited (per client address)")))]
pub async fn register(
    _limit: Limited<Register>,
    state: web::Data<AppState>,
    body: web::Json<Registration>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let email = validate::email(&body.email)?;
    let hash = hash_password(body.password).await?;
    let now = state.now_ms();
    let keys = state.keys.clone();
    let registered = state
        .tx(move |c| {
            let user = accounts::create_user(c, &email, Some(&hash), false, now)?;
            let org = body.organization;
            let new = NewOrg { name: &org.name, description: org.description.as_deref(), tenant_slug: &org.tenant };
            let organization = orgs::create_with_kind(c, &user, new, org.kind.as_deref(), now)?;
            let tokens = accounts::issue_tokens(c, &keys, &user, None, now)?;
            Ok(Registered { tokens, organization })
        })
        .await?;
    Ok(HttpResponse::Created().json(registered))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// Logs in: a 15-minute access token and a rotating refresh token. Repeated
/// wrong passwords lock the account for a while (`account_locked`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = Credentials,
    responses((status = 200, body = TokenPair), (status = 401),
              (status = 429, description = "rate limited (per client address), or the account is locked")))]
pub async fn login(
    _limit: Limited<Login>,
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> ApiResult<HttpResponse> {
    let Credentials { email, password: given } = body.into_inner();
    let email = email.trim().to_lowercase();
    let lookup = email.clone();
    let now = state.now_ms();
    // No stored address has control characters (and PostgreSQL refuses NUL in text).
    let user = if email.chars().any(char::is_control) {
        None
    } else {
        state
            .tx(move |c| {
                let user = accounts::by_email(c, &lookup)?;
                if let Some(user) = &user {
                    // A locked account is refused before the (slow) password check.
                    lockout::require_unlocked(c, &user.id, now)?;
                }
                Ok(user)
            })
            .await?
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    // Verify against a dummy hash for unknown accounts: same cost, no hint.
    let ok = web::block(move || {
        let hash = stored.as_deref().unwrap_or_else(|| password::dummy_hash());
        password::verify(&given, hash) && stored.is_some()
    })
    .await?;
    let wrong = || ApiError::BadCredentials("e-mail or password is wrong".into());
    let Some(user) = user else { return Err(wrong()) };
    if !ok {
        let (id, policy) = (user.id, state.config.limits.clone());
        // Counted in a transaction of its own that commits: the answer is an error.
        let locked = state.tx(move |c| lockout::record_failure(c, &id, &policy, now)).await?;
        return Err(locked.map(ApiError::AccountLocked).unwrap_or_else(wrong));
    }
    let keys = state.keys.clone();
    let tokens = state
        .tx(move |c| {
            lockout::record_success(c, &user.id, now)?;
            accounts::issue_tokens(c, &keys, &user, None, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new pair; the old one stops working.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts", request_body = RefreshBody,
    responses((status = 200, body = TokenPair), (status = 401)))]
pub async fn refresh(state: web::Data<AppState>, body: web::Json<RefreshBody>) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let keys = state.keys.clone();
    let tokens = state
        .tx(move |c| accounts::refresh(c, &keys, &body.refresh_token, now))
        .await?
        .ok_or_else(|| ApiError::BadCredentials("refresh token invalid or expired; log in again".into()))?;
    Ok(HttpResponse::Ok().json(tokens))
}

/// Ends the session: the refresh token (and its rotations) are revoked.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", request_body = RefreshBody,
    responses((status = 204)))]
pub async fn logout(state: web::Data<AppState>, body: web::Json<RefreshBody>) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    state.tx(move |c| accounts::logout(c, &body.refresh_token, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AcceptInvite {
    pub invite_token: String,
    pub password: String,
}

/// An invited member sets a password and is logged in.
#[utoipa::path(post, path = "/api/v1/auth/accept-invite", tag = "accounts", request_body = AcceptInvite,
    responses((status = 200, body = TokenPair), (status = 401), (status = 422)))]
pub async fn accept_invite(state: web::Data<AppState>, body: web::Json<AcceptInvite>) -> ApiResult<HttpResponse> {
    let AcceptInvite { invite_token, password } = body.into_inner();
    let hash = hash_password(password).await?;
    let now = state.now_ms();
    let keys = state.keys.clone();
    let tokens = state
        .tx(move |c| {
            let user = accounts::accept_invite(c, &invite_token, &hash, now)?;
            accounts::issue_tokens(c, &keys, &user, None, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    /// An operator: may act as city admin of every town.
    pub platform_admin: bool,
    pub organizations: Vec<OrgView>,
    /// Slugs of the towns this person administers.
    pub city_admin_of: Vec<String>,
}

/// Who is logged in, with organizations and city-admin towns.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("jwt" = [])),
    responses((status = 200, body = Me), (status = 401)))]
pub async fn me(state: web::Data<AppState>, user: CurrentUser) -> ApiResult<HttpResponse> {
    let me = state
        .tx(move |c| {
            let u = accounts::by_id(c, &user.id)?;
            Ok(Me {
                organizations: orgs::mine(c, &u.id)?,
                city_admin_of: accounts::city_admin_tenants(c, &u)?,
                id: u.id,
                email: u.email,
                platform_admin: u.is_platform_admin,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(me))
}

/// Creates another organization for the logged-in person (pending approval).
#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations", request_body = OrgInput,
    security(("jwt" = [])), responses((status = 201, body = OrgView), (status = 401), (status = 422)))]
pub async fn create_organization(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<OrgInput>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let org = state
        .tx(move |c| {
            let u = accounts::by_id(c, &user.id)?;
            let new = NewOrg { name: &body.name, description: body.description.as_deref(), tenant_slug: &body.tenant };
            orgs::create_with_kind(c, &u, new, body.kind.as_deref(), now)
        })
        .await?;
    Ok(HttpResponse::Created().json(org))
}

/// The organizations the caller belongs to, with the caller's role.
#[utoipa::path(get, path = "/api/v1/organizations/mine", tag = "organizations", security(("jwt" = [])),
    responses((status = 200, body = Page<OrgView>), (status = 401)))]
pub async fn my_organizations(state: web::Data<AppState>, user: CurrentUser) -> ApiResult<HttpResponse> {
    let items = state.tx(move |c| orgs::mine(c, &user.id)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 200, body = OrgView), (status = 401), (status = 404)))]
pub async fn organization(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let org = state.tx(move |c| orgs::get(c, &user.id, &id)).await?;
    Ok(HttpResponse::Ok().json(org))
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/members", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 200, body = Page<MemberView>), (status = 401), (status = 404)))]
pub async fn members(state: web::Data<AppState>, user: CurrentUser, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let items = state.tx(move |c| orgs::members(c, &user.id, &id)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub email: String,
    /// Default `editor`.
    pub role: Option<Role>,
}

/// Adds a member (owners only). A new e-mail gets an invitation token, once.
#[utoipa::path(post, path = "/api/v1/organizations/{id}/members", tag = "organizations", params(("id" = String, Path)),
    request_body = NewMember, security(("jwt" = [])),
    responses((status = 201, body = AddedMember), (status = 403), (status = 404), (status = 409)))]
pub async fn add_member(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<NewMember>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let added = state
        .tx(move |c| orgs::add_member(c, &user.id, &id, &body.email, body.role.unwrap_or(Role::Editor), now))
        .await?;
    Ok(HttpResponse::Created().json(added))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

/// Changes a member's role (owners only; transfer ownership by making another member owner).
#[utoipa::path(patch, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("id" = String, Path), ("user_id" = String, Path)), request_body = RoleChange, security(("jwt" = [])),
    responses((status = 200, body = MemberView), (status = 403), (status = 404), (status = 409)))]
pub async fn change_member(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    body: web::Json<RoleChange>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let (org_id, member_id) = path.into_inner();
    let member = state.tx(move |c| orgs::set_role(c, &user.id, &org_id, &member_id, body.role, now)).await?;
    Ok(HttpResponse::Ok().json(member))
}

/// Removes a member (owners; any member may remove themselves). Never the last owner.
#[utoipa::path(delete, path = "/api/v1/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("id" = String, Path), ("user_id" = String, Path)), security(("jwt" = [])),
    responses((status = 204), (status = 403), (status = 404), (status = 409)))]
pub async fn remove_member(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let (org_id, member_id) = path.into_inner();
    state.tx(move |c| orgs::remove_member(c, &user.id, &org_id, &member_id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The organization's groups, every status (members only).
#[utoipa::path(get, path = "/api/v1/organizations/{id}/groups", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 200, body = Page<GroupView>), (status = 404)))]
pub async fn organization_groups(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let items = state.tx(move |c| groups::of_org(c, &user.id, &id)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    pub name: Option<String>,
    pub description: Option<String>,
    /// administration, church, club, business, school, culture or other.
    pub category: Option<String>,
}

impl GroupBody {
    fn input(&self) -> GroupInput<'_> {
        GroupInput {
            name: self.name.as_deref(),
            description: self.description.as_deref(),
            category: self.category.as_deref(),
        }
    }
}

/// Creates a group (owners only).
#[utoipa::path(post, path = "/api/v1/organizations/{id}/groups", tag = "organizations", params(("id" = String, Path)),
    request_body = GroupBody, security(("jwt" = [])),
    responses((status = 201, body = GroupView), (status = 403), (status = 404), (status = 422)))]
pub async fn create_group(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<GroupBody>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let group = state.tx(move |c| groups::create(c, &user.id, &id, body.input(), now)).await?;
    Ok(HttpResponse::Created().json(group))
}

/// Renames, re-describes or re-categorizes a group (owners, or the town's city admin).
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "organizations", params(("id" = String, Path)),
    request_body = GroupBody, security(("jwt" = [])),
    responses((status = 200, body = GroupView), (status = 403), (status = 404), (status = 422)))]
pub async fn update_group(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    body: web::Json<GroupBody>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let group = state.tx(move |c| groups::update(c, &user.id, &id, body.input(), now)).await?;
    Ok(HttpResponse::Ok().json(group))
}

/// Archives a group (owners only).
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 204), (status = 403), (status = 404)))]
pub async fn archive_group(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    state.tx(move |c| groups::archive(c, &user.id, &id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Posts a message to a group: as a member of an approved organization, or
/// with an API token of the group (`Authorization: Bearer hapi_…`).
/// A future `publish_at` schedules it.
#[utoipa::path(post, path = "/api/v1/groups/{id}/messages", tag = "organizations", params(("id" = String, Path)),
    request_body = NewMessage, security(("jwt" = []), ("api_token" = [])),
    responses((status = 201, body = OwnMessageView), (status = 401, description = "no valid access JWT or API token"),
              (status = 403, description = "organization not approved, group suspended, API token of another group"),
              (status = 404), (status = 422)))]
pub async fn post_message(
    state: web::Data<AppState>,
    poster: CurrentPoster,
    id: web::Path<String>,
    body: web::Json<NewMessage>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let message = state.tx(move |c| messages::post(c, poster.as_poster(), &id, body.into_inner(), now)).await?;
    state.wake.notify_one();
    Ok(HttpResponse::Created().json(message))
}

/// Delivery statistics of a message (aggregate counts only).
#[utoipa::path(get, path = "/api/v1/messages/{id}/stats", tag = "organizations", params(("id" = String, Path)),
    security(("jwt" = [])), responses((status = 200, body = OwnMessageView), (status = 404)))]
pub async fn message_stats(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let stats = state.tx(move |c| messages::stats(c, &user.id, &id, now)).await?;
    Ok(HttpResponse::Ok().json(stats))
}

/// The group's subscriber count per day over the last 30 days (aggregate only).
#[utoipa::path(get, path = "/api/v1/groups/{id}/subscriber-history", tag = "organizations",
    params(("id" = String, Path)), security(("jwt" = [])),
    responses((status = 200, body = Page<groups::SubscriberDay>, description = "`next` is always null"),
              (status = 401), (status = 404)))]
pub async fn subscriber_history(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let now = state.now_ms();
    let items = state.tx(move |c| groups::subscriber_history(c, &user.id, &id, now)).await?;
    Ok(HttpResponse::Ok().json(Page { items, next: None }))
}
