//! Members and their API keys.

use super::{check_name, Action, Applied, OrgState};
use crate::domain::event::EndReason;
use crate::domain::page::{self, page_of, Page};
use crate::domain::{ApiKey, DomainError, Event, Member, MemberId, Scope, TenantRole, Timestamp};

impl OrgState {
    /// A member by id, visible to themselves and to admins.
    pub fn member(&self, actor: &MemberId, id: &str) -> Result<&Member, DomainError> {
        self.require(actor, Action::ReadMember(&MemberId::new(id)))?;
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
        self.require(actor, Action::ManageMembers)?;
        Ok(page_of(
            self.members.range::<str, _>(page::after(after)),
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
        self.require(actor, Action::ReadKeysOf(&MemberId::new(member)))?;
        let member = self
            .members
            .get(member)
            .ok_or(DomainError::NotFound { what: "user" })?
            .id
            .clone();
        Ok(page_of(
            self.keys.range::<str, _>(page::after(after)),
            limit,
            |k| k.member == member,
            ApiKey::clone,
        ))
    }

    /// Adds a member; `owner` cannot be given this way (there is exactly one).
    pub fn add_member(
        &self,
        actor: &MemberId,
        member: Member,
    ) -> Result<Applied<Member>, DomainError> {
        self.require(actor, Action::ManageMembers)?;
        if member.tenant_roles.contains(&TenantRole::Owner) {
            return Err(DomainError::invalid(
                "tenant_roles",
                "an organization has exactly one owner; ownership is transferred, not assigned",
            ));
        }
        let mut member = member;
        if let Some(name) = &member.name {
            member.name = Some(check_name("name", name)?);
        }
        if self.emails.contains_key(&member.email) {
            return Err(DomainError::conflict(format!(
                "{} is already a member",
                member.email.as_str()
            )));
        }
        member.tenant_roles.sort();
        member.tenant_roles.dedup();
        Ok(Applied {
            value: member.clone(),
            events: vec![Event::MemberAdded(member)],
        })
    }

    /// Stores a new key of `key.member`: members create their own, admins those of
    /// members other than the owner.
    pub fn create_key(
        &self,
        actor: &MemberId,
        key: ApiKey,
        now: Timestamp,
    ) -> Result<Applied<ApiKey>, DomainError> {
        let holder = self.member(actor, key.member.as_str())?;
        self.require(actor, Action::ManageKeysOf(holder))?;
        let mut key = key;
        key.name = check_name("name", &key.name)?;
        if key.scopes.is_empty() {
            return Err(DomainError::invalid(
                "scopes",
                "name at least one of \"sessions\", \"admin\"",
            ));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expires_at", "must be in the future"));
        }
        key.scopes.sort();
        key.scopes.dedup();
        Ok(Applied {
            value: key.clone(),
            events: vec![Event::KeyCreated(key)],
        })
    }

    /// Revokes a key and ends the leases taken with it. The owner's last live
    /// admin-scoped key cannot be revoked: without it nobody could manage the
    /// organization (and nobody but the owner may mint the owner a key).
    pub fn revoke_key(
        &self,
        actor: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let key = self
            .keys
            .get(id)
            .ok_or(DomainError::NotFound { what: "api key" })?;
        let holder = self
            .members
            .get(&key.member)
            .ok_or(DomainError::NotFound { what: "api key" })?;
        self.require(actor, Action::ManageKeysOf(holder))?;
        if holder.tenant_roles.contains(&TenantRole::Owner) && key.scopes.contains(&Scope::Admin) {
            let others = self
                .keys
                .values()
                .filter(|k| k.member == holder.id && k.id != key.id)
                .filter(|k| k.expires_at.is_none_or(|at| now < at))
                .any(|k| k.scopes.contains(&Scope::Admin));
            if !others {
                return Err(DomainError::conflict(
                    "this is the owner's last admin-scoped key; create another one first",
                ));
            }
        }
        let mut events = vec![Event::KeyRevoked { id: key.id.clone() }];
        events.extend(
            self.leases
                .taken_with(&key.id)
                .into_iter()
                .map(|id| Event::LeaseEnded {
                    id,
                    reason: EndReason::Revoked,
                }),
        );
        Ok(Applied { value: (), events })
    }
}
