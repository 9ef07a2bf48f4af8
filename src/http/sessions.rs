//! Sessions: the runtime routes `/v1/sessions` and the admin ones under an org.

use std::time::Duration;
use utoipa::ToSchema;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::wire::{rfc3339, List};
use super::{peer, ApiError, AppState, Caller, Filter, Json, PageQuery};
use crate::actors;
use crate::domain::lease::{check_fingerprint, check_meta};
use crate::domain::pool::check_product;
use crate::domain::{AcquireRequest, Acquired, Lease, SessionFilter, SessionRow, Timestamp};
use crate::tokens::{LeaseClaims, Signer, ISSUER};

#[derive(Deserialize, ToSchema)]
pub struct AcquireBody {
    /// The product to hold a seat of.
    product: String,
    /// The machine (1-256 characters): the same member, product and fingerprint get their live lease back (200) rather than a second seat.
    fingerprint: Option<String>,
    /// Queue up to this long for a seat when every one is taken (0 to sessions.max_wait_seconds).
    wait_seconds: Option<i64>,
    /// Lease time, 1 s up to the pool's ttl_seconds (the default).
    ttl_seconds: Option<i64>,
    /// A flat JSON object (string, number, boolean or null values), at most 1 KiB, kept with the lease.
    meta: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Granted<'a> {
    /// The lease's id.
    session_id: &'a str,
    /// An EdDSA JWT (iss, sub, org, product, sid, fp, iat, exp), verifiable with the JWKS.
    token: String,
    /// When the lease ends unless heartbeated (whole seconds, RFC 3339).
    expires_at: String,
    /// How often to heartbeat: a third of the lease time.
    heartbeat_interval_seconds: u32,
    /// The product.
    product: &'a str,
    /// The pool the seat came from.
    pool: &'a str,
}

#[derive(Serialize, ToSchema)]
pub struct Renewed<'a> {
    /// The lease's id.
    session_id: &'a str,
    /// The new expiry.
    expires_at: String,
    /// A token with the new expiry.
    token: String,
}

/// A lease as it is listed. `last_heartbeat_at` is when its expiry was last set (a
/// heartbeat, or the reclaim window of a restart), to the second: the lease keeps no
/// second timestamp, and its expiry is that time plus its ttl, rounded up to a whole
/// second. Within a second of the acquire it is the acquire.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    user: String,
    email: Option<String>,
    #[schema(value_type = String)]
    product: std::sync::Arc<str>,
    pool: String,
    #[schema(value_type = Option<String>)]
    fingerprint: Option<std::sync::Arc<str>>,
    acquired_at: String,
    last_heartbeat_at: String,
    expires_at: String,
    meta: Option<Box<serde_json::Value>>,
}

impl From<SessionRow> for SessionView {
    fn from(SessionRow { lease: l, email }: SessionRow) -> Self {
        let renewed = Timestamp(l.expires_at.millis() - i64::from(l.ttl_seconds) * 1000);
        let renewed = if renewed.millis() - l.acquired_at.millis() < 1000 {
            l.acquired_at
        } else {
            renewed
        };
        SessionView {
            id: l.id.to_string(),
            user: l.member.to_string(),
            email: email.map(|e| e.as_str().to_owned()),
            product: l.product,
            pool: l.pool.to_string(),
            fingerprint: l.fingerprint,
            acquired_at: rfc3339(l.acquired_at),
            last_heartbeat_at: rfc3339(renewed),
            expires_at: rfc3339(l.expires_at),
            meta: l.meta,
        }
    }
}

/// The lease's token, signed on this worker thread (not in the org actor, which stays
/// free for the next request). `iat` is the signing time, never later: verifiers such
/// as PyJWT reject a token issued in the future.
fn token(signer: &Signer, org: &str, lease: &Lease) -> String {
    signer.sign(&LeaseClaims {
        iss: ISSUER,
        sub: lease.member.as_str(),
        org,
        product: &lease.product,
        sid: lease.id.as_str(),
        fp: lease.fingerprint.as_deref(),
        iat: actors::now().secs(),
        exp: lease.expires_at.secs(),
    })
}

/// Acquires a seat (201), or returns this machine's live lease (200).
pub async fn acquire(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: Json<AcquireBody>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    let b = body.0;
    check_product("product", &b.product)?;
    if let Some(fp) = &b.fingerprint {
        check_fingerprint(fp)?;
    }
    if let Some(meta) = &b.meta {
        check_meta(meta)?;
    }
    let max_wait = state.max_wait_seconds;
    let wait = match b.wait_seconds {
        None => 0,
        Some(w) if (0..=max_wait as i64).contains(&w) => w as u64,
        Some(_) => {
            return Err(ApiError::invalid(
                "wait_seconds",
                format!("must be between 0 and {max_wait}"),
            ))
        }
    };
    let ttl_seconds = match b.ttl_seconds {
        None => None,
        Some(t) if t >= 1 && t <= u32::MAX as i64 => Some(t as u32),
        Some(_) => {
            return Err(ApiError::invalid(
                "ttl_seconds",
                "must be a whole number of seconds, at least 1 and at most the pool's",
            ))
        }
    };
    let request = AcquireRequest {
        member: key.member.clone(),
        key: key.id.clone(),
        product: b.product,
        fingerprint: b.fingerprint,
        ttl_seconds,
        meta: b.meta,
    };
    // Only a request that may queue needs to know whether its caller is still there.
    let gone = if wait > 0 { peer::probe(&req) } else { None };
    let (signer, org_id) = (&state.signer, key.org.as_str());
    // The answer is made (the token signed) while the lease's flush is in flight, and
    // handed back once it is durable (a waiter's, once it is durable).
    let answer = org
        .acquire(request, Duration::from_secs(wait), gone, |a| {
            granted(signer, org_id, a)
        })
        .await?;
    Ok(answer)
}

/// The answer to an acquire: 201 with the new lease, or 200 with the machine's own.
fn granted(signer: &Signer, org: &str, acquired: &Acquired) -> HttpResponse {
    let lease = &acquired.lease;
    let body = Granted {
        session_id: lease.id.as_str(),
        token: token(signer, org, lease),
        expires_at: rfc3339(lease.expires_at),
        heartbeat_interval_seconds: lease.heartbeat_interval_seconds(),
        product: &lease.product,
        pool: lease.pool.as_str(),
    };
    if acquired.fresh {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Extends the caller's lease and answers a fresh token.
pub async fn heartbeat(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    let lease = org.heartbeat(&key.principal(), id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(Renewed {
        session_id: lease.id.as_str(),
        expires_at: rfc3339(lease.expires_at),
        token: token(&state.signer, key.org.as_str(), &lease),
    }))
}

/// Ends the caller's lease.
pub async fn release(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    org.release(&key.principal(), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the caller's own live leases.
pub async fn mine(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (org, key) = caller.runtime(&state)?;
    let page = org
        .own_sessions(&key.principal(), q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, SessionView::from)))
}

/// Lists live leases of the organization, by product, pool and user if asked.
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    org: web::Path<String>,
    q: web::Query<PageQuery>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let (org, actor) = caller.admin_of(&state, &org)?;
    let Filter {
        product,
        pool,
        user,
        ..
    } = filter.into_inner();
    let filter = SessionFilter {
        product,
        pool,
        user,
    };
    let page = org
        .sessions(&actor, filter, q.after.clone(), q.limit()?)
        .await?;
    Ok(HttpResponse::Ok().json(List::of(page, SessionView::from)))
}

/// An admin ends any member's lease.
pub async fn end(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    let (org, actor) = caller.admin_of(&state, &org)?;
    org.end_session(&actor, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
