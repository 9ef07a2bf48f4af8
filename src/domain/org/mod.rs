//! One organization's state and the commands that change it.
//!
//! Commands decide and change nothing: each takes `&self` and answers the events it
//! causes (or an error). [`OrgState::apply`] is the only place state changes, and replay
//! after a crash runs the same `apply`; applying the same events in the same order to
//! the same state always yields the same state. A refused command, even one refused
//! half-way through a bulk change, so leaves the state exactly as it was.
//!
//! The commands live beside this file, one file per seam: `access` (who may do what),
//! `members` (members and API keys), `pools`, `sessions` (leases and waiting).

mod access;
mod activations;
mod allocations;
mod audit;
mod authz;
mod members;
mod pools;
mod projects;
mod sessions;
mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use access::{Action, Decision};
pub use activations::ActivateRequest;
pub use allocations::{AllocationCounts, Seat};
pub use audit::{Audit, AuditEntry};
use authz::Stale;
pub use authz::{AccessView, Verdict};
pub use projects::RoleSpec;
pub use sessions::{Acquired, SessionFilter, SessionRow, Turn};
pub use usage::{PoolFigures, PoolUsage, ProductUsage, Usage};

use super::lease::Leases;
use super::project::{Group, Project, Subject};
use super::roles::CustomRole;
use super::waiters::WaitQueues;
use super::{
    Activation, ActivationId, ApiKey, DomainError, Email, Event, GroupId, KeyId, Lease, Member,
    MemberId, OrgId, Pool, PoolId, PoolKind, ProjectId, RoleId, SessionId, TenantRole, Timestamp,
};

/// Lease time of a pool created without `ttl_seconds`.
pub const DEFAULT_TTL_SECONDS: u32 = 60;
/// Machines per member and product of a pool created without `max_machines`.
pub const DEFAULT_MAX_MACHINES: u32 = 2;

/// A decided command: its answer and the events that, applied, make it so.
#[derive(Debug)]
pub struct Applied<T> {
    pub value: T,
    pub events: Vec<Event>,
}

impl<T> Applied<T> {
    /// The same events with another answer.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Applied<U> {
        Applied {
            value: f(self.value),
            events: self.events,
        }
    }
}

/// An organization as the operator lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSummary {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
    /// None only in an org replayed from a journal cut before its founding events.
    pub owner: Option<Member>,
    pub members: usize,
    pub pools: usize,
    pub sessions_live: usize,
}

/// A pool with what is happening on it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub pool: Pool,
    /// Live sessions on this pool.
    pub live: u32,
    /// Acquires queued for this pool's product.
    pub waiting: u32,
    /// Whether the pool's `expires_at` has passed.
    pub expired: bool,
}

/// Everything one organization owns. Durable state changes only in [`OrgState::apply`];
/// the wait queues are requests in flight, changed by `enqueue` and `dequeue`.
#[derive(Debug, Clone)]
pub struct OrgState {
    id: OrgId,
    name: String,
    created_at: Timestamp,
    members: BTreeMap<MemberId, Member>,
    emails: HashMap<Email, MemberId>,
    keys: BTreeMap<KeyId, ApiKey>,
    pools: BTreeMap<PoolId, Pool>,
    activations: BTreeMap<ActivationId, Activation>,
    groups: BTreeMap<GroupId, Group>,
    projects: BTreeMap<ProjectId, Project>,
    roles: BTreeMap<RoleId, CustomRole>,
    leases: Leases,
    waiters: WaitQueues,
    /// What authorization reads, rebuilt after each change to who may do what and
    /// shared with readers that must not queue behind the actor.
    access: Arc<AccessView>,
    /// What events applied since the last rebuild changed of it.
    access_stale: Stale,
}

/// The durable image of an [`OrgState`], written to compact the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
    pub members: Vec<Member>,
    pub keys: Vec<ApiKey>,
    pub pools: Vec<Pool>,
    /// Active and deactivated machines.
    #[serde(default)]
    pub activations: Vec<Activation>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub projects: Vec<Project>,
    #[serde(default)]
    pub roles: Vec<CustomRole>,
    pub leases: LeaseSet,
}

/// The live leases of a snapshot: the org's own persistent map, cloned in O(1) (taking
/// a snapshot never copies the leases on the actor's thread), written as a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeaseSet(imbl::OrdMap<SessionId, Arc<Lease>>);

impl LeaseSet {
    /// The leases in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.0.values().map(|l| &**l)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Lease> for LeaseSet {
    fn from_iter<I: IntoIterator<Item = Lease>>(leases: I) -> Self {
        LeaseSet(
            leases
                .into_iter()
                .map(|l| (l.id.clone(), Arc::new(l)))
                .collect(),
        )
    }
}

impl Serialize for LeaseSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

impl<'de> Deserialize<'de> for LeaseSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Lease>::deserialize(d)?.into_iter().collect())
    }
}

impl OrgState {
    /// The events that found an organization with its owner and the owner's first key.
    pub fn found(
        id: OrgId,
        name: &str,
        owner: Member,
        key: ApiKey,
        now: Timestamp,
    ) -> Result<Vec<Event>, DomainError> {
        let name = check_name("name", name)?;
        Ok(vec![
            Event::OrgFounded { id, name, at: now },
            Event::MemberAdded(Member {
                tenant_roles: vec![TenantRole::Owner],
                ..owner
            }),
            Event::KeyCreated(key),
        ])
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
            activations: BTreeMap::new(),
            groups: BTreeMap::new(),
            projects: BTreeMap::new(),
            roles: BTreeMap::new(),
            leases: Leases::default(),
            waiters: WaitQueues::default(),
            access: Arc::default(),
            access_stale: Stale::everything(),
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
            .chain(s.activations.into_iter().map(Event::Activated))
            .chain(s.groups.into_iter().map(Event::GroupCreated))
            .chain(s.roles.into_iter().map(Event::RoleCreated))
            .chain(s.projects.into_iter().map(Event::ProjectCreated))
            .chain(s.leases.0.into_iter().map(|(_, l)| Event::LeaseGranted(l)));
        for e in events {
            state.apply(&e);
        }
        state.refresh_access();
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
            activations: self.activations.values().cloned().collect(),
            groups: self.groups.values().cloned().collect(),
            projects: self.projects.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
            leases: LeaseSet(self.leases.all().clone()),
        }
    }

    /// The one place durable state changes: live commands and journal replay both come
    /// through here.
    pub fn apply(&mut self, event: &Event) {
        self.access_stale.note(event);
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
            Event::MemberRolesChanged { id, tenant_roles } => {
                if let Some(m) = self.members.get_mut(id) {
                    m.tenant_roles = tenant_roles.clone();
                }
            }
            Event::MemberRemoved { id } => {
                if let Some(m) = self.members.remove(id) {
                    self.emails.remove(&m.email);
                }
                // Their assignments and group places go with them.
                for g in self.groups.values_mut() {
                    g.members.remove(id);
                }
                let me = Subject::User(id.clone());
                for p in self.projects.values_mut() {
                    p.access.remove(&me);
                }
                // The change revoked and released these by events of its own; a member
                // gone must hold nothing even so.
                self.keys.retain(|_, k| &k.member != id);
                for p in self.pools.values_mut() {
                    p.allocated.remove(id);
                    if let Some(list) = &mut p.entitled {
                        list.remove(id);
                    }
                }
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
            Event::PoolLapsed { id } => {
                if let Some(p) = self.pools.get_mut(id) {
                    p.lapsed = true;
                    p.allocated.clear();
                }
            }
            Event::Allocated { pool, member } => {
                let member = self.shared_member(member);
                if let Some(p) = self.pools.get_mut(pool) {
                    match p.kind {
                        PoolKind::Named => p.allocated.insert(member),
                        PoolKind::Floating => p.entitled.get_or_insert_default().insert(member),
                    };
                }
            }
            Event::Deallocated { pool, member, .. } => {
                if let Some(p) = self.pools.get_mut(pool) {
                    p.allocated.remove(member);
                    if let Some(list) = &mut p.entitled {
                        list.remove(member);
                    }
                }
            }
            Event::Transferred { pool, from, to } => {
                let to = self.shared_member(to);
                if let Some(p) = self.pools.get_mut(pool) {
                    if p.allocated.remove(from) {
                        p.allocated.insert(to);
                    }
                }
            }
            Event::Activated(a) => {
                self.activations.insert(a.id.clone(), a.clone());
            }
            Event::ActivationSeen { id, at } => {
                if let Some(a) = self.activations.get_mut(id) {
                    a.last_seen_at = *at;
                }
            }
            Event::Deactivated { id, at } => {
                if let Some(a) = self.activations.get_mut(id) {
                    a.deactivated_at = Some(*at);
                }
            }
            Event::Denied { pools } => {
                for id in pools {
                    if let Some(p) = self.pools.get_mut(id) {
                        p.denials += 1;
                    }
                }
            }
            Event::GroupCreated(g) | Event::GroupChanged(g) => {
                self.groups.insert(g.id.clone(), g.clone());
            }
            Event::GroupDeleted { id } => {
                self.groups.remove(id);
                let it = Subject::Group(id.clone());
                for p in self.projects.values_mut() {
                    p.access.remove(&it);
                }
            }
            Event::ProjectCreated(p) => {
                self.projects.insert(p.id.clone(), p.clone());
            }
            Event::AccessSet {
                project,
                subject,
                roles,
            } => {
                if let Some(p) = self.projects.get_mut(project) {
                    p.access.insert(subject.clone(), roles.clone());
                }
            }
            Event::AccessRemoved { project, subject } => {
                if let Some(p) = self.projects.get_mut(project) {
                    p.access.remove(subject);
                }
            }
            Event::ProjectOwnerChanged { project, owner } => {
                if let Some(p) = self.projects.get_mut(project) {
                    p.owner = owner.clone();
                }
            }
            Event::RoleCreated(r) | Event::RoleChanged(r) => {
                self.roles.insert(r.id.clone(), r.clone());
            }
            Event::RoleDeleted { id } => {
                self.roles.remove(id);
                for p in self.projects.values_mut() {
                    for roles in p.access.values_mut() {
                        roles.remove(id);
                    }
                }
            }
            Event::LeaseGranted(l) => {
                self.leases.insert(self.shared(l));
                let live = self.leases.live_in(&l.pool);
                if let Some(p) = self.pools.get_mut(&l.pool) {
                    p.peak = p.peak.max(live);
                }
            }
            Event::LeaseRenewed { id, expires_at } => self.leases.renew(id, *expires_at),
            Event::LeaseEnded { id, .. } => {
                self.leases.remove(id);
            }
        }
    }

    /// `lease` with the member, key, pool and product strings this org already holds,
    /// so a lease decoded from disk costs no more memory than one granted live (whose
    /// fields the grant took from here). Answers `lease` itself when it shares them.
    fn shared(&self, lease: &Arc<Lease>) -> Arc<Lease> {
        let member = self.members.get_key_value(&lease.member).map(|(id, _)| id);
        let key = self.keys.get_key_value(&lease.key).map(|(id, _)| id);
        let pool = self.pools.get_key_value(&lease.pool);
        let same = member.is_none_or(|m| m.same(&lease.member))
            && key.is_none_or(|k| k.same(&lease.key))
            && pool.is_none_or(|(id, p)| {
                id.same(&lease.pool) && Arc::ptr_eq(&p.product, &lease.product)
            });
        if same {
            return lease.clone();
        }
        let mut l = Lease::clone(lease);
        if let Some(m) = member {
            l.member = m.clone();
        }
        if let Some(k) = key {
            l.key = k.clone();
        }
        if let Some((id, p)) = pool {
            l.pool = id.clone();
            if *p.product == *l.product {
                l.product = p.product.clone();
            }
        }
        Arc::new(l)
    }

    /// The member id as this org holds it (one allocation shared by every use).
    fn shared_member(&self, id: &MemberId) -> MemberId {
        self.members
            .get_key_value(id)
            .map_or_else(|| id.clone(), |(id, _)| id.clone())
    }

    /// Applies a decided command's events and answers its value.
    pub fn apply_all<T>(&mut self, applied: Applied<T>) -> (T, Vec<Event>) {
        for e in &applied.events {
            self.apply(e);
        }
        self.refresh_access();
        (applied.value, applied.events)
    }

    /// [`OrgState::apply_all`], answering too the audit entries of the events, each
    /// described against the state just before its event.
    pub fn apply_audited<T>(&mut self, applied: Applied<T>) -> (T, Vec<Event>, Vec<Audit>) {
        let mut audit = Vec::new();
        for (i, e) in applied.events.iter().enumerate() {
            audit.extend(
                self.audit_of(e)
                    .into_iter()
                    .map(|entry| Audit { event: i, entry }),
            );
            self.apply(e);
        }
        self.refresh_access();
        (applied.value, applied.events, audit)
    }

    // ---- reads -------------------------------------------------------------------------

    /// Rebuilds the access view if events since the last rebuild changed it. Commands
    /// (through `apply_all`) and restores do this themselves; a replay calls it once at
    /// its end.
    pub fn refresh_access(&mut self) {
        if !self.access_stale.is_nothing() {
            let stale = std::mem::take(&mut self.access_stale);
            self.access = Arc::new(self.access.refreshed(self, &stale));
        }
    }

    /// The access view built afresh, to check the one kept up to date against.
    #[cfg(test)]
    pub fn rebuilt_access(&self) -> AccessView {
        AccessView::default().refreshed(self, &Stale::everything())
    }

    /// What authorization reads, as of the last applied change.
    pub fn access(&self) -> &Arc<AccessView> {
        debug_assert!(
            self.access_stale.is_nothing(),
            "refresh_access after applying events"
        );
        &self.access
    }

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
        self.members.len()
            + self.keys.len()
            + self.pools.len()
            + self.activations.len()
            + self.leases.len()
    }

    /// The number of live leases.
    pub fn sessions_live(&self) -> usize {
        self.leases.len()
    }

    /// The live lease with this id.
    pub fn lease(&self, id: &str) -> Option<&Lease> {
        self.leases.get(id)
    }

    /// A pool and its live and waiting counts.
    pub fn pool_status(&self, pool: &Pool, now: Timestamp) -> PoolStatus {
        PoolStatus {
            pool: pool.clone(),
            live: self.leases.live_in(&pool.id),
            waiting: self.waiters.waiting_for(&pool.product),
            expired: !pool.is_active(now),
        }
    }

    /// What the operator sees of the organization.
    pub fn summary(&self) -> OrgSummary {
        OrgSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            owner: (self.members.values())
                .find(|m| m.tenant_roles.contains(&TenantRole::Owner))
                .cloned(),
            members: self.members.len(),
            pools: self.pools.len(),
            sessions_live: self.leases.len(),
        }
    }

    /// The member named by id or by e-mail, or 404.
    fn find_member(&self, who: &str) -> Result<&Member, DomainError> {
        (self.resolve(who))
            .and_then(|id| self.members.get(id))
            .ok_or(DomainError::NotFound { what: "user" })
    }

    /// The id of the member named by id or by e-mail; an unknown name is taken as an
    /// id, so authorization can be asked before the 404.
    fn member_id_of(&self, who: &str) -> MemberId {
        self.resolve(who)
            .cloned()
            .unwrap_or_else(|| MemberId::new(who))
    }

    /// The member named by id or by e-mail.
    fn resolve(&self, who: &str) -> Option<&MemberId> {
        if let Some((id, _)) = self.members.get_key_value(who) {
            return Some(id);
        }
        Email::parse(who).ok().and_then(|e| self.emails.get(&e))
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
