//! Events: the only way an organization's state changes, and what the journal stores.

use serde::{Deserialize, Serialize};

use super::{ApiKey, KeyId, Lease, Member, OrgId, Pool, PoolId, SessionId, Timestamp};

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
    KeyCreated(ApiKey),
    KeyRevoked {
        id: KeyId,
    },
    PoolCreated(Pool),
    PoolChanged(Pool),
    PoolDeleted {
        id: PoolId,
    },
    LeaseGranted(Lease),
    LeaseRenewed {
        id: SessionId,
        expires_at: Timestamp,
    },
    LeaseEnded {
        id: SessionId,
        reason: EndReason,
    },
}
