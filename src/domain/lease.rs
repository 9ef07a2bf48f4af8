//! Leases (sessions) on floating pools, indexed by id, by holder and by deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DomainError, KeyId, MemberId, PoolId, SessionId, Timestamp};

/// Largest `meta` a lease keeps, serialized.
pub const MAX_META_BYTES: usize = 1024;
/// Longest machine fingerprint accepted.
pub const MAX_FINGERPRINT: usize = 256;

/// A live session holding one seat of a floating pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: SessionId,
    pub member: MemberId,
    /// The key it was taken with; revoking that key ends the lease.
    pub key: KeyId,
    /// Shared with its pool's product: a million leases hold a few product names.
    pub product: Arc<str>,
    pub pool: PoolId,
    pub fingerprint: Option<Arc<str>>,
    pub ttl_seconds: u32,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
    /// Boxed: most leases have none, and the field stays one pointer wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<serde_json::Value>>,
}

impl Lease {
    /// How often the holder should heartbeat: a third of the lease time, at least a second.
    pub fn heartbeat_interval_seconds(&self) -> u32 {
        (self.ttl_seconds / 3).max(1)
    }
}

/// A runtime's request for a seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireRequest {
    pub member: MemberId,
    /// The key the request came with.
    pub key: KeyId,
    pub product: String,
    pub fingerprint: Option<String>,
    pub ttl_seconds: Option<u32>,
    pub meta: Option<serde_json::Value>,
}

/// Checks a machine fingerprint: 1-256 characters.
pub fn check_fingerprint(fingerprint: &str) -> Result<(), DomainError> {
    if fingerprint.is_empty() || fingerprint.len() > MAX_FINGERPRINT {
        return Err(DomainError::invalid(
            "fingerprint",
            format!("must be 1-{MAX_FINGERPRINT} bytes"),
        ));
    }
    Ok(())
}

/// Checks a lease's `meta`: a flat object of strings, numbers, booleans or nulls, at
/// most [`MAX_META_BYTES`] serialized. It is kept in every lease, journaled and
/// snapshotted, so its size is the server's to bound, not the client's.
pub fn check_meta(meta: &serde_json::Value) -> Result<(), DomainError> {
    let Some(fields) = meta.as_object() else {
        return Err(DomainError::invalid("meta", "must be a JSON object"));
    };
    if fields.values().any(|v| v.is_object() || v.is_array()) {
        return Err(DomainError::invalid(
            "meta",
            "values must be strings, numbers, booleans or null (a flat object)",
        ));
    }
    let size = serde_json::to_vec(meta).map_or(usize::MAX, |b| b.len());
    if size > MAX_META_BYTES {
        return Err(DomainError::invalid(
            "meta",
            format!("is {size} bytes serialized; at most {MAX_META_BYTES}"),
        ));
    }
    Ok(())
}

/// The identity that makes acquire idempotent: one live lease per machine. Its parts
/// are the lease's own shared strings, so indexing a lease allocates nothing.
type Holder = (MemberId, Arc<str>, Arc<str>);

/// Every live lease of an organization with the indexes the rules need.
///
/// Deadlines are kept per pool in ordered sets, so expiring costs O(log n) per
/// expired lease and never looks at the live ones, and the soonest deadline of
/// a product (for `retry_after`) is the first element of each of its pools' sets.
#[derive(Debug, Default, Clone)]
pub struct Leases {
    /// A persistent map: a snapshot clones it in O(1) and walks it on another thread
    /// while the org goes on changing its own copy. Leases sit behind `Arc` so the
    /// map's nodes stay small (they are copied on write) and a grant shares its lease
    /// with its event and its answer.
    by_id: imbl::OrdMap<SessionId, Arc<Lease>>,
    /// Ordered rather than hashed: a hash map of every lease doubles all at once, and
    /// rehashing a few hundred thousand keys held the org (and its worker) for up to
    /// 100 ms; a B-tree grows a node at a time.
    by_holder: BTreeMap<Holder, SessionId>,
    deadlines: HashMap<PoolId, BTreeSet<(Timestamp, SessionId)>>,
}

impl Leases {
    /// The lease with this id, if live.
    pub fn get(&self, id: &str) -> Option<&Lease> {
        self.by_id.get(id).map(|l| &**l)
    }

    /// All live leases in id order.
    pub fn all(&self) -> &imbl::OrdMap<SessionId, Arc<Lease>> {
        &self.by_id
    }

    /// The number of live leases.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no lease is live.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The live lease of this machine, if any.
    pub fn held_by(&self, member: &MemberId, product: &str, fingerprint: &str) -> Option<&Lease> {
        let key = (member.clone(), Arc::from(product), Arc::from(fingerprint));
        self.by_holder
            .get(&key)
            .and_then(|id| self.get(id.as_str()))
    }

    /// Live leases on `pool`.
    pub fn live_in(&self, pool: &PoolId) -> u32 {
        self.deadlines.get(pool).map_or(0, |d| d.len() as u32)
    }

    /// The soonest expiry on `pool`.
    pub fn first_deadline_in(&self, pool: &PoolId) -> Option<Timestamp> {
        self.deadlines.get(pool)?.first().map(|(at, _)| *at)
    }

    /// The soonest expiry of any lease.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines
            .values()
            .filter_map(|d| d.first().map(|(at, _)| *at))
            .min()
    }

    /// Ids of up to `limit` leases whose expiry is at or before `now`.
    pub fn expired(&self, now: Timestamp, limit: usize) -> Vec<SessionId> {
        let mut out = Vec::new();
        for set in self.deadlines.values() {
            let room = limit - out.len();
            out.extend(
                set.iter()
                    .take_while(|(at, _)| *at <= now)
                    .take(room)
                    .map(|(_, id)| id.clone()),
            );
            if out.len() == limit {
                break;
            }
        }
        out
    }

    /// The live leases of `member`. Scans every lease: only removing a member asks.
    pub fn of_member(&self, member: &MemberId) -> Vec<Lease> {
        self.by_id
            .values()
            .filter(|l| &l.member == member)
            .map(|l| Lease::clone(l))
            .collect()
    }

    /// Ids of the leases taken with `key`. Scans every lease: revocation is rare, and an
    /// index would cost memory on every lease.
    pub fn taken_with(&self, key: &KeyId) -> Vec<SessionId> {
        self.by_id
            .values()
            .filter(|l| &l.key == key)
            .map(|l| l.id.clone())
            .collect()
    }

    pub(super) fn insert(&mut self, lease: Arc<Lease>) {
        if let Some(fp) = &lease.fingerprint {
            let key = (lease.member.clone(), lease.product.clone(), fp.clone());
            self.by_holder.insert(key, lease.id.clone());
        }
        self.deadlines
            .entry(lease.pool.clone())
            .or_default()
            .insert((lease.expires_at, lease.id.clone()));
        self.by_id.insert(lease.id.clone(), lease);
    }

    pub(super) fn renew(&mut self, id: &SessionId, expires_at: Timestamp) {
        let Some(lease) = self.by_id.get_mut(id) else {
            return;
        };
        // Copies the lease only while a snapshot or an answer still holds it.
        let lease = Arc::make_mut(lease);
        if let Some(set) = self.deadlines.get_mut(&lease.pool) {
            set.remove(&(lease.expires_at, id.clone()));
            set.insert((expires_at, id.clone()));
        }
        lease.expires_at = expires_at;
    }

    pub(super) fn remove(&mut self, id: &SessionId) -> Option<Arc<Lease>> {
        let lease = self.by_id.remove(id)?;
        if let Some(fp) = &lease.fingerprint {
            let key = (lease.member.clone(), lease.product.clone(), fp.clone());
            if self.by_holder.get(&key) == Some(id) {
                self.by_holder.remove(&key);
            }
        }
        if let Some(set) = self.deadlines.get_mut(&lease.pool) {
            set.remove(&(lease.expires_at, id.clone()));
            if set.is_empty() {
                self.deadlines.remove(&lease.pool);
            }
        }
        Some(lease)
    }
}
