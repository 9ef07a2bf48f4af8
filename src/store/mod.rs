//! Durability: every organization's events in a sled journal, compacted by snapshots.
//!
//! One tree, three kinds of keys:
//! - `j{org}\0{seq:be64}` → one journaled [`Event`] (JSON), in order per organization;
//! - `s{org}\0` → `{seq:be64}{snapshot JSON}`: the state after event `seq`;
//! - `m{name}` → server metadata (the token signing key).
//!
//! All writes go through one writer thread ([`writer`]) that groups whatever is waiting
//! into one batch and one flush, then acknowledges each waiting caller. Nothing here
//! runs on an actix worker thread: recovery happens before the server starts, and
//! afterwards callers only send to the writer and await their acknowledgement.

mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::domain::{Event, OrgId, OrgState, Snapshot};
use writer::Op;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("record {key}: {source}")]
    Codec {
        key: String,
        source: serde_json::Error,
    },
    /// The writer thread is gone (the server is stopping).
    #[error("the store is closed")]
    Closed,
}

/// One organization as recovery rebuilt it.
pub struct Recovered {
    /// The organization's state after its last journaled event.
    pub state: OrgState,
    /// The sequence number of that event.
    pub seq: u64,
    /// Events journaled since the last snapshot.
    pub journal_len: u64,
}

/// The durable store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tx: mpsc::Sender<Op>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// A pending acknowledgement: resolves once the write is on disk.
pub struct Ack(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Ack {
    /// An acknowledgement for nothing written.
    pub fn done() -> Ack {
        Ack(None)
    }

    /// Waits until the write is durable.
    pub async fn durable(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

fn journal_prefix(org: &OrgId) -> Vec<u8> {
    let mut k = Vec::with_capacity(org.as_str().len() + 10);
    k.push(b'j');
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(0);
    k
}

fn journal_key(org: &OrgId, seq: u64) -> Vec<u8> {
    let mut k = journal_prefix(org);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn snapshot_key(org: &OrgId) -> Vec<u8> {
    let mut k = journal_prefix(org);
    k[0] = b's';
    k
}

/// Splits `{tag}{org}\0{rest}` into the org id and the rest.
fn split_key(key: &[u8]) -> Option<(OrgId, &[u8])> {
    let nul = key.iter().position(|b| *b == 0)?;
    let org = std::str::from_utf8(&key[1..nul]).ok()?;
    Some((OrgId::new(org), &key[nul + 1..]))
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Codec {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

impl Store {
    /// Opens (or creates) the store in `dir` and rebuilds every organization.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Recovered>), StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
            // Durability comes from the writer's explicit flush before each acknowledgement.
            .flush_every_ms(None)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let recovered = recover(&db)?;
        let (tx, rx) = mpsc::channel();
        let handle = writer::spawn(db.clone(), rx);
        let store = Store {
            db,
            tx,
            writer: Arc::new(Mutex::new(Some(handle))),
        };
        Ok((store, recovered))
    }

    /// Journals `events` of `org` as sequence numbers `first_seq..`; the [`Ack`] resolves
    /// once they are flushed.
    pub fn append(&self, org: &OrgId, first_seq: u64, events: &[Event]) -> Ack {
        if events.is_empty() {
            return Ack::done();
        }
        let records = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let bytes = serde_json::to_vec(e).expect("events always serialize");
                (journal_key(org, first_seq + i as u64), bytes)
            })
            .collect();
        self.send(|done| Op::Append { records, done })
    }

    /// Writes `snapshot` as the state after event `seq` and drops the journal it replaces
    /// (sequence numbers `journal_from..=seq`), in one atomic batch.
    pub fn snapshot(&self, snapshot: Snapshot, seq: u64, journal_from: u64) -> Ack {
        let drop: Vec<Vec<u8>> = (journal_from..=seq)
            .map(|s| journal_key(&snapshot.id, s))
            .collect();
        let key = snapshot_key(&snapshot.id);
        self.send(|done| Op::Snapshot {
            key,
            seq,
            snapshot: Box::new(snapshot),
            drop,
            done,
        })
    }

    /// Resolves once everything sent before it is durable.
    pub fn barrier(&self) -> Ack {
        self.send(|done| Op::Barrier { done })
    }

    fn send(&self, op: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Op) -> Ack {
        let (done, rx) = oneshot::channel();
        // A send error means the writer has stopped; the dropped sender then answers Closed.
        let _ = self.tx.send(op(done));
        Ack(Some(rx))
    }

    /// The token signing key's seed, created and flushed on first use.
    pub fn signing_seed(&self) -> Result<[u8; 32], StoreError> {
        const KEY: &[u8] = b"msigning_key";
        if let Some(v) = self.db.get(KEY)? {
            if let Ok(seed) = <[u8; 32]>::try_from(v.as_ref()) {
                return Ok(seed);
            }
        }
        let seed: [u8; 32] = rand::random();
        self.db.insert(KEY, &seed[..])?;
        self.db.flush()?;
        Ok(seed)
    }

    /// Flushes what is pending and stops the writer thread.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.barrier().durable().await?;
        let _ = self.tx.send(Op::Stop);
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        Ok(())
    }
}

/// Rebuilds every organization: its snapshot (if any), then its journal after it.
fn recover(db: &sled::Db) -> Result<Vec<Recovered>, StoreError> {
    let mut orgs: BTreeMap<OrgId, Recovered> = BTreeMap::new();
    for item in db.scan_prefix(b"s") {
        let (key, value) = item?;
        let Some((org, _)) = split_key(&key) else {
            continue;
        };
        let seq = u64::from_be_bytes(value[..8].try_into().expect("snapshot seq"));
        let snapshot: Snapshot = decode(&key, &value[8..])?;
        let state = OrgState::restore(snapshot);
        orgs.insert(
            org,
            Recovered {
                state,
                seq,
                journal_len: 0,
            },
        );
    }
    for item in db.scan_prefix(b"j") {
        let (key, value) = item?;
        let Some((org, rest)) = split_key(&key) else {
            continue;
        };
        let seq = u64::from_be_bytes(rest.try_into().expect("journal seq"));
        let entry = orgs.entry(org.clone()).or_insert_with(|| Recovered {
            state: OrgState::empty(org),
            seq: 0,
            journal_len: 0,
        });
        if seq <= entry.seq {
            continue;
        }
        let event: Event = decode(&key, &value)?;
        entry.state.apply(&event);
        entry.seq = seq;
        entry.journal_len += 1;
    }
    Ok(orgs.into_values().collect())
}
