//! The audit log's view of events: which admin changes they are, and what they changed
//! from and to. Runtime traffic (grants, renewals, releases, expiry of leases) is not
//! audited; everything an admin or the server's own expiry changes is.

use serde_json::{json, Value};

use super::OrgState;
use crate::domain::event::{EndReason, Release};
use crate::domain::{Activation, ApiKey, Event, Member, MemberId, Pool};

/// One audited change: `action` is `<object>.<verb>` in the past tense.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub action: &'static str,
    /// The id of what changed (for an allocation, the member's).
    pub target: String,
    pub before: Value,
    pub after: Value,
}

/// An audit entry of the `event`th event of a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    pub event: usize,
    pub entry: AuditEntry,
}

impl OrgState {
    /// The audit entries of `event`, described against the state before it: one per
    /// member affected, none for runtime traffic.
    pub fn audit_of(&self, event: &Event) -> Vec<AuditEntry> {
        let entry = |action, target: &str, before, after| AuditEntry {
            action,
            target: target.to_owned(),
            before,
            after,
        };
        match event {
            Event::OrgFounded { id, name, .. } => {
                vec![entry(
                    "org.created",
                    id.as_str(),
                    Value::Null,
                    json!({ "name": name }),
                )]
            }
            Event::MemberAdded(m) => {
                vec![entry(
                    "member.added",
                    m.id.as_str(),
                    Value::Null,
                    member_view(m),
                )]
            }
            Event::MemberRolesChanged { id, tenant_roles } => {
                let before = self.members.get(id).map(|m| &m.tenant_roles);
                vec![entry(
                    "member.roles_changed",
                    id.as_str(),
                    json!({ "tenant_roles": before }),
                    json!({ "tenant_roles": tenant_roles }),
                )]
            }
            Event::MemberRemoved { id } => {
                let before = self.members.get(id).map_or(Value::Null, member_view);
                vec![entry("member.removed", id.as_str(), before, Value::Null)]
            }
            Event::KeyCreated(k) => {
                vec![entry(
                    "key.created",
                    k.id.as_str(),
                    Value::Null,
                    key_view(k),
                )]
            }
            Event::KeyRevoked { id } => {
                let before = self.keys.get(id).map_or(Value::Null, key_view);
                vec![entry("key.revoked", id.as_str(), before, Value::Null)]
            }
            Event::PoolCreated(p) => {
                vec![entry(
                    "pool.created",
                    p.id.as_str(),
                    Value::Null,
                    pool_view(p),
                )]
            }
            Event::PoolChanged(p) => {
                let before = self.pools.get(&p.id).map_or(Value::Null, pool_view);
                vec![entry("pool.updated", p.id.as_str(), before, pool_view(p))]
            }
            Event::PoolDeleted { id } => {
                let before = self.pools.get(id).map_or(Value::Null, pool_view);
                vec![entry("pool.deleted", id.as_str(), before, Value::Null)]
            }
            Event::PoolLapsed { id } => {
                let Some(p) = self.pools.get(id) else {
                    return vec![];
                };
                let mut out = vec![entry(
                    "pool.expired",
                    id.as_str(),
                    json!({ "expired": false }),
                    json!({ "expired": true }),
                )];
                out.extend(p.allocated.iter().map(|m| {
                    entry(
                        "allocation.released",
                        m.as_str(),
                        allocation_view(p, m),
                        Value::Null,
                    )
                }));
                out
            }
            Event::Allocated { pool, member } => {
                let Some(p) = self.pools.get(pool) else {
                    return vec![];
                };
                let after = allocation_view(p, member);
                vec![entry(
                    "allocation.added",
                    member.as_str(),
                    Value::Null,
                    after,
                )]
            }
            Event::Deallocated {
                pool,
                member,
                reason,
            } => {
                let Some(p) = self.pools.get(pool) else {
                    return vec![];
                };
                let action = match reason {
                    Release::Revoked | Release::Removed => "allocation.revoked",
                };
                let before = allocation_view(p, member);
                vec![entry(action, member.as_str(), before, Value::Null)]
            }
            Event::Transferred { pool, from, to } => {
                let Some(p) = self.pools.get(pool) else {
                    return vec![];
                };
                vec![entry(
                    "allocation.transferred",
                    pool.as_str(),
                    allocation_view(p, from),
                    allocation_view(p, to),
                )]
            }
            Event::LeaseEnded {
                id,
                reason: EndReason::Ended,
            } => {
                let before = self.leases.get(id.as_str()).map_or(Value::Null, |l| {
                    json!({
                        "id": l.id,
                        "user": l.member,
                        "product": &*l.product,
                        "pool": l.pool,
                        "fingerprint": l.fingerprint.as_deref(),
                    })
                });
                vec![entry("session.ended", id.as_str(), before, Value::Null)]
            }
            Event::Activated(a) => {
                vec![entry(
                    "activation.created",
                    a.id.as_str(),
                    Value::Null,
                    activation_view(a),
                )]
            }
            Event::Deactivated { id, at } => {
                let Some(a) = self.activations.get(id) else {
                    return vec![];
                };
                let mut after = activation_view(a);
                after["deactivated_at"] = json!(at.rfc3339());
                vec![entry(
                    "activation.deactivated",
                    id.as_str(),
                    activation_view(a),
                    after,
                )]
            }
            Event::GroupCreated(g) => {
                vec![entry("group.created", g.id.as_str(), Value::Null, json!(g))]
            }
            Event::GroupChanged(g) => {
                let before = self.groups.get(&g.id).map_or(Value::Null, |b| json!(b));
                vec![entry("group.updated", g.id.as_str(), before, json!(g))]
            }
            Event::GroupDeleted { id } => {
                let before = self.groups.get(id).map_or(Value::Null, |b| json!(b));
                vec![entry("group.deleted", id.as_str(), before, Value::Null)]
            }
            Event::ProjectCreated(p) => {
                vec![entry(
                    "project.created",
                    p.id.as_str(),
                    Value::Null,
                    json!(p),
                )]
            }
            Event::AccessSet {
                project,
                subject,
                roles,
            } => {
                let before = (self.projects.get(project))
                    .and_then(|p| p.access.get(subject))
                    .map_or(Value::Null, |r| json!({ "roles": r }));
                vec![entry(
                    "access.assigned",
                    project.as_str(),
                    json!({ "subject": subject, "before": before }),
                    json!({ "subject": subject, "roles": roles }),
                )]
            }
            Event::AccessRemoved { project, subject } => {
                let before = (self.projects.get(project))
                    .and_then(|p| p.access.get(subject))
                    .map_or(Value::Null, |r| json!({ "subject": subject, "roles": r }));
                vec![entry(
                    "access.removed",
                    project.as_str(),
                    before,
                    Value::Null,
                )]
            }
            Event::ProjectOwnerChanged { project, owner } => {
                let before = self.projects.get(project).map(|p| &p.owner);
                vec![entry(
                    "ownership.transferred",
                    project.as_str(),
                    json!({ "owner": before }),
                    json!({ "owner": owner }),
                )]
            }
            Event::RoleCreated(r) => {
                vec![entry("role.created", r.id.as_str(), Value::Null, json!(r))]
            }
            Event::RoleChanged(r) => {
                let before = self.roles.get(&r.id).map_or(Value::Null, |b| json!(b));
                vec![entry("role.updated", r.id.as_str(), before, json!(r))]
            }
            Event::RoleDeleted { id } => {
                let before = self.roles.get(id).map_or(Value::Null, |b| json!(b));
                vec![entry("role.deleted", id.as_str(), before, Value::Null)]
            }
            Event::ActivationSeen { .. }
            | Event::LeaseGranted(_)
            | Event::LeaseRenewed { .. }
            | Event::LeaseEnded { .. }
            | Event::Denied { .. } => vec![],
        }
    }
}

fn member_view(m: &Member) -> Value {
    json!({
        "id": m.id,
        "email": m.email.as_str(),
        "name": m.name,
        "tenant_roles": m.tenant_roles,
    })
}

fn key_view(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "user": k.member,
        "name": k.name,
        "scopes": k.scopes,
        "expires_at": k.expires_at.map(|t| t.rfc3339()),
    })
}

/// A pool's settings, without its member lists (which allocations audit one by one).
fn pool_view(p: &Pool) -> Value {
    json!({
        "id": p.id,
        "product": &*p.product,
        "kind": p.kind,
        "seats": p.seats,
        "source": p.source,
        "expires_at": p.expires_at.map(|t| t.rfc3339()),
        "includes": p.includes,
        "ttl_seconds": p.ttl_seconds,
        "max_machines": p.max_machines,
    })
}

fn allocation_view(p: &Pool, member: &MemberId) -> Value {
    json!({ "pool": p.id, "product": &*p.product, "user": member })
}

fn activation_view(a: &Activation) -> Value {
    json!({
        "id": a.id,
        "user": a.member,
        "product": a.product,
        "pool": a.pool,
        "fingerprint": a.fingerprint,
        "hostname": a.hostname,
    })
}
