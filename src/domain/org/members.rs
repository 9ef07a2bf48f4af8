//! Members and their API keys.

use super::{check_name, Action, Applied, OrgState, SessionRow};
use crate::domain::event::{EndReason, Release};
use crate::domain::page::{self, page_of, Page};
use crate::domain::{
    ApiKey, DomainError, Email, Event, Member, MemberId, Scope, TenantRole, Timestamp,
};

impl OrgState {
    /// A member by id, visible to themselves and to admins.
    pub fn member(&self, actor: &MemberId, id: &str) -> Result<&Member, DomainError> {
        let id = self.member_id_of(id);
        self.require(actor, Action::ReadMember(&id))?;
        self.find_member(id.as_str())
    }

    /// A page of members (admins only), or of the one with `email`.
    pub fn members(
        &self,
        actor: &MemberId,
        email: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Member>, DomainError> {
        self.require(actor, Action::ManageMembers)?;
        let email = email.map(Email::parse).transpose()?;
        Ok(page_of(
            self.members.range::<str, _>(page::after(after)),
            limit,
            |m| email.as_ref().is_none_or(|e| &m.email == e),
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
        let member = self.member_id_of(member);
        self.require(actor, Action::ReadKeysOf(&member))?;
        let member = self.find_member(member.as_str())?.id.clone();
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
        Ok(self
            .add_members(actor, vec![member])?
            .map(|mut added| added.remove(0)))
    }

    /// Adds members all-or-nothing: one refused (a duplicate e-mail, in the org or in
    /// the list, or `owner` asked for) adds none.
    pub fn add_members(
        &self,
        actor: &MemberId,
        members: Vec<Member>,
    ) -> Result<Applied<Vec<Member>>, DomainError> {
        self.require(actor, Action::ManageMembers)?;
        if members.is_empty() {
            return Err(DomainError::invalid("users", "name at least one member"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut added = Vec::with_capacity(members.len());
        for mut member in members {
            check_roles_given(&member.tenant_roles)?;
            if let Some(name) = &member.name {
                member.name = Some(check_name("name", name)?);
            }
            if self.emails.contains_key(&member.email) || !seen.insert(member.email.clone()) {
                return Err(DomainError::conflict(format!(
                    "{} is already a member",
                    member.email.as_str()
                )));
            }
            member.tenant_roles.sort();
            member.tenant_roles.dedup();
            added.push(member);
        }
        Ok(Applied {
            events: added.iter().cloned().map(Event::MemberAdded).collect(),
            value: added,
        })
    }

    /// Sets a member's tenant roles. Giving `owner` to another member transfers
    /// ownership (only the owner may): the old owner becomes an administrator, and the
    /// new owner's keys are replaced by `owner_key` (admins may have minted and kept
    /// their old ones, and the owner's keys are the owner's alone). The owner's own
    /// roles keep `owner`, since an organization always has exactly one.
    pub fn change_roles(
        &self,
        actor: &MemberId,
        id: &str,
        roles: Vec<TenantRole>,
        owner_key: impl FnOnce(&MemberId) -> ApiKey,
    ) -> Result<Applied<Member>, DomainError> {
        self.require(actor, Action::ManageMembers)?;
        let target = self.find_member(id)?;
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        let was_owner = target.tenant_roles.contains(&TenantRole::Owner);
        let to_owner = roles.contains(&TenantRole::Owner);
        let mut events = Vec::new();
        match (was_owner, to_owner) {
            (true, false) => {
                return Err(DomainError::conflict(
                    "an organization has exactly one owner; give `owner` to another member to \
                     transfer ownership",
                ))
            }
            (false, true) => {
                let actor_is_owner = self
                    .members
                    .get(actor)
                    .is_some_and(|m| m.tenant_roles.contains(&TenantRole::Owner));
                if !actor_is_owner {
                    return Err(DomainError::Forbidden(
                        "only the owner may transfer ownership",
                    ));
                }
                let old = self
                    .members
                    .get(actor)
                    .expect("the actor is the owner, so a member");
                let mut old_roles: Vec<TenantRole> = (old.tenant_roles.iter())
                    .copied()
                    .filter(|r| *r != TenantRole::Owner)
                    .chain([TenantRole::Administrator])
                    .collect();
                old_roles.sort();
                old_roles.dedup();
                events.push(Event::MemberRolesChanged {
                    id: old.id.clone(),
                    tenant_roles: old_roles,
                });
                events.extend(
                    (self.keys.values())
                        .filter(|k| k.member == target.id)
                        .map(|k| Event::KeyRevoked { id: k.id.clone() }),
                );
                events.push(Event::KeyCreated(owner_key(&target.id)));
            }
            _ => {}
        }
        if roles != target.tenant_roles {
            events.insert(
                0,
                Event::MemberRolesChanged {
                    id: target.id.clone(),
                    tenant_roles: roles.clone(),
                },
            );
        }
        Ok(Applied {
            value: Member {
                tenant_roles: roles,
                ..target.clone()
            },
            events,
        })
    }

    /// Removes a member: their keys are revoked and their seats released with them. The
    /// owner cannot be removed (transfer ownership first), nor a member signed in.
    pub fn remove_member(
        &self,
        actor: &MemberId,
        id: &str,
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        self.require(actor, Action::ManageMembers)?;
        let target = self.find_member(id)?;
        if target.tenant_roles.contains(&TenantRole::Owner) {
            return Err(DomainError::conflict(
                "the owner cannot be removed; transfer ownership first",
            ));
        }
        let sessions: Vec<SessionRow> = (self.leases.of_member(&target.id).into_iter())
            .map(|lease| SessionRow {
                lease,
                email: Some(target.email.clone()),
            })
            .collect();
        if !sessions.is_empty() {
            return Err(DomainError::UserSignedIn { sessions });
        }
        let id = &target.id;
        let mut events: Vec<Event> = (self.keys.values())
            .filter(|k| &k.member == id)
            .map(|k| Event::KeyRevoked { id: k.id.clone() })
            .collect();
        for p in self.pools.values() {
            let holds = p.allocated.contains(id)
                || p.entitled.as_ref().is_some_and(|list| list.contains(id));
            if holds {
                events.push(Event::Deallocated {
                    pool: p.id.clone(),
                    member: id.clone(),
                    reason: Release::Removed,
                });
            }
        }
        events.extend(self.deactivations(Some(id), None, now));
        events.extend(self.hand_over_projects(id));
        events.push(Event::MemberRemoved { id: id.clone() });
        Ok(Applied { value: (), events })
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

/// Roles a member may be given when added: any but `owner`, of which there is one.
fn check_roles_given(roles: &[TenantRole]) -> Result<(), DomainError> {
    if roles.contains(&TenantRole::Owner) {
        return Err(DomainError::invalid(
            "tenant_roles",
            "an organization has exactly one owner; ownership is transferred, not assigned",
        ));
    }
    Ok(())
}
