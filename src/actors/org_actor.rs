//! The actor that owns one organization's [`OrgState`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::directory::KeyIndex;
use super::{clock, ActorError, GoneProbe};
use crate::domain::ids::mint;
use crate::domain::{
    AccessView, AcquireRequest, Acquired, Actor as By, Applied, DomainError, Event, OrgState,
    PoolId, SessionId, Snapshot, Timestamp, Turn, WaitLimits, Waiter,
};
use crate::store::{Ack, Change, Durability, Store};
use crate::telemetry::{self, figures, metric};

/// Leases ended by one expiry command: after a restart that finds many expired, the
/// journal write behind each command (and every org's acknowledgements queued behind
/// that write) stays small.
const EXPIRE_CHUNK: usize = 1024;

/// What an organization actor is configured with.
#[derive(Debug, Clone, Copy)]
pub struct ActorSettings {
    /// Journal events after which the org is snapshotted (at least twice its size).
    pub snapshot_every: u64,
    /// How many acquires may wait, per key and per organization.
    pub wait_limits: WaitLimits,
}

/// A queued acquire's caller: where its answer goes, and how to tell it has left.
struct Pending {
    reply: oneshot::Sender<Result<Acquired, ActorError>>,
    gone: Option<GoneProbe>,
}

impl Pending {
    fn gone(&self) -> bool {
        self.reply.is_closed() || self.gone.as_ref().is_some_and(|gone| gone())
    }
}

/// One organization: its state, its journal position, its expiry timer and waiters.
pub(super) struct OrgActor {
    state: OrgState,
    store: Store,
    keys: Arc<KeyIndex>,
    /// Sequence number of the last journaled event.
    seq: u64,
    /// Events journaled since the last snapshot.
    journal_len: u64,
    settings: ActorSettings,
    /// The pending timer and the deadline it was set for.
    timer: Option<(Timestamp, SpawnHandle)>,
    waiters: HashMap<u64, Pending>,
    next_waiter: u64,
    /// Whether a change since waiters were last served may have made a seat usable.
    seats_freed: bool,
    /// Where the org's access view is published for readers on other threads.
    view: AccessSlot,
    /// The view last handed to `view` (published once its change is durable), compared
    /// by pointer so a change that left it alone costs no lock and no relay.
    published: Arc<AccessView>,
    /// Pools whose gauges this actor sets, and whether each has series of its own.
    pool_series: HashMap<PoolId, bool>,
}

/// The latest durable access view of an org, with the journal position it reflects;
/// replaced by the org's actor after each change to it is durable.
#[derive(Clone)]
pub struct AccessSlot(Arc<RwLock<(u64, Arc<AccessView>)>>);

impl AccessSlot {
    /// A slot holding `view`, as of journal position `seq`.
    pub fn new(seq: u64, view: Arc<AccessView>) -> AccessSlot {
        AccessSlot(Arc::new(RwLock::new((seq, view))))
    }

    /// The view published last.
    pub fn read(&self) -> Arc<AccessView> {
        self.0.read().expect("access view lock").1.clone()
    }

    /// Replaces the view unless a later one is there already: the flushes behind two
    /// changes may be acknowledged to their tasks in either order.
    fn publish(&self, seq: u64, view: Arc<AccessView>) {
        let mut slot = self.0.write().expect("access view lock");
        if seq > slot.0 {
            *slot = (seq, view);
        }
    }
}

impl OrgActor {
    pub(super) fn new(
        state: OrgState,
        store: Store,
        keys: Arc<KeyIndex>,
        seq: u64,
        journal_len: u64,
        settings: ActorSettings,
        view: AccessSlot,
    ) -> OrgActor {
        let published = state.access().clone();
        OrgActor {
            state,
            store,
            keys,
            seq,
            journal_len,
            settings,
            timer: None,
            waiters: HashMap::new(),
            next_waiter: 0,
            seats_freed: false,
            published,
            view,
            pool_series: HashMap::new(),
        }
    }

    /// Applies a decided command's events and journals them together, as one change by
    /// `by` at `now`; the [`Ack`] resolves once they are as durable as `durability` asks.
    fn commit<T>(
        &mut self,
        by: &By,
        now: Timestamp,
        applied: Applied<T>,
        durability: Durability,
    ) -> (T, Ack) {
        let (value, events, audit) = self.state.apply_audited(applied);
        if events.is_empty() {
            return (value, Ack::done());
        }
        super::log_changes(self.state.id(), by, &audit);
        let change = Change {
            org: self.state.id(),
            first_seq: self.seq + 1,
            at: now,
            actor: by,
            events: &events,
            audit: &audit,
        };
        let mut ack = self.store.append(change, durability);
        self.seq += events.len() as u64;
        if !Arc::ptr_eq(&self.published, self.state.access()) {
            // A journaled change is answered before its flush: were it to change who
            // may do what, the query would read what a crash can take back.
            debug_assert_eq!(durability, Durability::Flushed, "{events:?}");
            self.published = self.state.access().clone();
            ack = self.publish_when_durable(ack);
        }
        self.journal_len += events.len() as u64;
        // Compact once the journal outgrows twice the state: each snapshot's cost is paid
        // for by the events it replaces, and replay at start stays short.
        let threshold = self
            .settings
            .snapshot_every
            .max(2 * self.state.size() as u64);
        if self.journal_len >= threshold {
            self.store.snapshot(self.state.snapshot(), self.seq);
            self.journal_len = 0;
        }
        self.seats_freed |= events.iter().any(|e| {
            matches!(
                e,
                Event::LeaseEnded { .. }
                    | Event::PoolCreated(_)
                    | Event::PoolChanged(_)
                    | Event::Allocated { .. }
            )
        });
        self.observe(&events);
        (value, ack)
    }

    /// Publishes the current access view once the change behind `ack` is durable, and
    /// only then acknowledges it: the authorization query never reads a change a crash
    /// could take back, and always reads one that was answered.
    fn publish_when_durable(&self, ack: Ack) -> Ack {
        let (slot, seq, view) = (self.view.clone(), self.seq, self.published.clone());
        let (relay, relayed) = Ack::pending();
        actix::spawn(async move {
            let durable = ack.durable().await;
            if durable.is_ok() {
                slot.publish(seq, view);
            }
            let _ = relay.send(durable);
        });
        relayed
    }

    /// Side effects of events outside the state: the key index, waiters of revoked
    /// keys, and metrics.
    fn observe(&mut self, events: &[Event]) {
        for e in events {
            match e {
                Event::KeyCreated(k) => self.keys.insert(self.state.id(), k),
                Event::KeyRevoked { id } => {
                    self.keys.remove(id);
                    for w in self.state.waiters_of_key(id) {
                        self.answer(w, Err(DomainError::KeyRevoked.into()));
                    }
                }
                Event::LeaseGranted(_) => {
                    figures().leases.fetch_add(1, Ordering::Relaxed);
                }
                Event::LeaseEnded { reason, .. } => {
                    metrics::counter!(metric::SESSIONS_ENDED, "reason" => reason.as_str())
                        .increment(1);
                    figures().leases.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    /// Takes a waiter out of the queue and answers it.
    fn answer(&mut self, waiter: u64, answer: Result<Acquired, ActorError>) {
        self.state.dequeue(waiter);
        if let Some(p) = self.waiters.remove(&waiter) {
            let _ = p.reply.send(answer);
        }
    }

    /// Hands free seats to waiters, first come first served on every pool each could
    /// use; each hears back once its lease is durable. A waiter whose caller has left is
    /// dropped without a seat.
    fn serve_waiters(&mut self, now: Timestamp) {
        loop {
            let pending = &self.waiters;
            let turn = self.state.next_turn(
                now,
                |w| pending.get(&w).is_none_or(Pending::gone),
                || new_session_id(now),
            );
            match turn {
                None => return,
                Some(Turn::Gone(w)) => {
                    self.state.dequeue(w);
                    self.waiters.remove(&w);
                }
                Some(Turn::Answer(w, Err(e))) => self.answer(w, Err(e.into())),
                Some(Turn::Answer(w, Ok(applied))) => {
                    let Some(waiter) = self.state.dequeue(w) else {
                        continue;
                    };
                    let by = member_of(&waiter.request);
                    let (acquired, ack) = self.commit(&by, now, applied, Durability::Flushed);
                    if let Some(p) = self.waiters.remove(&w) {
                        actix::spawn(async move {
                            let answer = ack.durable().await.map(|()| acquired);
                            let _ = p.reply.send(answer.map_err(ActorError::from));
                        });
                    }
                }
            }
        }
    }

    /// Drops waiters whose callers have left, so they stop counting toward the limits.
    fn drop_gone_waiters(&mut self) {
        let gone: Vec<u64> = (self.waiters.iter())
            .filter(|(_, p)| p.gone())
            .map(|(w, _)| *w)
            .collect();
        for w in gone {
            self.state.dequeue(w);
            self.waiters.remove(&w);
        }
    }

    /// What time alone changes: leases past their expiry end, waiters past their
    /// patience are told the pool is still full, and freed seats go to the next waiters.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        let now = clock::now();
        let expired = self.state.expire(now, EXPIRE_CHUNK);
        // Nobody waits for expiry: a restart that lost it gives the lease one more ttl
        // at most, as it does a lost release.
        self.commit(&By::System, now, expired, Durability::Journaled);
        // Redone after a restart that lost it: the deadline is the pool's expiry, which
        // stays passed.
        // Written at once (nobody waits): the audit log shows a release as soon as
        // the pool does.
        let lapsed = self.state.lapse_pools(now);
        self.commit(&By::System, now, lapsed, Durability::Flushed);
        for (w, err) in self.state.timed_out(now) {
            if let Some(waiter) = self.state.waiter(w) {
                let r = &waiter.request;
                let (by, denial) = (member_of(r), self.state.denial(&r.member, &r.product, now));
                self.commit(&by, now, denial, Durability::Journaled);
            }
            self.answer(w, Err(err.into()));
        }
        self.settle(ctx, now);
    }

    /// Sets each pool's gauges (labels org, pool, product), for the pools admitted
    /// under the process's series limit; a deleted pool gives its place back and its
    /// series, no longer set, leaves `/metrics` once idle.
    fn refresh_gauges(&mut self) {
        let org = self.state.id().as_str();
        let mut present = HashSet::new();
        for f in self.state.pool_figures() {
            present.insert(f.id);
            let labelled = (self.pool_series)
                .entry(f.id.clone())
                .or_insert_with(|| figures().admit_pool());
            if !*labelled {
                *labelled = figures().readmit_pool();
                if !*labelled {
                    continue;
                }
            }
            let labels = [
                ("org", org.to_owned()),
                ("pool", f.id.as_str().to_owned()),
                ("product", f.product.to_owned()),
            ];
            metrics::gauge!(metric::POOL_LIVE, &labels).set(f64::from(f.live));
            metrics::gauge!(metric::POOL_SEATS, &labels).set(f64::from(f.seats));
            metrics::gauge!(metric::POOL_ALLOCATED, &labels).set(f64::from(f.allocated));
        }
        self.pool_series.retain(|id, labelled| {
            let keep = present.contains(id);
            if !keep {
                figures().release_pool(*labelled);
            }
            keep
        });
    }

    /// Makes sure a timer fires at the next deadline (at once while expired leases
    /// remain); nothing ever scans all leases.
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

    /// After any change: waiters may now fit (only where a seat freed or a pool
    /// changed; nothing else makes a waiter fit), and deadlines may have moved.
    fn settle(&mut self, ctx: &mut Context<Self>, now: Timestamp) {
        if std::mem::take(&mut self.seats_freed) {
            self.serve_waiters(now);
        }
        self.arm(ctx);
    }
}

fn new_session_id(now: Timestamp) -> SessionId {
    SessionId::new(mint(SessionId::PREFIX, now, rand::random()))
}

fn member_of(request: &AcquireRequest) -> By {
    By::Member {
        id: request.member.clone(),
        key: Some(request.key.clone()),
    }
}

impl Actor for OrgActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Mailbox capacity only bounds senders' backpressure; a deep one keeps bursts of
        // many connections from parking on a full mailbox.
        ctx.set_mailbox_capacity(4096);
        figures()
            .leases
            .fetch_add(self.state.sessions_live() as i64, Ordering::Relaxed);
        figures().orgs.fetch_add(1, Ordering::Relaxed);
        self.refresh_gauges();
        ctx.run_interval(telemetry::REFRESH, |actor, _| actor.refresh_gauges());
        self.arm(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        figures()
            .leases
            .fetch_sub(self.state.sessions_live() as i64, Ordering::Relaxed);
        figures().orgs.fetch_sub(1, Ordering::Relaxed);
        for (_, labelled) in self.pool_series.drain() {
            figures().release_pool(labelled);
        }
    }
}

/// The body of a [`Command`]: the domain decision to make, given the current time.
type DecideFn<R> = Box<dyn FnOnce(&OrgState, Timestamp) -> Result<Applied<R>, DomainError> + Send>;

/// The body of a [`Query`].
type ReadFn<R> = Box<dyn FnOnce(&OrgState, Timestamp) -> Result<R, DomainError> + Send>;

/// A change by `by`: decided against the state, its events applied and journaled
/// together, and the caller hears back once they are as durable as `durability` asks.
pub(super) struct Command<R> {
    /// The request's span: what the change logs is logged in it.
    pub(super) span: tracing::Span,
    pub(super) by: By,
    pub(super) durability: Durability,
    pub(super) decide: DecideFn<R>,
}

impl<R: 'static> Message for Command<R> {
    type Result = Result<(R, Ack), ActorError>;
}

impl<R: Send + 'static> Handler<Command<R>> for OrgActor {
    /// The answer and its pending acknowledgement: the caller awaits durability on its
    /// own thread, so the writer wakes it directly and the actor moves on at once (a
    /// change to the access view is relayed through this actor's thread, which
    /// publishes the view first).
    type Result = Result<(R, Ack), ActorError>;

    fn handle(&mut self, msg: Command<R>, ctx: &mut Self::Context) -> Self::Result {
        let _in_request = msg.span.enter();
        let now = clock::now();
        let applied = (msg.decide)(&self.state, now)?;
        let answer = self.commit(&msg.by, now, applied, msg.durability);
        self.settle(ctx, now);
        Ok(answer)
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
        (msg.0)(&self.state, clock::now()).map_err(ActorError::from)
    }
}

/// The state as of now and the journal position it stands for (a backup's): an O(1)
/// clone of the persistent maps, encoded elsewhere.
pub(super) struct TakeSnapshot;

impl Message for TakeSnapshot {
    type Result = (Box<Snapshot>, u64);
}

impl Handler<TakeSnapshot> for OrgActor {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult((Box::new(self.state.snapshot()), self.seq))
    }
}

/// The organization is being deleted: answer its waiters, drop its keys from the
/// index, and stop taking messages.
pub(super) struct Close;

impl Message for Close {
    type Result = ();
}

impl Handler<Close> for OrgActor {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        for key in self.state.keys() {
            self.keys.remove(&key.id);
        }
        let gone = DomainError::NotFound {
            what: "organization",
        };
        let waiters: Vec<u64> = self.waiters.keys().copied().collect();
        for w in waiters {
            self.answer(w, Err(gone.clone().into()));
        }
        ctx.stop();
    }
}

/// A runtime asks for a seat, waiting up to `wait` for one to free.
pub(super) struct Acquire {
    pub(super) request: AcquireRequest,
    pub(super) wait: Duration,
    pub(super) gone: Option<GoneProbe>,
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
        // Waiters were served after every change that freed a seat, so a seat free now
        // is one no waiter could use: the domain lets a newcomer take only those.
        let decided = self.state.acquire(&msg.request, new_session_id(now), now);
        match decided {
            Ok(applied) => {
                let by = member_of(&msg.request);
                let (acquired, ack) = self.commit(&by, now, applied, Durability::Flushed);
                self.settle(ctx, now);
                Ok(AcquireReply::Granted(acquired, ack))
            }
            Err(DomainError::SeatCapReached { .. }) if !msg.wait.is_zero() => {
                let id = self.next_waiter;
                self.next_waiter += 1;
                let waiter = Waiter {
                    id,
                    request: msg.request,
                    deadline: Timestamp(now.millis() + msg.wait.as_millis() as i64),
                };
                let limits = self.settings.wait_limits;
                let queued = self.state.enqueue(waiter.clone(), limits, now);
                if queued.is_err() {
                    // Callers that left still hold places until their deadline; make
                    // room from them before refusing.
                    self.drop_gone_waiters();
                    self.state.enqueue(waiter, limits, now)?;
                }
                let (reply, rx) = oneshot::channel();
                self.waiters.insert(
                    id,
                    Pending {
                        reply,
                        gone: msg.gone,
                    },
                );
                self.arm(ctx);
                Ok(AcquireReply::Queued(rx))
            }
            Err(e) => {
                if matches!(e, DomainError::SeatCapReached { .. }) {
                    let r = &msg.request;
                    let denial = self.state.denial(&r.member, &r.product, now);
                    self.commit(&member_of(r), now, denial, Durability::Journaled);
                }
                Err(e.into())
            }
        }
    }
}
