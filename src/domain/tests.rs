//! Properties of the rules: caps hold, acquire is idempotent, expiry frees exactly the
//! expired, and replaying the journal rebuilds the same state.

use proptest::prelude::*;

use super::*;

const OWNER: &str = "usr_owner";

fn member(id: &str, email: &str, roles: Vec<TenantRole>) -> Member {
    Member {
        id: MemberId::new(id),
        email: Email::parse(email).unwrap(),
        name: None,
        tenant_roles: roles,
        created_at: Timestamp(0),
    }
}

fn key(id: &str) -> ApiKey {
    ApiKey {
        id: KeyId::new(id),
        member: MemberId::new(OWNER),
        name: "k".into(),
        hash: "00".repeat(32),
        scopes: vec![Scope::Sessions],
        expires_at: None,
        created_at: Timestamp(0),
    }
}

/// An org with members m0..m3 and floating pools of `kre` with the given seats.
fn org(seats: &[u32]) -> (OrgState, Vec<Event>) {
    let owner = member(OWNER, "owner@x.io", vec![]);
    let founded =
        OrgState::found(OrgId::new("org_t"), "t", owner, key("key_t"), Timestamp(0)).unwrap();
    let mut state = founded.value;
    let mut journal = founded.events;
    let admin = MemberId::new(OWNER);
    for i in 0..4 {
        let m = member(&format!("usr_m{i}"), &format!("m{i}@x.io"), vec![]);
        journal.extend(state.add_member(&admin, m).unwrap().events);
    }
    for (i, s) in seats.iter().enumerate() {
        let spec = PoolSpec {
            product: "kre".into(),
            kind: PoolKind::Floating,
            seats: *s as i64,
            source: PoolSource::Purchased,
            expires_at: None,
            includes: vec![],
            entitled: None,
            ttl_seconds: Some(10),
            max_machines: None,
        };
        let id = PoolId::new(format!("pool_{i}"));
        journal.extend(
            state
                .create_pool(&admin, id, spec, Timestamp(0))
                .unwrap()
                .events,
        );
    }
    (state, journal)
}

#[derive(Debug, Clone)]
enum Op {
    Acquire { member: u8, fp: Option<u8> },
    Heartbeat { pick: usize },
    Release { pick: usize },
    Advance { ms: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, proptest::option::of(0u8..6)).prop_map(|(member, fp)| Op::Acquire { member, fp }),
        2 => any::<usize>().prop_map(|pick| Op::Heartbeat { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => (0u16..15_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn live_ids(state: &OrgState) -> Vec<SessionId> {
    state
        .sessions(&MemberId::new(OWNER), None, usize::MAX)
        .unwrap()
        .items
        .into_iter()
        .map(|l| l.id)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn caps_hold_acquire_is_idempotent_and_replay_rebuilds(
        seats in proptest::collection::vec(1u32..4, 1..3),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let (mut state, mut journal) = org(&seats);
        let mut now = Timestamp(1_000);
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Acquire { member, fp } => {
                    let req = AcquireRequest {
                        member: MemberId::new(format!("usr_m{member}")),
                        product: "kre".into(),
                        fingerprint: fp.map(|f| format!("fp{f}")),
                        ttl_seconds: None,
                        meta: None,
                    };
                    let held = fp.and_then(|f| {
                        live_ids(&state).into_iter().find(|id| {
                            let l = state.lease(id.as_str()).unwrap();
                            l.member == req.member && l.fingerprint.as_deref() == Some(&format!("fp{f}")) && l.expires_at > now
                        })
                    });
                    next_id += 1;
                    match state.acquire(&req, SessionId::new(format!("ses_{next_id:08}")), now) {
                        Ok(a) => {
                            // Idempotent: a machine with a live lease gets that lease back.
                            prop_assert_eq!(a.value.fresh, held.is_none());
                            if let Some(h) = held {
                                prop_assert_eq!(&a.value.lease.id, &h);
                            }
                            journal.extend(a.events);
                        }
                        Err(DomainError::SeatCapReached { retry_after, .. }) => {
                            prop_assert!(held.is_none());
                            prop_assert!(retry_after >= 1);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Heartbeat { pick } | Op::Release { pick } if state.sessions_live() > 0 => {
                    let ids = live_ids(&state);
                    let id = ids[pick % ids.len()].clone();
                    let lease = state.lease(id.as_str()).unwrap().clone();
                    let result = if matches!(op, Op::Heartbeat { .. }) {
                        state.heartbeat(&lease.member, id.as_str(), now).map(|a| a.events)
                    } else {
                        state.release(&lease.member, id.as_str(), now).map(|a| a.events)
                    };
                    match result {
                        Ok(events) => journal.extend(events),
                        // Past its expiry but not yet reaped: ended for its holder.
                        Err(DomainError::SessionNotFound) => prop_assert!(lease.expires_at <= now),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Heartbeat { .. } | Op::Release { .. } => {}
                Op::Advance { ms } => {
                    now = Timestamp(now.millis() + ms as i64);
                    let before = live_ids(&state);
                    let expired: Vec<_> = before
                        .iter()
                        .filter(|id| state.lease(id.as_str()).unwrap().expires_at <= now)
                        .cloned()
                        .collect();
                    let applied = state.expire(now);
                    // Expiry frees exactly the expired leases.
                    prop_assert_eq!(applied.value, expired.len());
                    let after = live_ids(&state);
                    prop_assert_eq!(after.len(), before.len() - expired.len());
                    prop_assert!(after.iter().all(|id| !expired.contains(id)));
                    journal.extend(applied.events);
                }
            }
            // live ≤ seats on every pool, after every step.
            let page = state.pools(&MemberId::new(OWNER), None, usize::MAX).unwrap();
            for p in page.items {
                prop_assert!(p.live <= p.pool.seats, "{} live on {} seats", p.live, p.pool.seats);
            }
        }
        // The journal alone rebuilds the same state, and so does a snapshot.
        let mut replayed = OrgState::empty(OrgId::new("org_t"));
        for e in &journal {
            replayed.apply(e);
        }
        let image = |s: &OrgState| serde_json::to_value(s.snapshot()).unwrap();
        prop_assert_eq!(image(&replayed), image(&state));
        prop_assert_eq!(image(&OrgState::restore(state.snapshot())), image(&state));
    }
}

#[test]
fn waiters_are_served_in_order_and_time_out() {
    let (mut state, _) = org(&[1]);
    let now = Timestamp(1_000);
    let req = |m: u8| AcquireRequest {
        member: MemberId::new(format!("usr_m{m}")),
        product: "kre".into(),
        fingerprint: None,
        ttl_seconds: None,
        meta: None,
    };
    let held = state
        .acquire(&req(0), SessionId::new("ses_a"), now)
        .unwrap()
        .value
        .lease;
    state.enqueue(1, req(1), Timestamp(5_000));
    state.enqueue(2, req(2), Timestamp(9_000));
    // A newcomer does not overtake the queue.
    assert!(matches!(
        state.acquire(&req(3), SessionId::new("ses_x"), now),
        Err(DomainError::SeatCapReached { .. })
    ));
    state.release(&held.member, "ses_a", now).unwrap();
    let mut n = 0;
    let served = state.serve_waiters(
        now,
        |_| true,
        || {
            n += 1;
            SessionId::new(format!("ses_w{n}"))
        },
    );
    assert_eq!(served.value.len(), 1);
    assert_eq!(served.value[0].0, 1, "the first waiter is served first");
    assert_eq!(state.next_deadline(), Some(Timestamp(9_000)));
    let timed_out = state.time_out_waiters(Timestamp(9_000));
    assert_eq!(timed_out.len(), 1);
    assert!(matches!(
        timed_out[0],
        (2, DomainError::SeatCapReached { .. })
    ));
    assert!(!state.has_waiters());
}
