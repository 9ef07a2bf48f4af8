//! The writer's inbox: operations in the order they were sent, taken a round at a time.
//!
//! A channel wakes its receiver for every message. Most of what the writer receives
//! under a runtime load is journaled without anyone waiting (heartbeats, releases), and
//! waking the writer for each cost a futex wake and a context switch per request (five
//! sleeps of the writer per round in the acquire+release scenario). Here a sender wakes
//! the writer only for an operation somebody waits on, a full round, or the first
//! operation after the writer went idle; the writer otherwise takes what gathered when
//! its lazy-flush timer runs out.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the writer sleeps, if it does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sleep {
    Awake,
    /// Until an operation somebody waits on arrives, or its timer runs out.
    Timed,
    /// Until anything arrives: nothing is pending.
    Idle,
}

struct State<T> {
    ops: Vec<T>,
    /// Whether an operation somebody waits on is among `ops`.
    urgent: bool,
    /// When the oldest of `ops` arrived.
    since: Option<Instant>,
    sleep: Sleep,
    senders: usize,
    /// The writer has stopped: operations sent now are dropped at once.
    gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    /// Ops that waited this long are taken even if nobody waits on them.
    lazy: Duration,
    /// A full round: taken at once.
    round: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves plain data; carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side; cloned by everyone who writes.
pub struct Sender<T>(Arc<Shared<T>>);

/// The writer's side.
pub struct Receiver<T>(Arc<Shared<T>>);

/// A new inbox whose unurgent operations wait up to `lazy`, and at most `round` of them.
pub fn inbox<T>(lazy: Duration, round: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ops: Vec::new(),
            urgent: false,
            since: None,
            sleep: Sleep::Awake,
            senders: 1,
            gone: false,
        }),
        wake: Condvar::new(),
        lazy,
        round,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `op`; `urgent` when somebody waits on it. Answers false if the writer has
    /// stopped (the op is dropped).
    pub fn send(&self, op: T, urgent: bool) -> bool {
        let mut s = self.0.lock();
        if s.gone {
            return false;
        }
        if s.ops.is_empty() {
            s.since = Some(Instant::now());
        }
        s.ops.push(op);
        s.urgent |= urgent;
        let wake = match s.sleep {
            Sleep::Awake => false,
            Sleep::Idle => true,
            Sleep::Timed => s.urgent || s.ops.len() >= self.0.round,
        };
        if wake {
            s.sleep = Sleep::Awake;
            drop(s);
            self.0.wake.notify_one();
        }
        true
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.senders -= 1;
        if s.senders == 0 {
            s.sleep = Sleep::Awake;
            drop(s);
            self.0.wake.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits until a round is due and takes it: everything sent, oldest first. `None`
    /// once every sender is gone and nothing is left.
    pub fn take(&self) -> Option<Vec<T>> {
        let mut s = self.0.lock();
        let mut idled = false;
        loop {
            let waited = s.since.map(|t| t.elapsed());
            let due = s.urgent
                || s.ops.len() >= self.0.round
                || waited.is_some_and(|w| w >= self.0.lazy)
                || (s.senders == 0 && !s.ops.is_empty());
            if due {
                s.urgent = false;
                s.since = None;
                return Some(std::mem::take(&mut s.ops));
            }
            if s.senders == 0 {
                return None;
            }
            s = match waited {
                Some(w) => self.sleep(s, Sleep::Timed, Some(self.0.lazy - w)),
                // Right after a round, more is likely soon: sleep a timer's length
                // before going idle, so that a lazy op then wakes nobody.
                None if !idled => {
                    idled = true;
                    self.sleep(s, Sleep::Timed, Some(self.0.lazy))
                }
                None => self.sleep(s, Sleep::Idle, None),
            };
        }
    }

    fn sleep<'a>(
        &self,
        mut s: MutexGuard<'a, State<T>>,
        how: Sleep,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State<T>> {
        s.sleep = how;
        let mut s = match timeout {
            Some(t) => {
                (self.0.wake.wait_timeout(s, t))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self.0.wake.wait(s).unwrap_or_else(|e| e.into_inner()),
        };
        s.sleep = Sleep::Awake;
        s
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Whatever is still queued is dropped with the writer, so whoever waits on it
        // hears that the store closed rather than wait for ever.
        let ops = {
            let mut s = self.0.lock();
            s.gone = true;
            std::mem::take(&mut s.ops)
        };
        drop(ops);
    }
}
