//! Who is calling: the operator (bootstrap token) or a member's API key. Keys are
//! checked against the Directory's index, with no actor hop.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::{ApiError, AppState};
use crate::actors::{self, KeyEntry, OrgHandle, Principal};
use crate::domain::Scope;
use crate::secrets;

/// The authenticated caller.
pub enum Caller {
    /// The server's operator, who creates organizations.
    Operator,
    /// A member, through one of their keys.
    Member(KeyEntry),
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if token.starts_with("sk_") {
        return state
            .directory
            .authenticate(token, actors::now())
            .map(Caller::Member)
            .ok_or(ApiError::Unauthorized);
    }
    if secrets::matches(token, &state.operator_hash) {
        return Ok(Caller::Operator);
    }
    Err(ApiError::Unauthorized)
}

impl Caller {
    /// The member's key, if it carries `scope`.
    fn key(&self, scope: Scope) -> Result<&KeyEntry, ApiError> {
        match self {
            Caller::Operator => Err(ApiError::Forbidden(
                "the operator token creates organizations; use a member's API key",
            )),
            Caller::Member(k) if k.scopes.has(scope) => Ok(k),
            Caller::Member(_) => Err(match scope {
                Scope::Sessions => ApiError::Forbidden("this API key lacks the \"sessions\" scope"),
                Scope::Admin => ApiError::Forbidden("this API key lacks the \"admin\" scope"),
            }),
        }
    }

    /// The caller's own organization and key, for runtime routes (`sessions` scope).
    pub fn runtime(&self, state: &AppState) -> Result<(OrgHandle, &KeyEntry), ApiError> {
        let key = self.key(Scope::Sessions)?;
        let org = state
            .directory
            .org(key.org.as_str())
            .ok_or(ApiError::Unauthorized)?;
        Ok((org, key))
    }

    /// The organization named in the path, if it is the caller's (else 404: another
    /// organization's ids are never confirmed), and the member, for `admin` routes.
    pub fn admin_of(
        &self,
        state: &AppState,
        org: &str,
    ) -> Result<(OrgHandle, Principal), ApiError> {
        if let Caller::Member(k) = self {
            if k.org.as_str() != org {
                return Err(ApiError::NotFound("organization"));
            }
        }
        let key = self.key(Scope::Admin)?;
        let handle = state
            .directory
            .org(org)
            .ok_or(ApiError::NotFound("organization"))?;
        Ok((handle, key.principal()))
    }
}
