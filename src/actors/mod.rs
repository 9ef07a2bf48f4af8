//! Concurrency and time around the pure domain: one actor per organization owns its
//! state, so every change to an organization is serialized through one mailbox and a
//! cap can never be raced past. The [`Directory`] finds actors and authenticates keys.

pub mod clock;
mod directory;
mod handle;
mod org_actor;

use std::sync::Arc;

use thiserror::Error;

use crate::domain::{Actor, DomainError, KeyId, MemberId};
use crate::store::StoreError;

pub use clock::now;
pub use directory::{Directory, FoundedOrg, KeyEntry, Placement};
pub use handle::OrgHandle;
pub use org_actor::ActorSettings;

/// Tells whether the caller of a waiting request has gone away.
pub type GoneProbe = Box<dyn Fn() -> bool + Send>;

/// A member acting through one of their API keys.
#[derive(Debug, Clone)]
pub struct Principal {
    pub member: MemberId,
    pub key: KeyId,
}

impl Principal {
    /// The actor journaled with the changes this principal makes.
    pub fn actor(&self) -> Actor {
        Actor::Member {
            id: self.member.clone(),
            key: Some(self.key.clone()),
        }
    }
}

/// What a call to an organization actor can answer besides its value.
#[derive(Debug, Clone, Error)]
pub enum ActorError {
    /// The domain refused the command; nothing changed.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The change could not be made durable.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The actor is gone while its org was not deleted: the server is stopping.
    #[error("organization actor unavailable")]
    Unavailable,
}

impl From<StoreError> for ActorError {
    fn from(e: StoreError) -> Self {
        ActorError::Store(Arc::new(e))
    }
}

/// One info line per audited change, as the audit log has it (never its before and
/// after, which may carry personal data): who, what, to what.
fn log_changes(
    org: &crate::domain::OrgId,
    by: &crate::domain::Actor,
    audit: &[crate::domain::Audit],
) {
    for a in audit {
        tracing::info!(
            org = org.as_str(),
            actor = by.name(),
            action = a.entry.action,
            target = a.entry.target.as_str(),
            "admin change"
        );
    }
}
