//! Who is asking: organization members (JWT access tokens, rotating refresh
//! tokens), resident devices (opaque bearer tokens) and the secrets behind them.
//! Extractors here authenticate only; what an identity may do is decided by
//! the domain functions, on the server, for every request.

pub mod jwt;
pub mod password;
pub mod poster;
pub mod secrets;

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use diesel::prelude::*;

use crate::db::schema::devices;
use crate::error::ApiError;
use crate::state::AppState;

pub use poster::CurrentPoster;

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::Internal("AppState missing".into()))
}

/// A logged-in organization member or city admin (valid access JWT).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let token = bearer(req).ok_or(ApiError::Unauthenticated)?;
            let state = state(req)?;
            let id = state.keys.jwt.verify(&token, state.now_ms()).ok_or(ApiError::Unauthenticated)?;
            Ok(CurrentUser { id })
        })())
    }
}

/// A resident device, identified by its device token.
#[derive(Debug, Clone)]
pub struct CurrentDevice {
    pub id: String,
}

/// How often `last_seen_at` is refreshed: once a day is enough to tell an
/// active device from one to purge, and spares a write on every request.
const LAST_SEEN_GRANULARITY_MS: i64 = 24 * 3600 * 1000;

impl FromRequest for CurrentDevice {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = state(req);
        Box::pin(async move {
            let token = token.filter(|t| t.starts_with(secrets::DEVICE_PREFIX)).ok_or(ApiError::Unauthenticated)?;
            let state = state?;
            let hash = secrets::hash_secret(&token);
            let now = state.now_ms();
            state
                .tx(move |conn| {
                    let id: String = devices::table
                        .filter(devices::token_hash.eq(&hash))
                        .select(devices::id)
                        .first(conn)
                        .optional()?
                        .ok_or(ApiError::Unauthenticated)?;
                    diesel::update(
                        devices::table.find(&id).filter(devices::last_seen_at.lt(now - LAST_SEEN_GRANULARITY_MS)),
                    )
                    .set(devices::last_seen_at.eq(now))
                    .execute(conn)?;
                    Ok(CurrentDevice { id })
                })
                .await
        })
    }
}
