//! Sessions (leases) on floating pools, and the acquires that wait for a seat.
//!
//! Fairness is per pool: a waiter is served before any newcomer on every pool it could
//! use, and a newcomer may take a seat that no waiter could take (a pool whose lease
//! time or entitlement fits none of them). So one waiter that no pool can serve never
//! holds the others, or the newcomers, off seats it cannot use.

use std::sync::Arc;

use super::{Action, Applied, OrgState};
use crate::domain::event::EndReason;
use crate::domain::page::{self, page_of, Page};
use crate::domain::waiters::{WaitLimits, Waiter};
use crate::domain::{
    AcquireRequest, DomainError, Email, Event, KeyId, Lease, MemberId, Pool, PoolKind, SessionId,
    Timestamp,
};

/// A granted seat: the lease, and whether it is new (201) or the machine's live one (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub lease: Arc<Lease>,
    pub fresh: bool,
}

/// What serving the queue does next, one waiter at a time.
#[derive(Debug)]
pub enum Turn {
    /// A seat would go to this waiter, but its caller is gone: drop it, seatless.
    Gone(u64),
    /// This waiter's answer: its lease, or why it can have none any more.
    Answer(u64, Result<Applied<Acquired>, DomainError>),
}

/// Which live leases a listing shows; each field narrows it (user by id or e-mail).
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub product: Option<String>,
    pub pool: Option<String>,
    pub user: Option<String>,
}

/// A live lease as listed, with its holder's e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub lease: Lease,
    pub email: Option<Email>,
}

impl OrgState {
    /// A page of live leases (admins only), narrowed by `filter`. A filter naming no
    /// member matches nothing. Filters scan the leases in id order: an index per
    /// member or pool would cost memory on every lease for a rare admin read.
    pub fn sessions(
        &self,
        actor: &MemberId,
        filter: &SessionFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SessionRow>, DomainError> {
        self.require(actor, Action::ManageSessions)?;
        let user = match &filter.user {
            None => None,
            Some(who) => match self.resolve(who) {
                Some(id) => Some(id),
                None => {
                    return Ok(Page {
                        items: vec![],
                        next: None,
                    })
                }
            },
        };
        Ok(self.session_page(after, limit, |l| {
            user.is_none_or(|u| &l.member == u)
                && filter.product.as_deref().is_none_or(|p| &*l.product == p)
                && filter.pool.as_deref().is_none_or(|p| l.pool.as_str() == p)
        }))
    }

    /// A page of `member`'s own live leases: any key of theirs may list them.
    pub fn own_sessions(
        &self,
        member: &MemberId,
        after: Option<&str>,
        limit: usize,
    ) -> Page<SessionRow> {
        self.session_page(after, limit, |l| &l.member == member)
    }

    fn session_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&Lease) -> bool,
    ) -> Page<SessionRow> {
        page_of(
            self.leases.all().range::<_, str>(page::after(after)),
            limit,
            |l| keep(l),
            |l| SessionRow {
                lease: Lease::clone(l),
                email: self.members.get(&l.member).map(|m| m.email.clone()),
            },
        )
    }

    /// Grants a newcomer a seat, or returns the machine's live lease (renewed), or
    /// refuses. A newcomer never takes a seat that a waiter could take.
    pub fn acquire(
        &self,
        req: &AcquireRequest,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Applied<Acquired>, DomainError> {
        self.grant(req, id, now, true)
    }

    fn grant(
        &self,
        req: &AcquireRequest,
        id: SessionId,
        now: Timestamp,
        newcomer: bool,
    ) -> Result<Applied<Acquired>, DomainError> {
        // Authentication happened before the request reached this org; the key may have
        // been revoked since, and a lease it took then would outlive the revocation.
        if !self.key_live(&req.key, now) {
            return Err(DomainError::KeyRevoked);
        }
        let pools = self.entitled_pools(&req.member, &req.product, now)?;
        let longest = pools.iter().map(|p| p.ttl_seconds).max().unwrap_or(0);
        if let Some(ttl) = req.ttl_seconds {
            if ttl == 0 || ttl > longest {
                return Err(DomainError::invalid(
                    "ttl_seconds",
                    format!("must be between 1 and the pool's {longest}"),
                ));
            }
        }
        let mut events = Vec::new();
        if let Some(held) = self.machine_lease(req, now) {
            // The machine's lease is renewed only where a heartbeat would renew it;
            // otherwise it ends, and the acquire is decided afresh.
            if self.renewable(held, now).is_ok() {
                let mut lease = held.clone();
                lease.expires_at = now.plus_secs(lease.ttl_seconds as u64).ceil_secs();
                let lease = Arc::new(lease);
                let event = Event::LeaseRenewed {
                    id: lease.id.clone(),
                    expires_at: lease.expires_at,
                };
                return Ok(Applied {
                    value: Acquired {
                        lease,
                        fresh: false,
                    },
                    events: vec![event],
                });
            }
            events.push(Event::LeaseEnded {
                id: held.id.clone(),
                reason: EndReason::Replaced,
            });
        }
        let ttl = req.ttl_seconds.unwrap_or(0);
        let pool = pools.iter().find(|p| {
            p.ttl_seconds >= ttl
                && self.leases.live_in(&p.id) < p.seats
                && !(newcomer && self.a_waiter_could_use(p, now))
        });
        let Some(pool) = pool else {
            return Err(self.cap_reached(&req.member, &req.product, now));
        };
        let ttl_seconds = req.ttl_seconds.unwrap_or(pool.ttl_seconds);
        // The strings the org already holds, shared rather than copied (see `shared`).
        let member = self.members.get_key_value(&req.member).map(|(id, _)| id);
        let key = self.keys.get_key_value(&req.key).map(|(id, _)| id);
        let pool_id = self
            .pools
            .get_key_value(&pool.id)
            .map_or(&pool.id, |(id, _)| id);
        let lease = Arc::new(Lease {
            id,
            member: member.unwrap_or(&req.member).clone(),
            key: key.unwrap_or(&req.key).clone(),
            product: pool.product.clone(),
            pool: pool_id.clone(),
            fingerprint: req.fingerprint.as_deref().map(Arc::from),
            ttl_seconds,
            acquired_at: now,
            expires_at: now.plus_secs(ttl_seconds as u64).ceil_secs(),
            meta: req.meta.clone().map(Box::new),
        });
        events.push(Event::LeaseGranted(lease.clone()));
        Ok(Applied {
            value: Acquired { lease, fresh: true },
            events,
        })
    }

    /// The live lease of the request's machine, if it names one.
    fn machine_lease(&self, req: &AcquireRequest, now: Timestamp) -> Option<&Lease> {
        let fp = req.fingerprint.as_deref()?;
        self.leases
            .held_by(&req.member, &req.product, fp)
            .filter(|l| l.expires_at > now)
    }

    /// Whether a lease may be extended: its pool is active and still entitles its holder.
    /// Heartbeats and repeated acquires both ask this, so neither outlives its pool.
    fn renewable(&self, lease: &Lease, now: Timestamp) -> Result<(), DomainError> {
        let pool = self.pools.get(&lease.pool);
        if !pool.is_some_and(|p| p.is_active(now)) {
            return Err(DomainError::PoolExpired);
        }
        let entitled = self.members.contains_key(&lease.member)
            && pool.is_some_and(|p| p.entitles(&lease.member));
        if !entitled {
            return Err(DomainError::NotEntitled {
                product: lease.product.to_string(),
            });
        }
        Ok(())
    }

    /// Whether a live waiter for the pool's product could take a seat of `pool`.
    fn a_waiter_could_use(&self, pool: &Pool, now: Timestamp) -> bool {
        self.waiters.queue(&pool.product).any(|w| {
            w.deadline > now
                && self.key_live(&w.request.key, now)
                && pool.entitles(&w.request.member)
                && pool.ttl_seconds >= w.request.ttl_seconds.unwrap_or(0)
        })
    }

    /// Whether `key` is still there and unexpired: a request checked at the door may
    /// have lost its key while it was in flight.
    pub(super) fn key_live(&self, key: &KeyId, now: Timestamp) -> bool {
        self.keys
            .get(key)
            .is_some_and(|k| k.expires_at.is_none_or(|at| now < at))
    }

    /// Active floating pools of `product` that entitle `member`, oldest first.
    pub(super) fn entitled_pools<'a>(
        &'a self,
        member: &MemberId,
        product: &'a str,
        now: Timestamp,
    ) -> Result<Vec<&'a Pool>, DomainError> {
        let pools: Vec<&Pool> = self
            .active_floating(product, now)
            .filter(|p| p.entitles(member))
            .collect();
        if pools.is_empty() || !self.members.contains_key(member) {
            return Err(DomainError::NotEntitled {
                product: product.to_owned(),
            });
        }
        Ok(pools)
    }

    /// The floating pools of `product` that count at `now`, oldest first.
    fn active_floating<'a>(
        &'a self,
        product: &'a str,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a Pool> + 'a {
        self.pools.values().filter(move |p| {
            p.kind == PoolKind::Floating && *p.product == *product && p.is_active(now)
        })
    }

    fn cap_reached(&self, member: &MemberId, product: &str, now: Timestamp) -> DomainError {
        let pools = self
            .entitled_pools(member, product, now)
            .unwrap_or_default();
        let seats = pools.iter().map(|p| p.seats).sum();
        DomainError::SeatCapReached {
            product: product.to_owned(),
            seats,
            retry_after: self.retry_after(&pools, now),
        }
    }

    /// Seconds until the soonest lease of `pools` expires, at least 1.
    fn retry_after(&self, pools: &[&Pool], now: Timestamp) -> u64 {
        pools
            .iter()
            .filter_map(|p| self.leases.first_deadline_in(&p.id))
            .min()
            .map_or(1, |at| now.secs_until(at))
    }

    /// Extends a live lease of `member` by its lease time.
    pub fn heartbeat(
        &self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<Lease>, DomainError> {
        let lease = self.own_live_lease(member, id, now)?;
        self.renewable(lease, now)?;
        let mut lease = lease.clone();
        lease.expires_at = now.plus_secs(lease.ttl_seconds as u64).ceil_secs();
        let event = Event::LeaseRenewed {
            id: lease.id.clone(),
            expires_at: lease.expires_at,
        };
        Ok(Applied {
            value: lease,
            events: vec![event],
        })
    }

    /// Ends a lease of `member` at once.
    pub fn release(
        &self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let lease = self.own_live_lease(member, id, now)?;
        Ok(Applied {
            value: (),
            events: vec![Event::LeaseEnded {
                id: lease.id.clone(),
                reason: EndReason::Released,
            }],
        })
    }

    /// An admin ends any member's lease.
    pub fn end_session(&self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        self.require(actor, Action::ManageSessions)?;
        let lease = self.leases.get(id).ok_or(DomainError::SessionNotFound)?;
        Ok(Applied {
            value: (),
            events: vec![Event::LeaseEnded {
                id: lease.id.clone(),
                reason: EndReason::Ended,
            }],
        })
    }

    /// Another member's lease answers exactly like a missing one, so ids reveal nothing.
    fn own_live_lease(
        &self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<&Lease, DomainError> {
        self.leases
            .get(id)
            .filter(|l| &l.member == member && l.expires_at > now)
            .ok_or(DomainError::SessionNotFound)
    }

    /// Ends up to `limit` leases whose expiry has passed. The limit keeps one command
    /// (and the journal write behind it) small after a restart finds many expired.
    pub fn expire(&self, now: Timestamp, limit: usize) -> Applied<usize> {
        let events: Vec<Event> = self
            .leases
            .expired(now, limit)
            .into_iter()
            .map(|id| Event::LeaseEnded {
                id,
                reason: EndReason::Expired,
            })
            .collect();
        Applied {
            value: events.len(),
            events,
        }
    }

    /// Renewals that give every lease at least its ttl from `restart`. A heartbeat is
    /// acknowledged before its flush, so after a crash a lease's journaled expiry may be
    /// older than the one its holder was promised; this keeps that promise (a reclaim
    /// window, like NFSv4's grace period). A release lost the same way keeps its seat
    /// busy for at most one more ttl. A pool that expired renewed nothing after its
    /// expiry, so its leases get one ttl from then at most. Recovery applies these
    /// without journaling them, so every restart computes them anew from the journal.
    pub fn reclaim_window(&self, restart: Timestamp) -> Vec<Event> {
        self.leases
            .all()
            .values()
            .filter_map(|l| {
                let pool_end = self.pools.get(&l.pool).and_then(|p| p.expires_at);
                let from = pool_end.map_or(restart, |end| end.min(restart));
                let floor = from.plus_secs(l.ttl_seconds as u64).ceil_secs();
                (l.expires_at < floor).then(|| Event::LeaseRenewed {
                    id: l.id.clone(),
                    expires_at: floor,
                })
            })
            .collect()
    }

    // ---- waiting -----------------------------------------------------------------------

    /// Queues an acquire that found no free seat, within the waiting limits.
    pub fn enqueue(
        &mut self,
        waiter: Waiter,
        limits: WaitLimits,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let r = &waiter.request;
        let full = self.waiters.len() >= limits.per_org as usize
            || self.waiters.of_member(&r.member) >= limits.per_member
            || self.waiters.of_key(&r.key) >= limits.per_key;
        if full {
            let pools = self
                .entitled_pools(&r.member, &r.product, now)
                .unwrap_or_default();
            return Err(DomainError::RateLimited {
                retry_after: self.retry_after(&pools, now),
            });
        }
        self.waiters.push(waiter);
        Ok(())
    }

    /// A queued acquire.
    pub fn waiter(&self, id: u64) -> Option<&Waiter> {
        self.waiters.get(id)
    }

    /// Takes a waiter out of the queue (answered, timed out or gone).
    pub fn dequeue(&mut self, id: u64) -> Option<Waiter> {
        self.waiters.remove(id)
    }

    /// The next waiter to answer, first come first served on every pool it could use.
    /// `gone` tells whether a waiter's caller has left; it is asked only of a waiter
    /// about to get a seat, so a seat never goes to a caller that is not there. A
    /// waiter that no free seat fits costs a look at its product's pools, nothing more.
    pub fn next_turn(
        &self,
        now: Timestamp,
        mut gone: impl FnMut(u64) -> bool,
        new_id: impl Fn() -> SessionId,
    ) -> Option<Turn> {
        for product in self.waiters.products() {
            let free: Vec<&Pool> = self
                .active_floating(product, now)
                .filter(|p| self.leases.live_in(&p.id) < p.seats)
                .collect();
            if free.is_empty() {
                continue;
            }
            for w in self.waiters.queue(product) {
                let fits = |p: &&Pool| {
                    p.entitles(&w.request.member)
                        && p.ttl_seconds >= w.request.ttl_seconds.unwrap_or(0)
                };
                // Past its deadline it is answered by `timed_out`.
                if w.deadline <= now || !free.iter().any(fits) {
                    continue;
                }
                match self.grant(&w.request, new_id(), now, false) {
                    Err(DomainError::SeatCapReached { .. }) => continue,
                    Ok(_) if gone(w.id) => return Some(Turn::Gone(w.id)),
                    result => return Some(Turn::Answer(w.id, result)),
                }
            }
        }
        None
    }

    /// Waiters whose patience has ended, each with the answer a full pool gives.
    pub fn timed_out(&self, now: Timestamp) -> Vec<(u64, DomainError)> {
        self.waiters
            .timed_out(now)
            .into_iter()
            .filter_map(|id| self.waiters.get(id))
            .map(|w| {
                let r = &w.request;
                (w.id, self.cap_reached(&r.member, &r.product, now))
            })
            .collect()
    }

    /// Waiters that came with `key`.
    pub fn waiters_of_key(&self, key: &KeyId) -> Vec<u64> {
        self.waiters
            .ids()
            .into_iter()
            .filter(|id| self.waiters.get(*id).is_some_and(|w| &w.request.key == key))
            .collect()
    }

    /// The next instant at which time alone changes something: a lease expires, a
    /// waiter's patience ends or a pool expires.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.leases.next_deadline(),
            self.waiters.next_deadline(),
            self.next_pool_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The record of an acquire refused for want of a seat: it counts as a denial on
    /// every pool that could have served it.
    pub fn denial(&self, member: &MemberId, product: &str, now: Timestamp) -> Applied<()> {
        let pools: Vec<_> = (self
            .entitled_pools(member, product, now)
            .unwrap_or_default())
        .into_iter()
        .map(|p| p.id.clone())
        .collect();
        let events = if pools.is_empty() {
            vec![]
        } else {
            vec![Event::Denied { pools }]
        };
        Applied { value: (), events }
    }
}
