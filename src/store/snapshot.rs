//! The snapshot format. Snapshots are mostly leases, up to a million of them, so
//! format 2 writes those as compact binary rows (postcard: varints and length-prefixed
//! strings), each member, key, product and pool id spelled out once, at its first use,
//! and numbered from then on. The encoder streams rows from the org's persistent map
//! (no second copy of the leases beside the bytes). The admin-sized rest (members,
//! keys, pools) stays JSON.
//!
//! Layout: `SKS` `0x02`, the CRC-32 of the rest (little-endian), then postcard
//! `Head { seq, state_json, leases }` and `leases` postcard `Row`s. The checksum makes
//! a damaged file refuse to load rather than load with a changed cap or key.
//! Format 1 (`{v, seq, state}` JSON) is still read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::record::{decode_json, SnapshotRecord, SNAPSHOT_VERSION};
use super::StoreError;
use crate::domain::project::{Group, Project};
use crate::domain::roles::CustomRole;
use crate::domain::{
    Activation, ApiKey, KeyId, Lease, LeaseSet, Member, MemberId, OrgId, Pool, PoolId, SessionId,
    Snapshot, Timestamp,
};

/// The first bytes of a format 2 snapshot; the fourth is the format version.
const MAGIC: &[u8; 3] = b"SKS";
/// The binary snapshot format this version writes.
pub const SNAPSHOT_V2: u8 = 2;

/// Everything but the leases, as JSON: few and admin-sized.
#[derive(Serialize, Deserialize)]
struct State<M, K, P> {
    id: OrgId,
    name: String,
    created_at: Timestamp,
    members: M,
    keys: K,
    pools: P,
    /// Written only when there are some, so snapshots of orgs without any keep the
    /// bytes they had before activations existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    activations: Vec<Activation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<Group>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    projects: Vec<Project>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<CustomRole>,
}

#[derive(Serialize, Deserialize)]
struct Head<'a> {
    seq: u64,
    #[serde(borrow)]
    state_json: &'a [u8],
    leases: u64,
}

/// A string leases repeat: spelled out the first time, then its number (the count of
/// strings spelled out before it).
#[derive(Serialize, Deserialize)]
enum Shared<'a> {
    New(&'a str),
    Seen(u32),
}

/// One lease.
#[derive(Serialize, Deserialize)]
struct Row<'a> {
    id: &'a str,
    #[serde(borrow)]
    member: Shared<'a>,
    #[serde(borrow)]
    key: Shared<'a>,
    #[serde(borrow)]
    product: Shared<'a>,
    #[serde(borrow)]
    pool: Shared<'a>,
    fingerprint: Option<&'a str>,
    ttl_seconds: u32,
    acquired_at: i64,
    expires_at: i64,
    /// The lease's `meta` as JSON text: rare and at most 1 KiB.
    meta: Option<String>,
}

/// Numbers the strings leases repeat, in order of first use.
#[derive(Default)]
struct Interner<'a>(HashMap<&'a str, u32>);

impl<'a> Interner<'a> {
    fn intern(&mut self, s: &'a str) -> Shared<'a> {
        let next = self.0.len() as u32;
        match self.0.entry(s) {
            std::collections::hash_map::Entry::Occupied(seen) => Shared::Seen(*seen.get()),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(next);
                Shared::New(s)
            }
        }
    }
}

/// The decoding side of [`Interner`].
#[derive(Default)]
struct Strings(Vec<Arc<str>>);

impl Strings {
    fn resolve(&mut self, s: Shared<'_>) -> Option<Arc<str>> {
        match s {
            Shared::New(s) => {
                self.0.push(Arc::from(s));
                self.0.last().cloned()
            }
            Shared::Seen(i) => self.0.get(i as usize).cloned(),
        }
    }
}

/// Encodes `snapshot`, the state after event `seq`, in format 2.
pub fn encode(snapshot: &Snapshot, seq: u64) -> Vec<u8> {
    let state = State {
        id: snapshot.id.clone(),
        name: snapshot.name.clone(),
        created_at: snapshot.created_at,
        members: &snapshot.members,
        keys: &snapshot.keys,
        pools: &snapshot.pools,
        activations: snapshot.activations.clone(),
        groups: snapshot.groups.clone(),
        projects: snapshot.projects.clone(),
        roles: snapshot.roles.clone(),
    };
    let state_json = serde_json::to_vec(&state).expect("snapshots serialize");
    let head = Head {
        seq,
        state_json: &state_json,
        leases: snapshot.leases.len() as u64,
    };
    let mut out = Vec::with_capacity(state_json.len() + 48 * snapshot.leases.len() + 64);
    out.extend_from_slice(MAGIC);
    out.push(SNAPSHOT_V2);
    out.extend_from_slice(&[0; 4]);
    let mut out = postcard::to_extend(&head, out).expect("snapshot head encodes");
    let mut strings = Interner::default();
    for lease in snapshot.leases.iter() {
        let row = Row {
            id: lease.id.as_str(),
            member: strings.intern(lease.member.as_str()),
            key: strings.intern(lease.key.as_str()),
            product: strings.intern(&lease.product),
            pool: strings.intern(lease.pool.as_str()),
            fingerprint: lease.fingerprint.as_deref(),
            ttl_seconds: lease.ttl_seconds,
            acquired_at: lease.acquired_at.millis(),
            expires_at: lease.expires_at.millis(),
            meta: lease.meta.as_ref().map(|m| m.to_string()),
        };
        out = postcard::to_extend(&row, out).expect("lease rows encode");
    }
    let crc = crc32fast::hash(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a snapshot of format 2 or 1, refusing data this version cannot read.
pub fn decode(key: &[u8], bytes: &[u8]) -> Result<SnapshotRecord<Snapshot>, StoreError> {
    match bytes {
        [b'{', ..] => decode_v1(key, bytes),
        [m0, m1, m2, version, rest @ ..] if [*m0, *m1, *m2] == *MAGIC => {
            if *version != SNAPSHOT_V2 {
                return Err(StoreError::Version {
                    what: "snapshot",
                    found: u32::from(*version),
                    supported: u32::from(SNAPSHOT_V2),
                });
            }
            decode_v2(key, rest)
        }
        // Snapshots before the envelope began with a big-endian sequence number.
        [0, ..] => Err(StoreError::Legacy),
        _ => Err(StoreError::Malformed {
            key: String::from_utf8_lossy(key).into_owned(),
        }),
    }
}

fn decode_v2(key: &[u8], bytes: &[u8]) -> Result<SnapshotRecord<Snapshot>, StoreError> {
    let malformed = || StoreError::Malformed {
        key: String::from_utf8_lossy(key).into_owned(),
    };
    let (crc, bytes) = bytes.split_first_chunk::<4>().ok_or_else(malformed)?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(bytes) {
        return Err(malformed());
    }
    let (head, mut rest) = postcard::take_from_bytes::<Head>(bytes).map_err(|_| malformed())?;
    let state: State<Vec<Member>, Vec<ApiKey>, Vec<Pool>> = decode_json(key, head.state_json)?;
    let mut strings = Strings::default();
    let mut string = |s| strings.resolve(s).ok_or_else(malformed);
    // Bounded by the bytes present, not by the count the head claims.
    let mut leases = Vec::with_capacity((head.leases as usize).min(bytes.len() / 16));
    for _ in 0..head.leases {
        let (row, after) = postcard::take_from_bytes::<Row>(rest).map_err(|_| malformed())?;
        rest = after;
        leases.push(Lease {
            id: SessionId::new(row.id),
            member: MemberId::new(string(row.member)?),
            key: KeyId::new(string(row.key)?),
            product: string(row.product)?,
            pool: PoolId::new(string(row.pool)?),
            fingerprint: row.fingerprint.map(Arc::from),
            ttl_seconds: row.ttl_seconds,
            acquired_at: Timestamp(row.acquired_at),
            expires_at: Timestamp(row.expires_at),
            meta: match row.meta {
                Some(json) => Some(Box::new(decode_json(key, json.as_bytes())?)),
                None => None,
            },
        });
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(SnapshotRecord {
        v: u32::from(SNAPSHOT_V2),
        seq: head.seq,
        state: Snapshot {
            id: state.id,
            name: state.name,
            created_at: state.created_at,
            members: state.members,
            keys: state.keys,
            pools: state.pools,
            activations: state.activations,
            groups: state.groups,
            projects: state.projects,
            roles: state.roles,
            leases: leases.into_iter().collect::<LeaseSet>(),
        },
    })
}

fn decode_v1(key: &[u8], bytes: &[u8]) -> Result<SnapshotRecord<Snapshot>, StoreError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let head: Version = decode_json(key, bytes)?;
    if head.v != SNAPSHOT_VERSION {
        return Err(StoreError::Version {
            what: "snapshot",
            found: head.v,
            supported: SNAPSHOT_VERSION,
        });
    }
    decode_json(key, bytes)
}
