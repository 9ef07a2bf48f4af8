//! Usage: what an organization holds and uses, per pool and per product.

use std::collections::BTreeMap;

use super::{Action, OrgState};
use crate::domain::{DomainError, MemberId, PoolId, PoolKind, Timestamp};

/// One pool's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub id: PoolId,
    pub product: String,
    pub kind: PoolKind,
    pub seats: u32,
    /// Named seats allocated, or a floating pool's entitled list (0: everyone).
    pub allocated: u32,
    /// Machines activated through this pool.
    pub activated: u32,
    /// Sessions live now.
    pub live: u32,
    /// Most sessions live at once since the pool was created.
    pub peak: u32,
    /// Acquires refused while the pool was full.
    pub denials: u64,
    pub expired: bool,
}

/// One product's totals over its non-expired pools, bundles included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductUsage {
    pub product: String,
    pub seats: u32,
    pub allocated: u32,
    pub live: u32,
}

/// The usage report of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub pools: Vec<PoolUsage>,
    pub products: Vec<ProductUsage>,
}

/// One pool's figures for the server's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFigures<'a> {
    pub id: &'a PoolId,
    pub product: &'a str,
    pub seats: u32,
    pub allocated: u32,
    pub live: u32,
}

impl OrgState {
    /// Every pool's seats, allocations and live leases, for the server's own metrics
    /// (no caller to authorize).
    pub fn pool_figures(&self) -> impl Iterator<Item = PoolFigures<'_>> {
        self.pools.values().map(|p| PoolFigures {
            id: &p.id,
            product: &p.product,
            seats: p.seats,
            allocated: p.allocated_count(),
            live: self.leases.live_in(&p.id),
        })
    }

    /// Every pool's figures as of `now` and each product's totals (admins only). A
    /// product whose pools all expired is listed with no seats.
    pub fn usage(&self, actor: &MemberId, now: Timestamp) -> Result<Usage, DomainError> {
        self.require(actor, Action::ReadReports)?;
        let mut products: BTreeMap<&str, ProductUsage> = BTreeMap::new();
        let mut pools = Vec::with_capacity(self.pools.len());
        for p in self.pools.values() {
            let expired = !p.is_active(now);
            let live = self.leases.live_in(&p.id);
            let allocated = p.allocated_count();
            pools.push(PoolUsage {
                id: p.id.clone(),
                product: p.product.to_string(),
                kind: p.kind,
                seats: p.seats,
                allocated,
                activated: self.activated_in(&p.id),
                live,
                peak: p.peak,
                denials: p.denials,
                expired,
            });
            for (i, product) in p.products().enumerate() {
                let total = products.entry(product).or_insert_with(|| ProductUsage {
                    product: product.to_owned(),
                    seats: 0,
                    allocated: 0,
                    live: 0,
                });
                if expired {
                    continue;
                }
                total.seats = total.seats.saturating_add(p.seats);
                total.allocated += allocated;
                // Sessions run on the pool's own product only.
                if i == 0 {
                    total.live += live;
                }
            }
        }
        Ok(Usage {
            pools,
            products: products.into_values().collect(),
        })
    }
}
