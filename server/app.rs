//! The one app builder: routes, extractor configuration, error mapping and
//! middleware. `herold serve` and every test call it, so tests exercise the
//! real routing, extractors and JSON errors.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Compress, Condition, DefaultHeaders, ErrorHandlers, Logger};
use actix_web::{web, App, Error};

use crate::api::{self, errors};
use crate::state::AppState;

/// No inline scripts, nothing from other origins, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Access-log format without the client address (privacy rule): request
/// line, status, size, duration.
const ACCESS_LOG_FORMAT: &str = "\"%r\" %s %b %Dms";

pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let limit = state.config.max_body_bytes;
    let access_log = state.config.access_log;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::JsonConfig::default().limit(limit).error_handler(errors::json_error))
        .app_data(web::PayloadConfig::new(limit))
        .app_data(web::PathConfig::default().error_handler(errors::path_error))
        .app_data(web::QueryConfig::default().error_handler(errors::query_error))
        .configure(api::routes)
        .configure(crate::web::routes)
        .default_service(web::to(errors::not_found))
        .wrap(from_fn(errors::refuse_nul_in_path))
        .wrap(ErrorHandlers::new().default_handler(errors::jsonify))
        .wrap(
            DefaultHeaders::new()
                .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "no-referrer"))
                .add(("Cross-Origin-Opener-Policy", "same-origin"))
                .add(("Permissions-Policy", "camera=(self), geolocation=(self), microphone=()"))
                .add(("Cache-Control", "no-store")),
        )
        .wrap(Compress::default())
        .wrap(Condition::new(access_log, Logger::new(ACCESS_LOG_FORMAT).log_target("herold::access")))
}
