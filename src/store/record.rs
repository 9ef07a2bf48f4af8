//! The on-disk formats. Records outlive the code that wrote them, so each carries a
//! format version, and the golden files under `tests/golden/` pin what this version
//! writes: a change that breaks old data fails a test.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{Actor, Event, KeyId, MemberId, Snapshot, Timestamp};

/// The journal record format this version writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The snapshot format this version writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// One journaled event with who caused it and when: `{v, at, actor, key?, event}`.
/// `actor` is a member id, `operator` or `system`; `key`, the API key the member used.
/// Written borrowed (`S = &str`, nothing copied on the hot path), read owned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<E, S = String> {
    pub v: u32,
    pub at: Timestamp,
    pub actor: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<S>,
    pub event: E,
}

impl<'a> Record<&'a Event, &'a str> {
    /// The record of `event`, caused by `actor` at `at`.
    pub fn new(at: Timestamp, actor: &'a Actor, event: &'a Event) -> Self {
        let (actor, key) = match actor {
            Actor::System => ("system", None),
            Actor::Operator => ("operator", None),
            Actor::Member { id, key } => (id.as_str(), key.as_ref().map(KeyId::as_str)),
        };
        Record {
            v: RECORD_VERSION,
            at,
            actor,
            key,
            event,
        }
    }
}

impl Record<Event> {
    /// Who caused the event.
    pub fn actor(&self) -> Actor {
        match self.actor.as_str() {
            "system" => Actor::System,
            "operator" => Actor::Operator,
            id => Actor::Member {
                id: MemberId::new(id),
                key: self.key.as_deref().map(KeyId::new),
            },
        }
    }
}

/// A snapshot and the journal position it stands for: `{v, seq, state}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord<S> {
    pub v: u32,
    /// The state is the one after the org's event `seq`.
    pub seq: u64,
    pub state: S,
}

/// Decodes a journal record, refusing data this version cannot read with a message
/// that says what it is.
pub fn decode_record(key: &[u8], bytes: &[u8]) -> Result<Record<Event>, StoreError> {
    #[derive(Deserialize)]
    struct Head {
        v: Option<u32>,
        #[serde(rename = "type")]
        legacy_type: Option<serde::de::IgnoredAny>,
    }
    let head: Head = decode_json(key, bytes)?;
    match head.v {
        Some(RECORD_VERSION) => decode_json(key, bytes),
        Some(v) => Err(StoreError::Version {
            what: "journal record",
            found: v,
            supported: RECORD_VERSION,
        }),
        None if head.legacy_type.is_some() => Err(StoreError::Legacy),
        None => decode_json(key, bytes),
    }
}

/// Decodes a snapshot, refusing data this version cannot read.
pub fn decode_snapshot(key: &[u8], bytes: &[u8]) -> Result<SnapshotRecord<Snapshot>, StoreError> {
    // Snapshots before the envelope began with a binary sequence number.
    if bytes.first() != Some(&b'{') {
        return Err(StoreError::Legacy);
    }
    #[derive(Deserialize)]
    struct Head {
        v: u32,
    }
    let head: Head = decode_json(key, bytes)?;
    if head.v != SNAPSHOT_VERSION {
        return Err(StoreError::Version {
            what: "snapshot",
            found: head.v,
            supported: SNAPSHOT_VERSION,
        });
    }
    decode_json(key, bytes)
}

fn decode_json<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Codec {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}
