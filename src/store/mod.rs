//! Durability: every organization's events in a segment log, compacted by snapshots,
//! and sled for the rest.
//!
//! - the journal ([`segments`]): `journal/{n}.log`, frames of the writer's rounds, each
//!   a CRC-checked list of entries `(org, first seq, entry)`: an entry is one org's
//!   records of a round ([`record::Entry`]: each a [`record::Record`]
//!   `{v, at, actor, event}` in JSON), events `seq`, `seq + 1`, …;
//! - sled's `audit`: `{org}\0{seq:be64}{n:be32}` → the `n`th audit entry of a change,
//!   caused by its event `seq` ([`audit`]), flushed before its events' frame (see
//!   [`writer`] for how a crash between the two is undone) and kept apart from the
//!   journal: compaction drops journal history, never audit history (which a retention
//!   period prunes);
//! - sled's `meta`: server metadata (the token signing key, the audit keys in flight);
//! - sled's `tombstones`: `{org}` of every deleted organization. Deleting writes the
//!   tombstone and flushes it before anything else is removed, and recovery purges
//!   whatever of a tombstoned org a crash left behind, so a deleted org never comes back
//!   in part.
//!
//! The journal left sled because sled's cost is per insert and per flush: each entry a
//! delta on a leaf it later rewrites whole (62 MB/s written for 26k acquires/s), and
//! each flush a journal commit for a file that grows. Older versions kept it in a sled
//! tree `journal`; opening moves that to the log once.
//!
//! Snapshots are files beside sled, `snapshots/{org}.snap` (the state after event `seq`
//! in the binary format of [`snapshot`]), each written to a temporary file, synced and
//! renamed over the last. Older versions kept them in a sled tree `snapshots`; opening
//! moves those to files once.
//!
//! All writes go through one writer thread ([`writer`]) that groups whatever is waiting
//! into one frame and one flush, then acknowledges each waiting caller. Nothing here
//! runs on an actix worker thread: recovery happens before the server starts, and
//! afterwards callers only send to the writer and await their acknowledgement.
//!
//! Crash ordering: a frame is whole or cut, and frames reach the disk in order (each
//! round is flushed before the next is written). A snapshot file is durable before the
//! writer hears of it, so the journal entries it supersedes are released only after,
//! and recovery refuses an org whose journal has a gap after its snapshot rather than
//! start with state silently missing.

pub mod audit;
pub mod backup;
mod inbox;
pub mod record;
mod segments;
mod snapfiles;
pub mod snapshot;
mod writer;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::oneshot;

use crate::domain::{Actor, Audit, Event, OrgId, OrgState, Page, Snapshot, Timestamp};
use record::{decode_record, split_entry, Entry};
use segments::Place;
pub use writer::Faults;
use writer::Op;

/// sled's page cache. The actors hold all live state and the store is read only at
/// start, so a large cache buys little and is resident memory beside the leases.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Where `meta` keeps the token signing key's seed.
const SIGNING_KEY: &[u8] = b"signing_key";
/// Where `meta` keeps the audit keys of the last round that wrote any, each as a
/// `u32 LE` length and the key: recovery removes those whose event it did not recover.
const IN_FLIGHT: &[u8] = b"audit_in_flight";
/// Legacy journal entries moved to the log per frame.
const MIGRATED_BYTES_PER_FRAME: usize = 1 << 22;

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
    tx: inbox::Sender<Op>,
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

/// `{org}\0`: what an org's audit keys (and the keys of the legacy sled journal) start with.
fn org_prefix(org: &OrgId) -> Vec<u8> {
    let mut k = Vec::with_capacity(org.as_str().len() + 9);
    k.extend_from_slice(org.as_str().as_bytes());
    k.push(0);
    k
}

#[cfg(test)]
fn journal_key(org: &OrgId, seq: u64) -> Vec<u8> {
    let mut k = org_prefix(org);
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
        let snapshots = snapfiles::open(dir, &db)?;
        let audit = db.open_tree("audit")?;
        let tombstones = db.open_tree("tombstones")?;
        let mut tombstoned = HashSet::new();
        for org in tombstones.iter().keys() {
            let org = OrgId::new(String::from_utf8_lossy(&org?).as_ref());
            purge(&snapshots, &audit, &org)?;
            tombstoned.insert(org);
        }
        let segment_bytes = faults.segment_bytes.unwrap_or(segments::SEGMENT_BYTES);
        let (mut log, mut read) = segments::open(dir, segment_bytes)?;
        migrate(&db, &mut log, &mut read, segment_bytes)?;
        db.flush()?;
        // sled syncs its files, never the directories naming them: a store created (or
        // grown a blob directory) just now must not vanish whole with a power loss.
        sync_dirs(dir)?;
        read.retain(|r| !tombstoned.contains(&r.org));
        let (recovered, entries) = recover(&snapshots, read)?;
        for span in entries.values().flatten() {
            log.hold(span.place);
        }
        log.counted().map_err(|source| StoreError::Io {
            what: "delete superseded journal segments".into(),
            source,
        })?;
        let meta = db.open_tree("meta")?;
        undo_in_flight(&db, &audit, &meta, &recovered)?;
        let (tx, rx) = inbox::inbox(writer::LAZY_FLUSH, writer::MAX_BATCH_OPS);
        let (snapshot_tx, pending) = mpsc::channel();
        spawn_encoder(pending, snapshots.clone(), tx.clone(), faults.dead.clone());
        let sled = writer::Sled {
            db,
            audit: audit.clone(),
            meta: meta.clone(),
            tombstones,
            snapshots,
        };
        let handle = writer::spawn(sled, log, rx, entries, faults);
        let store = Store {
            meta,
            audit,
            tx,
            snapshots: snapshot_tx,
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
                let _ = self.tx.send(append(None), false);
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
        let _ = self.tx.send(op(done), true);
        Ack(Some(rx))
    }

    /// An organization's audit entries of events up to `seq`, as sled keys and values
    /// (a backup's, beside the org's snapshot after event `seq`).
    pub fn audit_through(&self, org: &OrgId, seq: u64) -> Result<Vec<backup::Raw>, StoreError> {
        let prefix = org_prefix(org);
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
        let _ = self.tx.send(Op::Stop, true);
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
    for d in [
        store.join("blobs"),
        store,
        dir.join("journal"),
        dir.join("snapshots"),
        dir.to_path_buf(),
    ] {
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

/// Removes what `org` has in the audit log and the snapshot directory (its journal
/// entries are the writer's to release). Not atomic, and not flushed: only ever run
/// once the org's tombstone is durable.
fn purge(snapshots: &Path, audit: &sled::Tree, org: &OrgId) -> Result<(), StoreError> {
    for key in audit.scan_prefix(org_prefix(org)).keys() {
        audit.remove(key?)?;
    }
    snapfiles::remove(snapshots, org)
}

/// Moves the journal of a version that kept it in sled's `journal` tree into the log:
/// written and flushed there first, then cleared (a crash between leaves both, and
/// recovery takes either copy).
fn migrate(
    db: &sled::Db,
    log: &mut segments::Log,
    read: &mut Vec<segments::Read>,
    segment_bytes: u64,
) -> Result<(), StoreError> {
    let per_frame = MIGRATED_BYTES_PER_FRAME.min(segment_bytes as usize / 4);
    let legacy = db.open_tree("journal")?;
    if legacy.is_empty() {
        return Ok(());
    }
    let io = |source| StoreError::Io {
        what: "move the journal to the log".into(),
        source,
    };
    let mut entries = legacy.iter().peekable();
    while entries.peek().is_some() {
        let mut frame = segments::Frame::new();
        let mut moved = Vec::new();
        let mut bytes = 0;
        while bytes < per_frame {
            let Some(kv) = entries.next() else { break };
            let (key, value) = kv?;
            let (org, first) = split_journal_key(&key).ok_or_else(|| StoreError::Malformed {
                key: String::from_utf8_lossy(&key).into_owned(),
            })?;
            let at = frame.push(&org, first, &value);
            bytes += value.len();
            moved.push((org, first, at, value.to_vec()));
        }
        let (segment, base) = log.append(&mut frame).map_err(io)?;
        read.extend(moved.into_iter().map(|(org, first, at, entry)| {
            let place = Place {
                segment,
                offset: base + at,
                len: entry.len() as u32,
            };
            segments::Read {
                org,
                first,
                entry,
                place,
            }
        }));
    }
    log.sync().map_err(io)?;
    legacy.clear()?;
    Ok(())
}

/// Removes the audit entries of the last round that wrote any whose events recovery did
/// not find: the writer flushed them before the round's frame, which a crash then cut.
fn undo_in_flight(
    db: &sled::Db,
    audit: &sled::Tree,
    meta: &sled::Tree,
    recovered: &[Recovered],
) -> Result<(), StoreError> {
    let Some(keys) = meta.get(IN_FLIGHT)? else {
        return Ok(());
    };
    let seqs: HashMap<&OrgId, u64> = recovered.iter().map(|r| (r.state.id(), r.seq)).collect();
    let mut rest = &keys[..];
    while let Some(len) = rest.get(..4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let Some(key) = rest.get(4..4 + len) else {
            break;
        };
        rest = &rest[4 + len..];
        let Some((org, seq)) = split_journal_key(&key[..key.len().saturating_sub(4)]) else {
            continue;
        };
        if seqs.get(&org).is_none_or(|&recovered| seq > recovered) {
            audit.remove(key)?;
        }
    }
    meta.remove(IN_FLIGHT)?;
    db.flush()?;
    Ok(())
}

/// Encodes and writes snapshots one after another, then tells the writer, which knows
/// the journal entries it wrote and which of them each snapshot supersedes. A snapshot
/// is written only once the events it covers are flushed (a barrier through the
/// writer, after them in its inbox): were it on disk first, a crash could keep an event
/// the snapshot holds while losing the audit entries its round had not written yet.
/// The writer hears of a snapshot only once its file is durable, so it never releases
/// entries a snapshot on disk does not cover.
fn spawn_encoder(
    pending: mpsc::Receiver<Encode>,
    dir: PathBuf,
    writer: inbox::Sender<Op>,
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
                        let (done, flushed) = oneshot::channel();
                        // Not urgent: a round within the lazy delay will do, with no
                        // flush of its own.
                        if !writer.send(Op::Barrier { done }, false)
                            || !matches!(flushed.blocking_recv(), Ok(Ok(())))
                            || dead.load(std::sync::atomic::Ordering::SeqCst)
                        {
                            // The writer stopped (or an injected fault killed the
                            // store: a dead process writes nothing more).
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
                let urgent = op.urgent();
                if !writer.send(op, urgent) {
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
    /// Journal entries, in the order the log holds them.
    journal: Vec<segments::Read>,
}

/// A journal entry in the log that no snapshot has superseded yet: events
/// `first..=last` of its org, and where its bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub first: u64,
    pub last: u64,
    pub place: Place,
}

/// The journal entries each org has in the log after recovery, in sequence order: what
/// the writer needs to know to release them once superseded.
pub(crate) type Entries = HashMap<OrgId, VecDeque<Span>>;

/// Rebuilds every organization: its snapshot (if any), then its journal after it.
/// Journal entries a snapshot superseded are dropped (their segments go once nothing
/// else holds them). A gap in an org's sequence after its snapshot means acknowledged
/// events are gone: that refuses to start.
///
/// Decoding is most of a restart's work: it spreads over the cores, one org at a time
/// per worker.
fn recover(
    snapshots: &Path,
    read: Vec<segments::Read>,
) -> Result<(Vec<Recovered>, Entries), StoreError> {
    let mut journals: BTreeMap<String, Vec<segments::Read>> = BTreeMap::new();
    for r in read {
        journals
            .entry(r.org.as_str().to_owned())
            .or_default()
            .push(r);
    }
    let mut files = snapfiles::list(snapshots)?;
    let orgs: Vec<String> = files
        .keys()
        .chain(journals.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let (sends, handles): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| {
                // Bounded, so reading runs only a little ahead of decoding.
                let (tx, rx) = mpsc::sync_channel::<OrgRecords>(4);
                let handle = scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut entries = Entries::new();
                    for records in rx {
                        let org = records.org.clone();
                        let (r, kept) = rebuild(records)?;
                        done.push(r);
                        if !kept.is_empty() {
                            entries.insert(org, kept);
                        }
                    }
                    Ok::<_, StoreError>((done, entries))
                });
                (tx, handle)
            })
            .unzip();
        let mut read = Ok(());
        for (n, org) in orgs.into_iter().enumerate() {
            let snapshot = match files.remove(&org) {
                Some(path) => match std::fs::read(&path) {
                    Ok(bytes) => Some((org.clone().into_bytes(), bytes)),
                    Err(source) => {
                        read = Err(StoreError::Io {
                            what: format!("read {}", path.display()),
                            source,
                        });
                        break;
                    }
                },
                None => None,
            };
            let records = OrgRecords {
                journal: journals.remove(&org).unwrap_or_default(),
                org: OrgId::new(org.as_str()),
                snapshot,
            };
            // A worker that failed has hung up; its error is reported below.
            let _ = sends[n % workers].send(records);
        }
        drop(sends);
        let mut recovered = Vec::new();
        let mut entries = Entries::new();
        for handle in handles {
            let (done, kept) = handle.join().expect("recovery worker panicked")?;
            recovered.extend(done);
            entries.extend(kept);
        }
        read?;
        Ok((recovered, entries))
    })
}

/// Decodes one org's snapshot and replays its journal after it; answers the entries it
/// still needs beside the org.
fn rebuild(records: OrgRecords) -> Result<(Recovered, VecDeque<Span>), StoreError> {
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
    let mut journal = records.journal;
    // An entry carried forward, or moved from sled, can be met twice if a crash came
    // before the old copy went: the copies must be the same, and the newest is kept
    // (the writer holds it, and the old segment goes).
    journal.sort_by(|a, b| {
        let newest_first =
            (b.place.segment, b.place.offset).cmp(&(a.place.segment, a.place.offset));
        a.first.cmp(&b.first).then(newest_first)
    });
    if let Some(w) = journal
        .windows(2)
        .find(|w| w[0].first == w[1].first && w[0].entry != w[1].entry)
    {
        return Err(StoreError::Malformed {
            key: format!(
                "{}@journal/{:016x}.log:{}, met twice with other contents",
                records.org, w[1].place.segment, w[1].place.offset
            ),
        });
    }
    journal.dedup_by_key(|e| e.first);
    let mut kept = VecDeque::new();
    for e in journal {
        let key = format!(
            "{}@journal/{:016x}.log:{}",
            records.org, e.place.segment, e.place.offset
        );
        let entry = split_entry(key.as_bytes(), &e.entry)?;
        let last = e.first + entry.len() as u64 - 1;
        if last <= r.seq {
            continue;
        }
        for (seq, bytes) in (e.first..).zip(entry) {
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
            r.state.apply(&decode_record(key.as_bytes(), bytes)?.event);
            r.seq = seq;
            r.journal_len += 1;
        }
        kept.push_back(Span {
            first: e.first,
            last,
            place: e.place,
        });
    }
    r.state.refresh_access();
    Ok((r, kept))
}

#[cfg(test)]
mod tests;
