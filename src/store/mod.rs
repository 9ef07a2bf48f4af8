//! Durability: every organization's events in a sled journal, compacted by snapshots.
//!
//! Trees, named after what they hold:
//! - `journal`: `{org}\0{seq:be64}` → an entry of the org's records from event `seq`
//!   on ([`record::Entry`]: each a [`record::Record`] `{v, at, actor, event}` in JSON):
//!   the writer joins what one org journals in a round into one entry, so a round costs
//!   sled one insert per org rather than one per event;
//! - `audit`: `{org}\0{seq:be64}{n:be32}` → the `n`th audit entry of a change, caused
//!   by its event `seq` ([`audit`]), written in the same atomic write as its journal
//!   entry and kept apart from the journal: compaction drops journal history, never
//!   audit history (which a retention period prunes);
//! - `meta`: server metadata (the token signing key);
//! - `tombstones`: `{org}` of every deleted organization. Deleting writes the tombstone
//!   and flushes it before anything else is removed, and recovery purges whatever of a
//!   tombstoned org a crash left behind, so a deleted org never comes back in part.
//!
//! Snapshots are files beside sled, `snapshots/{org}.snap` (the state after event `seq`
//! in the binary format of [`snapshot`]), each written to a temporary file, synced and
//! renamed over the last. Not in sled: sled has one log, and every flush after a
//! multi-megabyte snapshot insert waited for its bytes, so each snapshot of a large org
//! stalled every acknowledgement behind it. Older versions kept them in a sled tree
//! `snapshots`; opening moves those to files once.
//!
//! All writes go through one writer thread ([`writer`]) that groups whatever is waiting
//! into one batch and one flush, then acknowledges each waiting caller. Nothing here
//! runs on an actix worker thread: recovery happens before the server starts, and
//! afterwards callers only send to the writer and await their acknowledgement.
//!
//! Crash ordering: sled makes each batch atomic and recovers a prefix of what was
//! written, but two batches are not atomic together. A snapshot file is durable before
//! the writer hears of it, so the journal entries it supersedes are deleted only after,
//! and recovery refuses an org whose journal has a gap after its snapshot rather than
//! start with state silently missing.

pub mod audit;
pub mod backup;
pub mod record;
mod snapfiles;
pub mod snapshot;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::domain::{Actor, Audit, Event, OrgId, OrgState, Page, Snapshot, Timestamp};
use record::{decode_record, split_entry, Entry};
pub use writer::Faults;
use writer::Op;

/// sled's page cache. The actors hold all live state and the store is read only at
/// start, so a large cache buys little and is resident memory beside the leases.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Where `meta` keeps the token signing key's seed.
const SIGNING_KEY: &[u8] = b"signing_key";

/// The trees the writer and recovery use.
pub(crate) struct Trees {
    journal: sled::Tree,
    /// The snapshot files' directory.
    snapshots: PathBuf,
}

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
    /// A snapshot file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The writer thread is gone (the server is stopping).
    #[error("the store is closed")]
    Closed,
    /// A record of a format version this build does not read.
    #[error("a {what} has format version {found}; this seatkeeper reads version {supported}")]
    Version {
        what: &'static str,
        found: u32,
        supported: u32,
    },
    /// Data written before records had a format version.
    #[error(
        "the data directory was written by a seatkeeper older than record format version 1 \
         (no version in its records); start this version on an empty data directory"
    )]
    Legacy,
    /// A journal entry or snapshot that is not one this version wrote.
    #[error("record {key} is malformed")]
    Malformed { key: String },
    /// Events are missing from an organization's journal.
    #[error(
        "the journal of {org} jumps from event {expected} to event {found}: events after its \
         snapshot are missing; refusing to start without them"
    )]
    Gap {
        org: String,
        expected: u64,
        found: u64,
    },
    /// A backup that cannot be read, or restored where asked.
    #[error("backup: {0}")]
    Backup(String),
}

/// How soon a change must be on disk before its caller hears that it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed before the answer: acquires, admin changes. A `kill -9` never loses one
    /// that was acknowledged.
    Flushed,
    /// Journaled in order and answered before its flush: heartbeats, releases, expiry.
    /// Recovery makes this safe: every recovered lease lives at least one ttl past the
    /// restart, so an acknowledged heartbeat's promise is kept, and a lost release keeps
    /// a seat busy for at most one more ttl. No cap can be exceeded either way.
    Journaled,
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

/// One change of an organization as the store journals it.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub org: &'a OrgId,
    /// The sequence number of its first event.
    pub first_seq: u64,
    pub at: Timestamp,
    pub actor: &'a Actor,
    pub events: &'a [Event],
    pub audit: &'a [Audit],
}

/// The durable store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    meta: sled::Tree,
    audit: sled::Tree,
    tx: mpsc::Sender<Op>,
    /// Snapshots to encode, off the actors' and the writer's threads.
    snapshots: mpsc::Sender<Encode>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// A pending acknowledgement: resolves once the write is on disk.
pub struct Ack(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Ack {
    /// An acknowledgement for nothing written.
    pub fn done() -> Ack {
        Ack(None)
    }

    /// An acknowledgement resolved by hand, through the sender returned with it.
    pub fn pending() -> (oneshot::Sender<Result<(), StoreError>>, Ack) {
        let (tx, rx) = oneshot::channel();
        (tx, Ack(Some(rx)))
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
    let mut k = Vec::with_capacity(org.as_str().len() + 9);
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(0);
    k
}

fn journal_key(org: &OrgId, seq: u64) -> Vec<u8> {
    let mut k = journal_prefix(org);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a journal key into the org id and the sequence number.
fn split_journal_key(key: &[u8]) -> Option<(OrgId, u64)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let org = std::str::from_utf8(&key[..nul]).ok()?;
    let seq = u64::from_be_bytes(key[nul + 1..].try_into().ok()?);
    Some((OrgId::new(org), seq))
}

impl Store {
    /// Opens (or creates) the store in `dir` and rebuilds every organization.
    pub fn open(dir: &Path) -> Result<(Store, Vec<Recovered>), StoreError> {
        Store::open_with(dir, Faults::default())
    }

    /// [`Store::open`] with faults injected into the writer (tests of crash ordering).
    pub fn open_with(dir: &Path, faults: Faults) -> Result<(Store, Vec<Recovered>), StoreError> {
        backup::check_restored(dir)?;
        let db = sled::Config::new()
            .path(dir.join("store"))
            // Durability comes from the writer's explicit flush before each acknowledgement.
            .flush_every_ms(None)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let trees = Trees {
            journal: db.open_tree("journal")?,
            snapshots: snapfiles::open(dir, &db)?,
        };
        let audit = db.open_tree("audit")?;
        let tombstones = db.open_tree("tombstones")?;
        for org in tombstones.iter().keys() {
            let org = OrgId::new(String::from_utf8_lossy(&org?).as_ref());
            purge(&trees, &audit, &org)?;
        }
        db.flush()?;
        // sled syncs its files, never the directories naming them: a store created (or
        // grown a blob directory) just now must not vanish whole with a power loss.
        sync_dirs(dir)?;
        let (recovered, entries) = recover(&db, &trees)?;
        let meta = db.open_tree("meta")?;
        let (tx, rx) = mpsc::channel();
        let (snapshots, pending) = mpsc::channel();
        spawn_encoder(
            pending,
            trees.snapshots.clone(),
            tx.clone(),
            faults.dead.clone(),
        );
        let handle = writer::spawn(db, trees, audit.clone(), tombstones, rx, entries, faults);
        let store = Store {
            meta,
            audit,
            tx,
            snapshots,
            writer: Arc::new(Mutex::new(Some(handle))),
        };
        Ok((store, recovered))
    }

    /// Journals a change: its events as sequence numbers `first_seq..`, after everything
    /// appended before, and its audit entries in the same atomic write. For
    /// [`Durability::Flushed`] the [`Ack`] resolves once both are flushed; for
    /// [`Durability::Journaled`] at once.
    pub fn append(&self, change: Change, durability: Durability) -> Ack {
        let Change {
            org,
            first_seq,
            at,
            actor,
            events,
            audit,
        } = change;
        if events.is_empty() {
            return Ack::done();
        }
        let mut entry = Entry::new();
        for e in events {
            entry.push(at, actor, e);
        }
        let audit = audit
            .iter()
            .enumerate()
            .map(|(sub, a)| {
                audit::encode(
                    org,
                    first_seq + a.event as u64,
                    sub as u32,
                    at,
                    actor,
                    &a.entry,
                )
            })
            .collect();
        let append = |done| Op::Append {
            org: org.clone(),
            first_seq,
            count: events.len() as u64,
            entry,
            audit,
            done,
        };
        match durability {
            Durability::Flushed => self.send(|done| append(Some(done))),
            Durability::Journaled => {
                // A send error means the writer has stopped; nothing waits for this one.
                let _ = self.tx.send(append(None));
                Ack::done()
            }
        }
    }

    /// Deletes the audit entries written before `cutoff`; answers how many.
    pub fn prune_audit(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        audit::prune(&self.audit, cutoff)
    }

    /// A page of `org`'s audit log, newest first, strictly older than `before`.
    pub fn audit_page(
        &self,
        org: &OrgId,
        before: Option<audit::Cursor>,
        limit: usize,
    ) -> Result<Page<audit::Logged>, StoreError> {
        audit::page(&self.audit, org, before, limit)
    }

    /// Writes `snapshot` as the state after event `seq`, superseding the journal entries
    /// that end at or before it. Encoding happens on the snapshot thread; the write is
    /// ordered after every append already sent, and nobody waits for it.
    pub fn snapshot(&self, snapshot: Snapshot, seq: u64) {
        let _ = self
            .snapshots
            .send(Encode::Snapshot(Box::new(snapshot), seq));
    }

    /// Deletes everything `org` stored: journal, snapshot and audit log. Ordered after
    /// every append and snapshot sent before it; the [`Ack`] resolves once the org's
    /// tombstone is flushed, from when no restart brings any of it back. The org's
    /// actor must have stopped first, or it could journal after the purge.
    pub fn purge(&self, org: &OrgId) -> Ack {
        let (done, rx) = oneshot::channel();
        let _ = self.snapshots.send(Encode::Purge(org.clone(), done));
        Ack(Some(rx))
    }

    /// Resolves once everything sent before it, snapshots included, is durable.
    pub fn barrier(&self) -> Ack {
        let (done, rx) = oneshot::channel();
        // It goes through the snapshot thread, which passes it on after the snapshots
        // queued before it.
        let _ = self.snapshots.send(Encode::Barrier(done));
        Ack(Some(rx))
    }

    fn send(&self, op: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Op) -> Ack {
        let (done, rx) = oneshot::channel();
        // A send error means the writer has stopped; the dropped sender then answers Closed.
        let _ = self.tx.send(op(done));
        Ack(Some(rx))
    }

    /// An organization's audit entries of events up to `seq`, as sled keys and values
    /// (a backup's, beside the org's snapshot after event `seq`).
    pub fn audit_through(&self, org: &OrgId, seq: u64) -> Result<Vec<backup::Raw>, StoreError> {
        let prefix = journal_prefix(org);
        let mut entries = Vec::new();
        for kv in self.audit.scan_prefix(&prefix) {
            let (key, value) = kv?;
            let event = key
                .get(prefix.len()..prefix.len() + 8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            match event {
                Some(event) if event > seq => break,
                Some(_) => entries.push((key.to_vec(), value.to_vec())),
                None => {
                    return Err(StoreError::Malformed {
                        key: String::from_utf8_lossy(&key).into(),
                    })
                }
            }
        }
        Ok(entries)
    }

    /// The token signing key's seed, created and flushed on first use.
    pub fn signing_seed(&self) -> Result<[u8; 32], StoreError> {
        const KEY: &[u8] = SIGNING_KEY;
        if let Some(v) = self.meta.get(KEY)? {
            if let Ok(seed) = <[u8; 32]>::try_from(v.as_ref()) {
                return Ok(seed);
            }
        }
        let seed: [u8; 32] = rand::random();
        self.meta.insert(KEY, &seed[..])?;
        self.meta.flush()?;
        Ok(seed)
    }

    /// Flushes what is pending and stops the writer thread.
    pub async fn close(&self) -> Result<(), StoreError> {
        let flushed = self.barrier().durable().await;
        let _ = self.tx.send(Op::Stop);
        let handle = self.writer.lock().expect("writer handle").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        flushed
    }
}

/// Syncs the directories of a data directory's store, innermost first.
pub(crate) fn sync_dirs(dir: &Path) -> Result<(), StoreError> {
    let store = dir.join("store");
    for d in [store.join("blobs"), store, dir.to_path_buf()] {
        if d.is_dir() {
            std::fs::File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|source| StoreError::Io {
                    what: format!("sync {}", d.display()),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Work for the snapshot thread.
enum Encode {
    /// A snapshot after event `seq`.
    Snapshot(Box<Snapshot>, u64),
    /// Passed on to the writer once the snapshots before it are.
    Barrier(oneshot::Sender<Result<(), StoreError>>),
    /// Passed on likewise: no snapshot of the org queued before it lands after it.
    Purge(OrgId, oneshot::Sender<Result<(), StoreError>>),
}

/// Removes what `org` has in the journal, the audit log and the snapshot directory.
/// Not atomic, and not flushed: only ever run once the org's tombstone is durable.
fn purge(trees: &Trees, audit: &sled::Tree, org: &OrgId) -> Result<(), StoreError> {
    let prefix = journal_prefix(org);
    for tree in [&trees.journal, audit] {
        for key in tree.scan_prefix(&prefix).keys() {
            tree.remove(key?)?;
        }
    }
    snapfiles::remove(&trees.snapshots, org)
}

/// Encodes and writes snapshots one after another, then tells the writer, which knows
/// the journal entries it wrote and which of them each snapshot supersedes. A snapshot
/// may reach the disk before the writer has written the entries it covers; recovery
/// then takes the snapshot and drops those entries as stale (any that were acknowledged
/// were flushed before their answer, so are there too). The writer hears of a snapshot
/// only once its file is durable, so it never deletes entries a snapshot on disk does
/// not cover.
fn spawn_encoder(
    pending: mpsc::Receiver<Encode>,
    dir: PathBuf,
    writer: mpsc::Sender<Op>,
    dead: Arc<std::sync::atomic::AtomicBool>,
) {
    std::thread::Builder::new()
        .name("store-snapshots".into())
        .spawn(move || {
            for work in pending {
                let op = match work {
                    Encode::Barrier(done) => Op::Barrier { done },
                    Encode::Purge(org, done) => Op::Purge { org, done },
                    Encode::Snapshot(snapshot, seq) => {
                        let value = snapshot::encode(&snapshot, seq);
                        if dead.load(std::sync::atomic::Ordering::SeqCst) {
                            // An injected fault killed the store: a dead process writes
                            // nothing more.
                            return;
                        }
                        if let Err(e) = snapfiles::write(&dir, &snapshot.id, &value) {
                            // Harmless: the journal still holds every event it covers.
                            tracing::error!(org = %snapshot.id, error = %e, "snapshot not written");
                            continue;
                        }
                        Op::Snapshotted {
                            org: snapshot.id.clone(),
                            seq,
                        }
                    }
                };
                if writer.send(op).is_err() {
                    return;
                }
            }
        })
        .expect("spawn snapshot encoder");
}

/// One organization's records as read from disk, not yet decoded.
struct OrgRecords {
    org: OrgId,
    /// The snapshot as `(org id, file contents)`.
    snapshot: Option<(Vec<u8>, Vec<u8>)>,
    /// Journal entries as `(first sequence number, key, value)`, in order.
    journal: Vec<(u64, sled::IVec, sled::IVec)>,
}

/// The journal entries each org has on disk after recovery, as `(first, last)` event
/// sequence numbers: what the writer needs to know to delete them once superseded.
pub(crate) type Entries = HashMap<OrgId, VecDeque<(u64, u64)>>;

/// Rebuilds every organization: its snapshot (if any), then its journal after it.
/// Journal entries a snapshot superseded but that were not deleted yet (the server
/// stopped first) are deleted here. A gap in an org's sequence after its snapshot means
/// acknowledged events are gone: that refuses to start.
///
/// Both trees are sorted by org, so this thread reads one org's records at a time and
/// hands them to decoding workers, one org each: decoding is most of a restart's work,
/// and it spreads over the cores while reading stays in key order.
fn recover(db: &sled::Db, trees: &Trees) -> Result<(Vec<Recovered>, Entries), StoreError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (recovered, entries, stale) = std::thread::scope(|scope| {
        let (sends, handles): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| {
                // Bounded, so reading runs only a little ahead of decoding.
                let (tx, rx) = mpsc::sync_channel::<OrgRecords>(4);
                let handle = scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut entries = Entries::new();
                    let mut stale = Vec::new();
                    for records in rx {
                        let org = records.org.clone();
                        let (r, kept) = rebuild(records, &mut stale)?;
                        done.push(r);
                        if !kept.is_empty() {
                            entries.insert(org, kept);
                        }
                    }
                    Ok::<_, StoreError>((done, entries, stale))
                });
                (tx, handle)
            })
            .unzip();
        let read = read_by_org(trees, |records, i| {
            // A worker that failed has hung up; its error is reported below.
            let _ = sends[i % workers].send(records);
        });
        drop(sends);
        let mut recovered = Vec::new();
        let mut entries = Entries::new();
        let mut stale = Vec::new();
        for handle in handles {
            let (done, kept, keys) = handle.join().expect("recovery worker panicked")?;
            recovered.extend(done);
            entries.extend(kept);
            stale.extend(keys);
        }
        read?;
        Ok::<_, StoreError>((recovered, entries, stale))
    })?;
    let mut batch = sled::Batch::default();
    for key in stale {
        batch.remove(key);
    }
    trees.journal.apply_batch(batch)?;
    db.flush()?;
    Ok((recovered, entries))
}

/// Reads both trees in key order and calls `each` with every org's records, the
/// `n`th org as `(records, n)`.
fn read_by_org(trees: &Trees, mut each: impl FnMut(OrgRecords, usize)) -> Result<(), StoreError> {
    let mut snapshots = snapfiles::list(&trees.snapshots)?.into_iter().peekable();
    let mut journal = trees.journal.iter().peekable();
    let mut n = 0;
    loop {
        let next_snapshot = snapshots.peek().map(|(org, _)| org.as_bytes().to_vec());
        let next_journal = match journal.peek() {
            Some(Ok((key, _))) => {
                split_journal_key(key).map(|(org, _)| org.as_str().as_bytes().to_vec())
            }
            Some(Err(_)) => return Err(journal.next().expect("peeked").unwrap_err().into()),
            None => None,
        };
        let org = match (next_snapshot, next_journal) {
            (None, None) => return Ok(()),
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("one is some"),
        };
        let snapshot = match snapshots.peek() {
            Some((id, _)) if id.as_bytes() == org.as_slice() => {
                let (id, path) = snapshots.next().expect("peeked");
                let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
                    what: format!("read {}", path.display()),
                    source,
                })?;
                Some((id.into_bytes(), bytes))
            }
            _ => None,
        };
        let mut entries = Vec::new();
        while let Some(Ok((key, _))) = journal.peek() {
            match split_journal_key(key) {
                Some((o, seq)) if o.as_str().as_bytes() == org.as_slice() => {
                    let (key, value) = journal.next().expect("peeked")?;
                    entries.push((seq, key, value));
                }
                Some(_) => break,
                None => {
                    journal.next();
                }
            }
        }
        let org = OrgId::new(String::from_utf8_lossy(&org).as_ref());
        each(
            OrgRecords {
                org,
                snapshot,
                journal: entries,
            },
            n,
        );
        n += 1;
    }
}

/// Decodes one org's snapshot and replays its journal after it. Entries wholly
/// superseded by the snapshot go to `stale`; the `(first, last)` of the others are
/// answered beside the org.
fn rebuild(
    records: OrgRecords,
    stale: &mut Vec<sled::IVec>,
) -> Result<(Recovered, VecDeque<(u64, u64)>), StoreError> {
    let mut r = match records.snapshot {
        Some((key, value)) => {
            let record = snapshot::decode(&key, &value)?;
            if record.state.id != records.org {
                // A file renamed or copied from another org: its journal is not this one.
                return Err(StoreError::Malformed {
                    key: String::from_utf8_lossy(&key).into_owned(),
                });
            }
            Recovered {
                state: OrgState::restore(record.state),
                seq: record.seq,
                journal_len: 0,
            }
        }
        None => Recovered {
            state: OrgState::empty(records.org.clone()),
            seq: 0,
            journal_len: 0,
        },
    };
    let mut kept = VecDeque::new();
    for (first, key, value) in records.journal {
        let entry = split_entry(&key, &value)?;
        let last = first + entry.len() as u64 - 1;
        if last <= r.seq {
            stale.push(key);
            continue;
        }
        for (seq, bytes) in (first..).zip(entry) {
            if seq <= r.seq {
                continue;
            }
            if seq != r.seq + 1 {
                return Err(StoreError::Gap {
                    org: records.org.to_string(),
                    expected: r.seq + 1,
                    found: seq,
                });
            }
            r.state.apply(&decode_record(&key, bytes)?.event);
            r.seq = seq;
            r.journal_len += 1;
        }
        kept.push_back((first, last));
    }
    r.state.refresh_access();
    Ok((r, kept))
}

#[cfg(test)]
mod tests;
