//! The actor that owns one organization's [`OrgState`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::directory::KeyIndex;
use super::{clock, ActorError};
use crate::domain::event::EndReason;
use crate::domain::ids::mint;
use crate::domain::{
    AcquireRequest, Acquired, Applied, DomainError, Event, OrgState, SessionId, Timestamp,
};
use crate::store::{Ack, Store};
use crate::telemetry::metric;

/// Answers a waiting acquire.
type WaiterReply = oneshot::Sender<Result<Acquired, ActorError>>;

/// One organization: its state, its journal position, its expiry timer and waiters.
pub(super) struct OrgActor {
    state: OrgState,
    store: Store,
    keys: Arc<KeyIndex>,
    /// Sequence number of the last journaled event.
    seq: u64,
    /// Events journaled since the last snapshot.
    journal_len: u64,
    snapshot_every: u64,
    /// The pending timer and the deadline it was set for.
    timer: Option<(Timestamp, SpawnHandle)>,
    waiters: HashMap<u64, WaiterReply>,
    next_waiter: u64,
}

impl OrgActor {
    pub(super) fn new(
        state: OrgState,
        store: Store,
        keys: Arc<KeyIndex>,
        seq: u64,
        journal_len: u64,
        snapshot_every: u64,
    ) -> OrgActor {
        OrgActor {
            state,
            store,
            keys,
            seq,
            journal_len,
            snapshot_every,
            timer: None,
            waiters: HashMap::new(),
            next_waiter: 0,
        }
    }

    /// Journals events already applied to the state and returns their acknowledgement.
    fn journal(&mut self, events: &[Event]) -> Ack {
        if events.is_empty() {
            return Ack::done();
        }
        self.observe(events);
        let ack = self.store.append(self.state.id(), self.seq + 1, events);
        self.seq += events.len() as u64;
        self.journal_len += events.len() as u64;
        // Compact once the journal outgrows twice the state: each snapshot's cost is paid
        // for by the events it replaces, and replay at start stays short.
        if self.journal_len >= self.snapshot_every.max(2 * self.state.size() as u64) {
            let from = self.seq + 1 - self.journal_len;
            self.store.snapshot(self.state.snapshot(), self.seq, from);
            self.journal_len = 0;
        }
        ack
    }

    /// Side effects of events outside the state: the key index and metrics.
    fn observe(&self, events: &[Event]) {
        for e in events {
            match e {
                Event::KeyCreated(k) => self.keys.insert(self.state.id(), k),
                Event::KeyRevoked { id } => self.keys.remove(id),
                Event::LeaseGranted(_) => {
                    metrics::counter!(metric::SESSIONS_GRANTED).increment(1);
                    metrics::gauge!(metric::SESSIONS_LIVE).increment(1.0);
                }
                Event::LeaseEnded { reason, .. } => {
                    let reason = match reason {
                        EndReason::Released => "released",
                        EndReason::Expired => "expired",
                        EndReason::Ended => "ended",
                    };
                    metrics::counter!(metric::SESSIONS_ENDED, "reason" => reason).increment(1);
                    metrics::gauge!(metric::SESSIONS_LIVE).decrement(1.0);
                }
                _ => {}
            }
        }
    }

    /// Hands freed seats to waiters, oldest first; each hears back once its lease is durable.
    fn serve_waiters(&mut self, now: Timestamp) {
        if !self.state.has_waiters() {
            return;
        }
        let waiters = &self.waiters;
        let served = self.state.serve_waiters(
            now,
            |w| waiters.get(&w).is_some_and(|tx| !tx.is_closed()),
            || new_session_id(now),
        );
        let ack = self.journal(&served.events);
        let replies: Vec<_> = served
            .value
            .into_iter()
            .filter_map(|(w, result)| self.waiters.remove(&w).map(|tx| (tx, result)))
            .collect();
        if replies.is_empty() {
            return;
        }
        actix::spawn(async move {
            let durable = ack.durable().await.map_err(ActorError::from);
            for (tx, result) in replies {
                let answer = match (&durable, result) {
                    (Err(e), _) => Err(e.clone()),
                    (Ok(()), r) => r.map_err(ActorError::from),
                };
                let _ = tx.send(answer);
            }
        });
    }

    /// What time alone changes: leases past their expiry end, waiters past their
    /// patience are told the pool is still full, and freed seats go to the next waiters.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        let now = clock::now();
        let expired = self.state.expire(now);
        // Expiry needs no acknowledgement: a restart that lost it finds the lease past
        // its expiry and ends it again.
        drop(self.journal(&expired.events));
        for (w, err) in self.state.time_out_waiters(now) {
            metrics::counter!(metric::SESSIONS_DENIED).increment(1);
            if let Some(tx) = self.waiters.remove(&w) {
                let _ = tx.send(Err(err.into()));
            }
        }
        self.serve_waiters(now);
        self.arm(ctx);
    }

    /// Makes sure a timer fires at the next deadline; nothing ever scans all leases.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.state.next_deadline() else {
            return;
        };
        if let Some((at, handle)) = self.timer {
            if at <= next {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = (next.millis() - clock::now().millis()).max(0) as u64;
        let handle = ctx.run_later(Duration::from_millis(wait), |actor, ctx| actor.tick(ctx));
        self.timer = Some((next, handle));
    }

    /// After any change: waiters may now fit, and deadlines may have moved.
    fn settle(&mut self, ctx: &mut Context<Self>, now: Timestamp) {
        self.serve_waiters(now);
        self.arm(ctx);
    }
}

fn new_session_id(now: Timestamp) -> SessionId {
    SessionId::new(mint(SessionId::PREFIX, now, rand::random()))
}

impl Actor for OrgActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Mailbox capacity only bounds senders' backpressure; a deep one keeps bursts of
        // many connections from parking on a full mailbox.
        ctx.set_mailbox_capacity(4096);
        metrics::gauge!(metric::SESSIONS_LIVE).increment(self.state.sessions_live() as f64);
        self.arm(ctx);
    }
}

/// The body of a [`Command`]: the domain call to make, given the current time.
type ChangeFn<R> =
    Box<dyn FnOnce(&mut OrgState, Timestamp) -> Result<Applied<R>, DomainError> + Send>;

/// The body of a [`Query`].
type ReadFn<R> = Box<dyn FnOnce(&OrgState) -> Result<R, DomainError> + Send>;

/// A change: runs against the state, its events are journaled, and the caller hears
/// back once they are durable.
pub(super) struct Command<R>(pub(super) ChangeFn<R>);

impl<R: 'static> Message for Command<R> {
    type Result = Result<(R, Ack), ActorError>;
}

impl<R: Send + 'static> Handler<Command<R>> for OrgActor {
    /// The answer and its pending acknowledgement: the caller awaits durability on its
    /// own thread, so the writer wakes it directly and the actor moves on at once.
    type Result = Result<(R, Ack), ActorError>;

    fn handle(&mut self, msg: Command<R>, ctx: &mut Self::Context) -> Self::Result {
        let now = clock::now();
        let applied = (msg.0)(&mut self.state, now)?;
        let ack = self.journal(&applied.events);
        self.settle(ctx, now);
        Ok((applied.value, ack))
    }
}

/// A read of the state; answers at once.
pub(super) struct Query<R>(pub(super) ReadFn<R>);

impl<R: 'static> Message for Query<R> {
    type Result = Result<R, ActorError>;
}

impl<R: Send + 'static> Handler<Query<R>> for OrgActor {
    type Result = Result<R, ActorError>;

    fn handle(&mut self, msg: Query<R>, _ctx: &mut Self::Context) -> Self::Result {
        (msg.0)(&self.state).map_err(ActorError::from)
    }
}

/// A runtime asks for a seat, waiting up to `wait` for one to free.
pub(super) struct Acquire {
    pub(super) request: AcquireRequest,
    pub(super) wait: Duration,
}

/// How an acquire is answered: granted now (once durable), or queued for a seat.
pub(super) enum AcquireReply {
    Granted(Acquired, Ack),
    Queued(oneshot::Receiver<Result<Acquired, ActorError>>),
}

impl Message for Acquire {
    type Result = Result<AcquireReply, ActorError>;
}

impl Handler<Acquire> for OrgActor {
    type Result = Result<AcquireReply, ActorError>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Self::Context) -> Self::Result {
        let now = clock::now();
        match self.state.acquire(&msg.request, new_session_id(now), now) {
            Ok(applied) => {
                let ack = self.journal(&applied.events);
                self.arm(ctx);
                Ok(AcquireReply::Granted(applied.value, ack))
            }
            Err(DomainError::SeatCapReached { .. }) if !msg.wait.is_zero() => {
                let id = self.next_waiter;
                self.next_waiter += 1;
                let (tx, rx) = oneshot::channel();
                self.waiters.insert(id, tx);
                let deadline = Timestamp(now.millis() + msg.wait.as_millis() as i64);
                self.state.enqueue(id, msg.request, deadline);
                self.arm(ctx);
                Ok(AcquireReply::Queued(rx))
            }
            Err(e) => {
                if matches!(e, DomainError::SeatCapReached { .. }) {
                    metrics::counter!(metric::SESSIONS_DENIED).increment(1);
                }
                Err(e.into())
            }
        }
    }
}
