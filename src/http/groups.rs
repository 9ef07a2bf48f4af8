//! Groups: `/v1/orgs/{org}/groups`, the built-in one `everyone`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::wire::rfc3339;
use super::{ApiError, AppState, Caller, Json};
use crate::domain::project::Group;
use crate::domain::TenantRole;

#[derive(Deserialize, ToSchema)]
pub struct NewGroup {
    name: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    tenant_roles: Vec<TenantRole>,
}

#[derive(Deserialize, ToSchema)]
pub struct GroupPatch {
    name: Option<String>,
    members: Option<Vec<String>>,
    tenant_roles: Option<Vec<TenantRole>>,
}

#[derive(Deserialize, ToSchema)]
pub struct Members {
    members: Vec<String>,
}

/// A group on the wire; `everyone` lists no members (it holds every one).
#[derive(Serialize, ToSchema)]
pub struct GroupView {
    id: String,
    name: String,
    builtin: bool,
    members: Vec<String>,
    tenant_roles: Vec<TenantRole>,
    created_at: String,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        GroupView {
            builtin: g.is_everyone(),
            id: g.id.to_string(),
            name: g.name,
            members: g.members.iter().map(ToString::to_string).collect(),
            tenant_roles: g.tenant_roles,
            created_at: rfc3339(g.created_at),
        }
    }
}

/// Creates a group (admins).
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<NewGroup>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let NewGroup {
        name,
        members,
        tenant_roles,
    } = body.0;
    let group = org
        .create_group(&actor, name, members, tenant_roles)
        .await?;
    Ok(HttpResponse::Created().json(GroupView::from(group)))
}

/// Lists every group (any member).
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let items: Vec<GroupView> = (org.groups(&actor, None).await?)
        .into_iter()
        .map(GroupView::from)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

/// One group (any member).
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let group = (org.groups(&actor, Some(id)).await?).remove(0);
    Ok(HttpResponse::Ok().json(GroupView::from(group)))
}

/// Changes a group's name, members or tenant roles (admins).
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<GroupPatch>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let GroupPatch {
        name,
        members,
        tenant_roles,
    } = body.0;
    let group = org
        .change_group(&actor, id, name, members, tenant_roles)
        .await?;
    Ok(HttpResponse::Ok().json(GroupView::from(group)))
}

/// Replaces a group's members (admins).
pub async fn set_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Members>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let group = org
        .change_group(&actor, id, None, Some(body.0.members), None)
        .await?;
    Ok(HttpResponse::Ok().json(GroupView::from(group)))
}

/// Deletes a group and its assignments (admins).
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.delete_group(&actor, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
