//! The typed front of an organization actor: HTTP code calls these methods and never
//! builds messages or sees a `MailboxError`, so the actor library stays a detail of
//! this module.

use std::time::Duration;

use actix::Addr;

use super::org_actor::{Acquire, AcquireReply, Command, OrgActor, Query};
use super::ActorError;
use crate::domain::ids::mint;
use crate::domain::{
    AcquireRequest, Acquired, ApiKey, Applied, DomainError, Email, Lease, Member, MemberId,
    OrgState, Page, Pool, PoolId, PoolPatch, PoolSpec, PoolStatus, Scope, TenantRole, Timestamp,
};
use crate::secrets::{mint_key, NewKey};

/// A handle to one organization's actor.
#[derive(Clone)]
pub struct OrgHandle {
    addr: Addr<OrgActor>,
}

impl OrgHandle {
    pub(super) fn new(addr: Addr<OrgActor>) -> OrgHandle {
        OrgHandle { addr }
    }

    async fn command<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut OrgState, Timestamp) -> Result<Applied<R>, DomainError> + Send + 'static,
    ) -> Result<R, ActorError> {
        let (value, ack) = self
            .addr
            .send(Command(Box::new(f)))
            .await
            .map_err(|_| ActorError::Unavailable)??;
        ack.durable().await?;
        Ok(value)
    }

    async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&OrgState) -> Result<R, DomainError> + Send + 'static,
    ) -> Result<R, ActorError> {
        self.addr
            .send(Query(Box::new(f)))
            .await
            .map_err(|_| ActorError::Unavailable)?
    }

    /// Adds a member (admins only).
    pub async fn add_member(
        &self,
        actor: MemberId,
        email: Email,
        name: Option<String>,
        tenant_roles: Vec<TenantRole>,
    ) -> Result<Member, ActorError> {
        self.command(move |s, now| {
            let member = Member {
                id: MemberId::new(mint(MemberId::PREFIX, now, rand::random())),
                email,
                name,
                tenant_roles,
                created_at: now,
            };
            s.add_member(&actor, member)
        })
        .await
    }

    /// One member, for themselves or an admin.
    pub async fn member(&self, actor: MemberId, id: String) -> Result<Member, ActorError> {
        self.query(move |s| s.member(&actor, &id).cloned()).await
    }

    /// A page of members (admins only).
    pub async fn members(
        &self,
        actor: MemberId,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Member>, ActorError> {
        self.query(move |s| s.members(&actor, after.as_deref(), limit))
            .await
    }

    /// Creates a key for `member`; the answer carries the secret, shown once.
    pub async fn create_key(
        &self,
        actor: MemberId,
        member: String,
        name: String,
        scopes: Vec<Scope>,
        expires_at: Option<Timestamp>,
    ) -> Result<NewKey, ActorError> {
        self.command(move |s, now| {
            let member = s.member(&actor, &member)?.id.clone();
            let NewKey { key, secret } = mint_key(member, name, scopes, expires_at, now);
            let applied = s.create_key(&actor, key, now)?;
            Ok(Applied {
                value: NewKey {
                    key: applied.value,
                    secret,
                },
                events: applied.events,
            })
        })
        .await
    }

    /// A page of one member's keys.
    pub async fn keys_of(
        &self,
        actor: MemberId,
        member: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<ApiKey>, ActorError> {
        self.query(move |s| s.keys_of(&actor, &member, after.as_deref(), limit))
            .await
    }

    /// Revokes a key; effective for the next request.
    pub async fn revoke_key(&self, actor: MemberId, id: String) -> Result<(), ActorError> {
        self.command(move |s, _| s.revoke_key(&actor, &id)).await
    }

    /// Creates a pool.
    pub async fn create_pool(&self, actor: MemberId, spec: PoolSpec) -> Result<Pool, ActorError> {
        self.command(move |s, now| {
            let id = PoolId::new(mint(PoolId::PREFIX, now, rand::random()));
            s.create_pool(&actor, id, spec, now)
        })
        .await
    }

    /// One pool with its live and waiting counts.
    pub async fn pool(&self, actor: MemberId, id: String) -> Result<PoolStatus, ActorError> {
        self.query(move |s| Ok(s.pool_status(s.pool(&actor, &id)?)))
            .await
    }

    /// A page of pools with their live session counts.
    pub async fn pools(
        &self,
        actor: MemberId,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<PoolStatus>, ActorError> {
        self.query(move |s| s.pools(&actor, after.as_deref(), limit))
            .await
    }

    /// Changes a pool; the answer has its live session count.
    pub async fn update_pool(
        &self,
        actor: MemberId,
        id: String,
        patch: PoolPatch,
    ) -> Result<PoolStatus, ActorError> {
        self.command(move |s, now| {
            let applied = s.update_pool(&actor, &id, patch, now)?;
            Ok(Applied {
                value: s.pool_status(&applied.value),
                events: applied.events,
            })
        })
        .await
    }

    /// Deletes a pool without live sessions.
    pub async fn delete_pool(&self, actor: MemberId, id: String) -> Result<(), ActorError> {
        self.command(move |s, _| s.delete_pool(&actor, &id)).await
    }

    /// Acquires a seat, waiting up to `wait` for one.
    pub async fn acquire(
        &self,
        request: AcquireRequest,
        wait: Duration,
    ) -> Result<Acquired, ActorError> {
        let reply = self
            .addr
            .send(Acquire { request, wait })
            .await
            .map_err(|_| ActorError::Unavailable)??;
        match reply {
            AcquireReply::Granted(acquired, ack) => {
                ack.durable().await?;
                Ok(acquired)
            }
            AcquireReply::Queued(rx) => rx.await.unwrap_or(Err(ActorError::Unavailable)),
        }
    }

    /// Extends a member's own lease.
    pub async fn heartbeat(&self, member: MemberId, id: String) -> Result<Lease, ActorError> {
        self.command(move |s, now| s.heartbeat(&member, &id, now))
            .await
    }

    /// Ends a member's own lease.
    pub async fn release(&self, member: MemberId, id: String) -> Result<(), ActorError> {
        self.command(move |s, now| s.release(&member, &id, now))
            .await
    }

    /// An admin ends any lease.
    pub async fn end_session(&self, actor: MemberId, id: String) -> Result<(), ActorError> {
        self.command(move |s, _| s.end_session(&actor, &id)).await
    }

    /// A page of live leases (admins only).
    pub async fn sessions(
        &self,
        actor: MemberId,
        after: Option<String>,
        limit: usize,
    ) -> Result<Page<Lease>, ActorError> {
        self.query(move |s| s.sessions(&actor, after.as_deref(), limit))
            .await
    }
}
