//! The one mapping from every error of every layer to a status and a JSON body
//! `{"error": "<code>", "message": "...", ...details}`. The matches are exhaustive, so
//! a new error variant does not compile until someone decides how it answers.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value};
use thiserror::Error;

use super::sessions::SessionView;
use crate::actors::ActorError;
use crate::domain::DomainError;

/// Everything a handler can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Malformed JSON, path or query.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that match nothing live.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but this key or caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Unknown id, or an id of another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Body over the limit.
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    /// A known path asked with a method it does not serve (the ones it does).
    #[error("this path answers {0}")]
    MethodNotAllowed(String),
    /// Well-formed but invalid input, caught before the domain.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// An answer from an organization actor.
    #[error(transparent)]
    Actor(#[from] ActorError),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Actor(ActorError::Domain(e))
    }
}

impl ApiError {
    /// A 422 about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Status, stable code and extra fields.
    fn parts(&self) -> (StatusCode, &'static str, Map<String, Value>) {
        let mut extra = Map::new();
        let (status, code) = match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Invalid { field, .. } => {
                extra.insert("field".into(), json!(field));
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            ApiError::Actor(ActorError::Domain(e)) => match e {
                DomainError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                DomainError::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
                DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
                DomainError::NotEntitled { product } => {
                    extra.insert("product".into(), json!(product));
                    (StatusCode::FORBIDDEN, "not_entitled")
                }
                DomainError::SeatCapReached {
                    product,
                    seats,
                    retry_after,
                } => {
                    extra.insert("product".into(), json!(product));
                    extra.insert("seats".into(), json!(seats));
                    extra.insert("retry_after".into(), json!(retry_after));
                    (StatusCode::CONFLICT, "seat_cap_reached")
                }
                DomainError::PoolExpired => (StatusCode::CONFLICT, "pool_expired"),
                DomainError::RateLimited { retry_after } => {
                    extra.insert("retry_after".into(), json!(retry_after));
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                }
                DomainError::KeyRevoked => (StatusCode::UNAUTHORIZED, "unauthorized"),
                DomainError::Conflict {
                    live, allocated, ..
                } => {
                    if let Some(live) = live {
                        extra.insert("live".into(), json!(live));
                    }
                    if let Some(allocated) = allocated {
                        extra.insert("allocated".into(), json!(allocated));
                    }
                    (StatusCode::CONFLICT, "conflict")
                }
                DomainError::QuotaExceeded { free, requested } => {
                    extra.insert("free".into(), json!(free));
                    extra.insert("requested".into(), json!(requested));
                    (StatusCode::CONFLICT, "quota_exceeded")
                }
                DomainError::MachineLimitReached { machines } => {
                    let list: Vec<Value> = (machines.iter())
                        .map(|a| {
                            json!({
                                "id": a.id,
                                "fingerprint": a.fingerprint,
                                "hostname": a.hostname,
                                "activated_at": a.activated_at.rfc3339(),
                            })
                        })
                        .collect();
                    extra.insert("machines".into(), json!(list));
                    (StatusCode::CONFLICT, "machine_limit_reached")
                }
                DomainError::UserSignedIn { sessions } => {
                    let list: Vec<SessionView> =
                        sessions.iter().cloned().map(SessionView::from).collect();
                    extra.insert("sessions".into(), json!(list));
                    (StatusCode::CONFLICT, "user_signed_in")
                }
                DomainError::Invalid { field, .. } => {
                    extra.insert("field".into(), json!(field));
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
                }
            },
            ApiError::Actor(ActorError::Store(_)) | ApiError::Actor(ActorError::Unavailable) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, code, extra)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, mut body) = self.parts();
        let message = if status.is_server_error() {
            // Internals stay in the log (`trace_request` logs the cause); the client
            // learns only that it failed.
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        body.insert("error".into(), json!(code));
        body.insert("message".into(), json!(message));
        let mut response = HttpResponse::build(status);
        if let Some(after) = body.get("retry_after").and_then(Value::as_u64) {
            response.insert_header((header::RETRY_AFTER, after.to_string()));
        }
        response.json(Value::Object(body))
    }
}
