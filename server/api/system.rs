//! Liveness, readiness and the OpenAPI document.

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/api/openapi.json", web::get().to(openapi))
        .route("/metrics", web::get().to(metrics));
}

/// The process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready to serve: not shutting down, and the database answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // Checked first: a draining instance must leave the rotation even while
    // its database is fine (it keeps serving until the grace period ends).
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }));
    }
    let pool = state.pool.clone();
    let db_ok = web::block(move || pool.get().map(|mut c| c.batch_execute("SELECT 1").is_ok()).unwrap_or(false))
        .await
        .unwrap_or(false);
    if db_ok {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "database": "unreachable" }))
    }
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

/// Prometheus text format: delivery outcomes by push-service origin,
/// fan-out durations, queue depths. Aggregates only.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let now = state.now_ms();
    let depth =
        web::block(move || pool.get().ok().and_then(|mut c| crate::delivery::store::queue_depth(&mut c, now).ok()))
            .await
            .ok()
            .flatten()
            .unwrap_or((-1, -1, -1));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(depth.0, depth.1, depth.2))
}
