//! Events: the only way an organization's state changes, and what the journal stores.

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use super::project::{Group, Project, Subject};
use super::roles::CustomRole;
use super::{
    Activation, ActivationId, ApiKey, GroupId, KeyId, Lease, Member, MemberId, OrgId, Pool, PoolId,
    ProjectId, RoleId, SessionId, TenantRole, Timestamp,
};

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its holder released it.
    Released,
    /// It was not heartbeated before its expiry.
    Expired,
    /// An admin ended it.
    Ended,
    /// The key it was taken with was revoked.
    Revoked,
    /// Its machine acquired again, and its pool could no longer renew it.
    Replaced,
}

impl EndReason {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Released => "released",
            EndReason::Expired => "expired",
            EndReason::Ended => "ended",
            EndReason::Revoked => "revoked",
            EndReason::Replaced => "replaced",
        }
    }
}

/// Why a member no longer holds a seat of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// An admin revoked it.
    Revoked,
    /// The member left the organization.
    Removed,
}

/// Who caused a change; journaled with every event (the audit log reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The server itself: expiry and other changes time makes.
    System,
    /// The holder of the operator's bootstrap token.
    Operator,
    /// A member, through one of their API keys.
    Member { id: MemberId, key: Option<KeyId> },
}

impl Actor {
    /// How records, the audit log and the logs name it: `system`, `operator` or the
    /// member's id.
    pub fn name(&self) -> &str {
        match self {
            Actor::System => "system",
            Actor::Operator => "operator",
            Actor::Member { id, .. } => id.as_str(),
        }
    }
}

/// One change to an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    OrgFounded {
        id: OrgId,
        name: String,
        at: Timestamp,
    },
    MemberAdded(Member),
    MemberRolesChanged {
        id: MemberId,
        tenant_roles: Vec<TenantRole>,
    },
    /// The member's keys were revoked and their seats released by earlier events of the
    /// same change.
    MemberRemoved {
        id: MemberId,
    },
    KeyCreated(ApiKey),
    KeyRevoked {
        id: KeyId,
    },
    PoolCreated(Pool),
    PoolChanged(Pool),
    PoolDeleted {
        id: PoolId,
    },
    /// The pool's `expires_at` passed: its named allocations are released.
    PoolLapsed {
        id: PoolId,
    },
    /// A named seat given to a member, or a member added to a floating pool's entitled
    /// list.
    Allocated {
        pool: PoolId,
        member: MemberId,
    },
    /// The opposite of [`Event::Allocated`].
    Deallocated {
        pool: PoolId,
        member: MemberId,
        reason: Release,
    },
    /// One member's seat moved to another in one step.
    Transferred {
        pool: PoolId,
        from: MemberId,
        to: MemberId,
    },
    Activated(Activation),
    /// An activation's token was refreshed (or the machine activated again).
    ActivationSeen {
        id: ActivationId,
        at: Timestamp,
    },
    Deactivated {
        id: ActivationId,
        at: Timestamp,
    },
    /// An acquire was refused because these pools (all that could serve it) were full.
    Denied {
        pools: Vec<PoolId>,
    },
    GroupCreated(Group),
    /// The group's name, members or tenant roles, replaced whole.
    GroupChanged(Group),
    GroupDeleted {
        id: GroupId,
    },
    ProjectCreated(Project),
    /// The subject's roles in the project, replaced whole (empty: `read_only`).
    AccessSet {
        project: ProjectId,
        subject: Subject,
        roles: BTreeSet<RoleId>,
    },
    AccessRemoved {
        project: ProjectId,
        subject: Subject,
    },
    /// Ownership moved; the old owner keeps their assignment (`read_only` if none,
    /// which the same change sets by an [`Event::AccessSet`] of its own).
    ProjectOwnerChanged {
        project: ProjectId,
        owner: MemberId,
    },
    RoleCreated(CustomRole),
    RoleChanged(CustomRole),
    /// The role is gone, and with it from every assignment.
    RoleDeleted {
        id: RoleId,
    },
    LeaseGranted(std::sync::Arc<Lease>),
    LeaseRenewed {
        id: SessionId,
        expires_at: Timestamp,
    },
    LeaseEnded {
        id: SessionId,
        reason: EndReason,
    },
}
