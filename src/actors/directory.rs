//! Finds organization actors by id and authenticates API keys without an actor hop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, Arbiter, ArbiterHandle};
use dashmap::DashMap;

use super::org_actor::{ActorSettings, OrgActor};
use super::{clock, ActorError, OrgHandle, Principal};
use crate::domain::ids::mint;
use crate::domain::{
    Actor as By, ApiKey, DomainError, Email, KeyId, Member, MemberId, OrgId, OrgState, Scope,
    Scopes, Timestamp,
};
use crate::secrets::{self, mint_key};
use crate::store::{Durability, Recovered, Store};

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
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    settings: ActorSettings,
}

impl Directory {
    /// Starts an actor for every recovered organization, spread over `threads` arbiters.
    /// Must run inside an actix system.
    pub fn start(
        store: Store,
        recovered: Vec<Recovered>,
        threads: usize,
        settings: ActorSettings,
    ) -> Directory {
        let arbiters = (0..threads.max(1))
            .map(|_| Arbiter::new().handle())
            .collect();
        let directory = Directory {
            orgs: DashMap::new(),
            keys: Arc::new(KeyIndex::default()),
            store,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            settings,
        };
        let restart = clock::now();
        for mut r in recovered {
            // Heartbeats and releases are acknowledged before their flush, so a journaled
            // expiry may be older than the one a client was promised: every lease gets at
            // least one ttl from now. Not journaled; each recovery applies it anew.
            for e in r.state.reclaim_window(restart) {
                r.state.apply(&e);
            }
            directory.spawn(r.state, r.seq, r.journal_len);
        }
        directory
    }

    fn spawn(&self, state: OrgState, seq: u64, journal_len: u64) -> OrgHandle {
        let id = state.id().clone();
        for key in state.keys() {
            self.keys.insert(&id, key);
        }
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let actor = OrgActor::new(
            state,
            self.store.clone(),
            self.keys.clone(),
            seq,
            journal_len,
            self.settings,
        );
        let addr = OrgActor::start_in_arbiter(&self.arbiters[i], move |_| actor);
        let handle = OrgHandle::new(addr);
        self.orgs.insert(id, handle.clone());
        handle
    }

    /// The organization with this id.
    pub fn org(&self, id: &str) -> Option<OrgHandle> {
        self.orgs.get(id).map(|h| h.clone())
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
        self.store
            .append(&id, 1, now, &By::Operator, &events, Durability::Flushed)
            .durable()
            .await?;
        let mut state = OrgState::empty(id.clone());
        for e in &events {
            state.apply(e);
        }
        let seq = events.len() as u64;
        let name = state.name().to_owned();
        let owner = state.member(&owner.id, owner.id.as_str())?.clone();
        self.spawn(state, seq, seq);
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
