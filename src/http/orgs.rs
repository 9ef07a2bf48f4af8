//! `POST /v1/orgs`: the operator founds an organization and its owner.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller, Json};

#[derive(Deserialize)]
pub struct CreateOrg {
    name: String,
    owner_email: String,
}

/// Creates an organization; the owner's key is in this answer only.
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(caller, Caller::Operator) {
        return Err(ApiError::Forbidden(
            "only the operator token creates organizations",
        ));
    }
    let body = body.0;
    let org = state.directory.found(&body.name, &body.owner_email).await?;
    Ok(HttpResponse::Created().json(json!({
        "id": org.id,
        "name": org.name,
        "owner": {"id": org.owner.id, "email": org.owner.email},
        "owner_api_key": org.owner_key,
    })))
}
