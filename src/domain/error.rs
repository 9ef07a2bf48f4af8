//! What a domain command can refuse, with the details a client needs to react.

use thiserror::Error;

use super::{Activation, SessionRow};

/// A refused command. The HTTP layer maps each variant to one status and code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The id is unknown in this organization (or belongs to another one).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The session does not exist any more (released, expired or never existed).
    #[error("session not found or already ended")]
    SessionNotFound,
    /// The member may not do this with their tenant roles.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The member holds no entitlement to the product (or no pool of it exists).
    #[error("not entitled to product {product}")]
    NotEntitled { product: String },
    /// No seat the member could use is free for them: all are live, or the free ones
    /// are held for acquires that were waiting first.
    #[error("no seat of {product} is free for this request ({seats} seats in all)")]
    SeatCapReached {
        product: String,
        seats: u32,
        retry_after: u64,
    },
    /// The pool has expired; its sessions are not renewed.
    #[error("the pool of this session has expired")]
    PoolExpired,
    /// Too many acquires are queued already, for this key or this organization.
    #[error("too many acquires are waiting; retry later")]
    RateLimited { retry_after: u64 },
    /// The key the request came with was revoked while it waited.
    #[error("the API key of this request was revoked")]
    KeyRevoked,
    /// The change would break an invariant or duplicate something unique; `live` and
    /// `allocated` are the counts that stand in its way, where those are why.
    #[error("{message}")]
    Conflict {
        message: String,
        live: Option<u32>,
        allocated: Option<u32>,
    },
    /// Allocating these members would exceed the pool's seats; nothing was allocated.
    #[error("{requested} members need a seat and {free} seats are free; nothing was allocated")]
    QuotaExceeded { free: u32, requested: u32 },
    /// The member has as many machines active for the product as its pool allows.
    #[error("{} machines are active for this product, the most allowed; deactivate one first", machines.len())]
    MachineLimitReached { machines: Vec<Activation> },
    /// The member holds live sessions; end them first.
    #[error("the member has {} live sessions; end them first", sessions.len())]
    UserSignedIn { sessions: Vec<SessionRow> },
    /// A well-formed value that the rules do not accept.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl DomainError {
    /// A 422 for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A plain 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        DomainError::Conflict {
            message: message.into(),
            live: None,
            allocated: None,
        }
    }
}
