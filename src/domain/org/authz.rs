//! "May member U do permission P in project X?", with the reasons: the one place that
//! question is answered, for the authorization query and for the project commands.
//!
//! The answer reads an [`AccessView`]: the members' tenant roles (their own and their
//! groups'), their groups, their named seats, the projects and the roles' rights, as
//! of the last change. The org rebuilds it after each change that touches any of
//! those and shares it behind an `Arc`, so readers on other threads answer from it
//! without queueing behind the org's writes.

use std::collections::{BTreeSet, HashMap};

use super::OrgState;
use crate::domain::project::{Project, Subject};
use crate::domain::roles::{
    builtin_rights, check_permission, expand, licensed, Right, BUILTIN, READ_ONLY,
};
use crate::domain::{
    DomainError, Email, GroupId, MemberId, PoolKind, ProjectId, RoleId, TenantRole, Timestamp,
};

/// An answer of [`AccessView::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// What allowed it (each role and the group it came through), or what was missing.
    pub reasons: Vec<String>,
}

/// One member as authorization sees them.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// Why the member acts as owner of every project (tenant owner or administrator,
    /// themselves or through a group), if they do.
    acts_as_owner: Option<String>,
    /// Their groups, `everyone` included.
    groups: Vec<GroupId>,
    /// Products they hold a named seat of, with the seat's pool expiry.
    seats: Vec<(String, Option<Timestamp>)>,
}

/// What authorization reads; see the module documentation.
#[derive(Debug, Default)]
pub struct AccessView {
    members: HashMap<MemberId, Entry>,
    emails: HashMap<Email, MemberId>,
    projects: HashMap<ProjectId, Project>,
    group_names: HashMap<GroupId, String>,
    /// Every role's display name and rights: the built-in ones and the custom ones.
    roles: HashMap<RoleId, (String, BTreeSet<Right>)>,
}

impl AccessView {
    /// The view of `s` as it is now.
    pub(super) fn of(s: &OrgState) -> AccessView {
        let everyone = GroupId::new(crate::domain::project::EVERYONE);
        let mut members: HashMap<MemberId, Entry> = HashMap::with_capacity(s.members.len());
        for m in s.members.values() {
            let mut groups = vec![everyone.clone()];
            groups.extend(
                (s.groups.values())
                    .filter(|g| !g.is_everyone() && g.members.contains(&m.id))
                    .map(|g| g.id.clone()),
            );
            let via = |role: TenantRole| {
                if m.tenant_roles.contains(&role) {
                    return Some(String::new());
                }
                (s.groups.values())
                    .find(|g| g.tenant_roles.contains(&role) && g.has(&m.id))
                    .map(|g| format!(" via group {} ({})", g.name, g.id))
            };
            let acts_as_owner = via(TenantRole::Owner)
                .map(|v| format!("tenant owner{v}"))
                .or_else(|| {
                    via(TenantRole::Administrator).map(|v| format!("tenant administrator{v}"))
                });
            members.insert(
                m.id.clone(),
                Entry {
                    acts_as_owner,
                    groups,
                    seats: vec![],
                },
            );
        }
        for p in s.pools.values() {
            if p.kind != PoolKind::Named || p.lapsed {
                continue;
            }
            for m in &p.allocated {
                if let Some(e) = members.get_mut(m) {
                    e.seats
                        .extend(p.products().map(|x| (x.to_owned(), p.expires_at)));
                }
            }
        }
        let mut roles: HashMap<RoleId, (String, BTreeSet<Right>)> = BUILTIN
            .iter()
            .map(|r| {
                let rights = builtin_rights(r).expect("a built-in role");
                (RoleId::new(*r), (r.to_string(), rights))
            })
            .collect();
        roles.extend(
            (s.roles.values())
                .map(|r| (r.id.clone(), (format!("{} ({})", r.name, r.id), r.rights()))),
        );
        let mut group_names: HashMap<GroupId, String> = (s.groups.values())
            .map(|g| (g.id.clone(), g.name.clone()))
            .collect();
        group_names
            .entry(everyone)
            .or_insert_with(|| "Everyone".into());
        AccessView {
            members,
            emails: s.emails.clone(),
            projects: (s.projects.values())
                .map(|p| (p.id.clone(), p.clone()))
                .collect(),
            group_names,
            roles,
        }
    }

    /// The member named by id or e-mail.
    pub fn member(&self, who: &str) -> Option<&MemberId> {
        if let Some((id, _)) = self.members.get_key_value(who) {
            return Some(id);
        }
        Email::parse(who).ok().and_then(|e| self.emails.get(&e))
    }

    /// The project with this id.
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.get(id)
    }

    /// Whether `member` acts as owner of every project (tenant owner or administrator).
    pub fn acts_as_owner(&self, member: &MemberId) -> bool {
        self.members
            .get(member)
            .is_some_and(|e| e.acts_as_owner.is_some())
    }

    /// Whether `member` sees `project`: they own it, act as its owner, or are assigned
    /// to it directly or through a group.
    pub fn sees(&self, member: &MemberId, project: &Project) -> bool {
        !self.grants(member, project).is_empty()
    }

    /// Whether `member` holds a named seat of `product` at `now`.
    pub fn holds_seat(&self, member: &MemberId, product: &str, now: Timestamp) -> bool {
        self.members.get(member).is_some_and(|e| {
            (e.seats.iter()).any(|(p, until)| p == product && until.is_none_or(|at| now < at))
        })
    }

    /// The roles `member` holds in `project`, each with why.
    fn grants<'a>(&'a self, member: &MemberId, project: &'a Project) -> Vec<(&'a str, String)> {
        let Some(entry) = self.members.get(member) else {
            return vec![];
        };
        let mut grants = Vec::new();
        if &project.owner == member {
            grants.push(("owner", "project owner".to_owned()));
        }
        if let Some(why) = &entry.acts_as_owner {
            grants.push(("owner", format!("{why}: acts as project owner")));
        }
        let mut assigned = |subject: &Subject, via: &str| {
            let Some(roles) = project.access.get(subject) else {
                return;
            };
            if roles.is_empty() {
                grants.push((
                    READ_ONLY,
                    format!("role read_only (assigned with no role){via}"),
                ));
            }
            for r in roles {
                if let Some((name, _)) = self.roles.get(r) {
                    grants.push((r.as_str(), format!("role {name}{via}")));
                }
            }
        };
        assigned(&Subject::User(member.clone()), "");
        for g in &entry.groups {
            let name = self.group_names.get(g).map_or("?", String::as_str);
            assigned(
                &Subject::Group(g.clone()),
                &format!(" via group {name} ({g})"),
            );
        }
        grants
    }

    /// May `member` do `permission` (a checked name; `X.write` needs all three of
    /// create, update, delete) in `project` at `now`? The reasons name each role
    /// that grants it and the group it came through, or what is missing: a role, or
    /// the named seat an (L) right needs.
    pub fn check(
        &self,
        member: &MemberId,
        project: &Project,
        permission: &str,
        now: Timestamp,
    ) -> Verdict {
        let grants = self.grants(member, project);
        if grants.is_empty() {
            return Verdict {
                allowed: false,
                reasons: vec![format!(
                    "not assigned to project {}, directly or through a group",
                    project.id
                )],
            };
        }
        let mut reasons: Vec<String> = Vec::new();
        for right in expand(permission) {
            let granting = (grants.iter())
                .filter(|(role, _)| {
                    (self.roles.get(*role)).is_some_and(|(_, rights)| rights.contains(&right))
                })
                .map(|(_, why)| why);
            let before = reasons.len();
            for why in granting {
                if !reasons.contains(why) {
                    reasons.push(why.clone());
                }
            }
            let granted = reasons.len() > before
                || (grants.iter()).any(|(role, _)| {
                    (self.roles.get(*role)).is_some_and(|(_, rights)| rights.contains(&right))
                });
            if !granted {
                let held: BTreeSet<&str> = grants.iter().map(|(role, _)| *role).collect();
                let held: Vec<&str> = held.into_iter().collect();
                return Verdict {
                    allowed: false,
                    reasons: vec![format!(
                        "no role grants {right}: roles held: {}",
                        held.join(", ")
                    )],
                };
            }
        }
        if licensed(permission) && !self.holds_seat(member, &project.product, now) {
            reasons.push(format!(
                "missing seat: {permission} needs a named seat of {}",
                project.product
            ));
            return Verdict {
                allowed: false,
                reasons,
            };
        }
        Verdict {
            allowed: true,
            reasons,
        }
    }

    /// May `user` (id or e-mail; `actor` when None) do `permission` in `project`? Any
    /// member may ask about themselves; asking about another needs an owner or
    /// administrator. Unknown permission names answer 422 listing the valid ones.
    pub fn query(
        &self,
        actor: &MemberId,
        user: Option<&str>,
        project: &str,
        permissions: &[String],
        now: Timestamp,
    ) -> Result<Vec<Verdict>, DomainError> {
        for p in permissions {
            check_permission(p)?;
        }
        let user = match user {
            None => actor,
            Some(who) => {
                let found = self.member(who);
                if found != Some(actor) && !self.acts_as_owner(actor) {
                    return Err(DomainError::Forbidden(
                        "only an owner or administrator may ask about another member",
                    ));
                }
                found.ok_or(DomainError::NotFound { what: "user" })?
            }
        };
        let project = self
            .project(project)
            .ok_or(DomainError::NotFound { what: "project" })?;
        // A member who cannot see the project learns nothing of it.
        if user == actor && !self.acts_as_owner(actor) && !self.sees(actor, project) {
            return Err(DomainError::NotFound { what: "project" });
        }
        Ok(permissions
            .iter()
            .map(|p| self.check(user, project, p, now))
            .collect())
    }
}
