//! `/v1/orgs`: the operator founds, lists, reads and deletes organizations.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::domain::{Action, OrgSummary, Page};

#[derive(Deserialize, ToSchema)]
pub struct CreateOrg {
    /// The organization's name.
    name: String,
    /// Its owner, created with a key (admin and sessions scopes) shown once.
    owner_email: String,
}

/// An organization as the operator sees it.
#[derive(Serialize, ToSchema)]
pub struct OrgView {
    id: String,
    name: String,
    owner: Option<serde_json::Value>,
    created_at: String,
    members: usize,
    pools: usize,
    sessions_live: usize,
}

impl From<OrgSummary> for OrgView {
    fn from(o: OrgSummary) -> Self {
        OrgView {
            id: o.id.to_string(),
            name: o.name,
            owner: o
                .owner
                .map(|m| json!({"id": m.id, "email": m.email.as_str()})),
            created_at: rfc3339(o.created_at),
            members: o.members,
            pools: o.pools,
            sessions_live: o.sessions_live,
        }
    }
}

fn operator_only(caller: &Caller, what: &'static str) -> Result<(), ApiError> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Member(_) => Err(ApiError::Forbidden(what)),
    }
}

/// Creates an organization; the owner's key is in this answer only.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    operator_only(&caller, "only the operator token creates organizations")?;
    let body = body.0;
    let org = state.directory.found(&body.name, &body.owner_email).await?;
    Ok(HttpResponse::Created().json(json!({
        "id": org.id,
        "name": org.name,
        "owner": {"id": org.owner.id, "email": org.owner.email},
        "owner_api_key": org.owner_key,
    })))
}

/// Lists organizations in id order (operator only).
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    operator_only(&caller, "only the operator token lists organizations")?;
    let (handles, next) = state.directory.page(q.after.as_deref(), q.limit()?);
    let mut items = Vec::with_capacity(handles.len());
    for handle in handles {
        // An org deleted since the page was taken is left out.
        if let Ok(summary) = handle.summary().await {
            items.push(summary);
        }
    }
    Ok(HttpResponse::Ok().json(List::of(Page { items, next }, OrgView::from)))
}

/// Reads one organization: the operator, or its owner or an administrator.
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let handle = match &caller {
        Caller::Operator => state
            .directory
            .org(&org)
            .ok_or(ApiError::NotFound("organization"))?,
        Caller::Member(_) => {
            let (handle, actor) = caller.admin_of(&state, &org)?;
            handle.require(&actor, Action::ReadReports).await?;
            handle
        }
    };
    Ok(HttpResponse::Ok().json(OrgView::from(handle.summary().await?)))
}

/// Deletes an organization with everything it holds (operator only); its keys stop
/// working at once.
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operator_only(&caller, "only the operator token deletes organizations")?;
    state.directory.delete(&org).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A consistent backup of every organization (operator only), as one file:
/// `seatkeeper backup` fetches it and `seatkeeper restore` starts a data directory from
/// it.
pub async fn backup(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    operator_only(&caller, "only the operator token takes backups")?;
    let bytes = state.directory.backup().await?;
    tracing::info!(bytes = bytes.len(), actor = "operator", "backup taken");
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        // It holds the token signing key: no cache along the way may keep it.
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"seatkeeper.backup\"",
        ))
        .body(bytes))
}
