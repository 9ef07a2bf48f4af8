//! Seat pools: created, changed and deleted by admins.

use super::{Action, Applied, OrgState, PoolStatus, DEFAULT_MAX_MACHINES, DEFAULT_TTL_SECONDS};
use crate::domain::page::{self, page_of, Page};
use crate::domain::pool::{check_product, check_seats, check_ttl};
use crate::domain::{
    DomainError, Event, MemberId, Pool, PoolId, PoolKind, PoolPatch, PoolSpec, Release, Timestamp,
};

impl OrgState {
    /// A pool by id (admins only).
    pub fn pool(&self, actor: &MemberId, id: &str) -> Result<&Pool, DomainError> {
        self.require(actor, Action::ManagePools)?;
        self.pools
            .get(id)
            .ok_or(DomainError::NotFound { what: "pool" })
    }

    /// A page of pools with their live and waiting counts (admins only); with
    /// `product`, only the pools that give seats of it (bundles included).
    pub fn pools(
        &self,
        actor: &MemberId,
        product: Option<&str>,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<Page<PoolStatus>, DomainError> {
        self.require(actor, Action::ManagePools)?;
        Ok(page_of(
            self.pools.range::<str, _>(page::after(after)),
            limit,
            |p| product.is_none_or(|want| p.products().any(|x| x == want)),
            |p| self.pool_status(p, now),
        ))
    }

    /// Creates a pool from an admin's spec.
    pub fn create_pool(
        &self,
        actor: &MemberId,
        id: PoolId,
        spec: PoolSpec,
        now: Timestamp,
    ) -> Result<Applied<Pool>, DomainError> {
        self.require(actor, Action::ManagePools)?;
        check_product("product", &spec.product)?;
        let seats = check_seats(spec.seats)?;
        if spec.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expires_at", "must be in the future"));
        }
        if spec.kind == PoolKind::Floating && !spec.includes.is_empty() {
            return Err(DomainError::invalid(
                "includes",
                "bundles are of named seats; a floating pool includes nothing",
            ));
        }
        for p in &spec.includes {
            check_product("includes", p)?;
            if *p == spec.product {
                return Err(DomainError::invalid(
                    "includes",
                    "a pool cannot include its own product",
                ));
            }
        }
        let entitled = match spec.entitled {
            None => None,
            Some(_) if spec.kind == PoolKind::Named => {
                return Err(DomainError::invalid(
                    "entitled",
                    "named pools are given to members through allocations",
                ))
            }
            Some(list) => Some(
                list.iter()
                    .map(|who| {
                        self.resolve(who).cloned().ok_or_else(|| {
                            DomainError::invalid("entitled", format!("{who:?} is not a member"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let ttl_seconds = check_ttl(spec.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS as i64))?;
        let max_machines = match spec.max_machines {
            None => DEFAULT_MAX_MACHINES,
            Some(n @ 1..=1000) => n as u32,
            Some(_) => {
                return Err(DomainError::invalid(
                    "max_machines",
                    "must be between 1 and 1000",
                ))
            }
        };
        let mut includes = spec.includes;
        includes.sort();
        includes.dedup();
        let pool = Pool {
            id,
            product: spec.product.into(),
            kind: spec.kind,
            seats,
            source: spec.source,
            expires_at: spec.expires_at,
            includes,
            entitled,
            ttl_seconds,
            max_machines,
            created_at: now,
            allocated: Default::default(),
            peak: 0,
            denials: 0,
            lapsed: false,
        };
        Ok(Applied {
            value: pool.clone(),
            events: vec![Event::PoolCreated(pool)],
        })
    }

    /// Changes a pool's seats or expiry. Seats never drop below the live sessions, so
    /// live ≤ seats holds at every instant, not only for new acquires.
    pub fn update_pool(
        &self,
        actor: &MemberId,
        id: &str,
        patch: PoolPatch,
        now: Timestamp,
    ) -> Result<Applied<PoolStatus>, DomainError> {
        let mut pool = self.pool(actor, id)?.clone();
        if let Some(seats) = patch.seats {
            let seats = check_seats(seats)?;
            let allocated = pool.allocated.len() as u32;
            if seats < allocated {
                return Err(DomainError::Conflict {
                    message: format!(
                        "{allocated} seats of this pool are allocated; revoke some first"
                    ),
                    live: None,
                    allocated: Some(allocated),
                });
            }
            let live = self.leases.live_in(&pool.id);
            if seats < live {
                return Err(DomainError::Conflict {
                    message: format!("{live} sessions are live on this pool; end them first"),
                    live: Some(live),
                    allocated: None,
                });
            }
            pool.seats = seats;
        }
        if let Some(expires_at) = patch.expires_at {
            if expires_at.is_some_and(|at| at <= now) {
                return Err(DomainError::invalid("expires_at", "must be in the future"));
            }
            pool.expires_at = expires_at;
            // A new expiry is carried out anew when it comes.
            pool.lapsed = false;
        }
        Ok(Applied {
            value: self.pool_status(&pool, now),
            events: vec![Event::PoolChanged(pool)],
        })
    }

    /// Deletes a pool that has no live session.
    pub fn delete_pool(
        &self,
        actor: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let pool = self.pool(actor, id)?;
        let live = self.leases.live_in(&pool.id);
        if live > 0 {
            return Err(DomainError::Conflict {
                message: format!("{live} sessions are live on this pool; end them first"),
                live: Some(live),
                allocated: None,
            });
        }
        let mut events = self.deactivations(None, Some(&pool.id), now);
        // Released one by one, so the audit log names every member who lost a seat.
        events.extend(pool.allocated.iter().map(|m| Event::Deallocated {
            pool: pool.id.clone(),
            member: m.clone(),
            reason: Release::Revoked,
        }));
        events.push(Event::PoolDeleted {
            id: pool.id.clone(),
        });
        Ok(Applied { value: (), events })
    }

    /// Carries out the expiry of every pool whose `expires_at` has passed: its named
    /// allocations are released. Its sessions end on their own, never renewed.
    pub fn lapse_pools(&self, now: Timestamp) -> Applied<()> {
        let mut events = Vec::new();
        for p in (self.pools.values()).filter(|p| !p.lapsed && !p.is_active(now)) {
            events.extend(self.deactivations(None, Some(&p.id), now));
            events.push(Event::PoolLapsed { id: p.id.clone() });
        }
        Applied { value: (), events }
    }

    /// The soonest expiry of a pool not yet carried out.
    pub(super) fn next_pool_expiry(&self) -> Option<Timestamp> {
        (self.pools.values())
            .filter(|p| !p.lapsed)
            .filter_map(|p| p.expires_at)
            .min()
    }
}
