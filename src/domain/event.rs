//! Events: the only way an organization's state changes, and what the journal stores.

use serde::{Deserialize, Serialize};

use super::{ApiKey, KeyId, Lease, Member, MemberId, OrgId, Pool, PoolId, SessionId, Timestamp};

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
