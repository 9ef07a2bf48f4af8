//! Activations: `/v1/activations` for a member's runtime, `/v1/orgs/{org}/activations`
//! for admins.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::actors;
use crate::domain::{ActivateRequest, Activation};
use crate::tokens::{ActivationClaims, Signer, ISSUER};

#[derive(Deserialize, ToSchema)]
pub struct ActivateBody {
    /// The product to activate.
    product: String,
    /// The machine: activating it again answers its existing activation (200).
    fingerprint: String,
    /// Shown to admins.
    hostname: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Issued {
    activation_id: String,
    token: String,
    expires_at: String,
}

/// An activation as an admin lists it.
#[derive(Serialize, ToSchema)]
pub struct ActivationView {
    id: String,
    user: String,
    product: String,
    pool: String,
    fingerprint: String,
    hostname: Option<String>,
    activated_at: String,
    last_seen_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deactivated_at: Option<String>,
}

impl From<Activation> for ActivationView {
    fn from(a: Activation) -> Self {
        ActivationView {
            id: a.id.to_string(),
            user: a.member.to_string(),
            product: a.product,
            pool: a.pool.to_string(),
            fingerprint: a.fingerprint,
            hostname: a.hostname,
            activated_at: rfc3339(a.activated_at),
            last_seen_at: rfc3339(a.last_seen_at),
            deactivated_at: a.deactivated_at.map(rfc3339),
        }
    }
}

/// The activation's token, valid for 30 days from now.
fn issue(signer: &Signer, org: &str, a: &Activation) -> Issued {
    let now = actors::now();
    let exp = Activation::token_expiry(now);
    let token = signer.sign(&ActivationClaims {
        iss: ISSUER,
        sub: a.member.as_str(),
        org,
        product: &a.product,
        aid: a.id.as_str(),
        fp: &a.fingerprint,
        kind: "activation",
        iat: now.secs(),
        exp: exp.secs(),
    });
    Issued {
        activation_id: a.id.to_string(),
        token,
        expires_at: rfc3339(exp),
    }
}

/// Activates the caller's machine (201), or answers its live activation (200).
pub async fn activate(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ActivateBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    let b = body.0;
    let request = ActivateRequest {
        member: key.member.clone(),
        key: key.id.clone(),
        product: b.product,
        fingerprint: b.fingerprint,
        hostname: b.hostname,
    };
    let (activation, fresh) = org.activate(&key.principal(), request).await?;
    let body = issue(&state.signer, key.org.as_str(), &activation);
    Ok(if fresh {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

/// A fresh token for the caller's activation.
pub async fn refresh(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    let activation = org
        .refresh_activation(&key.principal(), id.into_inner())
        .await?;
    let issued = issue(&state.signer, key.org.as_str(), &activation);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
    })))
}

/// Deactivates the caller's machine.
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    org.deactivate(&key.principal(), id.into_inner(), false)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
    #[serde(default)]
    all: bool,
}

/// Lists activated machines (admins).
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let q = q.into_inner();
    let limit = PageQuery {
        limit: q.limit,
        after: None,
    }
    .limit()?;
    let page = org.activations(&actor, q.all, q.after, limit).await?;
    Ok(HttpResponse::Ok().json(List::of(page, ActivationView::from)))
}

/// Deactivates any member's machine (admins).
pub async fn admin_deactivate(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.deactivate(&actor, id, true).await?;
    Ok(HttpResponse::NoContent().finish())
}
