//! Members: `/v1/orgs/{org}/users`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::domain::{Email, Member, TenantRole};

#[derive(Deserialize)]
pub struct CreateUser {
    email: String,
    name: Option<String>,
    #[serde(default)]
    tenant_roles: Vec<TenantRole>,
}

/// A member on the wire.
#[derive(Serialize)]
pub struct UserView {
    id: String,
    email: String,
    name: Option<String>,
    tenant_roles: Vec<TenantRole>,
    created_at: String,
}

impl From<Member> for UserView {
    fn from(m: Member) -> Self {
        UserView {
            id: m.id.to_string(),
            email: m.email.as_str().to_owned(),
            name: m.name,
            tenant_roles: m.tenant_roles,
            created_at: rfc3339(m.created_at),
        }
    }
}

/// Adds a member.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let body = body.0;
    let email = Email::parse(&body.email)?;
    let member = org
        .add_member(&actor, email, body.name, body.tenant_roles)
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(member)))
}

/// Lists members.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let page = org.members(&actor, q.after.clone(), q.limit()?).await?;
    Ok(HttpResponse::Ok().json(List::of(page, UserView::from)))
}

/// One member.
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let member = org.member(&actor, user).await?;
    Ok(HttpResponse::Ok().json(UserView::from(member)))
}
