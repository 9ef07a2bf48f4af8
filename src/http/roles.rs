//! Project roles: `/v1/orgs/{org}/roles`, built-in and custom.

use std::collections::BTreeMap;
use utoipa::ToSchema;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::wire::rfc3339;
use super::{ApiError, AppState, Caller, Json};
use crate::domain::roles::{builtin_rights, CustomRole, BUILTIN, TEST_OBJECTS};
use crate::domain::RoleSpec;

/// A role as written on create (all of it) or PATCH (the fields named).
#[derive(Deserialize, ToSchema)]
pub struct RoleBody {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<BTreeMap<String, Vec<String>>>,
    tasks: Option<Vec<String>>,
}

impl From<RoleBody> for RoleSpec {
    fn from(b: RoleBody) -> Self {
        RoleSpec {
            name: b.name,
            description: b.description,
            permissions: b.permissions,
            tasks: b.tasks,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CloneBody {
    name: String,
}

/// A role on the wire: its per-object verbs (read always on) and tasks, and every
/// right it grants.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    id: String,
    name: String,
    description: String,
    builtin: bool,
    permissions: BTreeMap<String, Vec<String>>,
    tasks: Vec<String>,
    rights: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

impl From<CustomRole> for RoleView {
    fn from(r: CustomRole) -> Self {
        let permissions = TEST_OBJECTS
            .iter()
            .map(|o| {
                let verbs = std::iter::once("read".to_owned())
                    .chain(r.permissions.get(*o).into_iter().flatten().cloned())
                    .collect();
                (o.to_string(), verbs)
            })
            .collect();
        RoleView {
            rights: r.rights().into_iter().collect(),
            id: r.id.to_string(),
            name: r.name,
            description: r.description,
            builtin: false,
            permissions,
            tasks: r.tasks.into_iter().collect(),
            created_at: Some(rfc3339(r.created_at)),
        }
    }
}

fn builtin_view(id: &str) -> RoleView {
    RoleView {
        id: id.to_owned(),
        name: id.to_owned(),
        description: "built-in".to_owned(),
        builtin: true,
        permissions: BTreeMap::new(),
        tasks: vec![],
        rights: builtin_rights(id).unwrap_or_default().into_iter().collect(),
        created_at: None,
    }
}

/// Creates a custom role (project owner, tenant owner or administrator).
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let role = org.create_role(&actor, body.0.into(), None).await?;
    Ok(HttpResponse::Created().json(RoleView::from(role)))
}

/// Copies a custom role under a new name.
pub async fn clone(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<CloneBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let spec = RoleSpec {
        name: Some(body.0.name),
        ..RoleSpec::default()
    };
    let role = org.create_role(&actor, spec, Some(id)).await?;
    Ok(HttpResponse::Created().json(RoleView::from(role)))
}

/// Lists the built-in roles, then the custom ones (any member).
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let custom = org.roles(&actor, None).await?;
    let items: Vec<RoleView> = (BUILTIN.iter().map(|r| builtin_view(r)))
        .chain(custom.into_iter().map(RoleView::from))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

/// One role, built-in or custom (any member).
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    if BUILTIN.contains(&id.as_str()) {
        org.require(&actor, crate::domain::Action::Browse).await?;
        return Ok(HttpResponse::Ok().json(builtin_view(&id)));
    }
    let role = (org.roles(&actor, Some(id)).await?).remove(0);
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

/// Changes a custom role.
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let role = org.update_role(&actor, id, body.0.into()).await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

/// Deletes a custom role, removing it from every assignment.
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.delete_role(&actor, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
