//! Who may do what: one `authorize` that answers allowed or denied with the reason.
//! Every command and read asks it; the roles issue extends [`Action`].

use super::OrgState;
use crate::domain::{DomainError, Member, MemberId, TenantRole, Timestamp};

/// Something a member asks to do in their organization.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Add or list members.
    ManageMembers,
    /// Read one member.
    ReadMember(&'a MemberId),
    /// List one member's keys.
    ReadKeysOf(&'a MemberId),
    /// Create or revoke one member's keys.
    ManageKeysOf(&'a Member),
    /// Create, change, delete or read pools.
    ManagePools,
    /// List the organization's sessions or end anyone's.
    ManageSessions,
    /// Read the usage report and the audit log.
    ReadReports,
    /// Create, change or delete groups.
    ManageGroups,
    /// Create a project (and own it).
    CreateProject,
    /// Change or delete custom roles (used across projects: tenant admins only).
    ManageRoles,
    /// Create or clone a custom role, at this time (a project owner needs the seat).
    CreateRole(Timestamp),
    /// List the organization's groups and roles (any member: they name what can be
    /// assigned).
    Browse,
}

/// An answer of [`OrgState::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why: the role or relation that allowed it, or what was missing.
    pub reason: &'static str,
}

impl Decision {
    fn allow(reason: &'static str) -> Decision {
        Decision {
            allowed: true,
            reason,
        }
    }

    fn deny(reason: &'static str) -> Decision {
        Decision {
            allowed: false,
            reason,
        }
    }
}

const NEEDS_ADMIN: &str = "only an owner or administrator may do this";

impl OrgState {
    /// Whether member `who` may do `action`, and why.
    pub fn authorize(&self, who: &MemberId, action: Action) -> Decision {
        let Some(member) = self.members.get(who) else {
            return Decision::deny("not a member of this organization");
        };
        let admin = || {
            if member.tenant_roles.contains(&TenantRole::Owner) {
                Decision::allow("owner")
            } else if self.has_tenant_role(who, TenantRole::Administrator) {
                Decision::allow("administrator")
            } else {
                Decision::deny(NEEDS_ADMIN)
            }
        };
        match action {
            Action::ManageMembers
            | Action::ManagePools
            | Action::ManageSessions
            | Action::ManageGroups
            | Action::ReadReports => admin(),
            Action::Browse => Decision::allow("member"),
            Action::CreateProject => match admin() {
                allowed if allowed.allowed => allowed,
                _ if self.has_tenant_role(who, TenantRole::ProjectCreator) => {
                    Decision::allow("project_creator")
                }
                _ => Decision::deny(
                    "only an owner, administrator or project_creator may create projects",
                ),
            },
            Action::ManageRoles => admin(),
            // A project owner holds `roles.write` (L) in their project: with the seat it
            // needs, they may add roles, but only tenant admins change or delete roles
            // that other projects may use.
            Action::CreateRole(now) => match admin() {
                allowed if allowed.allowed => allowed,
                _ if (self.projects.values()).any(|p| {
                    &p.owner == who && self.access().check(who, p, "roles.write", now).allowed
                }) =>
                {
                    Decision::allow("project owner")
                }
                _ => Decision::deny(
                    "only a licensed project owner, an owner or an administrator may create roles",
                ),
            },
            Action::ReadMember(target) | Action::ReadKeysOf(target) if target == who => {
                Decision::allow("own account")
            }
            Action::ReadMember(_) | Action::ReadKeysOf(_) => admin(),
            Action::ManageKeysOf(target) if &target.id == who => Decision::allow("own keys"),
            // An administrator holding the owner's key could act as the owner or lock
            // them out; the owner's keys are the owner's alone.
            Action::ManageKeysOf(target) if target.tenant_roles.contains(&TenantRole::Owner) => {
                Decision::deny("only the owner manages the owner's keys")
            }
            Action::ManageKeysOf(_) => admin(),
        }
    }

    /// Whether `who` holds tenant role `role`, themselves or through a group.
    pub(super) fn has_tenant_role(&self, who: &MemberId, role: TenantRole) -> bool {
        self.members
            .get(who)
            .is_some_and(|m| m.tenant_roles.contains(&role))
            || self
                .groups
                .values()
                .any(|g| g.tenant_roles.contains(&role) && g.has(who))
    }

    /// [`OrgState::authorize`] as a result: a denial answers 403 with its reason.
    pub fn require(&self, who: &MemberId, action: Action) -> Result<(), DomainError> {
        let decision = self.authorize(who, action);
        if decision.allowed {
            Ok(())
        } else {
            Err(DomainError::Forbidden(decision.reason))
        }
    }
}
