//! API keys: `/v1/orgs/{org}/users/{user}/api-keys` and `/v1/orgs/{org}/api-keys/{id}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::{opt_time, rfc3339, List};
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::domain::{ApiKey, Scope, Timestamp};
use crate::secrets::NewKey;

#[derive(Deserialize, ToSchema)]
pub struct CreateKey {
    /// A label.
    name: String,
    /// `sessions` (runtimes), `admin` (org routes), or both.
    scopes: Vec<Scope>,
    /// When the key stops working; never by default.
    #[serde(default, deserialize_with = "opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

/// A key on the wire; `key` (the secret) only in the answer that created it.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    user: String,
    name: String,
    scopes: Vec<Scope>,
    expires_at: Option<String>,
    created_at: String,
}

impl KeyView {
    fn new(k: ApiKey, secret: Option<String>) -> KeyView {
        KeyView {
            id: k.id.to_string(),
            key: secret,
            user: k.member.to_string(),
            name: k.name,
            scopes: k.scopes,
            expires_at: k.expires_at.map(rfc3339),
            created_at: rfc3339(k.created_at),
        }
    }
}

/// Creates a key; the secret is shown in this answer only.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let body = body.0;
    let NewKey { key, secret } = org
        .create_key(&actor, user, body.name, body.scopes, body.expires_at)
        .await?;
    Ok(HttpResponse::Created().json(KeyView::new(key, Some(secret))))
}

/// Lists a member's keys, without secrets.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let page = org
        .keys_of(&actor, user, q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, |k| KeyView::new(k, None))))
}

/// Revokes a key; the next request with it answers 401.
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.revoke_key(&actor, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
