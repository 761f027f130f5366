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

pub async fn not_found() -> HttpResponse {
    ApiError::NotFound("route").error_response()
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
