//! Seat pools: `/v1/orgs/{org}/pools`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::{opt_time, patch_time, rfc3339, List};
use super::{ApiError, AppState, Caller, Filter, Json, PageQuery};
use crate::domain::{PoolKind, PoolPatch, PoolSource, PoolSpec, PoolStatus, Timestamp};

#[derive(Deserialize, ToSchema)]
pub struct CreatePool {
    /// The product whose seats the pool holds.
    product: String,
    /// `named` (seats allocated to members) or `floating` (seats used by sessions).
    kind: PoolKind,
    /// How many seats.
    seats: i64,
    /// `purchased` (default) or `trial`.
    #[serde(default)]
    source: PoolSource,
    /// When the pool stops granting (trials); none by default.
    #[serde(default, deserialize_with = "opt_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// Named pools only: products each seat also gives a seat of (a bundle).
    #[serde(default)]
    includes: Vec<String>,
    /// Floating pools: the members (ids or e-mails) who may use it; everyone when absent.
    entitled: Option<Vec<String>>,
    /// Lease time of its sessions, 1 s to 1 day (default 60).
    ttl_seconds: Option<i64>,
    /// Named pools: active machines per member and product (default 2).
    max_machines: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdatePool {
    /// New seat count: not below the live sessions or the allocated seats.
    seats: Option<i64>,
    /// A time, or `null` to make the pool perpetual.
    #[serde(default, deserialize_with = "patch_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<Timestamp>>,
}

/// A pool on the wire, with its live sessions.
#[derive(Serialize, ToSchema)]
pub struct PoolView {
    id: String,
    product: String,
    kind: PoolKind,
    seats: u32,
    /// Named seats allocated, or the length of a floating pool's entitled list.
    allocated: u32,
    live: u32,
    waiting: u32,
    expired: bool,
    source: PoolSource,
    expires_at: Option<String>,
    includes: Vec<String>,
    entitled: Option<Vec<String>>,
    ttl_seconds: u32,
    max_machines: u32,
    created_at: String,
}

impl PoolView {
    fn new(status: PoolStatus) -> PoolView {
        let PoolStatus {
            pool: p,
            live,
            waiting,
            expired,
        } = status;
        PoolView {
            id: p.id.to_string(),
            product: p.product.to_string(),
            kind: p.kind,
            seats: p.seats,
            allocated: p.allocated_count(),
            live,
            waiting,
            expired,
            source: p.source,
            expires_at: p.expires_at.map(rfc3339),
            includes: p.includes,
            entitled: p
                .entitled
                .map(|list| list.into_iter().map(|m| m.to_string()).collect()),
            ttl_seconds: p.ttl_seconds,
            max_machines: p.max_machines,
            created_at: rfc3339(p.created_at),
        }
    }
}

/// Creates a pool.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<CreatePool>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let b = body.0;
    let spec = PoolSpec {
        product: b.product,
        kind: b.kind,
        seats: b.seats,
        source: b.source,
        expires_at: b.expires_at,
        includes: b.includes,
        entitled: b.entitled,
        ttl_seconds: b.ttl_seconds,
        max_machines: b.max_machines,
    };
    let status = org.create_pool(&actor, spec).await?;
    Ok(HttpResponse::Created().json(PoolView::new(status)))
}

/// Lists pools.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<PageQuery>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let product = filter.into_inner().product;
    let page = org
        .pools(&actor, product, q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, PoolView::new)))
}

/// One pool.
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    Ok(HttpResponse::Ok().json(PoolView::new(org.pool(&actor, id).await?)))
}

/// Changes seats or expiry.
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<UpdatePool>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let patch = PoolPatch {
        seats: body.0.seats,
        expires_at: body.0.expires_at,
    };
    let pool = org.update_pool(&actor, id, patch).await?;
    Ok(HttpResponse::Ok().json(PoolView::new(pool)))
}

/// Deletes a pool without live sessions.
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.delete_pool(&actor, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
