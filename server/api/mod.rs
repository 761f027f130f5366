//! The HTTP API under `/api/v1`: thin handlers that parse and authenticate,
//! call a domain function on the blocking pool, and map its result.
//! No SQL here; no panics: every failure is an `ApiError`.

pub mod admin;
pub mod errors;
pub mod issues;
pub mod moderation;
pub mod openapi;
pub mod organizations;
pub mod public;
pub mod qa;
pub mod residents;
pub mod system;
pub mod tokens;

use actix_web::web;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Every route of the API (the OpenAPI document lists the same).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(public::routes)
            .configure(residents::routes)
            .configure(organizations::routes)
            .configure(tokens::routes)
            .configure(admin::routes)
            .configure(moderation::routes)
            .configure(issues::routes)
            .configure(qa::routes),
    )
    .configure(system::routes);
}

/// Parses an optional JSON body: empty means `None`, malformed is a 400.
pub fn optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(errors::from_serde)
}
