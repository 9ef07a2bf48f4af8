//! Projects, their access lists, groups and custom roles (seed 002).

use std::collections::{BTreeMap, BTreeSet};

use super::{check_name, Action, Applied, OrgState, Verdict};
use crate::domain::page::{self, page_of, Page};
use crate::domain::pool::check_product;
use crate::domain::project::{Group, Project, Subject, EVERYONE};
use crate::domain::roles::{check_role_spec, CustomRole, BUILTIN};
use crate::domain::{
    DomainError, Event, GroupId, MemberId, ProjectId, RoleId, TenantRole, Timestamp,
};

/// A custom role as an admin writes it; `None` fields stay as they are on a change.
#[derive(Debug, Clone, Default)]
pub struct RoleSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<BTreeMap<String, Vec<String>>>,
    pub tasks: Option<Vec<String>>,
}

const PROJECT: DomainError = DomainError::NotFound { what: "project" };

impl OrgState {
    // ---- projects ----------------------------------------------------------------

    /// Creates a project of `product`, owned by its creator.
    pub fn create_project(
        &self,
        actor: &MemberId,
        id: ProjectId,
        name: &str,
        product: &str,
        now: Timestamp,
    ) -> Result<Applied<Project>, DomainError> {
        self.require(actor, Action::CreateProject)?;
        let name = check_name("name", name)?;
        check_product("product", product)?;
        let project = Project {
            id,
            name,
            product: product.to_owned(),
            owner: actor.clone(),
            created_at: now,
            access: BTreeMap::new(),
        };
        Ok(Applied {
            value: project.clone(),
            events: vec![Event::ProjectCreated(project)],
        })
    }

    /// A project `actor` sees (else 404: a project one cannot see is not confirmed).
    pub fn project(&self, actor: &MemberId, id: &str) -> Result<&Project, DomainError> {
        let view = self.access();
        let project = view.project(id).ok_or(PROJECT)?;
        if !view.sees(actor, project) {
            return Err(PROJECT);
        }
        self.projects.get(id).ok_or(PROJECT)
    }

    /// A page of the projects `actor` sees.
    pub fn projects(&self, actor: &MemberId, after: Option<&str>, limit: usize) -> Page<Project> {
        let view = self.access();
        page_of(
            self.projects.range::<str, _>(page::after(after)),
            limit,
            |p| view.sees(actor, p),
            Project::clone,
        )
    }

    /// Whether `actor` may manage `project`'s access: a tenant owner or administrator,
    /// or whoever holds `project.assign_access` there (licensed).
    fn require_assign(
        &self,
        actor: &MemberId,
        project: &Project,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let view = self.access();
        if view.acts_as_owner(actor) {
            return Ok(());
        }
        let Verdict { allowed, reasons } = view.check(actor, project, "project.assign_access", now);
        if allowed {
            return Ok(());
        }
        Err(DomainError::Forbidden(
            if reasons.iter().any(|r| r.starts_with("missing seat")) {
                "project.assign_access needs a named seat of the project's product"
            } else {
                "only the project owner, a test manager or a tenant owner/administrator may manage access"
            },
        ))
    }

    /// The subject a wire id names: a group (`everyone` included) or a member (id or
    /// e-mail).
    fn subject(&self, id: &str) -> Result<Subject, DomainError> {
        if id == EVERYONE || self.groups.contains_key(id) {
            return Ok(Subject::Group(GroupId::new(id)));
        }
        Ok(Subject::User(self.find_member(id)?.id.clone()))
    }

    /// Assigns `subject` to the project with `roles` (none: `read_only`), replacing
    /// its earlier roles. The owner role is not assignable: ownership is transferred.
    pub fn set_access(
        &self,
        actor: &MemberId,
        project: &str,
        subject: &str,
        group: bool,
        roles: &[String],
        now: Timestamp,
    ) -> Result<Applied<(Subject, BTreeSet<RoleId>)>, DomainError> {
        let p = self.project(actor, project)?;
        self.require_assign(actor, p, now)?;
        // The body says which it names: a group id is no user, nor a member a group.
        let subject = match self.subject(subject)? {
            Subject::Group(_) if !group => return Err(DomainError::NotFound { what: "user" }),
            Subject::User(_) if group => return Err(DomainError::NotFound { what: "group" }),
            s => s,
        };
        let mut set = BTreeSet::new();
        for r in roles {
            let builtin = BUILTIN.contains(&r.as_str()) && r != "owner";
            if !builtin && !self.roles.contains_key(r.as_str()) {
                return Err(DomainError::invalid(
                    "roles",
                    format!(
                        "unknown role {r:?}; roles are test_manager, test_designer, test_executor, \
                         manual_tester, read_only or a custom role's id (ownership is transferred, \
                         not assigned)"
                    ),
                ));
            }
            set.insert(RoleId::new(r.as_str()));
        }
        let value = (subject.clone(), set.clone());
        if p.access.get(&subject) == Some(&set) {
            return Ok(Applied {
                value,
                events: vec![],
            });
        }
        Ok(Applied {
            value,
            events: vec![Event::AccessSet {
                project: p.id.clone(),
                subject,
                roles: set,
            }],
        })
    }

    /// The project's assignments, or the one of `subject` (a member's id or e-mail, or
    /// a group id; 404 if not assigned), for whoever sees the project.
    pub fn access_of(
        &self,
        actor: &MemberId,
        project: &str,
        subject: Option<&str>,
    ) -> Result<Vec<(Subject, BTreeSet<RoleId>)>, DomainError> {
        let p = self.project(actor, project)?;
        if let Some(subject) = subject {
            let subject = self.subject(subject)?;
            let roles =
                (p.access.get(&subject)).ok_or(DomainError::NotFound { what: "assignment" })?;
            return Ok(vec![(subject, roles.clone())]);
        }
        Ok(p.access
            .iter()
            .map(|(s, r)| (s.clone(), r.clone()))
            .collect())
    }

    /// Removes the assignments of `subjects` (each a member or group); all must be
    /// assigned, or nothing changes (404).
    pub fn remove_access(
        &self,
        actor: &MemberId,
        project: &str,
        subjects: &[String],
        now: Timestamp,
    ) -> Result<Applied<()>, DomainError> {
        let p = self.project(actor, project)?;
        self.require_assign(actor, p, now)?;
        let mut events = Vec::new();
        for s in subjects {
            let subject = self.subject(s)?;
            if !p.access.contains_key(&subject) {
                return Err(DomainError::NotFound { what: "assignment" });
            }
            let e = Event::AccessRemoved {
                project: p.id.clone(),
                subject,
            };
            if !events.contains(&e) {
                events.push(e);
            }
        }
        Ok(Applied { value: (), events })
    }

    /// Gives the project to member `to` (who need not be assigned yet): by its owner or
    /// a tenant owner/administrator. The old owner stays assigned, `read_only` if they
    /// had no roles there.
    pub fn transfer_project(
        &self,
        actor: &MemberId,
        project: &str,
        to: &str,
    ) -> Result<Applied<Project>, DomainError> {
        let p = self.project(actor, project)?;
        if &p.owner != actor && !self.access().acts_as_owner(actor) {
            return Err(DomainError::Forbidden(
                "only the project owner or a tenant owner/administrator may transfer it",
            ));
        }
        let to = self.find_member(to)?.id.clone();
        let mut events = Vec::new();
        if to != p.owner {
            let old = Subject::User(p.owner.clone());
            if !p.access.contains_key(&old) {
                events.push(Event::AccessSet {
                    project: p.id.clone(),
                    subject: old,
                    roles: BTreeSet::new(),
                });
            }
            events.push(Event::ProjectOwnerChanged {
                project: p.id.clone(),
                owner: to.clone(),
            });
        }
        let mut value = p.clone();
        value.owner = to;
        Ok(Applied { value, events })
    }

    /// The events that give every project `member` owns to the tenant owner: a member
    /// who leaves takes no project with them.
    pub(super) fn hand_over_projects(&self, member: &MemberId) -> Vec<Event> {
        let Some(owner) = (self.members.values())
            .find(|m| m.tenant_roles.contains(&TenantRole::Owner))
            .map(|m| m.id.clone())
        else {
            return vec![];
        };
        (self.projects.values())
            .filter(|p| &p.owner == member)
            .map(|p| Event::ProjectOwnerChanged {
                project: p.id.clone(),
                owner: owner.clone(),
            })
            .collect()
    }

    // ---- groups ------------------------------------------------------------------

    /// The group with this id; `everyone` always exists.
    fn group_or_everyone(&self, id: &str) -> Result<Group, DomainError> {
        match self.groups.get(id) {
            Some(g) => Ok(g.clone()),
            None if id == EVERYONE => Ok(Group::everyone(self.created_at)),
            None => Err(DomainError::NotFound { what: "group" }),
        }
    }

    /// Checks tenant roles for a group: never `owner`.
    fn group_roles(roles: Vec<TenantRole>) -> Result<Vec<TenantRole>, DomainError> {
        if roles.contains(&TenantRole::Owner) {
            return Err(DomainError::invalid(
                "tenant_roles",
                "owner is never given to a group",
            ));
        }
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    /// Members named by id or e-mail; any unknown one is 404 and nothing changes.
    fn member_set(&self, names: &[String]) -> Result<BTreeSet<MemberId>, DomainError> {
        names
            .iter()
            .map(|n| self.find_member(n).map(|m| m.id.clone()))
            .collect()
    }

    /// Creates a group (admins only).
    pub fn create_group(
        &self,
        actor: &MemberId,
        id: GroupId,
        name: &str,
        members: &[String],
        tenant_roles: Vec<TenantRole>,
        now: Timestamp,
    ) -> Result<Applied<Group>, DomainError> {
        self.require(actor, Action::ManageGroups)?;
        let group = Group {
            id,
            name: check_name("name", name)?,
            members: self.member_set(members)?,
            tenant_roles: Self::group_roles(tenant_roles)?,
            created_at: now,
        };
        Ok(Applied {
            value: group.clone(),
            events: vec![Event::GroupCreated(group)],
        })
    }

    /// Changes a group's name, members or tenant roles (admins only). `everyone`'s
    /// members are every member and cannot be set.
    pub fn change_group(
        &self,
        actor: &MemberId,
        id: &str,
        name: Option<&str>,
        members: Option<&[String]>,
        tenant_roles: Option<Vec<TenantRole>>,
    ) -> Result<Applied<Group>, DomainError> {
        self.require(actor, Action::ManageGroups)?;
        let mut group = self.group_or_everyone(id)?;
        if let Some(name) = name {
            group.name = check_name("name", name)?;
        }
        if let Some(members) = members {
            if group.is_everyone() {
                return Err(DomainError::invalid(
                    "members",
                    "everyone holds every member; its members cannot be set",
                ));
            }
            group.members = self.member_set(members)?;
        }
        if let Some(roles) = tenant_roles {
            group.tenant_roles = Self::group_roles(roles)?;
        }
        let events = if self.group_or_everyone(id)? == group {
            vec![]
        } else {
            vec![Event::GroupChanged(group.clone())]
        };
        Ok(Applied {
            value: group,
            events,
        })
    }

    /// Deletes a group and its assignments (admins only); `everyone` stays.
    pub fn delete_group(&self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        self.require(actor, Action::ManageGroups)?;
        if id == EVERYONE {
            return Err(DomainError::conflict(
                "the built-in group cannot be deleted",
            ));
        }
        let g = self
            .groups
            .get(id)
            .ok_or(DomainError::NotFound { what: "group" })?;
        Ok(Applied {
            value: (),
            events: vec![Event::GroupDeleted { id: g.id.clone() }],
        })
    }

    /// One group (any member).
    pub fn group(&self, actor: &MemberId, id: &str) -> Result<Group, DomainError> {
        self.require(actor, Action::Browse)?;
        self.group_or_everyone(id)
    }

    /// Every group, `everyone` first (any member).
    pub fn groups(&self, actor: &MemberId) -> Result<Vec<Group>, DomainError> {
        self.require(actor, Action::Browse)?;
        let everyone = self.group_or_everyone(EVERYONE)?;
        Ok(std::iter::once(everyone)
            .chain(self.groups.values().filter(|g| !g.is_everyone()).cloned())
            .collect())
    }

    // ---- custom roles ------------------------------------------------------------

    /// Creates a custom role (a project owner or tenant owner/administrator).
    pub fn create_role(
        &self,
        actor: &MemberId,
        id: RoleId,
        spec: RoleSpec,
        now: Timestamp,
    ) -> Result<Applied<CustomRole>, DomainError> {
        self.require(actor, Action::CreateRole(now))?;
        let name = spec
            .name
            .as_deref()
            .ok_or(DomainError::invalid("name", "a role needs a name"))?;
        let (permissions, tasks) = check_role_spec(
            spec.permissions.as_ref().unwrap_or(&BTreeMap::new()),
            spec.tasks.as_deref().unwrap_or(&[]),
        )?;
        let role = CustomRole {
            id,
            name: self.role_name(name, None)?,
            description: spec.description.unwrap_or_default(),
            permissions,
            tasks,
            created_at: now,
        };
        Ok(Applied {
            value: role.clone(),
            events: vec![Event::RoleCreated(role)],
        })
    }

    /// A role name: 1-200 characters, unique among custom roles and not a built-in's.
    fn role_name(&self, name: &str, except: Option<&RoleId>) -> Result<String, DomainError> {
        let name = check_name("name", name)?;
        let taken = BUILTIN.contains(&name.as_str())
            || (self.roles.values()).any(|r| r.name == name && Some(&r.id) != except);
        if taken {
            return Err(DomainError::conflict(format!(
                "a role named {name:?} exists"
            )));
        }
        Ok(name)
    }

    fn custom_role(&self, id: &str) -> Result<&CustomRole, DomainError> {
        if BUILTIN.contains(&id) {
            return Err(DomainError::conflict("built-in roles cannot be changed"));
        }
        self.roles
            .get(id)
            .ok_or(DomainError::NotFound { what: "role" })
    }

    /// Changes a custom role; the fields `spec` names replace the role's.
    pub fn update_role(
        &self,
        actor: &MemberId,
        id: &str,
        spec: RoleSpec,
    ) -> Result<Applied<CustomRole>, DomainError> {
        self.require(actor, Action::ManageRoles)?;
        let mut role = self.custom_role(id)?.clone();
        if let Some(name) = &spec.name {
            role.name = self.role_name(name, Some(&role.id))?;
        }
        if let Some(d) = spec.description {
            role.description = d;
        }
        let current_permissions = (role.permissions.iter())
            .map(|(o, v)| (o.clone(), v.iter().cloned().collect()))
            .collect();
        let current_tasks: Vec<String> = role.tasks.iter().cloned().collect();
        let (permissions, tasks) = check_role_spec(
            spec.permissions.as_ref().unwrap_or(&current_permissions),
            spec.tasks.as_deref().unwrap_or(&current_tasks),
        )?;
        role.permissions = permissions;
        role.tasks = tasks;
        let events = if self.roles.get(id) == Some(&role) {
            vec![]
        } else {
            vec![Event::RoleChanged(role.clone())]
        };
        Ok(Applied {
            value: role,
            events,
        })
    }

    /// A copy of a custom role under a new name and id.
    pub fn clone_role(
        &self,
        actor: &MemberId,
        id: &str,
        new_id: RoleId,
        name: &str,
        now: Timestamp,
    ) -> Result<Applied<CustomRole>, DomainError> {
        self.require(actor, Action::CreateRole(now))?;
        let source = self.custom_role(id)?;
        let role = CustomRole {
            id: new_id,
            name: self.role_name(name, None)?,
            created_at: now,
            ..source.clone()
        };
        Ok(Applied {
            value: role.clone(),
            events: vec![Event::RoleCreated(role)],
        })
    }

    /// Deletes a custom role, and with it from every assignment.
    pub fn delete_role(&self, actor: &MemberId, id: &str) -> Result<Applied<()>, DomainError> {
        self.require(actor, Action::ManageRoles)?;
        let role = self.custom_role(id)?;
        Ok(Applied {
            value: (),
            events: vec![Event::RoleDeleted {
                id: role.id.clone(),
            }],
        })
    }

    /// One custom role (any member).
    pub fn role(&self, actor: &MemberId, id: &str) -> Result<CustomRole, DomainError> {
        self.require(actor, Action::Browse)?;
        self.roles
            .get(id)
            .cloned()
            .ok_or(DomainError::NotFound { what: "role" })
    }

    /// Every custom role (any member); the built-in ones are fixed and listed by the
    /// wire beside them.
    pub fn custom_roles(&self, actor: &MemberId) -> Result<Vec<CustomRole>, DomainError> {
        self.require(actor, Action::Browse)?;
        Ok(self.roles.values().cloned().collect())
    }
}
