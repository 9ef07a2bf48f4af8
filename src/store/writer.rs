//! The group-commit writer: one thread, one frame and one flush for everything waiting.
//!
//! Journaled changes nobody waits on (heartbeats, releases and expiry, all answered
//! before their flush) are gathered, not written at once: they go to the log, joined
//! per org, with the next round somebody waits on, or [`LAZY_FLUSH`] after the first of
//! them, whichever is first: under a heartbeat load, 20 writes and flushes a second per
//! org instead of one per round, and the crash contract is unchanged (those changes were
//! never promised to be on disk; recovery's reclaim window covers them).
//!
//! A round's audit entries (admin changes only) go to sled's `audit` tree, flushed, and
//! only then is the round's frame written to the log: a crash between the two leaves
//! audit entries of events that never were, and their keys, noted in `meta` in the same
//! sled transaction, let recovery remove them. So a restart keeps both or neither.
//!
//! Compaction stays off this thread's critical path: the snapshot thread encodes and
//! writes snapshot files itself (a large one would hold every acknowledgement behind
//! its write here). The writer hears of a snapshot only once its file is durable, and
//! only then releases the journal entries it supersedes, so a segment is never deleted
//! while it holds an event that no snapshot on disk covers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::Transactional;
use tokio::sync::oneshot;

use super::inbox::Receiver;
use super::record::Entry;
use super::segments::{Frame, Log, Place};
use super::{Entries, Span, StoreError, IN_FLIGHT};
use crate::domain::OrgId;
use crate::telemetry::metric;

/// Batches larger than this are split, so one huge burst does not delay every ack.
pub(super) const MAX_BATCH_OPS: usize = 4096;
/// Sparse old segments carried forward each time a segment fills: more than one, so
/// their number falls even while every segment has an idle org's entry.
const CARRIED_PER_ROLL: usize = 2;
/// How long journaled changes nobody waits on may be held before they are written.
pub(super) const LAZY_FLUSH: Duration = Duration::from_millis(50);

type Done = oneshot::Sender<Result<(), StoreError>>;

/// Faults to inject, for tests of what a crash at any point leaves on disk.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// After this many durable writes (a round's sled flush of audit entries or
    /// tombstones, its frame, a carried segment's copy and the deletion of the original
    /// each count), flush what was written and stop as a killed process would: nothing
    /// more is written (the snapshot thread stops writing too) and no waiting caller is
    /// answered.
    pub die_after_writes: Option<usize>,
    /// A smaller segment size than [`super::segments::SEGMENT_BYTES`], so that tests
    /// fill, carry and delete segments.
    pub segment_bytes: Option<u64>,
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

/// What the writer writes to besides the log.
pub(super) struct Sled {
    pub db: sled::Db,
    pub audit: sled::Tree,
    pub meta: sled::Tree,
    pub tombstones: sled::Tree,
    /// The snapshot files' directory, for purges.
    pub snapshots: std::path::PathBuf,
}

pub(super) fn spawn(
    sled: Sled,
    log: Log,
    rx: Receiver<Op>,
    entries: Entries,
    faults: Faults,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(sled, log, rx, entries, faults))
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
    stop: bool,
}

impl Pending {
    fn add(&mut self, op: Op) {
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
}

impl Op {
    /// Whether somebody waits on it (or on the writer stopping): the writer is woken for it.
    pub(super) fn urgent(&self) -> bool {
        match self {
            Op::Append { done, .. } => done.is_some(),
            Op::Snapshotted { .. } => false,
            Op::Barrier { .. } | Op::Purge { .. } | Op::Stop => true,
        }
    }
}

/// `entries`: the journal entries in the log that no snapshot has superseded yet, per
/// org, in sequence order.
fn run(sled: Sled, mut log: Log, rx: Receiver<Op>, mut entries: Entries, faults: Faults) {
    /// A panic here would leave the actors running ahead of the disk, as a failed
    /// write would: it ends the process the same way.
    struct Abort;
    impl Drop for Abort {
        fn drop(&mut self) {
            if std::thread::panicking() {
                fail("the store writer panicked");
            }
        }
    }
    let _abort = Abort;
    let mut fuse = Fuse {
        writes: 0,
        limit: faults.die_after_writes,
    };
    // The injected fault: what was written reaches the disk, nothing more.
    let die = |log: &Log| {
        faults.dead.store(true, Ordering::SeqCst);
        let _ = log.sync();
        let _ = sled.db.flush();
    };
    let mut backlog = Vec::new().into_iter();
    loop {
        let mut round = Pending::default();
        if backlog.len() == 0 {
            match rx.take() {
                Some(ops) => backlog = ops.into_iter(),
                // Every sender is gone: stop, as a stop would.
                None => round.stop = true,
            }
        }
        for op in backlog.by_ref().take(MAX_BATCH_OPS) {
            round.add(op);
        }
        let started = Instant::now();
        if !round.audit.is_empty() || !round.purged.is_empty() {
            if fuse.blown() {
                return die(&log);
            }
            write_sled(&sled, round.audit, &round.purged);
        }
        let mut frame = Frame::new();
        let placed: Vec<_> = round
            .groups
            .into_iter()
            .map(|g| {
                let bytes = g.entry.into_bytes();
                let at = frame.push(&g.org, g.first, &bytes);
                (
                    g.org,
                    g.first,
                    g.first + g.count - 1,
                    at,
                    bytes.len() as u32,
                )
            })
            .collect();
        let mut rolled = false;
        if !frame.is_empty() {
            if fuse.blown() {
                return die(&log);
            }
            let before = log.segment();
            let (segment, base) = log.append(&mut frame).unwrap_or_else(|e| fail(e));
            rolled = segment != before;
            for (org, first, last, at, len) in placed {
                let place = Place {
                    segment,
                    offset: base + at,
                    len,
                };
                log.hold(place);
                entries
                    .entry(org)
                    .or_default()
                    .push_back(Span { first, last, place });
            }
            log.sync().unwrap_or_else(|e| fail(e));
            metrics::histogram!(metric::STORE_FLUSH_SECONDS)
                .record(started.elapsed().as_secs_f64());
        }
        metrics::histogram!(metric::STORE_BATCH_SIZE).record(round.ops as f64);
        for done in round.waiting {
            let _ = done.send(Ok(()));
        }
        // After the round is answered, so its acknowledgements do not wait on this.
        // Every append a snapshot covers was sent before it, so is in `entries` now.
        for (org, seq) in round.snapshotted {
            if let Some(held) = entries.get_mut(&org) {
                while let Some(span) = held.front().filter(|s| s.last <= seq) {
                    log.release(span.place);
                    held.pop_front();
                }
                if held.is_empty() {
                    entries.remove(&org);
                }
            }
        }
        // The tombstone is durable: a crash from here on is finished by recovery.
        for org in round.purged {
            for span in entries.remove(&org).unwrap_or_default() {
                log.release(span.place);
            }
            if let Err(e) = super::purge(&sled.snapshots, &sled.audit, &org) {
                tracing::error!(%org, error = %e, "purge of a deleted organization unfinished; the next start finishes it");
            }
        }
        if rolled && !carry(&mut log, &mut entries, &mut fuse).unwrap_or_else(|e| fail(e)) {
            return die(&log);
        }
        if round.stop {
            return;
        }
    }
}

/// Writes a round's audit entries and tombstones to sled and flushes them, noting the
/// audit keys in `meta` (in the same transaction) until the round's frame is durable.
fn write_sled(sled: &Sled, audit: Vec<(Vec<u8>, Vec<u8>)>, purged: &[OrgId]) {
    let mut in_flight = Vec::new();
    let mut logged = sled::Batch::default();
    for (k, v) in audit {
        in_flight.extend_from_slice(&(k.len() as u32).to_le_bytes());
        in_flight.extend_from_slice(&k);
        logged.insert(k, v);
    }
    let written: sled::transaction::TransactionResult<(), ()> = (&sled.audit, &sled.meta)
        .transaction(|(a, m)| {
            a.apply_batch(&logged)?;
            m.insert(IN_FLIGHT, in_flight.as_slice())?;
            Ok(())
        });
    match written {
        Ok(()) => {}
        Err(sled::transaction::TransactionError::Storage(e)) => fail(e),
        Err(sled::transaction::TransactionError::Abort(())) => {
            unreachable!("the transaction never aborts")
        }
    }
    for org in purged {
        if let Err(e) = sled.tombstones.insert(org.as_str().as_bytes(), &[]) {
            fail(e);
        }
    }
    if let Err(e) = sled.db.flush() {
        fail(e);
    }
}

/// Writes what sparse old segments still hold again at the end of the log, so the old
/// files go: an org that journals a little and then idles would otherwise keep its
/// segment, and every one after it, for ever.
///
/// Answers false if an injected fault stopped it before the copy or before the deletion.
fn carry(log: &mut Log, entries: &mut Entries, fuse: &mut Fuse) -> std::io::Result<bool> {
    for segment in log.sparse().into_iter().take(CARRIED_PER_ROLL) {
        let mut frame = Frame::new();
        let mut moved = Vec::new();
        let old = log.open_segment(segment)?;
        for (org, spans) in entries.iter() {
            for (i, span) in spans.iter().enumerate() {
                if span.place.segment == segment {
                    let at = frame.push(org, span.first, &Log::read(&old, span.place)?);
                    moved.push((org.clone(), i, at));
                }
            }
        }
        if frame.is_empty() {
            continue;
        }
        if fuse.blown() {
            return Ok(false);
        }
        let (to, base) = log.append(&mut frame)?;
        log.sync()?;
        if fuse.blown() {
            return Ok(false);
        }
        for (org, i, at) in moved {
            let span = &mut entries.get_mut(&org).expect("moved from here")[i];
            let place = Place {
                segment: to,
                offset: base + at,
                len: span.place.len,
            };
            log.hold(place);
            log.release(std::mem::replace(&mut span.place, place));
        }
    }
    Ok(true)
}

/// Counts durable writes (sled flushes, frames) for [`Faults::die_after_writes`].
struct Fuse {
    writes: usize,
    limit: Option<usize>,
}

impl Fuse {
    /// Whether the injected fault stops the writer before its next durable write.
    fn blown(&mut self) -> bool {
        self.writes += 1;
        self.limit.is_some_and(|n| self.writes > n)
    }
}

/// Memory is already ahead of the disk for the events that failed; carrying on would
/// acknowledge changes that a restart forgets. Stop, and let recovery rebuild from
/// what is durable.
fn fail(e: impl std::fmt::Display) -> ! {
    tracing::error!(error = %e, "store write failed; stopping the server");
    std::process::exit(70);
}
