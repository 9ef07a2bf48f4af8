//! The audit log: every admin change with who made it, when, and what it changed from
//! and to, in a sled tree of its own.
//!
//! Keys are `{org}\0{seq:be64}{n:be32}`: `seq` is the journal sequence number of the
//! event the entry describes and `n` the entry's place in its change, so an org's
//! entries sort oldest first and a reverse scan pages newest first. The journal is
//! compacted by snapshots; this tree is not, and keeps each entry until the retention
//! period has passed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::record::decode_json;
use super::StoreError;
use crate::domain::{Actor, AuditEntry, OrgId, Page, Timestamp};

/// The audit record format this version writes and reads.
pub const AUDIT_VERSION: u32 = 1;

/// An audit entry as stored: `{v, at, actor, action, target, before, after}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    pub v: u32,
    pub at: Timestamp,
    /// A member id, `operator` or `system`.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Value,
    pub after: Value,
    /// The entry's id, from its key (not stored in the value).
    #[serde(skip)]
    pub id: String,
}

/// A position in an org's log: the entry `(seq, n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    n: u32,
}

impl Cursor {
    /// The entry an id names, if it is one this store hands out.
    pub fn parse(id: &str) -> Option<Cursor> {
        let hex = id.strip_prefix("au_").filter(|h| h.len() == 24)?;
        Some(Cursor {
            seq: u64::from_str_radix(&hex[..16], 16).ok()?,
            n: u32::from_str_radix(&hex[16..], 16).ok()?,
        })
    }

    fn id(self) -> String {
        format!("au_{:016x}{:08x}", self.seq, self.n)
    }
}

fn prefix(org: &OrgId) -> Vec<u8> {
    let mut k = org.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

fn key(org: &OrgId, at: Cursor) -> Vec<u8> {
    let mut k = prefix(org);
    k.extend_from_slice(&at.seq.to_be_bytes());
    k.extend_from_slice(&at.n.to_be_bytes());
    k
}

fn cursor_of(key: &[u8]) -> Option<Cursor> {
    let tail = key.len().checked_sub(12).map(|i| &key[i..])?;
    Some(Cursor {
        seq: u64::from_be_bytes(tail[..8].try_into().ok()?),
        n: u32::from_be_bytes(tail[8..].try_into().ok()?),
    })
}

/// The key and value of entry `n` of a change, caused by its event `seq`.
pub(super) fn encode(
    org: &OrgId,
    seq: u64,
    n: u32,
    at: Timestamp,
    actor: &Actor,
    entry: &AuditEntry,
) -> (Vec<u8>, Vec<u8>) {
    let actor = actor.name();
    let value = serde_json::json!({
        "v": AUDIT_VERSION,
        "at": at,
        "actor": actor,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    });
    let value = serde_json::to_vec(&value).expect("JSON values always serialize");
    (key(org, Cursor { seq, n }), value)
}

fn decode(key: &[u8], value: &[u8]) -> Result<Logged, StoreError> {
    let mut logged: Logged = decode_json(key, value)?;
    if logged.v != AUDIT_VERSION {
        return Err(StoreError::Version {
            what: "audit entry",
            found: logged.v,
            supported: AUDIT_VERSION,
        });
    }
    let cursor = cursor_of(key).ok_or_else(|| StoreError::Malformed {
        key: String::from_utf8_lossy(key).into_owned(),
    })?;
    logged.id = cursor.id();
    Ok(logged)
}

/// Up to `limit` of `org`'s entries strictly older than `before`, newest first; `next`
/// is the last one's id when older ones remain.
pub(super) fn page(
    tree: &sled::Tree,
    org: &OrgId,
    before: Option<Cursor>,
    limit: usize,
) -> Result<Page<Logged>, StoreError> {
    let start = prefix(org);
    let end = match before {
        Some(c) => key(org, c),
        None => {
            let mut end = start.clone();
            *end.last_mut().expect("prefix ends in 0") = 1;
            end
        }
    };
    let mut items = Vec::new();
    let mut more = false;
    for kv in tree.range(start..end).rev() {
        let (k, v) = kv?;
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(decode(&k, &v)?);
    }
    let next = if more {
        items.last().map(|l: &Logged| l.id.clone())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// Deletes every entry written before `cutoff`. An org's entries are in the order they
/// were written, so each org's scan stops at its first entry to keep.
pub(super) fn prune(tree: &sled::Tree, cutoff: Timestamp) -> Result<usize, StoreError> {
    #[derive(Deserialize)]
    struct At {
        at: Timestamp,
    }
    let mut deleted = 0;
    let mut from: Vec<u8> = Vec::new();
    loop {
        let Some(first) = tree.range(from.clone()..).next() else {
            return Ok(deleted);
        };
        let (k, _) = first?;
        let Some(nul) = k.iter().position(|b| *b == 0) else {
            return Ok(deleted);
        };
        let org_prefix = k[..=nul].to_vec();
        let mut next_org = org_prefix.clone();
        *next_org.last_mut().expect("ends in 0") = 1;
        for kv in tree.range(org_prefix..next_org.clone()) {
            let (k, v) = kv?;
            let at: At = decode_json(&k, &v)?;
            if at.at >= cutoff {
                break;
            }
            tree.remove(&k)?;
            deleted += 1;
        }
        from = next_org;
    }
}
