//! Unauthenticated operational routes: health, readiness, metrics, JWKS, the API
//! description.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ApiError, AppState};
use crate::telemetry;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store is recovered and every organization's actor is running.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ready", "organizations": state.directory.len()}))
}

/// Prometheus text exposition; not found here when `metrics.bind` serves it elsewhere.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.metrics_elsewhere {
        return Err(ApiError::NotFound("route"));
    }
    Ok(exposition().await)
}

/// The exposition itself, as the listener of `metrics.bind` serves it.
pub async fn exposition() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(telemetry::render())
}

/// The public keys that verify lease tokens.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.signer.jwks())
}

/// The API description, generated from the route table once.
pub async fn openapi() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        super::routes::openapi()
            .to_json()
            .expect("the description serializes")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

/// Any path that matches no route.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}
