//! Projects, their access lists, and the authorization query.

use std::collections::BTreeSet;
use utoipa::ToSchema;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::wire::{rfc3339, List};
use super::{ApiError, AppState, Caller, Json, PageQuery};
use crate::actors;
use crate::domain::project::{Project, Subject};
use crate::domain::{RoleId, Verdict};

#[derive(Deserialize, ToSchema)]
pub struct NewProject {
    name: String,
    product: String,
}

/// `{user | group, roles}`: one of `user` and `group`.
#[derive(Deserialize, ToSchema)]
pub struct Assign {
    /// A member (id or e-mail); give this or `group`.
    user: Option<String>,
    /// A group id (or `everyone`); give this or `user`.
    group: Option<String>,
    /// Role ids (built-in names or custom role ids); `[]` means read_only.
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct Unassign {
    subjects: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct Transfer {
    to: String,
}

/// A project on the wire.
#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    id: String,
    name: String,
    product: String,
    owner: String,
    created_at: String,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        ProjectView {
            id: p.id.to_string(),
            name: p.name,
            product: p.product,
            owner: p.owner.to_string(),
            created_at: rfc3339(p.created_at),
        }
    }
}

/// An assignment: `{"user": id, "roles": [...]}` or `{"group": id, "roles": [...]}`.
fn assignment((subject, roles): (Subject, BTreeSet<RoleId>)) -> serde_json::Value {
    let roles: Vec<&str> = roles.iter().map(RoleId::as_str).collect();
    match &subject {
        Subject::User(id) => json!({"user": id, "roles": roles}),
        Subject::Group(id) => json!({"group": id, "roles": roles}),
    }
}

/// Creates a project owned by the caller.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    body: Json<NewProject>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let NewProject { name, product } = body.0;
    let project = org.create_project(&actor, name, product).await?;
    Ok(HttpResponse::Created().json(ProjectView::from(project)))
}

/// Lists the projects the caller sees.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let page = org.projects(&actor, q.after.clone(), q.limit()?).await?;
    Ok(HttpResponse::Ok().json(List::of(page, ProjectView::from)))
}

/// One project the caller sees.
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    Ok(HttpResponse::Ok().json(ProjectView::from(org.project(&actor, id).await?)))
}

/// Assigns a user or group with roles (replacing its earlier ones).
pub async fn assign(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Assign>,
) -> Result<HttpResponse, ApiError> {
    let (org, project) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let Assign { user, group, roles } = body.0;
    let (subject, is_group) = match (user, group) {
        (Some(s), None) => (s, false),
        (None, Some(s)) => (s, true),
        _ => {
            return Err(ApiError::invalid(
                "user",
                "name exactly one of user and group",
            ))
        }
    };
    let assigned = org
        .set_access(&actor, project, subject, is_group, roles)
        .await?;
    Ok(HttpResponse::Ok().json(assignment(assigned)))
}

/// The project's assignments.
pub async fn access(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, project) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let items: Vec<_> = (org.access_of(&actor, project, None).await?)
        .into_iter()
        .map(assignment)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

/// One subject's assignment.
pub async fn access_one(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, project, subject) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let found = org.access_of(&actor, project, Some(subject)).await?;
    let found = found
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound("assignment"))?;
    Ok(HttpResponse::Ok().json(assignment(found)))
}

/// Removes one subject's assignment.
pub async fn unassign_one(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, project, subject) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.remove_access(&actor, project, vec![subject]).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes several assignments, all or none.
pub async fn unassign(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Unassign>,
) -> Result<HttpResponse, ApiError> {
    let (org, project) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.remove_access(&actor, project.clone(), body.0.subjects)
        .await?;
    let items: Vec<_> = (org.access_of(&actor, project, None).await?)
        .into_iter()
        .map(assignment)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next": null})))
}

/// Gives the project to another member.
pub async fn transfer(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: Json<Transfer>,
) -> Result<HttpResponse, ApiError> {
    let (org, project) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    let project = org.transfer_project(&actor, project, body.0.to).await?;
    Ok(HttpResponse::Ok().json(ProjectView::from(project)))
}

#[derive(Deserialize)]
pub struct CheckQuery {
    user: Option<String>,
    project: String,
    /// One permission, or several separated by commas (the batch form).
    permission: String,
}

#[derive(Serialize, ToSchema)]
pub struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<&'a str>,
    allowed: bool,
    reasons: &'a [String],
}

/// May a member do a permission in a project? Answered from the org's published
/// access view, never through its actor.
pub async fn check(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let (handle, key) = caller.runtime(&state)?;
    if key.org.as_str() != org.as_str() {
        return Err(ApiError::NotFound("organization"));
    }
    let permissions: Vec<String> = q.permission.split(',').map(str::to_owned).collect();
    let verdicts = handle.access_view()?.query(
        &key.member,
        q.user.as_deref(),
        &q.project,
        &permissions,
        actors::now(),
    )?;
    if let [Verdict { allowed, reasons }] = verdicts.as_slice() {
        return Ok(HttpResponse::Ok().json(Answer {
            permission: None,
            allowed: *allowed,
            reasons,
        }));
    }
    let results: Vec<Answer> = (permissions.iter().zip(&verdicts))
        .map(|(p, v)| Answer {
            permission: Some(p),
            allowed: v.allowed,
            reasons: &v.reasons,
        })
        .collect();
    let allowed = verdicts.iter().all(|v| v.allowed);
    Ok(HttpResponse::Ok().json(json!({"allowed": allowed, "results": results})))
}
