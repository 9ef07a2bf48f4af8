//! Acquires queued for a seat: FIFO per product, with deadlines kept ordered so that
//! timing out costs O(log n) per waiter that times out and nothing scans the queue.
//!
//! Waiters are requests still in flight, not durable state: they are never journaled,
//! and a restart answers them all (their connections close).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{AcquireRequest, KeyId, MemberId, Timestamp};

/// A queued acquire, waiting for a seat of its product until `deadline`.
#[derive(Debug, Clone)]
pub struct Waiter {
    /// Minted by the caller in arrival order, so ids order a queue.
    pub id: u64,
    pub request: AcquireRequest,
    pub deadline: Timestamp,
}

/// How many waiters one key, one member and one organization may have queued at once.
/// The member's limit matters because a member can mint themselves many keys.
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    pub per_key: u32,
    pub per_member: u32,
    pub per_org: u32,
}

/// Every queued acquire of an organization with the indexes the rules need.
#[derive(Debug, Default, Clone)]
pub struct WaitQueues {
    by_id: BTreeMap<u64, Waiter>,
    /// FIFO per product: waiter ids in arrival order.
    by_product: HashMap<String, BTreeSet<u64>>,
    deadlines: BTreeSet<(Timestamp, u64)>,
    per_key: HashMap<KeyId, u32>,
    per_member: HashMap<MemberId, u32>,
}

impl WaitQueues {
    /// The number of waiters.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The waiter with this id.
    pub fn get(&self, id: u64) -> Option<&Waiter> {
        self.by_id.get(&id)
    }

    /// Waiters queued with `key`.
    pub fn of_key(&self, key: &KeyId) -> u32 {
        self.per_key.get(key).copied().unwrap_or(0)
    }

    /// Waiters queued by `member`, with any of their keys.
    pub fn of_member(&self, member: &MemberId) -> u32 {
        self.per_member.get(member).copied().unwrap_or(0)
    }

    /// Waiters queued for `product`.
    pub fn waiting_for(&self, product: &str) -> u32 {
        self.by_product.get(product).map_or(0, |q| q.len() as u32)
    }

    /// Products somebody waits for.
    pub fn products(&self) -> impl Iterator<Item = &str> {
        self.by_product.keys().map(String::as_str)
    }

    /// The queue of `product`, first come first.
    pub fn queue<'a>(&'a self, product: &str) -> impl Iterator<Item = &'a Waiter> + 'a {
        self.by_product
            .get(product)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// The soonest deadline of any waiter.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Waiters whose deadline is at or before `now`.
    pub fn timed_out(&self, now: Timestamp) -> Vec<u64> {
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Ids of every waiter, in arrival order.
    pub fn ids(&self) -> Vec<u64> {
        self.by_id.keys().copied().collect()
    }

    pub(super) fn push(&mut self, w: Waiter) {
        *self.per_key.entry(w.request.key.clone()).or_default() += 1;
        *self.per_member.entry(w.request.member.clone()).or_default() += 1;
        self.by_product
            .entry(w.request.product.clone())
            .or_default()
            .insert(w.id);
        self.deadlines.insert((w.deadline, w.id));
        self.by_id.insert(w.id, w);
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.by_id.remove(&id)?;
        self.deadlines.remove(&(w.deadline, id));
        if let Some(q) = self.by_product.get_mut(&w.request.product) {
            q.remove(&id);
            if q.is_empty() {
                self.by_product.remove(&w.request.product);
            }
        }
        decrement(&mut self.per_key, &w.request.key);
        decrement(&mut self.per_member, &w.request.member);
        Some(w)
    }
}

/// Counts one fewer for `k`, forgetting it at zero.
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, k: &K) {
    if let Some(n) = counts.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            counts.remove(k);
        }
    }
}
