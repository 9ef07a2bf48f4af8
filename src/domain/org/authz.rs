//! "May member U do permission P in project X?", with the reasons: the one place that
//! question is answered, for the authorization query and for the project commands.
//!
//! The answer reads an [`AccessView`]: the members' tenant roles (their own and their
//! groups'), their groups, their named seats, the projects and the roles' rights, as
//! of the last change. The org rebuilds it after each change that touches any of
//! those and shares it behind an `Arc`, so readers on other threads answer from it
//! without queueing behind the org's writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::OrgState;
use crate::domain::project::{Group, Project, Subject};
use crate::domain::roles::{
    builtin_rights, check_permission, expand, licensed, Right, BUILTIN, READ_ONLY,
};
use crate::domain::{
    DomainError, Email, Event, GroupId, MemberId, PoolKind, ProjectId, RoleId, TenantRole,
    Timestamp,
};

/// An answer of [`AccessView::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// What allowed it (each role and the group it came through), or what was missing.
    pub reasons: Vec<String>,
}

/// One member as authorization sees them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Entry {
    /// Why the member acts as owner of every project (tenant owner or administrator,
    /// themselves or through a group), if they do.
    acts_as_owner: Option<String>,
    /// Their groups, `everyone` included.
    groups: Vec<GroupId>,
    /// Products they hold a named seat of, with the seat's pool expiry.
    seats: Vec<(String, Option<Timestamp>)>,
}

/// Members as authorization sees them, rebuilt together when a member, a group or a
/// seat changes.
#[derive(Debug, Default, PartialEq)]
struct People {
    members: HashMap<MemberId, Entry>,
    emails: HashMap<Email, MemberId>,
    group_names: HashMap<GroupId, String>,
}

impl People {
    fn of(s: &OrgState) -> People {
        let everyone = GroupId::new(crate::domain::project::EVERYONE);
        // Each member's groups from the groups' member lists: O(members + places),
        // not members x groups.
        let mut groups_of: HashMap<&MemberId, Vec<&Group>> = HashMap::new();
        for g in s.groups.values().filter(|g| !g.is_everyone()) {
            for m in &g.members {
                groups_of.entry(m).or_default().push(g);
            }
        }
        let stored_everyone = s.groups.get(&everyone);
        let mut members: HashMap<MemberId, Entry> = HashMap::with_capacity(s.members.len());
        for m in s.members.values() {
            let theirs = groups_of.get(&m.id).map_or(&[][..], Vec::as_slice);
            let via = |role: TenantRole| {
                if m.tenant_roles.contains(&role) {
                    return Some(String::new());
                }
                (stored_everyone.into_iter().chain(theirs.iter().copied()))
                    .find(|g| g.tenant_roles.contains(&role))
                    .map(|g| format!(" via group {} ({})", g.name, g.id))
            };
            let acts_as_owner = via(TenantRole::Owner)
                .map(|v| format!("tenant owner{v}"))
                .or_else(|| {
                    via(TenantRole::Administrator).map(|v| format!("tenant administrator{v}"))
                });
            let mut groups = vec![everyone.clone()];
            groups.extend(theirs.iter().map(|g| g.id.clone()));
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
        let mut group_names: HashMap<GroupId, String> = (s.groups.values())
            .map(|g| (g.id.clone(), g.name.clone()))
            .collect();
        group_names
            .entry(everyone)
            .or_insert_with(|| "Everyone".into());
        People {
            members,
            emails: s.emails.clone(),
            group_names,
        }
    }
}

/// Every role's display name and rights: the built-in ones and the custom ones.
type Rights = HashMap<RoleId, (String, BTreeSet<Right>)>;

fn rights_of(s: &OrgState) -> Rights {
    let mut roles: Rights = BUILTIN
        .iter()
        .map(|r| {
            let rights = builtin_rights(r).expect("a built-in role");
            (RoleId::new(*r), (r.to_string(), rights))
        })
        .collect();
    roles.extend(
        (s.roles.values()).map(|r| (r.id.clone(), (format!("{} ({})", r.name, r.id), r.rights()))),
    );
    roles
}

/// What authorization reads; see the module documentation. Its three parts are
/// rebuilt apart, and projects one at a time, so an assignment costs a copy of its
/// project, not of the org.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AccessView {
    people: Arc<People>,
    projects: imbl::HashMap<ProjectId, Arc<Project>>,
    roles: Arc<Rights>,
}

/// Which parts of an org's [`AccessView`] the events applied since it was built
/// changed: the one place that says what each event touches.
#[derive(Debug, Clone, Default)]
pub(super) struct Stale {
    people: bool,
    roles: bool,
    all_projects: bool,
    projects: BTreeSet<ProjectId>,
}

impl Stale {
    /// Everything: nothing was built yet.
    pub(super) fn everything() -> Stale {
        Stale {
            people: true,
            roles: true,
            all_projects: true,
            projects: BTreeSet::new(),
        }
    }

    /// Whether nothing changed.
    pub(super) fn is_nothing(&self) -> bool {
        !(self.people || self.roles || self.all_projects) && self.projects.is_empty()
    }

    /// Notes what `event` changes.
    pub(super) fn note(&mut self, event: &Event) {
        match event {
            Event::KeyCreated(_)
            | Event::KeyRevoked { .. }
            | Event::Activated(_)
            | Event::ActivationSeen { .. }
            | Event::Deactivated { .. }
            | Event::Denied { .. }
            | Event::LeaseGranted(_)
            | Event::LeaseRenewed { .. }
            | Event::LeaseEnded { .. } => {}
            Event::ProjectCreated(Project { id: project, .. })
            | Event::AccessSet { project, .. }
            | Event::AccessRemoved { project, .. }
            | Event::ProjectOwnerChanged { project, .. } => {
                self.projects.insert(project.clone());
            }
            Event::RoleCreated(_) | Event::RoleChanged(_) => self.roles = true,
            // Its assignments go with it, in every project.
            Event::RoleDeleted { .. } => {
                self.roles = true;
                self.all_projects = true;
            }
            Event::MemberRemoved { .. } | Event::GroupDeleted { .. } => {
                self.people = true;
                self.all_projects = true;
            }
            Event::OrgFounded { .. } => *self = Stale::everything(),
            // Who is who, their tenant roles and groups, and who holds which seat. Listed
            // one by one (no catch-all), so a new event must say what it touches.
            Event::MemberAdded(_)
            | Event::MemberRolesChanged { .. }
            | Event::GroupCreated(_)
            | Event::GroupChanged(_)
            | Event::PoolCreated(_)
            | Event::PoolChanged(_)
            | Event::PoolDeleted { .. }
            | Event::PoolLapsed { .. }
            | Event::Allocated { .. }
            | Event::Deallocated { .. }
            | Event::Transferred { .. } => self.people = true,
        }
    }
}

impl AccessView {
    /// `self` with the parts `stale` names rebuilt from `s`.
    pub(super) fn refreshed(&self, s: &OrgState, stale: &Stale) -> AccessView {
        let mut view = self.clone();
        if stale.people {
            view.people = Arc::new(People::of(s));
        }
        if stale.roles {
            view.roles = Arc::new(rights_of(s));
        }
        if stale.all_projects {
            view.projects = (s.projects.values())
                .map(|p| (p.id.clone(), Arc::new(p.clone())))
                .collect();
        } else {
            for id in &stale.projects {
                match s.projects.get(id) {
                    Some(p) => view.projects.insert(id.clone(), Arc::new(p.clone())),
                    None => view.projects.remove(id),
                };
            }
        }
        view
    }

    /// The member named by id or e-mail.
    pub fn member(&self, who: &str) -> Option<&MemberId> {
        if let Some((id, _)) = self.people.members.get_key_value(who) {
            return Some(id);
        }
        Email::parse(who)
            .ok()
            .and_then(|e| self.people.emails.get(&e))
    }

    /// The project with this id.
    pub fn project(&self, id: &str) -> Option<&Project> {
        self.projects.get(id).map(|p| &**p)
    }

    /// Whether `member` acts as owner of every project (tenant owner or administrator).
    pub fn acts_as_owner(&self, member: &MemberId) -> bool {
        self.people
            .members
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
        self.people.members.get(member).is_some_and(|e| {
            (e.seats.iter()).any(|(p, until)| p == product && until.is_none_or(|at| now < at))
        })
    }

    /// The roles `member` holds in `project`, each with why.
    fn grants<'a>(&'a self, member: &MemberId, project: &'a Project) -> Vec<(&'a str, String)> {
        let Some(entry) = self.people.members.get(member) else {
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
            let name = self.people.group_names.get(g).map_or("?", String::as_str);
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
