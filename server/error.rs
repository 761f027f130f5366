//! The one error type of the API. Every variant has a stable machine `code`
//! (the PWA translates it) and a human message. Internal errors are logged
//! with their context and answered as a generic 500: details never leave.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, wrong types, bad query string).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A field's value is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String, field: Option<&'static str> },
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    BadCredentials(String),
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// It existed and was removed on purpose (a message the town hid); `reason` says why.
    #[error("{message}")]
    Gone { code: &'static str, message: String, reason: Option<String> },
    #[error("request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("unsupported media type: send application/json")]
    UnsupportedMediaType,
    #[error("too many requests, retry in {0} s")]
    TooManyRequests(u64),
    /// Too many failed logins: the account is locked for this many seconds.
    #[error("too many failed logins: this account is locked for {} more minute(s); try again later", .0.div_ceil(60))]
    AccountLocked(u64),
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid { code: "invalid_field", message: message.into(), field: Some(field) }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Invalid { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. } => code,
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::BadCredentials(_) => "bad_credentials",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::AccountLocked(_) => "account_locked",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated | ApiError::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) | ApiError::AccountLocked(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            ApiError::Invalid { field, .. } => *field,
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::TooManyRequests(secs) | ApiError::AccountLocked(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::Unauthenticated | ApiError::BadCredentials(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        let reason = match self {
            ApiError::Gone { reason, .. } => reason.as_deref(),
            _ => None,
        };
        response.json(ErrorBody { code: self.code(), message, field, reason })
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => ApiError::NotFound("record"),
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool exhausted or unreachable");
        ApiError::Unavailable
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task: {e}"))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
