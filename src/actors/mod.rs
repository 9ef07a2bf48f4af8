//! Concurrency and time around the pure domain: one actor per organization owns its
//! state, so every change to an organization is serialized through one mailbox and a
//! cap can never be raced past. The [`Directory`] finds actors and authenticates keys.

mod clock;
mod directory;
mod handle;
mod org_actor;

use std::sync::Arc;

use thiserror::Error;

use crate::domain::DomainError;
use crate::store::StoreError;

pub use clock::now;
pub use directory::{Directory, FoundedOrg, KeyEntry};
pub use handle::OrgHandle;

/// What a call to an organization actor can answer besides its value.
#[derive(Debug, Clone, Error)]
pub enum ActorError {
    /// The domain refused the command; nothing changed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The change could not be made durable.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The actor is gone (the server is stopping).
    #[error("organization actor unavailable")]
    Unavailable,
}

impl From<StoreError> for ActorError {
    fn from(e: StoreError) -> Self {
        ActorError::Store(Arc::new(e))
    }
}
