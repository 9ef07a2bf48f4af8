//! Projects and groups: who is assigned to a project with which roles.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{GroupId, MemberId, ProjectId, RoleId, TenantRole, Timestamp};

/// The id of the built-in group every member is in.
pub const EVERYONE: &str = "everyone";

/// Who an assignment is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    User(MemberId),
    Group(GroupId),
}

/// A project of one product, with exactly one owner and its assignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    /// The product whose named seat licenses the (L) rights.
    pub product: String,
    pub owner: MemberId,
    pub created_at: Timestamp,
    /// Roles per subject; an empty set means `read_only`.
    #[serde(default)]
    pub access: BTreeMap<Subject, BTreeSet<RoleId>>,
}

/// A group of members. The built-in `everyone` holds every member implicitly and is
/// stored only once its tenant roles are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    #[serde(default)]
    pub members: BTreeSet<MemberId>,
    /// Tenant roles every member of the group has (never `owner`).
    #[serde(default)]
    pub tenant_roles: Vec<TenantRole>,
    pub created_at: Timestamp,
}

impl Group {
    /// The built-in group as it is before anything is set on it.
    pub fn everyone(created_at: Timestamp) -> Group {
        Group {
            id: GroupId::new(EVERYONE),
            name: "Everyone".into(),
            members: BTreeSet::new(),
            tenant_roles: vec![],
            created_at,
        }
    }

    /// Whether this is the built-in group.
    pub fn is_everyone(&self) -> bool {
        self.id.as_str() == EVERYONE
    }

    /// Whether `member` is in it.
    pub fn has(&self, member: &MemberId) -> bool {
        self.is_everyone() || self.members.contains(member)
    }
}
