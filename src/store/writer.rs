//! The group-commit writer: one thread, one batch and one flush for everything waiting.
//!
//! Journaled changes nobody waits on (heartbeats, releases and expiry, all answered
//! before their flush) are gathered, not written at once: they go to sled, joined per
//! org, with the next round somebody waits on, or [`LAZY_FLUSH`] after the first of
//! them, whichever is first. sled's cost is per insert (each one a delta on a leaf that
//! it later rewrites whole): under a heartbeat load this is 20 inserts and flushes a
//! second per org instead of one per round, and the crash contract is unchanged (those
//! changes were never promised to be on disk; recovery's reclaim window covers them).
//!
//! Compaction stays off this thread's critical path: the snapshot thread encodes and
//! writes snapshot files itself (a large one would hold every acknowledgement behind
//! its write here), and the journal entries a snapshot replaces are deleted a few per
//! batch, riding along with the writes that callers wait for. The writer hears of a
//! snapshot only once its file is durable, so it never deletes what no snapshot on
//! disk covers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::Transactional;
use tokio::sync::oneshot;

use super::record::Entry;
use super::{journal_key, Entries, StoreError, Trees};
use crate::domain::OrgId;
use crate::telemetry::metric;

/// Batches larger than this are split, so one huge burst does not delay every ack.
const MAX_BATCH_OPS: usize = 4096;
/// Superseded journal entries deleted per batch beyond one per entry written. Deleting
/// at the pace of appending keeps the journal's size bounded without ever making a
/// batch (and the callers waiting on it) pay for a whole compaction at once.
const EXTRA_GARBAGE_PER_BATCH: usize = 8;
/// How long journaled changes nobody waits on may be held before they are written.
const LAZY_FLUSH: Duration = Duration::from_millis(50);

type Done = oneshot::Sender<Result<(), StoreError>>;

/// Faults to inject, for tests of what a crash at any point leaves on disk.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// After this many sled batch writes, flush what was written and stop as a killed
    /// process would: nothing more is written (the snapshot thread stops writing too)
    /// and no waiting caller is answered.
    pub die_after_writes: Option<usize>,
    /// Set once the injected fault has killed the store.
    pub dead: Arc<AtomicBool>,
}

/// A request to the writer.
pub(super) enum Op {
    /// `count` records of `org` from event `first_seq` on; `done` is answered after
    /// the flush, if anyone waits.
    Append {
        org: OrgId,
        first_seq: u64,
        count: u64,
        entry: Entry,
        /// The change's audit entries as `(key, value)`, written atomically with it.
        audit: Vec<(Vec<u8>, Vec<u8>)>,
        done: Option<Done>,
    },
    /// A snapshot of `org` after event `seq` is durable (the snapshot thread wrote and
    /// synced its file before sending this): the journal entries it supersedes become
    /// deletable.
    Snapshotted {
        org: OrgId,
        seq: u64,
    },
    Barrier {
        done: Done,
    },
    /// Delete everything of `org`: its tombstone is flushed with this round, and `done`
    /// answered after.
    Purge {
        org: OrgId,
        done: Done,
    },
    Stop,
}

pub(super) fn spawn(
    db: sled::Db,
    trees: Trees,
    audit: sled::Tree,
    tombstones: sled::Tree,
    rx: mpsc::Receiver<Op>,
    entries: Entries,
    faults: Faults,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(db, trees, audit, tombstones, rx, entries, faults))
        .expect("spawn store writer")
}

/// One org's records of a round, joined into one journal entry.
struct Group {
    org: OrgId,
    first: u64,
    count: u64,
    entry: Entry,
}

/// What has arrived since the last write: journal groups per org, snapshots, waiters.
#[derive(Default)]
struct Pending {
    groups: Vec<Group>,
    group_of: HashMap<OrgId, usize>,
    snapshotted: Vec<(OrgId, u64)>,
    purged: Vec<OrgId>,
    audit: Vec<(Vec<u8>, Vec<u8>)>,
    waiting: Vec<Done>,
    ops: usize,
    /// When the oldest op not yet written arrived.
    since: Option<Instant>,
    stop: bool,
}

impl Pending {
    fn add(&mut self, op: Op) {
        self.since.get_or_insert_with(Instant::now);
        self.ops += 1;
        match op {
            Op::Append {
                org,
                first_seq,
                count,
                entry,
                audit,
                done,
            } => {
                self.waiting.extend(done);
                self.audit.extend(audit);
                // An org's appends arrive in sequence order (one actor per org, its
                // sequence only rising), so they extend its group.
                match self.group_of.get(&org).map(|&i| &mut self.groups[i]) {
                    Some(g) if g.first + g.count == first_seq => {
                        g.count += count;
                        g.entry.join(&entry);
                    }
                    found => {
                        debug_assert!(found.is_none(), "{org}: appends out of sequence");
                        self.group_of.insert(org.clone(), self.groups.len());
                        self.groups.push(Group {
                            org,
                            first: first_seq,
                            count,
                            entry,
                        });
                    }
                }
            }
            Op::Snapshotted { org, seq } => self.snapshotted.push((org, seq)),
            Op::Barrier { done } => self.waiting.push(done),
            Op::Purge { org, done } => {
                self.purged.push(org);
                self.waiting.push(done);
            }
            Op::Stop => self.stop = true,
        }
    }

    /// Whether to write and flush now rather than gather more.
    fn due(&self) -> bool {
        !self.waiting.is_empty()
            || self.stop
            || self.ops >= MAX_BATCH_OPS
            || self.since.is_some_and(|t| t.elapsed() >= LAZY_FLUSH)
    }
}

/// `entries`: the journal entries on disk that no snapshot has superseded yet, per org,
/// as `(first, last)` sequence numbers.
fn run(
    db: sled::Db,
    trees: Trees,
    audit: sled::Tree,
    tombstones: sled::Tree,
    rx: mpsc::Receiver<Op>,
    mut entries: Entries,
    faults: Faults,
) {
    // Superseded journal keys whose snapshot is durable: safe to delete.
    let mut garbage: VecDeque<Vec<u8>> = VecDeque::new();
    let mut writes = 0usize;
    // Whether an injected fault lets the writer make one more batch write.
    let mut alive = || {
        writes += 1;
        faults.die_after_writes.is_none_or(|n| writes <= n)
    };
    let journal = &trees.journal;
    let mut pending = Pending::default();
    loop {
        let next = match pending.since {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(t) => rx.recv_timeout(LAZY_FLUSH.saturating_sub(t.elapsed())),
        };
        match next {
            Ok(op) => pending.add(op),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender is gone: write what is left, as a stop would.
            Err(mpsc::RecvTimeoutError::Disconnected) => pending.stop = true,
        }
        while pending.ops < MAX_BATCH_OPS && !pending.stop {
            match rx.try_recv() {
                Ok(op) => pending.add(op),
                Err(_) => break,
            }
        }
        if !pending.due() {
            continue;
        }
        let round = std::mem::take(&mut pending);
        let mut batch = sled::Batch::default();
        let written = round.groups.len();
        for g in round.groups {
            batch.insert(journal_key(&g.org, g.first), g.entry.into_bytes());
            let last = g.first + g.count - 1;
            entries.entry(g.org).or_default().push_back((g.first, last));
        }
        // Superseded by a snapshot of this round: deleted from the next round on. Every
        // append a snapshot covers was sent before it, so is in `entries` now.
        let mut superseded: Vec<Vec<u8>> = Vec::new();
        for (org, seq) in round.snapshotted {
            if let Some(held) = entries.get_mut(&org) {
                while let Some(&(first, _)) = held.front().filter(|(_, last)| *last <= seq) {
                    held.pop_front();
                    superseded.push(journal_key(&org, first));
                }
                if held.is_empty() {
                    entries.remove(&org);
                }
            }
        }
        let n = garbage.len().min(written + EXTRA_GARBAGE_PER_BATCH);
        for key in garbage.drain(..n) {
            batch.remove(key);
        }
        let started = Instant::now();
        if !alive() {
            // The injected fault: what was written reaches the disk, nothing more.
            faults.dead.store(true, Ordering::SeqCst);
            let _ = db.flush();
            return;
        }
        if round.audit.is_empty() {
            if let Err(e) = journal.apply_batch(batch) {
                fail(e);
            }
        } else {
            // Audit entries are written in one transaction with the journal entries of
            // their changes: a crash keeps both or neither.
            let mut logged = sled::Batch::default();
            for (k, v) in round.audit {
                logged.insert(k, v);
            }
            let written: sled::transaction::TransactionResult<(), ()> = (journal, &audit)
                .transaction(|(j, a)| {
                    j.apply_batch(&batch)?;
                    a.apply_batch(&logged)?;
                    Ok(())
                });
            match written {
                Ok(()) => {}
                Err(sled::transaction::TransactionError::Storage(e)) => fail(e),
                Err(sled::transaction::TransactionError::Abort(())) => {
                    unreachable!("the transaction never aborts")
                }
            }
        }
        for org in &round.purged {
            if let Err(e) = tombstones.insert(org.as_str().as_bytes(), &[]) {
                fail(e);
            }
        }
        flush(&db);
        metrics::histogram!(metric::STORE_FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::STORE_BATCH_SIZE).record(round.ops as f64);
        garbage.extend(superseded);
        for done in round.waiting {
            let _ = done.send(Ok(()));
        }
        // After the round is answered, so its acknowledgements do not wait on it (the
        // next round's do; deletes are rare): the tombstone is durable, and a crash
        // from here on is finished by recovery.
        for org in round.purged {
            entries.remove(&org);
            if let Err(e) = super::purge(&trees, &audit, &org) {
                tracing::error!(%org, error = %e, "purge of a deleted organization unfinished; the next start finishes it");
            }
        }
        if round.stop {
            return;
        }
    }
}

/// Makes everything written so far durable, or stops the server.
fn flush(db: &sled::Db) {
    if let Err(e) = db.flush() {
        fail(e);
    }
}

/// Memory is already ahead of the disk for the events that failed; carrying on would
/// acknowledge changes that a restart forgets. Stop, and let recovery rebuild from
/// what is durable.
fn fail(e: sled::Error) -> ! {
    tracing::error!(error = %e, "store write failed; stopping the server");
    std::process::exit(70);
}
