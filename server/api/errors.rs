//! Maps actix's extractor failures (bad JSON, bad path, bad query, body too
//! large) to the API's JSON errors, and answers unknown routes.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

pub fn from_serde(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            ApiError::Invalid { code: "invalid_body", message: format!("request body: {e}"), field: None }
        }
        _ => ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {e}")),
    }
}

pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            ApiError::PayloadTooLarge(limit)
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => from_serde(e),
        other => ApiError::bad_request("bad_body", format!("request body could not be read: {other}")),
    };
    api.into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("bad_path", format!("path: {err}")).into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("bad_query", format!("query string: {err}")).into()
}

/// The app's default service: no route matched. When the path is one of
/// the API's but the method is not, that is a 405, not a 404 (routes are
/// registered per method, so actix itself cannot tell the two apart).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.resource_map().has_resource(req.path()) {
        return HttpResponse::MethodNotAllowed().json(serde_json::json!({
            "code": "method_not_allowed",
            "message": format!("method {} not allowed on this resource", req.method()),
        }));
    }
    ApiError::NotFound("route").error_response()
}

/// Answers 404 to a path with a percent-encoded NUL: no id or slug has one,
/// and PostgreSQL refuses it in text (a 500 if it got that far).
pub async fn refuse_nul_in_path(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> actix_web::Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>> {
    if req.path().contains("%00") {
        return Ok(req.into_response(ApiError::NotFound("route").error_response()).map_into_right_body());
    }
    next.call(req).await.map(actix_web::dev::ServiceResponse::map_into_left_body)
}

/// Rewrites an error response that is not JSON yet (actix's own 404, 405,
/// 413 from a `Bytes` body, …) into the API's `{code, message}` shape.
pub fn jsonify<B: actix_web::body::MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::http::{header, StatusCode};
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "unsupported media type"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let (req, _) = res.into_parts();
    let body = HttpResponse::build(status).json(serde_json::json!({ "code": code, "message": message }));
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, body).map_into_right_body()))
}
