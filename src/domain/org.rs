//! One organization's state and the commands that change it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::event::EndReason;
use super::lease::Leases;
use super::page::{page_of, Page};
use super::pool::{check_product, check_seats, check_ttl};
use super::{
    AcquireRequest, ApiKey, DomainError, Email, Event, KeyId, Lease, Member, MemberId, OrgId, Pool,
    PoolId, PoolKind, PoolPatch, PoolSpec, SessionId, TenantRole, Timestamp,
};

/// Lease time of a pool created without `ttl_seconds`.
pub const DEFAULT_TTL_SECONDS: u32 = 60;
/// Machines per member and product of a pool created without `max_machines`.
pub const DEFAULT_MAX_MACHINES: u32 = 2;

/// The outcome of a command: its answer and the events that must be journaled.
#[derive(Debug)]
pub struct Applied<T> {
    pub value: T,
    pub events: Vec<Event>,
}

/// A granted seat: the lease, and whether it is new (201) or the machine's live one (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    pub lease: Lease,
    pub fresh: bool,
}

/// A pool with what is happening on it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub pool: Pool,
    /// Live sessions on this pool.
    pub live: u32,
    /// Acquires queued for this pool's product.
    pub waiting: u32,
}

/// A queued acquire, waiting for a seat of its product until `deadline`.
#[derive(Debug, Clone)]
struct Waiter {
    id: u64,
    request: AcquireRequest,
    deadline: Timestamp,
}

/// Everything one organization owns. Mutated only by [`OrgState::apply`].
#[derive(Debug, Clone)]
pub struct OrgState {
    id: OrgId,
    name: String,
    created_at: Timestamp,
    members: BTreeMap<MemberId, Member>,
    emails: HashMap<Email, MemberId>,
    keys: BTreeMap<KeyId, ApiKey>,
    pools: BTreeMap<PoolId, Pool>,
    leases: Leases,
    /// FIFO per product. Not journaled: a waiter is a request still in flight, and is
    /// answered (or loses its connection) before anything about it is acknowledged.
    waiters: HashMap<String, VecDeque<Waiter>>,
}

/// The durable image of an [`OrgState`], written to compact the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
    pub members: Vec<Member>,
    pub keys: Vec<ApiKey>,
    pub pools: Vec<Pool>,
    pub leases: Vec<Lease>,
}

impl OrgState {
    /// A new organization with its owner and the owner's first key.
    pub fn found(
        id: OrgId,
        name: &str,
        owner: Member,
        key: ApiKey,
        now: Timestamp,
    ) -> Result<Applied<OrgState>, DomainError> {
        let name = check_name("name", name)?;
        let mut state = OrgState::empty(id.clone());
        let events = vec![
            Event::OrgFounded { id, name, at: now },
            Event::MemberAdded(Member {
                tenant_roles: vec![TenantRole::Owner],
                ..owner
            }),
            Event::KeyCreated(key),
        ];
        for e in &events {
            state.apply(e);
        }
        Ok(Applied {
            value: state,
            events,
        })
    }

    /// An organization with nothing in it, to replay a journal into.
    pub fn empty(id: OrgId) -> OrgState {
        OrgState {
            id,
            name: String::new(),
            created_at: Timestamp(0),
            members: BTreeMap::new(),
            emails: HashMap::new(),
            keys: BTreeMap::new(),
            pools: BTreeMap::new(),
            leases: Leases::default(),
            waiters: HashMap::new(),
        }
    }

    /// Rebuilds the state a snapshot was taken of.
    pub fn restore(s: Snapshot) -> OrgState {
        let mut state = OrgState::empty(s.id.clone());
        state.apply(&Event::OrgFounded {
            id: s.id,
            name: s.name,
            at: s.created_at,
        });
        let events = (s.members.into_iter().map(Event::MemberAdded))
            .chain(s.keys.into_iter().map(Event::KeyCreated))
            .chain(s.pools.into_iter().map(Event::PoolCreated))
            .chain(s.leases.into_iter().map(Event::LeaseGranted));
        for e in events {
            state.apply(&e);
        }
        state
    }

    /// The durable image of this state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            members: self.members.values().cloned().collect(),
            keys: self.keys.values().cloned().collect(),
            pools: self.pools.values().cloned().collect(),
            leases: self.leases.all().values().cloned().collect(),
        }
    }

    /// The one place state changes: live commands and journal replay both come through here.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::OrgFounded { id, name, at } => {
                self.id = id.clone();
                self.name = name.clone();
                self.created_at = *at;
            }
            Event::MemberAdded(m) => {
                self.emails.insert(m.email.clone(), m.id.clone());
                self.members.insert(m.id.clone(), m.clone());
            }
            Event::KeyCreated(k) => {
                self.keys.insert(k.id.clone(), k.clone());
            }
            Event::KeyRevoked { id } => {
                self.keys.remove(id);
            }
            Event::PoolCreated(p) | Event::PoolChanged(p) => {
                self.pools.insert(p.id.clone(), p.clone());
            }
            Event::PoolDeleted { id } => {
                self.pools.remove(id);
            }
            Event::LeaseGranted(l) => self.leases.insert(l.clone()),
            Event::LeaseRenewed { id, expires_at } => self.leases.renew(id, *expires_at),
            Event::LeaseEnded { id, .. } => {
                self.leases.remove(id);
            }
        }
    }

    fn commit<T>(&mut self, value: T, events: Vec<Event>) -> Applied<T> {
        for e in &events {
            self.apply(e);
        }
        Applied { value, events }
    }

    // ---- reads -------------------------------------------------------------------------

    /// The organization's id.
    pub fn id(&self) -> &OrgId {
        &self.id
    }

    /// The organization's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every API key, for the authentication index.
    pub fn keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.keys.values()
    }

    /// The number of things whose image a snapshot must write.
    pub fn size(&self) -> usize {
        self.members.len() + self.keys.len() + self.pools.len() + self.leases.len()
    }

    /// The number of live leases.
    pub fn sessions_live(&self) -> usize {
        self.leases.len()
    }

    /// The live lease with this id.
    pub fn lease(&self, id: &str) -> Option<&Lease> {
        self.leases.get(id)
    }

    /// The member `actor` if they are an owner or administrator.
    pub fn admin(&self, actor: &MemberId) -> Result<&Member, DomainError> {
        match self.members.get(actor) {
            Some(m) if m.is_admin() => Ok(m),
            _ => Err(DomainError::Forbidden(
                "only an owner or administrator may do this",
            )),
        }
    }

    /// A member by id, visible to themselves and to admins.
    pub fn member(&self, actor: &MemberId, id: &str) -> Result<&Member, DomainError> {
        if actor.as_str() != id {
            self.admin(actor)?;
        }
        self.members
            .get(id)
            .ok_or(DomainError::NotFound { what: "user" })
    }

    /// A page of members (admins only).
    pub fn members(
        &self,
        actor: &MemberId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Member>, DomainError> {
        self.admin(actor)?;
        Ok(page_of(
            &self.members,
            after,
            limit,
            |_| true,
            Member::clone,
        ))
    }

    /// A page of one member's keys, for themselves or an admin.
    pub fn keys_of(
        &self,
        actor: &MemberId,
        member: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>, DomainError> {
        let member = self.member(actor, member)?.id.clone();
        Ok(page_of(
            &self.keys,
            after,
            limit,
            |k| k.member == member,
            ApiKey::clone,
        ))
    }

    /// A pool by id (admins only).
    pub fn pool(&self, actor: &MemberId, id: &str) -> Result<&Pool, DomainError> {
        self.admin(actor)?;
        self.pools
            .get(id)
            .ok_or(DomainError::NotFound { what: "pool" })
    }

    /// A pool and its live and waiting counts.
    pub fn pool_status(&self, pool: &Pool) -> PoolStatus {
        PoolStatus {
            pool: pool.clone(),
            live: self.leases.live_in(&pool.id),
            waiting: self
                .waiters
                .get(&pool.product)
                .map_or(0, |q| q.len() as u32),
        }
    }

    /// A page of pools with their live and waiting counts (admins only).
    pub fn pools(
        &self,
        actor: &MemberId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<PoolStatus>, DomainError> {
        self.admin(actor)?;
        Ok(page_of(
            &self.pools,
            after,
            limit,
            |_| true,
            |p| self.pool_status(p),
        ))
    }

    /// A page of live leases (admins only).
    pub fn sessions(
        &self,
        actor: &MemberId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Lease>, DomainError> {
        self.admin(actor)?;
        Ok(page_of(
            self.leases.all(),
            after,
            limit,
            |_| true,
            Lease::clone,
        ))
    }

    /// The member named by id or by e-mail.
    fn resolve(&self, who: &str) -> Option<&MemberId> {
        if let Some((id, _)) = self.members.get_key_value(who) {
            return Some(id);
        }
        Email::parse(who).ok().and_then(|e| self.emails.get(&e))
    }

    // ---- members and keys --------------------------------------------------------------

    /// Adds a member; `owner` cannot be given this way (there is exactly one).
    pub fn add_member(
        &mut self,
        actor: &MemberId,
        member: Member,
    ) -> Result<Applied<Member>, DomainError> {
        self.admin(actor)?;
        if member.tenant_roles.contains(&TenantRole::Owner) {
            return Err(DomainError::invalid(
                "tenant_roles",
                "an organization has exactly one owner; ownership is transferred, not assigned",
            ));
        }
        if let Some(name) = &member.name {
            check_name("name", name)?;
        }
        if self.emails.contains_key(&member.email) {
            return Err(DomainError::conflict(format!(
                "{} is already a member",
                member.email.as_str()
            )));
        }
        let mut member = member;
        member.tenant_roles.sort();
        member.tenant_roles.dedup();
        Ok(self.commit(member.clone(), vec![Event::MemberAdded(member)]))
    }

    /// Stores a new key of `key.member`; members create their own, admins anyone's.
    pub fn create_key(
        &mut self,
        actor: &MemberId,
        key: ApiKey,
        now: Timestamp,
    ) -> Result<Applied<ApiKey>, DomainError> {
        self.member(actor, key.member.as_str())?;
        check_name("name", &key.name)?;
        if key.scopes.is_empty() {
            return Err(DomainError::invalid(
                "scopes",
                "name at least one of \"sessions\", \"admin\"",
            ));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expires_at", "must be in the future"));
        }
        let mut key = key;
        key.scopes.sort();
        key.scopes.dedup();
        Ok(self.commit(key.clone(), vec![Event::KeyCreated(key)]))
    }

    /// Revokes a key: its holder or an admin may.
    pub fn revoke_key(&mut self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        let key = self
            .keys
            .get(id)
            .ok_or(DomainError::NotFound { what: "api key" })?;
        if &key.member != actor {
            self.admin(actor)?;
        }
        let id = key.id.clone();
        Ok(self.commit((), vec![Event::KeyRevoked { id }]))
    }

    // ---- pools -------------------------------------------------------------------------

    /// Creates a pool from an admin's spec.
    pub fn create_pool(
        &mut self,
        actor: &MemberId,
        id: PoolId,
        spec: PoolSpec,
        now: Timestamp,
    ) -> Result<Applied<Pool>, DomainError> {
        self.admin(actor)?;
        check_product("product", &spec.product)?;
        let seats = check_seats(spec.seats)?;
        if spec.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expires_at", "must be in the future"));
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
            product: spec.product,
            kind: spec.kind,
            seats,
            source: spec.source,
            expires_at: spec.expires_at,
            includes,
            entitled,
            ttl_seconds,
            max_machines,
            created_at: now,
        };
        Ok(self.commit(pool.clone(), vec![Event::PoolCreated(pool)]))
    }

    /// Changes a pool's seats or expiry. Seats never drop below the live sessions, so
    /// live ≤ seats holds at every instant, not only for new acquires.
    pub fn update_pool(
        &mut self,
        actor: &MemberId,
        id: &str,
        patch: PoolPatch,
        now: Timestamp,
    ) -> Result<Applied<Pool>, DomainError> {
        let mut pool = self.pool(actor, id)?.clone();
        if let Some(seats) = patch.seats {
            let seats = check_seats(seats)?;
            let live = self.leases.live_in(&pool.id);
            if seats < live {
                return Err(DomainError::Conflict {
                    message: format!("{live} sessions are live on this pool; end them first"),
                    live: Some(live),
                });
            }
            pool.seats = seats;
        }
        if let Some(expires_at) = patch.expires_at {
            if expires_at.is_some_and(|at| at <= now) {
                return Err(DomainError::invalid("expires_at", "must be in the future"));
            }
            pool.expires_at = expires_at;
        }
        Ok(self.commit(pool.clone(), vec![Event::PoolChanged(pool)]))
    }

    /// Deletes a pool that has no live session.
    pub fn delete_pool(&mut self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        let pool = self.pool(actor, id)?;
        let live = self.leases.live_in(&pool.id);
        if live > 0 {
            return Err(DomainError::Conflict {
                message: format!("{live} sessions are live on this pool; end them first"),
                live: Some(live),
            });
        }
        let id = pool.id.clone();
        Ok(self.commit((), vec![Event::PoolDeleted { id }]))
    }

    // ---- sessions ----------------------------------------------------------------------

    /// Grants a seat, or returns the machine's live lease (renewed), or refuses.
    ///
    /// Waiters are served first: while anyone waits for the product, a new acquire is
    /// refused as if the pool were full, so a queued request is never overtaken.
    pub fn acquire(
        &mut self,
        req: &AcquireRequest,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Applied<Acquired>, DomainError> {
        if self
            .waiters
            .get(&req.product)
            .is_some_and(|q| !q.is_empty())
            && self.renewable_lease(req, now).is_none()
        {
            self.entitled_pools(&req.member, &req.product, now)?;
            return Err(self.cap_reached(&req.member, &req.product, now));
        }
        self.grant(req, id, now)
    }

    fn renewable_lease(&self, req: &AcquireRequest, now: Timestamp) -> Option<&Lease> {
        let fp = req.fingerprint.as_deref()?;
        self.leases
            .held_by(&req.member, &req.product, fp)
            .filter(|l| l.expires_at > now)
    }

    fn grant(
        &mut self,
        req: &AcquireRequest,
        id: SessionId,
        now: Timestamp,
    ) -> Result<Applied<Acquired>, DomainError> {
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
        if let Some(live) = self.renewable_lease(req, now) {
            let mut lease = live.clone();
            lease.expires_at = now.plus_secs(lease.ttl_seconds as u64).ceil_secs();
            let event = Event::LeaseRenewed {
                id: lease.id.clone(),
                expires_at: lease.expires_at,
            };
            return Ok(self.commit(
                Acquired {
                    lease,
                    fresh: false,
                },
                vec![event],
            ));
        }
        let ttl = req.ttl_seconds;
        let pool = pools
            .iter()
            .find(|p| p.ttl_seconds >= ttl.unwrap_or(0) && self.leases.live_in(&p.id) < p.seats);
        let Some(pool) = pool else {
            return Err(self.cap_reached(&req.member, &req.product, now));
        };
        let ttl_seconds = ttl.unwrap_or(pool.ttl_seconds);
        let lease = Lease {
            id,
            member: req.member.clone(),
            product: req.product.clone(),
            pool: pool.id.clone(),
            fingerprint: req.fingerprint.clone(),
            ttl_seconds,
            acquired_at: now,
            expires_at: now.plus_secs(ttl_seconds as u64).ceil_secs(),
            meta: req.meta.clone(),
        };
        Ok(self.commit(
            Acquired {
                lease: lease.clone(),
                fresh: true,
            },
            vec![Event::LeaseGranted(lease)],
        ))
    }

    /// Active floating pools of `product` that entitle `member`, oldest first.
    fn entitled_pools(
        &self,
        member: &MemberId,
        product: &str,
        now: Timestamp,
    ) -> Result<Vec<&Pool>, DomainError> {
        let pools: Vec<&Pool> = self
            .pools
            .values()
            .filter(|p| {
                p.kind == PoolKind::Floating
                    && p.product == product
                    && p.is_active(now)
                    && p.entitles(member)
            })
            .collect();
        if pools.is_empty() || !self.members.contains_key(member) {
            return Err(DomainError::NotEntitled {
                product: product.to_owned(),
            });
        }
        Ok(pools)
    }

    fn cap_reached(&self, member: &MemberId, product: &str, now: Timestamp) -> DomainError {
        let pools = self
            .entitled_pools(member, product, now)
            .unwrap_or_default();
        let seats = pools.iter().map(|p| p.seats).sum();
        let soonest = pools
            .iter()
            .filter_map(|p| self.leases.first_deadline_in(&p.id))
            .min();
        DomainError::SeatCapReached {
            product: product.to_owned(),
            seats,
            retry_after: soonest.map_or(1, |at| now.secs_until(at)),
        }
    }

    /// Extends a live lease of `member` by its lease time.
    pub fn heartbeat(
        &mut self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<Lease>, DomainError> {
        let lease = self.own_live_lease(member, id, now)?;
        let active = self
            .pools
            .get(&lease.pool)
            .is_some_and(|p| p.is_active(now));
        if !active {
            return Err(DomainError::PoolExpired);
        }
        let mut lease = lease.clone();
        lease.expires_at = now.plus_secs(lease.ttl_seconds as u64).ceil_secs();
        let event = Event::LeaseRenewed {
            id: lease.id.clone(),
            expires_at: lease.expires_at,
        };
        Ok(self.commit(lease, vec![event]))
    }

    /// Ends a lease of `member` at once.
    pub fn release(
        &mut self,
        member: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let id = self.own_live_lease(member, id, now)?.id.clone();
        let event = Event::LeaseEnded {
            id,
            reason: EndReason::Released,
        };
        Ok(self.commit((), vec![event]))
    }

    /// An admin ends any member's lease.
    pub fn end_session(&mut self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        self.admin(actor)?;
        let id = self
            .leases
            .get(id)
            .ok_or(DomainError::SessionNotFound)?
            .id
            .clone();
        let event = Event::LeaseEnded {
            id,
            reason: EndReason::Ended,
        };
        Ok(self.commit((), vec![event]))
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

    /// Ends every lease whose expiry has passed.
    pub fn expire(&mut self, now: Timestamp) -> Applied<usize> {
        let events: Vec<Event> = self
            .leases
            .expired(now)
            .into_iter()
            .map(|id| Event::LeaseEnded {
                id,
                reason: EndReason::Expired,
            })
            .collect();
        self.commit(events.len(), events)
    }

    // ---- waiting -----------------------------------------------------------------------

    /// Queues an acquire that found no free seat, until `deadline`.
    pub fn enqueue(&mut self, waiter: u64, request: AcquireRequest, deadline: Timestamp) {
        self.waiters
            .entry(request.product.clone())
            .or_default()
            .push_back(Waiter {
                id: waiter,
                request,
                deadline,
            });
    }

    /// Whether anyone is waiting.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Serves waiters in FIFO order while seats are free. `waiting` tells whether a
    /// waiter's caller is still there; one that left is dropped without taking a seat.
    /// Each answer is a lease or the reason it cannot be had any more.
    pub fn serve_waiters(
        &mut self,
        now: Timestamp,
        waiting: impl Fn(u64) -> bool,
        mut new_id: impl FnMut() -> SessionId,
    ) -> Applied<Vec<(u64, Result<Acquired, DomainError>)>> {
        let mut answers = Vec::new();
        let mut events = Vec::new();
        let products: Vec<String> = self.waiters.keys().cloned().collect();
        for product in products {
            while let Some(front) = self.waiters.get(&product).and_then(|q| q.front()).cloned() {
                if !waiting(front.id) {
                    self.pop_waiter(&product);
                    continue;
                }
                if front.deadline <= now {
                    // Its answer is a timeout, given by `time_out_waiters`.
                    break;
                }
                match self.grant(&front.request, new_id(), now) {
                    Err(DomainError::SeatCapReached { .. }) => break,
                    result => {
                        self.pop_waiter(&product);
                        let result = result.map(|a| {
                            events.extend(a.events);
                            a.value
                        });
                        answers.push((front.id, result));
                    }
                }
            }
        }
        Applied {
            value: answers,
            events,
        }
    }

    fn pop_waiter(&mut self, product: &str) {
        if let Some(q) = self.waiters.get_mut(product) {
            q.pop_front();
            if q.is_empty() {
                self.waiters.remove(product);
            }
        }
    }

    /// Removes waiters whose deadline has passed, answering each as a full pool would.
    pub fn time_out_waiters(&mut self, now: Timestamp) -> Vec<(u64, DomainError)> {
        let mut out = Vec::new();
        let mut timed_out = Vec::new();
        for q in self.waiters.values_mut() {
            q.retain(|w| {
                let keep = w.deadline > now;
                if !keep {
                    timed_out.push(w.clone());
                }
                keep
            });
        }
        self.waiters.retain(|_, q| !q.is_empty());
        for w in timed_out {
            let err = self.cap_reached(&w.request.member, &w.request.product, now);
            out.push((w.id, err));
        }
        out
    }

    /// The next instant at which time alone changes something: a lease expires or a
    /// waiter's patience ends.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let waiter = self.waiters.values().flatten().map(|w| w.deadline).min();
        match (self.leases.next_deadline(), waiter) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Checks a display name: 1–200 characters after trimming.
fn check_name(field: &'static str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::invalid(field, "must be 1-200 characters"));
    }
    Ok(name.to_owned())
}
