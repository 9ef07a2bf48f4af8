//! Pure domain rules: organizations, members, API keys, floating pools and leases.
//!
//! Nothing here performs I/O or reads a clock: time comes in as a [`Timestamp`]
//! argument, new ids come in from the caller, and every change is expressed as an
//! [`Event`] that is applied through one function ([`OrgState::apply`]), so the
//! same code path serves live commands and recovery from the journal.

pub mod activation;
pub mod error;
pub mod event;
pub mod ids;
pub mod key;
pub mod lease;
pub mod member;
pub mod org;
pub mod page;
pub mod pool;
pub mod project;
pub mod roles;
pub mod time;
pub mod waiters;

pub use activation::Activation;
pub use error::DomainError;
pub use event::{Actor, EndReason, Event, Release};
pub use ids::{
    ActivationId, GroupId, KeyId, MemberId, OrgId, PoolId, ProjectId, RoleId, SessionId,
};
pub use key::{ApiKey, Scope, Scopes};
pub use lease::{AcquireRequest, Lease};
pub use member::{Email, Member, TenantRole};
pub use org::{
    AccessView, Acquired, Action, ActivateRequest, AllocationCounts, Applied, Audit, AuditEntry,
    Decision, LeaseSet, OrgState, OrgSummary, PoolStatus, PoolUsage, ProductUsage, RoleSpec, Seat,
    SessionFilter, SessionRow, Snapshot, Turn, Usage, Verdict,
};
pub use page::Page;
pub use pool::{Pool, PoolKind, PoolPatch, PoolSource, PoolSpec};
pub use time::Timestamp;
pub use waiters::{WaitLimits, Waiter};

#[cfg(test)]
mod tests;
