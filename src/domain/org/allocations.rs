//! Allocations: named seats given to members, and the entitled lists of floating pools
//! (which the same routes edit).

use std::collections::BTreeSet;

use super::{Applied, OrgState};
use crate::domain::page::{self, page_of, Page};
use crate::domain::{DomainError, Event, Member, MemberId, Pool, PoolKind, Release, Timestamp};

/// A pool's counts after an allocation change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationCounts {
    /// Seats handed out (a floating pool: the length of its entitled list).
    pub allocated: u32,
    pub seats: u32,
    /// Seats still free: unallocated (named) or not in use by a session (floating).
    pub free: u32,
}

/// A named seat a member holds: of `product`, through `pool` (a bundle's pool for the
/// products it includes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub product: String,
    pub pool: crate::domain::PoolId,
}

impl OrgState {
    /// Gives each of `users` (ids or e-mails) a seat of the pool, all or nothing. Users
    /// already holding one are no-ops; a named pool refuses when the others do not fit.
    pub fn allocate(
        &self,
        actor: &MemberId,
        pool: &str,
        users: &[String],
        now: Timestamp,
    ) -> Result<Applied<AllocationCounts>, DomainError> {
        let pool = self.open_pool(actor, pool, now)?;
        let members = self.resolve_all(users)?;
        let new: Vec<MemberId> = members
            .into_iter()
            .filter(|m| !self.allocated_in(pool, m))
            .collect();
        if pool.kind == PoolKind::Named {
            let free = pool.seats.saturating_sub(pool.allocated.len() as u32);
            if new.len() as u32 > free {
                return Err(DomainError::QuotaExceeded {
                    free,
                    requested: new.len() as u32,
                });
            }
        }
        let events: Vec<Event> = new
            .into_iter()
            .map(|member| Event::Allocated {
                pool: pool.id.clone(),
                member,
            })
            .collect();
        let added = events.len() as u32;
        let mut counts = self.counts(pool);
        counts.allocated += added;
        if pool.kind == PoolKind::Named {
            counts.free -= added;
        }
        Ok(Applied {
            value: counts,
            events,
        })
    }

    /// Takes the pool's seat from each of `users`; users holding none are no-ops.
    pub fn revoke(
        &self,
        actor: &MemberId,
        pool: &str,
        users: &[String],
        now: Timestamp,
    ) -> Result<Applied<AllocationCounts>, DomainError> {
        let pool = self.pool(actor, pool)?;
        let members = self.resolve_all(users)?;
        let mut events = Vec::new();
        let mut removed = 0;
        for member in members.into_iter().filter(|m| self.allocated_in(pool, m)) {
            // Their machines activated through this pool go with the seat.
            events.extend(self.deactivations(Some(&member), Some(&pool.id), now));
            events.push(Event::Deallocated {
                pool: pool.id.clone(),
                member,
                reason: Release::Revoked,
            });
            removed += 1;
        }
        let mut counts = self.counts(pool);
        counts.allocated -= removed;
        if pool.kind == PoolKind::Named {
            counts.free += removed;
        }
        Ok(Applied {
            value: counts,
            events,
        })
    }

    /// Takes the pool's seat from one member; 404 when they hold none.
    pub fn revoke_one(
        &self,
        actor: &MemberId,
        pool: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<Applied<AllocationCounts>, DomainError> {
        let p = self.pool(actor, pool)?;
        let member = self.resolve(user).filter(|m| self.allocated_in(p, m));
        if member.is_none() {
            return Err(DomainError::NotFound { what: "allocation" });
        }
        self.revoke(actor, pool, &[user.to_owned()], now)
    }

    /// Moves `from`'s seat of a named pool to `to` in one step.
    pub fn transfer(
        &self,
        actor: &MemberId,
        pool: &str,
        from: &str,
        to: &str,
        now: Timestamp,
    ) -> Result<Applied<AllocationCounts>, DomainError> {
        let pool = self.open_pool(actor, pool, now)?;
        if pool.kind != PoolKind::Named {
            return Err(DomainError::invalid(
                "from",
                "a floating pool's seats are not held; edit its allocations instead",
            ));
        }
        let from = self
            .resolve(from)
            .filter(|m| pool.allocated.contains(*m))
            .ok_or(DomainError::NotFound { what: "allocation" })?;
        let to = self
            .resolve(to)
            .ok_or(DomainError::NotFound { what: "user" })?;
        if pool.allocated.contains(to) {
            return Err(DomainError::conflict(format!(
                "{to} already holds a seat of this pool"
            )));
        }
        let mut events = self.deactivations(Some(from), Some(&pool.id), now);
        events.push(Event::Transferred {
            pool: pool.id.clone(),
            from: from.clone(),
            to: to.clone(),
        });
        Ok(Applied {
            value: self.counts(pool),
            events,
        })
    }

    /// A page of the members holding the pool's seats (or on its entitled list).
    pub fn allocations(
        &self,
        actor: &MemberId,
        pool: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Member>, DomainError> {
        let pool = self.pool(actor, pool)?;
        let empty = BTreeSet::new();
        let set = match pool.kind {
            PoolKind::Named => &pool.allocated,
            PoolKind::Floating => pool.entitled.as_ref().unwrap_or(&empty),
        };
        Ok(page_of(
            (set.range::<str, _>(page::after(after))).filter_map(|m| self.members.get_key_value(m)),
            limit,
            |_| true,
            Member::clone,
        ))
    }

    /// The named seats `member` holds, bundle-included products listed with the
    /// bundle's pool.
    pub fn seats_of(&self, member: &MemberId, now: Timestamp) -> Vec<Seat> {
        self.pools
            .values()
            .filter(|p| p.holds(member) && p.is_active(now))
            .flat_map(|p| {
                p.products().map(|product| Seat {
                    product: product.to_owned(),
                    pool: p.id.clone(),
                })
            })
            .collect()
    }

    /// Whether `member` holds a named seat of `product`, directly or through a bundle.
    pub fn holds_seat_of(&self, member: &MemberId, product: &str, now: Timestamp) -> bool {
        self.pools
            .values()
            .any(|p| p.holds(member) && p.is_active(now) && p.products().any(|x| x == product))
    }

    /// A pool that allocations may change: one that has not expired.
    fn open_pool(&self, actor: &MemberId, id: &str, now: Timestamp) -> Result<&Pool, DomainError> {
        let pool = self.pool(actor, id)?;
        if !pool.is_active(now) {
            return Err(DomainError::PoolExpired);
        }
        Ok(pool)
    }

    /// Every one of `users` (ids or e-mails) as a member, without repeats; one unknown
    /// answers 404 and names it.
    fn resolve_all(&self, users: &[String]) -> Result<Vec<MemberId>, DomainError> {
        if users.is_empty() {
            return Err(DomainError::invalid("users", "name at least one member"));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for who in users {
            let id = self
                .resolve(who)
                .ok_or(DomainError::NotFound { what: "user" })?;
            if seen.insert(id) {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    fn allocated_in(&self, pool: &Pool, member: &MemberId) -> bool {
        match pool.kind {
            PoolKind::Named => pool.allocated.contains(member),
            PoolKind::Floating => pool.entitled.as_ref().is_some_and(|l| l.contains(member)),
        }
    }

    /// The pool's counts as they stand.
    pub fn counts(&self, pool: &Pool) -> AllocationCounts {
        let allocated = pool.allocated_count();
        let used = match pool.kind {
            PoolKind::Named => allocated,
            PoolKind::Floating => self.leases.live_in(&pool.id),
        };
        AllocationCounts {
            allocated,
            seats: pool.seats,
            free: pool.seats.saturating_sub(used),
        }
    }
}
