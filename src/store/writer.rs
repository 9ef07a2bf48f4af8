//! The group-commit writer: one thread, one batch and one flush for everything waiting.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::StoreError;
use crate::domain::Snapshot;
use crate::telemetry::metric;

/// Batches larger than this are split, so one huge burst does not delay every ack.
const MAX_BATCH_OPS: usize = 4096;

type Done = oneshot::Sender<Result<(), StoreError>>;

/// A request to the writer.
pub(super) enum Op {
    Append {
        records: Vec<(Vec<u8>, Vec<u8>)>,
        done: Done,
    },
    Snapshot {
        key: Vec<u8>,
        seq: u64,
        snapshot: Box<Snapshot>,
        drop: Vec<Vec<u8>>,
        done: Done,
    },
    Barrier {
        done: Done,
    },
    Stop,
}

pub(super) fn spawn(db: sled::Db, rx: mpsc::Receiver<Op>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(db, rx))
        .expect("spawn store writer")
}

fn run(db: sled::Db, rx: mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = sled::Batch::default();
        let mut waiting: Vec<Done> = Vec::new();
        let mut stop = false;
        let mut next = Some(first);
        while let Some(op) = next {
            match op {
                Op::Append { records, done } => {
                    for (k, v) in records {
                        batch.insert(k, v);
                    }
                    waiting.push(done);
                }
                Op::Snapshot {
                    key,
                    seq,
                    snapshot,
                    drop,
                    done,
                } => {
                    let mut value = seq.to_be_bytes().to_vec();
                    serde_json::to_writer(&mut value, &snapshot).expect("snapshots serialize");
                    batch.insert(key, value);
                    for k in drop {
                        batch.remove(k);
                    }
                    waiting.push(done);
                }
                Op::Barrier { done } => waiting.push(done),
                Op::Stop => stop = true,
            }
            next = if waiting.len() < MAX_BATCH_OPS && !stop {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let started = Instant::now();
        if let Err(e) = db.apply_batch(batch).and_then(|_| db.flush().map(|_| ())) {
            // Memory is already ahead of the disk for these events; carrying on would
            // acknowledge changes that a restart forgets. Stop, and let recovery rebuild
            // from what is durable.
            tracing::error!(error = %e, "store write failed; stopping the server");
            std::process::exit(70);
        }
        metrics::histogram!(metric::STORE_FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::STORE_BATCH_SIZE).record(waiting.len() as f64);
        for done in waiting {
            let _ = done.send(Ok(()));
        }
        if stop {
            break;
        }
    }
}
