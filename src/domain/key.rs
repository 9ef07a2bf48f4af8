//! API keys: only their hash is kept; scopes limit what a key can do.

use serde::{Deserialize, Serialize};

use super::{KeyId, MemberId, Timestamp};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
// The API description names its values (a derive only: no behaviour here).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Runtime calls: acquire, heartbeat and release sessions.
    Sessions,
    /// Administrative calls, within what the member's roles allow.
    Admin,
}

/// A set of scopes, small enough to copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub sessions: bool,
    pub admin: bool,
}

impl Scopes {
    /// Collects scopes from a list.
    pub fn from_list(list: &[Scope]) -> Scopes {
        Scopes {
            sessions: list.contains(&Scope::Sessions),
            admin: list.contains(&Scope::Admin),
        }
    }

    /// Whether `scope` is among them.
    pub fn has(self, scope: Scope) -> bool {
        match scope {
            Scope::Sessions => self.sessions,
            Scope::Admin => self.admin,
        }
    }
}

/// A stored API key: the secret itself is never kept, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub member: MemberId,
    pub name: String,
    /// Hex SHA-256 of the whole secret string.
    pub hash: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}
