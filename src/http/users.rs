//! Members: `/v1/orgs/{org}/users`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::parse;
use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller, Filter, Json, PageQuery};
use crate::domain::{Email, Member, Seat, TenantRole};

/// One member to add.
#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    /// The member's e-mail, unique in the organization.
    email: String,
    /// A display name.
    name: Option<String>,
    /// Tenant roles: `administrator`, `project_creator` (the owner is made by transfer).
    #[serde(default)]
    tenant_roles: Vec<TenantRole>,
}

/// Many members at once, added all or none.
#[derive(Deserialize, ToSchema)]
pub struct NewUsers {
    users: Vec<NewUser>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateUser {
    tenant_roles: Vec<TenantRole>,
}

/// A member on the wire.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    email: String,
    name: Option<String>,
    tenant_roles: Vec<TenantRole>,
    created_at: String,
    /// Named seats, on reads of one member.
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<Vec<SeatView>>,
}

#[derive(Serialize, ToSchema)]
pub struct SeatView {
    product: String,
    pool: String,
}

impl From<Member> for UserView {
    fn from(m: Member) -> Self {
        UserView {
            id: m.id.to_string(),
            email: m.email.as_str().to_owned(),
            name: m.name,
            tenant_roles: m.tenant_roles,
            created_at: rfc3339(m.created_at),
            seats: None,
        }
    }
}

impl UserView {
    fn with_seats((member, seats): (Member, Vec<Seat>)) -> UserView {
        let seats = seats
            .into_iter()
            .map(|s| SeatView {
                product: s.product,
                pool: s.pool.to_string(),
            })
            .collect();
        UserView {
            seats: Some(seats),
            ..UserView::from(member)
        }
    }
}

/// Adds a member (201 with it), or several (201 with `{items}`), all or none.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    // Parsed again as the shape it has, so a bad field is named as in any other body.
    let many = body.0.get("users").is_some();
    let bytes = serde_json::to_vec(&body.0).expect("JSON values always serialize");
    let users = if many {
        parse::<NewUsers>(&bytes)?.users
    } else {
        vec![parse::<NewUser>(&bytes)?]
    };
    let members = users
        .into_iter()
        .map(|u| Ok((Email::parse(&u.email)?, u.name, u.tenant_roles)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let added = org.add_members(&actor, members).await?;
    let mut views: Vec<UserView> = added.into_iter().map(UserView::from).collect();
    if many {
        Ok(HttpResponse::Created().json(List {
            items: views,
            next: None,
        }))
    } else {
        Ok(HttpResponse::Created().json(views.remove(0)))
    }
}

/// Lists members.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<PageQuery>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let email = filter.into_inner().email;
    let page = org
        .members(&actor, email, q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, UserView::from)))
}

/// One member with their named seats.
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let member = org.member(&actor, user).await?;
    Ok(HttpResponse::Ok().json(UserView::with_seats(member)))
}

/// Sets a member's tenant roles; giving `owner` transfers ownership and answers the
/// new owner's fresh key (`owner_api_key`, shown once): their older keys are revoked.
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let (member, seats, owner_key) = org.change_roles(&actor, user, body.0.tenant_roles).await?;
    let mut view =
        serde_json::to_value(UserView::with_seats((member, seats))).expect("views serialize");
    if let Some(key) = owner_key {
        view["owner_api_key"] = serde_json::json!(key);
    }
    Ok(HttpResponse::Ok().json(view))
}

/// Removes a member: 409 `user_signed_in` with their sessions while they hold any.
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, user) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.remove_member(&actor, user).await?;
    Ok(HttpResponse::NoContent().finish())
}
