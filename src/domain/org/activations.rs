//! Activations: a member's machines, each recorded for a product and checked offline
//! with a signed token between refreshes. Named products need a seat and respect the
//! pool's `max_machines`; floating products need entitlement, and consume seats only
//! through sessions.

use super::{Action, Applied, OrgState};
use crate::domain::activation::{MAX_FLOATING_MACHINES, MAX_HOSTNAME};
use crate::domain::lease::check_fingerprint;
use crate::domain::page::{self, page_of, Page};
use crate::domain::pool::check_product;
use crate::domain::{
    Activation, ActivationId, DomainError, Event, KeyId, MemberId, PoolId, PoolKind, Timestamp,
};

/// A machine to activate, as a member's runtime asks.
#[derive(Debug, Clone)]
pub struct ActivateRequest {
    pub member: MemberId,
    /// The key the request came with: revoked while the request was in flight, it
    /// activates nothing.
    pub key: KeyId,
    pub product: String,
    pub fingerprint: String,
    pub hostname: Option<String>,
}

impl OrgState {
    /// Activates the machine, or answers its live activation (`false`: not new).
    pub fn activate(
        &self,
        req: ActivateRequest,
        id: ActivationId,
        now: Timestamp,
    ) -> Result<Applied<(Activation, bool)>, DomainError> {
        if !self.key_live(&req.key, now) {
            return Err(DomainError::KeyRevoked);
        }
        check_product("product", &req.product)?;
        check_fingerprint(&req.fingerprint)?;
        if let Some(h) = &req.hostname {
            if h.is_empty() || h.len() > MAX_HOSTNAME {
                return Err(DomainError::invalid(
                    "hostname",
                    format!("must be 1-{MAX_HOSTNAME} bytes"),
                ));
            }
        }
        let not_entitled = || DomainError::NotEntitled {
            product: req.product.clone(),
        };
        // A named seat first (directly or through a bundle), else a floating pool's
        // entitlement.
        let named = self.pools.values().find(|p| {
            p.holds(&req.member) && p.is_active(now) && p.products().any(|x| x == req.product)
        });
        let (pool, limit) = match named {
            Some(p) => (p.id.clone(), p.max_machines),
            None => {
                let floating = self
                    .entitled_pools(&req.member, &req.product, now)
                    .map_err(|_| not_entitled())?;
                (floating[0].id.clone(), MAX_FLOATING_MACHINES)
            }
        };
        let mine: Vec<&Activation> = (self.activations.values())
            .filter(|a| a.is_active() && a.member == req.member && a.product == req.product)
            .collect();
        if let Some(a) = mine.iter().find(|a| a.fingerprint == req.fingerprint) {
            let mut a = (*a).clone();
            a.last_seen_at = now;
            return Ok(Applied {
                events: vec![Event::ActivationSeen {
                    id: a.id.clone(),
                    at: now,
                }],
                value: (a, false),
            });
        }
        if mine.len() as u32 >= limit {
            return Err(DomainError::MachineLimitReached {
                machines: mine.into_iter().cloned().collect(),
            });
        }
        let activation = Activation {
            id,
            member: req.member,
            product: req.product,
            pool,
            fingerprint: req.fingerprint,
            hostname: req.hostname,
            activated_at: now,
            last_seen_at: now,
            deactivated_at: None,
        };
        Ok(Applied {
            events: vec![Event::Activated(activation.clone())],
            value: (activation, true),
        })
    }

    /// Refreshes a member's own live activation, while its pool still allows it.
    pub fn refresh_activation(
        &self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<Activation>, DomainError> {
        let a = self.own_activation(member, id)?;
        let allowed = self.pools.get(&a.pool).is_some_and(|p| {
            p.is_active(now)
                && match p.kind {
                    PoolKind::Named => p.holds(member),
                    PoolKind::Floating => p.entitles(member),
                }
        });
        if !allowed {
            return Err(DomainError::NotEntitled {
                product: a.product.clone(),
            });
        }
        let mut a = a.clone();
        a.last_seen_at = now;
        Ok(Applied {
            events: vec![Event::ActivationSeen {
                id: a.id.clone(),
                at: now,
            }],
            value: a,
        })
    }

    /// Deactivates a machine: the member's own, or any for an admin.
    pub fn deactivate(
        &self,
        actor: &MemberId,
        id: &str,
        as_admin: bool,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let a = if as_admin {
            self.require(actor, Action::ManageSessions)?;
            (self.activations.get(id))
                .filter(|a| a.is_active())
                .ok_or(DomainError::NotFound { what: "activation" })?
        } else {
            self.own_activation(actor, id)?
        };
        Ok(Applied {
            value: (),
            events: vec![Event::Deactivated {
                id: a.id.clone(),
                at: now,
            }],
        })
    }

    /// A page of activations (admins only): the active ones, or all with `all`.
    pub fn activations(
        &self,
        actor: &MemberId,
        all: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Activation>, DomainError> {
        self.require(actor, Action::ManageSessions)?;
        Ok(page_of(
            self.activations.range::<str, _>(page::after(after)),
            limit,
            |a| all || a.is_active(),
            Activation::clone,
        ))
    }

    /// Active machines activated through `pool`.
    pub(super) fn activated_in(&self, pool: &PoolId) -> u32 {
        (self.activations.values())
            .filter(|a| a.is_active() && &a.pool == pool)
            .count() as u32
    }

    /// The deactivations of `member`'s machines activated through `pool` (any member's
    /// with `None`; any pool's with `None`), for changes that take away what allowed them.
    pub(super) fn deactivations(
        &self,
        member: Option<&MemberId>,
        pool: Option<&PoolId>,
        now: Timestamp,
    ) -> Vec<Event> {
        (self.activations.values())
            .filter(|a| a.is_active())
            .filter(|a| member.is_none_or(|m| &a.member == m))
            .filter(|a| pool.is_none_or(|p| &a.pool == p))
            .map(|a| Event::Deactivated {
                id: a.id.clone(),
                at: now,
            })
            .collect()
    }

    /// A member's own live activation; another member's answers as a missing one.
    fn own_activation(&self, member: &MemberId, id: &str) -> Result<&Activation, DomainError> {
        (self.activations.get(id))
            .filter(|a| a.is_active() && &a.member == member)
            .ok_or(DomainError::NotFound { what: "activation" })
    }
}
