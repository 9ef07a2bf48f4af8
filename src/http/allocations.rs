//! Allocations: `/v1/orgs/{org}/pools/{pool}/allocations`. On a named pool they are
//! seats; on a floating pool, its entitled list.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::wire::List;
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::domain::{AllocationCounts, Member};

/// Members by id or e-mail.
#[derive(Deserialize, ToSchema)]
pub struct Users {
    users: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct Transfer {
    from: String,
    to: String,
}

/// The pool's counts after a change.
#[derive(Serialize, ToSchema)]
pub struct CountsView {
    allocated: u32,
    seats: u32,
    free: u32,
}

impl From<AllocationCounts> for CountsView {
    fn from(c: AllocationCounts) -> Self {
        CountsView {
            allocated: c.allocated,
            seats: c.seats,
            free: c.free,
        }
    }
}

/// A member holding a seat.
#[derive(Serialize, ToSchema)]
pub struct AllocationView {
    user: String,
    email: String,
}

impl From<Member> for AllocationView {
    fn from(m: Member) -> Self {
        AllocationView {
            user: m.id.to_string(),
            email: m.email.as_str().to_owned(),
        }
    }
}

/// Allocates seats to members, all or none.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Users>,
) -> Result<HttpResponse, ApiError> {
    let (org, pool) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let counts = org.allocate(&actor, pool, body.0.users).await?;
    Ok(HttpResponse::Ok().json(CountsView::from(counts)))
}

/// Lists the members holding seats.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, pool) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let page = org
        .allocations(&actor, pool, q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, AllocationView::from)))
}

/// Revokes the seats of several members.
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Users>,
) -> Result<HttpResponse, ApiError> {
    let (org, pool) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let counts = org.revoke(&actor, pool, body.0.users).await?;
    Ok(HttpResponse::Ok().json(CountsView::from(counts)))
}

/// Revokes one member's seat.
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, pool, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.revoke_one(&actor, pool, user).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Moves a seat from one member to another.
pub async fn transfer(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Transfer>,
) -> Result<HttpResponse, ApiError> {
    let (org, pool) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let Transfer { from, to } = body.0;
    let counts = org.transfer(&actor, pool, from, to).await?;
    Ok(HttpResponse::Ok().json(CountsView::from(counts)))
}
