//! The group-commit writer: one thread, one batch and one flush for everything waiting.
//!
//! Compaction stays off this thread's critical path: the snapshot thread encodes and
//! inserts snapshots itself (a large one would hold every acknowledgement behind its
//! write here), and the journal entries a snapshot replaces are deleted a few per
//! batch, riding along with the writes that callers wait for. They become
//! deletable only once a flush has made their snapshot durable: sled keeps each batch
//! atomic, not two batches together, so deleting them in the snapshot's own round could
//! leave the deletions on disk without the snapshot after a `kill -9`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::StoreError;
use crate::telemetry::metric;

/// Batches larger than this are split, so one huge burst does not delay every ack.
const MAX_BATCH_OPS: usize = 4096;
/// Superseded journal entries deleted per batch beyond one per appended entry. Deleting
/// at the pace of appending keeps the journal's size bounded without ever making a
/// batch (and the callers waiting on it) pay for a whole compaction at once.
const EXTRA_GARBAGE_PER_BATCH: usize = 8;

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
    /// Records to journal; `done` is answered after the flush, if anyone waits.
    Append {
        records: Vec<(Vec<u8>, Vec<u8>)>,
        done: Option<Done>,
    },
    /// A snapshot was inserted (by the snapshot thread, before sending this): the
    /// journal keys it supersedes become deletable after this round's flush, which
    /// makes the snapshot durable too.
    Snapshotted {
        superseded: Vec<Vec<u8>>,
    },
    Barrier {
        done: Done,
    },
    Stop,
}

pub(super) fn spawn(
    db: sled::Db,
    journal: sled::Tree,
    rx: mpsc::Receiver<Op>,
    faults: Faults,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(db, journal, rx, faults))
        .expect("spawn store writer")
}

fn run(db: sled::Db, journal: sled::Tree, rx: mpsc::Receiver<Op>, faults: Faults) {
    // Superseded journal keys whose snapshot is durable: safe to delete.
    let mut garbage: VecDeque<Vec<u8>> = VecDeque::new();
    let mut writes = 0usize;
    // Whether an injected fault lets the writer make one more batch write.
    let mut alive = || {
        writes += 1;
        faults.die_after_writes.is_none_or(|n| writes <= n)
    };
    while let Ok(first) = rx.recv() {
        let mut batch = sled::Batch::default();
        // Superseded by a snapshot of this round: deletable after this round's flush.
        let mut superseded_now: Vec<Vec<u8>> = Vec::new();
        let mut waiting: Vec<Done> = Vec::new();
        let mut stop = false;
        let mut appended = 0;
        let mut ops = 0;
        let mut next = Some(first);
        while let Some(op) = next {
            ops += 1;
            match op {
                Op::Append { records, done } => {
                    appended += records.len();
                    for (k, v) in records {
                        batch.insert(k, v);
                    }
                    waiting.extend(done);
                }
                Op::Snapshotted { superseded } => superseded_now.extend(superseded),
                Op::Barrier { done } => waiting.push(done),
                Op::Stop => stop = true,
            }
            next = if ops < MAX_BATCH_OPS && !stop {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let n = garbage.len().min(appended + EXTRA_GARBAGE_PER_BATCH);
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
        let written = journal
            .apply_batch(batch)
            .and_then(|_| db.flush().map(|_| ()));
        if let Err(e) = written {
            // Memory is already ahead of the disk for these events; carrying on would
            // acknowledge changes that a restart forgets. Stop, and let recovery rebuild
            // from what is durable.
            tracing::error!(error = %e, "store write failed; stopping the server");
            std::process::exit(70);
        }
        metrics::histogram!(metric::STORE_FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::STORE_BATCH_SIZE).record(ops as f64);
        garbage.extend(superseded_now);
        for done in waiting {
            let _ = done.send(Ok(()));
        }
        if stop {
            break;
        }
    }
}
