//! Wire formats shared by the resources: RFC 3339 times and list envelopes.

use serde::{Deserialize, Deserializer, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::domain::{Page, Timestamp};

/// Renders a timestamp as RFC 3339 UTC (`2026-11-23T10:00:00Z`; milliseconds only when
/// the instant has them).
pub fn rfc3339(ts: Timestamp) -> String {
    ts.rfc3339()
}

/// Parses an RFC 3339 time with any offset.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time ({e}): {s:?}"))?;
    Ok(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// Serde: an optional RFC 3339 time.
pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_rfc3339(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Serde: a field that may be absent (`None`), `null` (`Some(None)`) or a time.
pub fn patch_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Timestamp>>, D::Error> {
    opt_time(d).map(Some)
}

/// `{"items": [...], "next": cursor}` of every list.
#[derive(Serialize)]
pub struct List<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> List<T> {
    /// Renders a domain page.
    pub fn of<U>(page: Page<U>, render: impl Fn(U) -> T) -> List<T> {
        List {
            items: page.items.into_iter().map(render).collect(),
            next: page.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_utc() {
        let t = parse_rfc3339("2026-11-23T11:00:00+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T10:00:00Z");
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
