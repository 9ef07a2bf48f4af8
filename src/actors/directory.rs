//! Finds organization actors by id and authenticates API keys without an actor hop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use actix::{Actor, Arbiter, ArbiterHandle};
use dashmap::DashMap;

use super::org_actor::{AccessSlot, ActorSettings, OrgActor};
use super::{clock, ActorError, OrgHandle, Principal};
use crate::domain::ids::mint;
use crate::domain::{
    Actor as By, ApiKey, Applied, DomainError, Email, KeyId, Member, MemberId, OrgId, OrgState,
    Scope, Scopes, Timestamp,
};
use crate::secrets::{self, mint_key};
use crate::store::backup::Backup;
use crate::store::{Change, Durability, Recovered, Store, StoreError};

/// What authentication needs to know of a key, kept beside the actors.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub id: KeyId,
    pub org: OrgId,
    pub member: MemberId,
    pub scopes: Scopes,
    pub expires_at: Option<Timestamp>,
    hash: [u8; 32],
}

impl KeyEntry {
    /// The member acting through this key.
    pub fn principal(&self) -> Principal {
        Principal {
            member: self.member.clone(),
            key: self.id.clone(),
        }
    }
}

/// A read-only (to HTTP) index of every live key; written only by the owning actors.
#[derive(Default)]
pub(super) struct KeyIndex(DashMap<KeyId, KeyEntry>);

impl KeyIndex {
    pub(super) fn insert(&self, org: &OrgId, key: &ApiKey) {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&key.hash, &mut hash).is_err() {
            tracing::warn!(key = %key.id, "stored key hash is not hex; key disabled");
            return;
        }
        self.0.insert(
            key.id.clone(),
            KeyEntry {
                id: key.id.clone(),
                org: org.clone(),
                member: key.member.clone(),
                scopes: Scopes::from_list(&key.scopes),
                expires_at: key.expires_at,
                hash,
            },
        );
    }

    pub(super) fn remove(&self, id: &KeyId) {
        self.0.remove(id);
    }
}

/// A new organization as its founder sees it once.
pub struct FoundedOrg {
    pub id: OrgId,
    pub name: String,
    pub owner: Member,
    pub owner_key: String,
}

/// The registry of organization actors.
pub struct Directory {
    orgs: DashMap<OrgId, OrgHandle>,
    keys: Arc<KeyIndex>,
    store: Store,
    /// Where actors run: the dedicated arbiters, or the HTTP workers as they start.
    arbiters: RwLock<Vec<ArbiterHandle>>,
    /// The dedicated arbiters' threads, stopped and joined by [`Directory::stop`].
    dedicated: Mutex<Vec<Arbiter>>,
    next_arbiter: AtomicUsize,
    /// Recovered organizations not yet placed, one list per HTTP worker still to start.
    unplaced: Mutex<Vec<Vec<Recovered>>>,
    on_workers: bool,
    settings: ActorSettings,
}

/// Which threads the organization actors run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the HTTP workers themselves, spread over this many: a request to an org on its
    /// own worker needs no thread hop, and no extra thread competes for the cores.
    Workers(usize),
    /// On this many arbiters of their own.
    Dedicated(usize),
}

impl Directory {
    /// Starts an actor for every recovered organization, placed as asked; with
    /// [`Placement::Workers`] each worker's share starts when it calls
    /// [`Directory::adopt_worker`]. Must run inside an actix system.
    pub fn start(
        store: Store,
        mut recovered: Vec<Recovered>,
        placement: Placement,
        settings: ActorSettings,
    ) -> Directory {
        let restart = clock::now();
        for r in &mut recovered {
            // Heartbeats and releases are acknowledged before their flush, so a journaled
            // expiry may be older than the one a client was promised: every lease gets at
            // least one ttl from now. Not journaled; each recovery applies it anew.
            for e in r.state.reclaim_window(restart) {
                r.state.apply(&e);
            }
            r.state.refresh_access();
        }
        let (dedicated, shares) = match placement {
            Placement::Dedicated(n) => ((0..n.max(1)).map(|_| Arbiter::new()).collect(), 1),
            Placement::Workers(n) => (Vec::new(), n.max(1)),
        };
        let arbiters = dedicated.iter().map(Arbiter::handle).collect();
        let mut unplaced: Vec<Vec<Recovered>> = (0..shares).map(|_| Vec::new()).collect();
        for (i, r) in recovered.into_iter().enumerate() {
            unplaced[i % shares].push(r);
        }
        let directory = Directory {
            orgs: DashMap::new(),
            keys: Arc::new(KeyIndex::default()),
            store,
            arbiters: RwLock::new(arbiters),
            dedicated: Mutex::new(dedicated),
            next_arbiter: AtomicUsize::new(0),
            unplaced: Mutex::new(unplaced),
            on_workers: matches!(placement, Placement::Workers(_)),
            settings,
        };
        if !directory.on_workers {
            directory.place(0, None);
        }
        directory
    }

    /// Stops the org actors on dedicated threads and waits for them to end, so that the
    /// store closes after every actor (an expiry or a lapsed pool decided after the
    /// close would be lost unwritten). Actors on the HTTP workers are not waited for:
    /// actix stops each worker's thread after the server has stopped.
    pub async fn stop(&self) {
        let dedicated = std::mem::take(&mut *self.dedicated.lock().expect("dedicated lock"));
        if dedicated.is_empty() {
            return;
        }
        let joined = actix_web::rt::task::spawn_blocking(move || {
            for arbiter in &dedicated {
                arbiter.stop();
            }
            for arbiter in dedicated {
                if arbiter.join().is_err() {
                    tracing::error!("an organization actor thread panicked");
                }
            }
        });
        if joined.await.is_err() {
            tracing::error!("joining the organization actor threads failed");
        }
    }

    /// Runs on each HTTP worker as it starts, before the server accepts a connection:
    /// with [`Placement::Workers`] the worker takes its share of the recovered orgs and
    /// of those founded later. A worker restarted after a fault takes new orgs only.
    pub fn adopt_worker(&self) {
        if !self.on_workers {
            return;
        }
        let share = {
            let mut arbiters = self.arbiters.write().expect("arbiters lock");
            arbiters.push(Arbiter::current());
            arbiters.len() - 1
        };
        self.place(share, Some(share));
    }

    /// Starts the recovered orgs of `share` (on `arbiter`, or spread over all).
    fn place(&self, share: usize, arbiter: Option<usize>) {
        let orgs = {
            let mut unplaced = self.unplaced.lock().expect("unplaced lock");
            match unplaced.get_mut(share) {
                Some(orgs) => std::mem::take(orgs),
                None => return,
            }
        };
        for r in orgs {
            self.spawn(r.state, r.seq, r.journal_len, arbiter);
        }
    }

    fn spawn(
        &self,
        state: OrgState,
        seq: u64,
        journal_len: u64,
        arbiter: Option<usize>,
    ) -> OrgHandle {
        let id = state.id().clone();
        for key in state.keys() {
            self.keys.insert(&id, key);
        }
        let arbiters = self.arbiters.read().expect("arbiters lock");
        // An arbiter of a worker actix restarted after a fault is gone: skip it.
        let live = |i: &usize| arbiters[*i].spawn(async {});
        let i = arbiter.filter(live).unwrap_or_else(|| {
            let start = self.next_arbiter.fetch_add(1, Ordering::Relaxed);
            (0..arbiters.len())
                .map(|k| (start + k) % arbiters.len())
                .find(live)
                .expect("a live arbiter: the server is running")
        });
        let view = AccessSlot::new(seq, state.access().clone());
        let actor = OrgActor::new(
            state,
            self.store.clone(),
            self.keys.clone(),
            seq,
            journal_len,
            self.settings,
            view.clone(),
        );
        let addr = OrgActor::start_in_arbiter(&arbiters[i], move |_| actor);
        drop(arbiters);
        let handle = OrgHandle::new(addr, view);
        self.orgs.insert(id, handle.clone());
        handle
    }

    /// The organization with this id.
    pub fn org(&self, id: &str) -> Option<OrgHandle> {
        self.orgs.get(id).map(|h| h.clone())
    }

    /// Up to `limit` organizations after the id `after`, in id order, and the cursor
    /// to the next page.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<OrgHandle>, Option<String>) {
        let mut ids: Vec<OrgId> = (self.orgs.iter())
            .map(|e| e.key().clone())
            .filter(|id| after.is_none_or(|a| id.as_str() > a))
            .collect();
        ids.sort();
        let next = (ids.len() > limit).then(|| ids[limit - 1].to_string());
        let handles = (ids.iter().take(limit))
            .filter_map(|id| self.org(id.as_str()))
            .collect();
        (handles, next)
    }

    /// Deletes an organization: its actor stops (its keys stop working, its waiters
    /// are answered 404), then everything it stored is purged; answers once that is
    /// durable. Requests already holding its handle find it gone.
    pub async fn delete(&self, id: &str) -> Result<(), ActorError> {
        let (org, handle) = self.orgs.remove(id).ok_or(DomainError::NotFound {
            what: "organization",
        })?;
        // Detached: a caller that goes away mid-delete must not leave the org closed
        // in memory but unpurged on disk.
        let store = self.store.clone();
        let purged = actix_web::rt::spawn(async move {
            handle.close().await;
            store.purge(&org).durable().await
        });
        purged.await.map_err(|_| ActorError::Unavailable)??;
        // Not audited: the org's audit log goes with it.
        tracing::info!(
            org = id,
            actor = "operator",
            action = "org.deleted",
            target = id,
            "admin change"
        );
        Ok(())
    }

    /// A backup of every organization ([`Backup`]): each one's state as its actor has
    /// it, then (once everything journaled before is durable, so the audit entries of
    /// every change in those states are on disk) its audit log up to that state.
    /// Changes acknowledged before this was called are all in it.
    pub async fn backup(&self) -> Result<Vec<u8>, ActorError> {
        let handles: Vec<OrgHandle> = self.orgs.iter().map(|e| e.value().clone()).collect();
        let mut states = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle.snapshot().await {
                Ok(state) => states.push(state),
                // Deleted meanwhile: not in the backup.
                Err(ActorError::Domain(DomainError::NotFound { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.barrier().durable().await?;
        let store = self.store.clone();
        let read = actix_web::rt::task::spawn_blocking(move || {
            let seed = store.signing_seed()?;
            let mut orgs = Vec::with_capacity(states.len());
            for (state, seq) in states {
                let audit = store.audit_through(&state.id, seq)?;
                orgs.push((state, seq, audit));
            }
            Ok::<_, StoreError>((seed, orgs))
        });
        let (seed, mut orgs) = read.await.map_err(|_| ActorError::Unavailable)??;
        // An org deleted meanwhile may have been purged while its audit log was read.
        // A delete takes the org out of the directory before its purge begins, so one
        // still here now was read whole.
        orgs.retain(|(state, _, _)| self.orgs.contains_key(&state.id));
        let encoded = actix_web::rt::task::spawn_blocking(move || {
            let mut backup = Backup {
                seed,
                ..Backup::default()
            };
            for (state, seq, audit) in orgs {
                backup.audit.extend(audit);
                let bytes = crate::store::snapshot::encode(&state, seq);
                backup.snapshots.push((state.id.clone(), bytes));
            }
            backup.encode()
        });
        encoded.await.map_err(|_| ActorError::Unavailable)
    }

    /// The number of organizations.
    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }

    /// Creates an organization with its owner and the owner's key (admin + sessions);
    /// answers once it is durable.
    pub async fn found(&self, name: &str, owner_email: &str) -> Result<FoundedOrg, ActorError> {
        let now = clock::now();
        let email = Email::parse(owner_email).map_err(|e| match e {
            DomainError::Invalid { message, .. } => DomainError::Invalid {
                field: "owner_email",
                message,
            },
            other => other,
        })?;
        let id = OrgId::new(mint(OrgId::PREFIX, now, rand::random()));
        let owner = Member {
            id: MemberId::new(mint(MemberId::PREFIX, now, rand::random())),
            email,
            name: None,
            tenant_roles: vec![],
            created_at: now,
        };
        let key = mint_key(
            owner.id.clone(),
            "owner".into(),
            vec![Scope::Admin, Scope::Sessions],
            None,
            now,
        );
        let events = OrgState::found(id.clone(), name, owner.clone(), key.key, now)?;
        let mut state = OrgState::empty(id.clone());
        let applied = Applied { value: (), events };
        let ((), events, audit) = state.apply_audited(applied);
        let change = Change {
            org: &id,
            first_seq: 1,
            at: now,
            actor: &By::Operator,
            events: &events,
            audit: &audit,
        };
        self.store
            .append(change, Durability::Flushed)
            .durable()
            .await?;
        super::log_changes(&id, &By::Operator, &audit);
        let seq = events.len() as u64;
        let name = state.name().to_owned();
        let owner = state.member(&owner.id, owner.id.as_str())?.clone();
        self.spawn(state, seq, seq, None);
        Ok(FoundedOrg {
            id,
            name,
            owner,
            owner_key: key.secret,
        })
    }

    /// The key a bearer secret belongs to, if it is live at `now`.
    pub fn authenticate(&self, secret: &str, now: Timestamp) -> Option<KeyEntry> {
        let id = secrets::key_id_of(secret)?;
        let entry = self.keys.0.get(id.as_str())?;
        let live = entry.expires_at.is_none_or(|at| now < at);
        (live && secrets::matches(secret, &entry.hash)).then(|| entry.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WaitLimits;

    /// A directory on `threads` dedicated actor threads with one org, founded and
    /// answering; the temporary directory holds its store.
    async fn one_org(threads: usize) -> (tempfile::TempDir, Directory, OrgId, OrgHandle) {
        let dir = tempfile::tempdir().unwrap();
        let (store, recovered) = Store::open(dir.path()).unwrap();
        let settings = ActorSettings {
            snapshot_every: 1000,
            wait_limits: WaitLimits {
                per_key: 10,
                per_member: 10,
                per_org: 10,
            },
        };
        let directory = Directory::start(store, recovered, Placement::Dedicated(threads), settings);
        let org = directory.found("test", "o@example.com").await.unwrap();
        let handle = directory.org(org.id.as_str()).unwrap();
        handle.summary().await.unwrap();
        (dir, directory, org.id, handle)
    }

    /// A stop ends the actors on dedicated threads before it returns: the store can
    /// then close with no actor left to decide a change it would not write.
    #[actix_web::test]
    async fn stop_ends_the_dedicated_actor_threads() {
        let (_dir, directory, _, handle) = one_org(2).await;
        directory.stop().await;
        let err = handle.summary().await.unwrap_err();
        assert!(matches!(err, ActorError::Unavailable), "{err:?}");
    }

    /// A request that took an org's handle just before the org was deleted hears that
    /// the org is gone, as one arriving after it would, not a server error.
    #[actix_web::test]
    async fn a_handle_held_across_a_delete_answers_not_found() {
        let (_dir, directory, org, held) = one_org(1).await;
        directory.delete(org.as_str()).await.unwrap();
        assert!(
            held.access_view().is_err(),
            "the query's view of a deleted org"
        );
        let err = held.summary().await.unwrap_err();
        assert!(
            matches!(
                err,
                ActorError::Domain(DomainError::NotFound {
                    what: "organization"
                })
            ),
            "{err:?}"
        );
    }
}
