//! Wall-clock instants as the domain sees them: milliseconds since the Unix epoch.

use serde::{Deserialize, Serialize};

/// A point in time, milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch, rounded down.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus whole seconds.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add((secs as i64).saturating_mul(1000)))
    }

    /// The first whole second at or after this instant. Lease expiries are kept in whole
    /// seconds so that `expires_at` on the wire and the token's `exp` claim agree exactly.
    pub fn ceil_secs(self) -> Timestamp {
        Timestamp((self.0 + 999).div_euclid(1000) * 1000)
    }

    /// The instant as RFC 3339 UTC (`2026-11-23T10:00:00Z`; milliseconds only when it
    /// has them): how times are written on the wire and in the audit log.
    pub fn rfc3339(self) -> String {
        let nanos = self.0 as i128 * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// Whole seconds from `self` until `later`, rounded up, at least 1.
    pub fn secs_until(self, later: Timestamp) -> u64 {
        let ms = (later.0 - self.0).max(0);
        ((ms + 999) / 1000).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_secs_rounds_up_to_whole_seconds() {
        assert_eq!(Timestamp(1_000).ceil_secs(), Timestamp(1_000));
        assert_eq!(Timestamp(1_001).ceil_secs(), Timestamp(2_000));
        assert_eq!(Timestamp(1_999).ceil_secs(), Timestamp(2_000));
    }

    #[test]
    fn secs_until_is_at_least_one() {
        assert_eq!(Timestamp(5_000).secs_until(Timestamp(5_000)), 1);
        assert_eq!(Timestamp(5_000).secs_until(Timestamp(7_001)), 3);
    }
}
