//! Seat pools: how many seats of a product an organization holds, and who may use them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DomainError, MemberId, PoolId, Timestamp};

/// How a pool's seats are consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
// The API description names its values (a derive only: no behaviour here).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Seats allocated to named members by an admin.
    Named,
    /// Seats consumed by live sessions of any entitled member.
    Floating,
}

/// Where the seats came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
// The API description names its values (a derive only: no behaviour here).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PoolSource {
    #[default]
    Purchased,
    Trial,
}

/// Longest lease time a pool may set, in seconds (one day).
pub const MAX_TTL_SECONDS: u32 = 86_400;
/// Largest seat count a pool may have.
pub const MAX_SEATS: u32 = 100_000_000;

/// A pool of seats of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub id: PoolId,
    /// Shared by every lease of the pool.
    pub product: std::sync::Arc<str>,
    pub kind: PoolKind,
    pub seats: u32,
    pub source: PoolSource,
    pub expires_at: Option<Timestamp>,
    pub includes: Vec<String>,
    /// `None`: every member is entitled; `Some`: only those listed.
    pub entitled: Option<BTreeSet<MemberId>>,
    pub ttl_seconds: u32,
    pub max_machines: u32,
    pub created_at: Timestamp,
    /// Members holding a seat of a named pool.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allocated: BTreeSet<MemberId>,
    /// Most sessions live at once since the pool was created.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peak: u32,
    /// Acquires refused while this pool, like every other that could serve them, was full.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub denials: u64,
    /// Set once the pool's expiry has been carried out (its allocations released); a
    /// later expiry set by `PATCH` clears it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lapsed: bool,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl Pool {
    /// Whether the pool still counts toward its product's quota at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// Whether `member` may run sessions on this pool.
    pub fn entitles(&self, member: &MemberId) -> bool {
        self.entitled
            .as_ref()
            .is_none_or(|list| list.contains(member))
    }

    /// Products a seat of this pool gives: its own, then those it includes.
    pub fn products(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.product).chain(self.includes.iter().map(String::as_str))
    }

    /// Seats handed out: named allocations, or a floating pool's explicit entitled list
    /// (0 while every member is entitled).
    pub fn allocated_count(&self) -> u32 {
        match self.kind {
            PoolKind::Named => self.allocated.len() as u32,
            PoolKind::Floating => self.entitled.as_ref().map_or(0, |l| l.len() as u32),
        }
    }

    /// Whether `member` holds a named seat of this pool.
    pub fn holds(&self, member: &MemberId) -> bool {
        self.kind == PoolKind::Named && self.allocated.contains(member)
    }
}

/// What an admin asks for when creating a pool, already parsed from the wire.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub product: String,
    pub kind: PoolKind,
    pub seats: i64,
    pub source: PoolSource,
    pub expires_at: Option<Timestamp>,
    pub includes: Vec<String>,
    pub entitled: Option<Vec<String>>,
    pub ttl_seconds: Option<i64>,
    pub max_machines: Option<i64>,
}

/// A change to a pool; `expires_at: Some(None)` removes the expiry.
#[derive(Debug, Clone, Default)]
pub struct PoolPatch {
    pub seats: Option<i64>,
    pub expires_at: Option<Option<Timestamp>>,
}

/// Checks a seat count against the bounds every pool keeps.
pub fn check_seats(seats: i64) -> Result<u32, DomainError> {
    if (1..=MAX_SEATS as i64).contains(&seats) {
        Ok(seats as u32)
    } else {
        Err(DomainError::invalid(
            "seats",
            format!("must be between 1 and {MAX_SEATS}"),
        ))
    }
}

/// Checks a product name: 1–64 characters of letters, digits, `-`, `_` or `.`.
pub fn check_product(field: &'static str, product: &str) -> Result<(), DomainError> {
    let ok = !product.is_empty()
        && product.len() <= 64
        && product
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must be 1-64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

/// Checks a lease time in seconds: at least 1, at most a day.
pub fn check_ttl(seconds: i64) -> Result<u32, DomainError> {
    if (1..=MAX_TTL_SECONDS as i64).contains(&seconds) {
        Ok(seconds as u32)
    } else {
        Err(DomainError::invalid(
            "ttl_seconds",
            format!("must be between 1 and {MAX_TTL_SECONDS}"),
        ))
    }
}
