//! Activations: machines a member has activated a product on, each checked offline
//! between refreshes with a signed activation token.

use serde::{Deserialize, Serialize};

use super::{ActivationId, MemberId, PoolId, Timestamp};

/// How long an activation token is valid before it must be refreshed (30 days).
pub const TOKEN_VALIDITY_SECS: u64 = 30 * 86_400;
/// Longest hostname recorded with an activation.
pub const MAX_HOSTNAME: usize = 253;
/// Active machines a member may have per floating product. Floating seats are taken
/// by sessions, not machines, so this only bounds what one key can make the org hold.
pub const MAX_FLOATING_MACHINES: u32 = 1000;

/// One machine's activation of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub id: ActivationId,
    pub member: MemberId,
    pub product: String,
    /// The pool whose seat or entitlement allowed it; revoking that ends it.
    pub pool: PoolId,
    pub fingerprint: String,
    pub hostname: Option<String>,
    pub activated_at: Timestamp,
    pub last_seen_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<Timestamp>,
}

impl Activation {
    /// Whether it has not been deactivated.
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }

    /// When a token signed at `now` expires.
    pub fn token_expiry(now: Timestamp) -> Timestamp {
        now.plus_secs(TOKEN_VALIDITY_SECS).ceil_secs()
    }
}
