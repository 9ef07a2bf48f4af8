//! Reports: `/v1/orgs/{org}/usage` and `/v1/orgs/{org}/audit`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller};
use crate::actors::ActorError;
use crate::domain::{Action, OrgId, PoolKind, Usage};
use crate::store::audit::{Cursor, Logged};

#[derive(Serialize, ToSchema)]
pub struct PoolUsageView {
    id: String,
    product: String,
    kind: PoolKind,
    seats: u32,
    allocated: u32,
    activated: u32,
    live: u32,
    peak: u32,
    denials: u64,
    expired: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ProductUsageView {
    product: String,
    seats: u32,
    allocated: u32,
    live: u32,
}

#[derive(Serialize, ToSchema)]
pub struct UsageView {
    pools: Vec<PoolUsageView>,
    products: Vec<ProductUsageView>,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        UsageView {
            pools: (u.pools.into_iter())
                .map(|p| PoolUsageView {
                    id: p.id.to_string(),
                    product: p.product,
                    kind: p.kind,
                    seats: p.seats,
                    allocated: p.allocated,
                    activated: p.activated,
                    live: p.live,
                    peak: p.peak,
                    denials: p.denials,
                    expired: p.expired,
                })
                .collect(),
            products: (u.products.into_iter())
                .map(|p| ProductUsageView {
                    product: p.product,
                    seats: p.seats,
                    allocated: p.allocated,
                    live: p.live,
                })
                .collect(),
        }
    }
}

/// Seats, allocations, machines and sessions per pool and per product, as of now.
pub async fn usage(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let usage = org.usage(&actor).await?;
    Ok(HttpResponse::Ok().json(UsageView::from(usage)))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<i64>,
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    id: String,
    at: String,
    actor: String,
    action: String,
    target: String,
    before: Value,
    after: Value,
}

impl From<Logged> for AuditView {
    fn from(l: Logged) -> Self {
        AuditView {
            id: l.id,
            at: rfc3339(l.at),
            actor: l.actor,
            action: l.action,
            target: l.target,
            before: l.before,
            after: l.after,
        }
    }
}

/// The audit log, newest first; `?before=<id>` pages to older entries.
pub async fn audit(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (handle, actor) = caller.admin_of(&state, &org)?;
    let limit = super::PageQuery {
        limit: q.limit,
        after: None,
    }
    .limit()?;
    let before = match q.before.as_deref() {
        None => None,
        Some(id) => Some(
            Cursor::parse(id)
                .ok_or_else(|| ApiError::invalid("before", "not an audit entry id"))?,
        ),
    };
    handle.require(&actor, Action::ReadReports).await?;
    let org = OrgId::new(org.into_inner());
    let store = state.store.clone();
    let page = web::block(move || store.audit_page(&org, before, limit))
        .await
        .map_err(|_| ApiError::Actor(ActorError::Unavailable))?
        .map_err(|e| ApiError::Actor(ActorError::from(e)))?;
    Ok(HttpResponse::Ok().json(List::of(page, AuditView::from)))
}
