//! The on-disk formats. Records outlive the code that wrote them, so each carries a
//! format version, and the golden files under `tests/golden/` pin what this version
//! writes: a change that breaks old data fails a test.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{Actor, Event, KeyId, MemberId, Timestamp};

/// The journal record format this version writes and reads.
pub const RECORD_VERSION: u32 = 1;
/// The JSON snapshot format, read but no longer written (see [`super::snapshot`]).
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
        let key = match actor {
            Actor::Member { key, .. } => key.as_ref().map(KeyId::as_str),
            Actor::System | Actor::Operator => None,
        };
        let actor = actor.name();
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

/// The first byte of a journal entry holding one or more records (format 1): after it,
/// each record as a little-endian `u32` length and its JSON. The writer joins the
/// records one organization journals in a round into one entry, keyed by the first
/// one's sequence number. An entry that starts with `{` is a single bare record, as
/// written before entries joined records.
pub const ENTRY_V1: u8 = 0xE1;

/// A journal entry under construction: records appended one after another.
#[derive(Debug)]
pub struct Entry(Vec<u8>);

impl Entry {
    /// An entry with no records yet.
    pub fn new() -> Entry {
        Entry(vec![ENTRY_V1])
    }

    /// Appends the record of `event`, caused by `actor` at `at`.
    pub fn push(&mut self, at: Timestamp, actor: &Actor, event: &Event) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut self.0, &Record::new(at, actor, event))
            .expect("events always serialize");
        let len = (self.0.len() - start - 4) as u32;
        self.0[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Appends the records of `other`, which follow this entry's in sequence.
    pub fn join(&mut self, other: &Entry) {
        self.0.extend_from_slice(&other.0[1..]);
    }

    /// The bytes to store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl Default for Entry {
    fn default() -> Self {
        Entry::new()
    }
}

/// Decodes a journal entry into its records, in sequence order.
pub fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<Vec<Record<Event>>, StoreError> {
    split_entry(key, bytes)?
        .into_iter()
        .map(|record| decode_record(key, record))
        .collect()
}

/// Splits a journal entry into its records' encoded bytes, in sequence order, without
/// decoding them: recovery decodes only the records after its snapshot.
pub fn split_entry<'a>(key: &[u8], bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, StoreError> {
    let malformed = || StoreError::Malformed {
        key: String::from_utf8_lossy(key).into_owned(),
    };
    match bytes.first() {
        Some(b'{') => return Ok(vec![bytes]),
        Some(&ENTRY_V1) => {}
        Some(&b) if b > ENTRY_V1 && b <= 0xEF => {
            return Err(StoreError::Version {
                what: "journal entry",
                found: u32::from(b - 0xE0),
                supported: 1,
            })
        }
        _ => return Err(malformed()),
    }
    let mut rest = &bytes[1..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize)
            .ok_or_else(malformed)?;
        records.push(rest.get(4..4 + len).ok_or_else(malformed)?);
        rest = &rest[4 + len..];
    }
    if records.is_empty() {
        return Err(malformed());
    }
    Ok(records)
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

/// Decodes JSON, naming the key it was stored under when it cannot.
pub(super) fn decode_json<T: serde::de::DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Codec {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}
