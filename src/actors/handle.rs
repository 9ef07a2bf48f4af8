//! The typed front of an organization actor: HTTP code calls these methods and never
//! builds messages or sees a `MailboxError`, so the actor library stays a detail of
//! this module.

use std::time::Duration;

use actix::Addr;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::org_actor::{
    AccessSlot, Acquire, AcquireReply, Close, Command, OrgActor, Query, TakeSnapshot,
};
use super::{ActorError, GoneProbe, Principal};
use crate::domain::ids::mint;
use crate::domain::project::{Group, Project, Subject};
use crate::domain::roles::CustomRole;
use crate::domain::{
    AccessView, AcquireRequest, Acquired, Action, ActivateRequest, Activation, ActivationId,
    AllocationCounts, ApiKey, Applied, DomainError, Email, GroupId, Lease, Member, MemberId,
    OrgState, OrgSummary, Page, PoolId, PoolPatch, PoolSpec, PoolStatus, ProjectId, RoleId,
    RoleSpec, Scope, Seat, SessionFilter, SessionRow, Snapshot, TenantRole, Timestamp, Usage,
};
use crate::secrets::{mint_key, NewKey};
use crate::store::Durability;
use crate::telemetry::{figures, Outcome};

/// A handle to one organization's actor.
#[derive(Clone)]
pub struct OrgHandle {
    addr: Addr<OrgActor>,
    view: AccessSlot,
    /// Set when the org is deleted, so requests that held this handle across the
    /// delete hear 404 rather than a server error.
    closed: Arc<AtomicBool>,
}

impl OrgHandle {
    pub(super) fn new(addr: Addr<OrgActor>, view: AccessSlot) -> OrgHandle {
        OrgHandle {
            addr,
            view,
            closed: Arc::default(),
        }
    }

    /// Why the actor did not answer: its org was deleted, or the server is stopping.
    fn gone(&self) -> ActorError {
        if self.closed.load(Ordering::Acquire) {
            DomainError::NotFound {
                what: "organization",
            }
            .into()
        } else {
            ActorError::Unavailable
        }
    }

    /// The org's access view as of its last durable change (so every acknowledged
    /// one), read without a trip through the actor: queries never queue behind writes.
    pub fn access_view(&self) -> Result<Arc<AccessView>, ActorError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.gone());
        }
        Ok(self.view.read())
    }

    /// Decides a change as `by`; answers once its events are flushed.
    async fn command<R: Send + 'static>(
        &self,
        by: &Principal,
        decide: impl FnOnce(&OrgState, Timestamp) -> Result<Applied<R>, DomainError> + Send + 'static,
    ) -> Result<R, ActorError> {
        self.change(by, Durability::Flushed, decide).await
    }

    /// Decides a change as `by`; answers once its events are as durable as asked.
    async fn change<R: Send + 'static>(
        &self,
        by: &Principal,
        durability: Durability,
        decide: impl FnOnce(&OrgState, Timestamp) -> Result<Applied<R>, DomainError> + Send + 'static,
    ) -> Result<R, ActorError> {
        let msg = Command {
            // None on a runtime route, whose span is made only when it logs (see
            // `http::trace_request`): its commands change no audited state, and the
            // actor logs nothing else for them.
            span: tracing::Span::current(),
            by: by.actor(),
            durability,
            decide: Box::new(decide),
        };
        let (value, ack) = self.send(msg).await??;
        ack.durable().await?;
        Ok(value)
    }

    async fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&OrgState, Timestamp) -> Result<R, DomainError> + Send + 'static,
    ) -> Result<R, ActorError> {
        self.send(Query(Box::new(read))).await?
    }

    /// Sends the actor a message, counted in the mailbox depth until it is answered
    /// (or the caller stops waiting).
    async fn send<M>(&self, msg: M) -> Result<M::Result, ActorError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        OrgActor: actix::Handler<M>,
    {
        struct InFlight;
        impl Drop for InFlight {
            fn drop(&mut self) {
                figures().mailbox.fetch_sub(1, Ordering::Relaxed);
            }
        }
        figures().mailbox.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight;
        self.addr.send(msg).await.map_err(|_| self.gone())
    }

    /// Adds members, all or none (admins only); each is `(email, name, tenant_roles)`.
    pub async fn add_members(
        &self,
        by: &Principal,
        members: Vec<(Email, Option<String>, Vec<TenantRole>)>,
    ) -> Result<Vec<Member>, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let members = members
                .into_iter()
                .map(|(email, name, tenant_roles)| Member {
                    id: MemberId::new(mint(MemberId::PREFIX, now, rand::random())),
                    email,
                    name,
                    tenant_roles,
                    created_at: now,
                })
                .collect();
            s.add_members(&actor, members)
        })
        .await
    }

    /// One member and the named seats they hold, for themselves or an admin.
    pub async fn member(
        &self,
        by: &Principal,
        id: String,
    ) -> Result<(Member, Vec<Seat>), ActorError> {
        let actor = by.member.clone();
        self.query(move |s, now| {
            let member = s.member(&actor, &id)?.clone();
            let seats = s.seats_of(&member.id, now);
            Ok((member, seats))
        })
        .await
    }

    /// Sets a member's tenant roles (admins; giving `owner` is the owner's transfer).
    /// A transfer answers the new owner's fresh key, shown this once.
    pub async fn change_roles(
        &self,
        by: &Principal,
        id: String,
        roles: Vec<TenantRole>,
    ) -> Result<(Member, Vec<Seat>, Option<String>), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let mut secret = None;
            let changed = s.change_roles(&actor, &id, roles, |owner| {
                let scopes = vec![Scope::Admin, Scope::Sessions];
                let minted = mint_key(owner.clone(), "owner".into(), scopes, None, now);
                secret = Some(minted.secret);
                minted.key
            })?;
            let seats = s.seats_of(&changed.value.id, now);
            Ok(changed.map(|m| (m, seats, secret)))
        })
        .await
    }

    /// Removes a member who holds no live session (admins only).
    pub async fn remove_member(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.remove_member(&actor, &id, now))
            .await
    }

    /// A page of members (admins only), or the one with `email`.
    pub async fn members(
        &self,
        by: &Principal,
        email: Option<String>,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Member>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.members(&actor, email.as_deref(), after.as_deref(), limit))
            .await
    }

    /// Creates a key for `member`; the answer carries the secret, shown once.
    pub async fn create_key(
        &self,
        by: &Principal,
        member: String,
        name: String,
        scopes: Vec<Scope>,
        expires_at: Option<Timestamp>,
    ) -> Result<NewKey, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let member = s.member(&actor, &member)?.id.clone();
            let NewKey { key, secret } = mint_key(member, name, scopes, expires_at, now);
            Ok(s.create_key(&actor, key, now)?
                .map(|key| NewKey { key, secret }))
        })
        .await
    }

    /// A page of one member's keys.
    pub async fn keys_of(
        &self,
        by: &Principal,
        member: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<ApiKey>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.keys_of(&actor, &member, after.as_deref(), limit))
            .await
    }

    /// Revokes a key and ends its leases; effective for the next request.
    pub async fn revoke_key(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.revoke_key(&actor, &id, now))
            .await
    }

    /// Creates a pool.
    pub async fn create_pool(
        &self,
        by: &Principal,
        spec: PoolSpec,
    ) -> Result<PoolStatus, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let id = PoolId::new(mint(PoolId::PREFIX, now, rand::random()));
            Ok(s.create_pool(&actor, id, spec, now)?
                .map(|pool| s.pool_status(&pool, now)))
        })
        .await
    }

    /// One pool with its live and waiting counts.
    pub async fn pool(&self, by: &Principal, id: String) -> Result<PoolStatus, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, now| Ok(s.pool_status(s.pool(&actor, &id)?, now)))
            .await
    }

    /// A page of pools with their live session counts, of one product if named.
    pub async fn pools(
        &self,
        by: &Principal,
        product: Option<String>,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<PoolStatus>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, now| s.pools(&actor, product.as_deref(), after.as_deref(), limit, now))
            .await
    }

    /// Changes a pool; the answer has its live session count.
    pub async fn update_pool(
        &self,
        by: &Principal,
        id: String,
        patch: PoolPatch,
    ) -> Result<PoolStatus, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.update_pool(&actor, &id, patch, now))
            .await
    }

    /// Deletes a pool without live sessions.
    pub async fn delete_pool(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.delete_pool(&actor, &id, now))
            .await
    }

    /// Gives each of `users` a seat of the pool, all or none.
    pub async fn allocate(
        &self,
        by: &Principal,
        pool: String,
        users: Vec<String>,
    ) -> Result<AllocationCounts, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.allocate(&actor, &pool, &users, now))
            .await
    }

    /// Takes the pool's seat from each of `users` that holds one.
    pub async fn revoke(
        &self,
        by: &Principal,
        pool: String,
        users: Vec<String>,
    ) -> Result<AllocationCounts, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.revoke(&actor, &pool, &users, now))
            .await
    }

    /// Takes the pool's seat from one member who holds it.
    pub async fn revoke_one(
        &self,
        by: &Principal,
        pool: String,
        user: String,
    ) -> Result<AllocationCounts, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.revoke_one(&actor, &pool, &user, now))
            .await
    }

    /// Moves a seat from one member to another.
    pub async fn transfer(
        &self,
        by: &Principal,
        pool: String,
        from: String,
        to: String,
    ) -> Result<AllocationCounts, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.transfer(&actor, &pool, &from, &to, now))
            .await
    }

    /// A page of the members holding the pool's seats.
    pub async fn allocations(
        &self,
        by: &Principal,
        pool: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Member>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.allocations(&actor, &pool, after.as_deref(), limit))
            .await
    }

    /// The usage report.
    pub async fn usage(&self, by: &Principal) -> Result<Usage, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, now| s.usage(&actor, now)).await
    }

    /// Whether `by` may do `action`; a denial answers 403.
    pub async fn require(&self, by: &Principal, action: Action<'static>) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.require(&actor, action)).await
    }

    /// Activates a machine for the request's member, or finds its live activation
    /// (`false`: not new).
    pub async fn activate(
        &self,
        by: &Principal,
        request: ActivateRequest,
    ) -> Result<(Activation, bool), ActorError> {
        self.command(by, move |s, now| {
            let id = ActivationId::new(mint(ActivationId::PREFIX, now, rand::random()));
            s.activate(request, id, now)
        })
        .await
    }

    /// Refreshes the member's own activation.
    pub async fn refresh_activation(
        &self,
        by: &Principal,
        id: String,
    ) -> Result<Activation, ActorError> {
        let member = by.member.clone();
        self.command(by, move |s, now| s.refresh_activation(&member, &id, now))
            .await
    }

    /// Deactivates a machine: the member's own, or any one for an admin.
    pub async fn deactivate(
        &self,
        by: &Principal,
        id: String,
        as_admin: bool,
    ) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| s.deactivate(&actor, &id, as_admin, now))
            .await
    }

    /// A page of activations (admins only); deactivated ones too with `all`.
    pub async fn activations(
        &self,
        by: &Principal,
        all: bool,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Activation>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.activations(&actor, all, after.as_deref(), limit))
            .await
    }

    /// Acquires a seat, waiting up to `wait` for one, and answers what `prepare` makes
    /// of it. `gone` tells whether the caller has left; a waiter that has is never
    /// granted a seat. A seat granted at once is prepared (its token signed) while its
    /// flush is in flight, so the flush's wait no longer adds the signing to every
    /// acquire of its round; a waiter's, once it is durable. Either way the answer is
    /// handed back only once the lease is durable.
    pub async fn acquire<T>(
        &self,
        request: AcquireRequest,
        wait: Duration,
        gone: Option<GoneProbe>,
        prepare: impl FnOnce(&Acquired) -> T,
    ) -> Result<T, ActorError> {
        // Copied only when the line will be logged: this is the acquire path.
        let logged = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (request.member.clone(), request.product.clone()));
        let reply = self.send(Acquire {
            request,
            wait,
            gone,
        });
        let (queued, answer) = match reply.await.and_then(|r| r) {
            Ok(AcquireReply::Granted(acquired, ack)) => {
                let prepared = prepare(&acquired);
                let durable = ack.durable().await.map_err(ActorError::from);
                (false, durable.map(|()| (acquired, prepared)))
            }
            Ok(AcquireReply::Queued(rx)) => {
                let answer = rx.await.unwrap_or_else(|_| Err(self.gone()));
                (
                    true,
                    answer.map(|a| {
                        let prepared = prepare(&a);
                        (a, prepared)
                    }),
                )
            }
            Err(e) => (false, Err(e)),
        };
        let outcome = outcome(queued, answer.as_ref().map(|(a, _)| a));
        outcome.count();
        if let Some((member, product)) = logged {
            tracing::debug!(
                member = member.as_str(),
                product = product.as_str(),
                outcome = outcome.as_str(),
                session = answer.as_ref().ok().map(|(a, _)| a.lease.id.as_str()),
                "acquire"
            );
        }
        answer.map(|(_, prepared)| prepared)
    }

    /// Extends a member's own lease; answered once journaled, before its flush.
    pub async fn heartbeat(&self, by: &Principal, id: String) -> Result<Lease, ActorError> {
        let member = by.member.clone();
        self.change(by, Durability::Journaled, move |s, now| {
            s.heartbeat(&member, &id, now)
        })
        .await
    }

    /// Ends a member's own lease; answered once journaled, before its flush.
    pub async fn release(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let member = by.member.clone();
        self.change(by, Durability::Journaled, move |s, now| {
            s.release(&member, &id, now)
        })
        .await
    }

    /// An admin ends any lease.
    pub async fn end_session(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| s.end_session(&actor, &id))
            .await
    }

    /// A page of live leases (admins only), narrowed by `filter`.
    pub async fn sessions(
        &self,
        by: &Principal,
        filter: SessionFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<SessionRow>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.sessions(&actor, &filter, after.as_deref(), limit))
            .await
    }

    /// A page of the caller's own live leases.
    pub async fn own_sessions(
        &self,
        by: &Principal,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<SessionRow>, ActorError> {
        let member = by.member.clone();
        self.query(move |s, _| Ok(s.own_sessions(&member, after.as_deref(), limit)))
            .await
    }

    /// The org's state now and the journal position it stands for.
    pub(super) async fn snapshot(&self) -> Result<(Box<Snapshot>, u64), ActorError> {
        self.send(TakeSnapshot).await
    }

    /// Stops the actor for good: see [`super::Directory::delete`]. Every change it
    /// journaled was sent to the store before this answers.
    pub(super) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // An actor already gone has nothing left to close.
        let _ = self.addr.send(Close).await;
    }

    /// Creates a project owned by its creator.
    pub async fn create_project(
        &self,
        by: &Principal,
        name: String,
        product: String,
    ) -> Result<Project, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let id = ProjectId::new(mint(ProjectId::PREFIX, now, rand::random()));
            s.create_project(&actor, id, &name, &product, now)
        })
        .await
    }

    /// A project the caller sees.
    pub async fn project(&self, by: &Principal, id: String) -> Result<Project, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.project(&actor, &id).cloned())
            .await
    }

    /// A page of the projects the caller sees.
    pub async fn projects(
        &self,
        by: &Principal,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Project>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| Ok(s.projects(&actor, after.as_deref(), limit)))
            .await
    }

    /// Assigns a user or group to a project with roles.
    pub async fn set_access(
        &self,
        by: &Principal,
        project: String,
        subject: String,
        group: bool,
        roles: Vec<String>,
    ) -> Result<(Subject, BTreeSet<RoleId>), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            s.set_access(&actor, &project, &subject, group, &roles, now)
        })
        .await
    }

    /// A project's assignments.
    pub async fn access_of(
        &self,
        by: &Principal,
        project: String,
        subject: Option<String>,
    ) -> Result<Vec<(Subject, BTreeSet<RoleId>)>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| s.access_of(&actor, &project, subject.as_deref()))
            .await
    }

    /// Removes assignments, all or none.
    pub async fn remove_access(
        &self,
        by: &Principal,
        project: String,
        subjects: Vec<String>,
    ) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            s.remove_access(&actor, &project, &subjects, now)
        })
        .await
    }

    /// Gives a project to another member.
    pub async fn transfer_project(
        &self,
        by: &Principal,
        project: String,
        to: String,
    ) -> Result<Project, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| s.transfer_project(&actor, &project, &to))
            .await
    }

    /// Creates a group.
    pub async fn create_group(
        &self,
        by: &Principal,
        name: String,
        members: Vec<String>,
        tenant_roles: Vec<TenantRole>,
    ) -> Result<Group, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let id = GroupId::new(mint(GroupId::PREFIX, now, rand::random()));
            s.create_group(&actor, id, &name, &members, tenant_roles, now)
        })
        .await
    }

    /// Changes a group's name, members or tenant roles.
    pub async fn change_group(
        &self,
        by: &Principal,
        id: String,
        name: Option<String>,
        members: Option<Vec<String>>,
        tenant_roles: Option<Vec<TenantRole>>,
    ) -> Result<Group, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| {
            s.change_group(
                &actor,
                &id,
                name.as_deref(),
                members.as_deref(),
                tenant_roles,
            )
        })
        .await
    }

    /// Deletes a group.
    pub async fn delete_group(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| s.delete_group(&actor, &id))
            .await
    }

    /// One group, or all of them.
    pub async fn groups(
        &self,
        by: &Principal,
        id: Option<String>,
    ) -> Result<Vec<Group>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| match id {
            Some(id) => s.group(&actor, &id).map(|g| vec![g]),
            None => s.groups(&actor),
        })
        .await
    }

    /// Creates a custom role, or clones `from` under the spec's name.
    pub async fn create_role(
        &self,
        by: &Principal,
        spec: RoleSpec,
        from: Option<String>,
    ) -> Result<CustomRole, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, now| {
            let id = RoleId::new(mint(RoleId::PREFIX, now, rand::random()));
            match from {
                Some(from) => {
                    let name = spec.name.unwrap_or_default();
                    s.clone_role(&actor, &from, id, &name, now)
                }
                None => s.create_role(&actor, id, spec, now),
            }
        })
        .await
    }

    /// Changes a custom role.
    pub async fn update_role(
        &self,
        by: &Principal,
        id: String,
        spec: RoleSpec,
    ) -> Result<CustomRole, ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| s.update_role(&actor, &id, spec))
            .await
    }

    /// Deletes a custom role and its assignments.
    pub async fn delete_role(&self, by: &Principal, id: String) -> Result<(), ActorError> {
        let actor = by.member.clone();
        self.command(by, move |s, _| s.delete_role(&actor, &id))
            .await
    }

    /// One custom role, or all of them.
    pub async fn roles(
        &self,
        by: &Principal,
        id: Option<String>,
    ) -> Result<Vec<CustomRole>, ActorError> {
        let actor = by.member.clone();
        self.query(move |s, _| match id {
            Some(id) => s.role(&actor, &id).map(|r| vec![r]),
            None => s.custom_roles(&actor),
        })
        .await
    }

    /// What the operator sees of the organization.
    pub async fn summary(&self) -> Result<OrgSummary, ActorError> {
        self.query(|s, _| Ok(s.summary())).await
    }
}

/// How an acquire ended, for the metrics.
fn outcome(queued: bool, answer: Result<&Acquired, &ActorError>) -> Outcome {
    match answer {
        Ok(a) if !a.fresh => Outcome::Renewed,
        Ok(_) if queued => Outcome::Waited,
        Ok(_) => Outcome::Granted,
        Err(ActorError::Domain(e)) => match e {
            DomainError::SeatCapReached { .. } if queued => Outcome::TimedOut,
            DomainError::SeatCapReached { .. } => Outcome::CapReached,
            DomainError::NotEntitled { .. } | DomainError::PoolExpired => Outcome::NotEntitled,
            DomainError::RateLimited { .. } => Outcome::RateLimited,
            _ => Outcome::Other,
        },
        Err(_) => Outcome::Other,
    }
}
