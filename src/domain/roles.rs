//! Project roles: the built-in permission table of DESIGN §2 as data (the one place it
//! is written), custom roles, and the permission names queries use.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DomainError, RoleId, Timestamp};

/// The objects permissions are named after: `<object>.read|create|update|delete`.
pub const OBJECTS: [&str; 13] = [
    "project",
    "reports",
    "integrations",
    "requirements",
    "test_cases",
    "documents",
    "labels",
    "custom_fields",
    "test_sets",
    "executions",
    "results",
    "defects",
    "roles",
];

/// The test objects a custom role sets create/update/delete on.
pub const TEST_OBJECTS: [&str; 7] = [
    "requirements",
    "test_cases",
    "test_sets",
    "executions",
    "documents",
    "labels",
    "custom_fields",
];

/// What a custom role may add per test object (read is always on).
pub const WRITE_VERBS: [&str; 3] = ["create", "update", "delete"];

/// Rights named in the table beyond `<object>.<verb>`.
const NAMED: [&str; 11] = [
    "project.assign_access",
    "project.settings",
    "requirements.assign_tests",
    "test_cases.add_steps",
    "test_cases.link_automation",
    "test_sets.assign_tests",
    "test_sets.link_orchestrator",
    "executions.read_details",
    "executions.manual",
    "executions.automated",
    "executions.rerun",
];

/// The built-in roles, in the table's column order; their ids are their names.
pub const BUILTIN: [&str; 6] = [
    "owner",
    "test_manager",
    "test_designer",
    "test_executor",
    "manual_tester",
    "read_only",
];

/// The role of an assignment that names none.
pub const READ_ONLY: &str = "read_only";

/// The permission table: each row's rights (as DESIGN writes them; `X.write` is
/// create, update and delete), whether they need a named seat (L), and which built-in
/// roles have them, in [`BUILTIN`] order.
pub const TABLE: &[(&[&str], bool, [bool; 6])] = &[
    (&["project.read"], false, [true; 6]),
    (
        &["project.update", "project.delete"],
        true,
        [true, false, false, false, false, false],
    ),
    (
        &["project.assign_access"],
        true,
        [true, true, false, false, false, false],
    ),
    (
        &["project.settings"],
        true,
        [true, true, false, false, false, false],
    ),
    (&["reports.read"], false, [true; 6]),
    (
        &["integrations.write"],
        true,
        [true, true, false, false, false, false],
    ),
    (&["requirements.read"], false, [true; 6]),
    (
        &["requirements.write", "requirements.assign_tests"],
        true,
        [true, true, true, false, false, false],
    ),
    (&["test_cases.read"], false, [true; 6]),
    (
        &[
            "test_cases.write",
            "test_cases.add_steps",
            "test_cases.link_automation",
        ],
        true,
        [true, true, true, false, false, false],
    ),
    (
        &["documents.write", "labels.write"],
        true,
        [true, true, true, false, false, false],
    ),
    (
        &["custom_fields.write"],
        true,
        [true, true, false, false, false, false],
    ),
    (&["test_sets.read"], false, [true; 6]),
    (
        &[
            "test_sets.write",
            "test_sets.assign_tests",
            "test_sets.link_orchestrator",
        ],
        true,
        [true, true, true, false, false, false],
    ),
    (&["executions.read"], false, [true; 6]),
    (&["executions.read_details"], true, [true; 6]),
    (
        &["executions.manual"],
        true,
        [true, true, false, true, true, false],
    ),
    (
        &["executions.automated", "executions.rerun"],
        true,
        [true, true, false, true, false, false],
    ),
    (
        &["results.write"],
        true,
        [true, true, false, true, true, false],
    ),
    (
        &["defects.write"],
        true,
        [true, true, false, true, true, false],
    ),
    (
        &["roles.write"],
        true,
        [true, false, false, false, false, false],
    ),
];

/// The rights a custom role's tasks give.
pub const TASKS: [(&str, &[&str]); 3] = [
    ("manual_execution", &["executions.manual", "results.write"]),
    (
        "automated_execution",
        &["executions.automated", "executions.rerun"],
    ),
    ("defects", &["defects.write"]),
];

/// One right a role grants or a query asks about, such as `test_cases.update`.
pub type Right = String;

/// `X.write` as the three rights it stands for; any other right as itself.
pub fn expand(right: &str) -> Vec<Right> {
    match right.strip_suffix(".write") {
        Some(object) => WRITE_VERBS
            .iter()
            .map(|v| format!("{object}.{v}"))
            .collect(),
        None => vec![right.to_owned()],
    }
}

/// Whether a right needs a named seat of the project's product: everything but reads.
pub fn licensed(right: &str) -> bool {
    !right.ends_with(".read")
}

/// Every right a query may name: `<object>.<verb>` for each object, the table's named
/// rights, and `X.write` for each object.
pub fn valid_names() -> Vec<String> {
    let mut names: BTreeSet<String> = OBJECTS
        .iter()
        .flat_map(|o| {
            ["read", "create", "update", "delete", "write"]
                .iter()
                .map(move |v| format!("{o}.{v}"))
        })
        .collect();
    names.extend(NAMED.iter().map(|n| n.to_string()));
    names.into_iter().collect()
}

/// Checks a permission name; an unknown one answers 422 listing the valid ones.
pub fn check_permission(name: &str) -> Result<(), DomainError> {
    let (object, verb) = name.split_once('.').unwrap_or((name, ""));
    let plain = OBJECTS.contains(&object)
        && ["read", "create", "update", "delete", "write"].contains(&verb);
    if plain || NAMED.contains(&name) {
        return Ok(());
    }
    Err(DomainError::invalid(
        "permission",
        format!(
            "unknown permission {name:?}; valid permissions: {}",
            valid_names().join(", ")
        ),
    ))
}

/// The reads every role has: every object's `read` (read is always on).
fn reads() -> impl Iterator<Item = Right> {
    OBJECTS.iter().map(|o| format!("{o}.read"))
}

/// The rights of a built-in role, or None for another id.
pub fn builtin_rights(role: &str) -> Option<BTreeSet<Right>> {
    let column = BUILTIN.iter().position(|r| *r == role)?;
    let mut rights: BTreeSet<Right> = reads().collect();
    for (names, _, roles) in TABLE {
        if roles[column] {
            rights.extend(names.iter().flat_map(|n| expand(n)));
        }
    }
    Some(rights)
}

/// Per test object, the verbs a custom role adds to read.
pub type Verbs = BTreeMap<String, BTreeSet<String>>;

/// A role an owner or administrator defined: per test object a subset of create,
/// update and delete, and tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub permissions: Verbs,
    pub tasks: BTreeSet<String>,
    pub created_at: Timestamp,
}

impl CustomRole {
    /// The rights it grants: every read, its verbs per object, and its tasks' rights.
    pub fn rights(&self) -> BTreeSet<Right> {
        let mut rights: BTreeSet<Right> = reads().collect();
        for (object, verbs) in &self.permissions {
            rights.extend(verbs.iter().map(|v| format!("{object}.{v}")));
        }
        for (task, gives) in TASKS {
            if self.tasks.contains(task) {
                rights.extend(gives.iter().flat_map(|g| expand(g)));
            }
        }
        rights
    }
}

/// Checks a custom role's permissions and tasks: known test objects, verbs among
/// create/update/delete (`read` is accepted and implied), known tasks.
pub fn check_role_spec(
    permissions: &BTreeMap<String, Vec<String>>,
    tasks: &[String],
) -> Result<(Verbs, BTreeSet<String>), DomainError> {
    let mut checked = BTreeMap::new();
    for (object, verbs) in permissions {
        if !TEST_OBJECTS.contains(&object.as_str()) {
            return Err(DomainError::invalid(
                "permissions",
                format!(
                    "unknown object {object:?}; objects: {}",
                    TEST_OBJECTS.join(", ")
                ),
            ));
        }
        let mut set = BTreeSet::new();
        for v in verbs {
            match v.as_str() {
                "read" => {}
                v if WRITE_VERBS.contains(&v) => {
                    set.insert(v.to_owned());
                }
                _ => {
                    return Err(DomainError::invalid(
                        "permissions",
                        format!(
                            "unknown verb {v:?}; verbs: create, update, delete (read is always on)"
                        ),
                    ))
                }
            }
        }
        if !set.is_empty() {
            checked.insert(object.clone(), set);
        }
    }
    let mut task_set = BTreeSet::new();
    for t in tasks {
        if !TASKS.iter().any(|(name, _)| name == t) {
            return Err(DomainError::invalid(
                "tasks",
                format!(
                    "unknown task {t:?}; tasks: manual_execution, automated_execution, defects"
                ),
            ));
        }
        task_set.insert(t.clone());
    }
    Ok((checked, task_set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_is_three_rights_and_reads_are_unlicensed() {
        assert_eq!(
            expand("defects.write"),
            ["defects.create", "defects.update", "defects.delete"]
        );
        assert!(!licensed("executions.read"));
        assert!(licensed("executions.read_details"));
        let read_only = builtin_rights("read_only").unwrap();
        assert!(read_only.contains("executions.read_details"));
        assert!(!read_only.iter().any(|r| r.ends_with(".create")));
        assert!(check_permission("test_cases.write").is_ok());
        assert!(check_permission("executions.fly").is_err());
    }
}
