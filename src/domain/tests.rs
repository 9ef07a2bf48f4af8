//! Properties of the rules: caps hold, acquire is idempotent, expiry frees exactly the
//! expired, a refused command changes nothing, and replaying the journal rebuilds the
//! same state. Then the hardening cases, one test per defect they fixed.

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

fn key_of(id: &str, member: &str, scopes: Vec<Scope>) -> ApiKey {
    ApiKey {
        id: KeyId::new(id),
        member: MemberId::new(member),
        name: "k".into(),
        hash: "00".repeat(32),
        scopes,
        expires_at: None,
        created_at: Timestamp(0),
    }
}

/// Decides a command and, if it is allowed, applies its events to `state` and `journal`.
fn run<T>(
    state: &mut OrgState,
    journal: &mut Vec<Event>,
    decided: impl FnOnce(&OrgState) -> Result<Applied<T>, DomainError>,
) -> Result<T, DomainError> {
    let applied = decided(state)?;
    let (value, events) = state.apply_all(applied);
    journal.extend(events);
    Ok(value)
}

fn floating(product: &str, seats: i64, ttl: i64) -> PoolSpec {
    PoolSpec {
        product: product.into(),
        kind: PoolKind::Floating,
        seats,
        source: PoolSource::Purchased,
        expires_at: None,
        includes: vec![],
        entitled: None,
        ttl_seconds: Some(ttl),
        max_machines: None,
    }
}

/// An org with members m0..m3 (each with key `key_m{i}`) and floating pools of `kre`
/// with the given seats.
fn org(seats: &[u32]) -> (OrgState, Vec<Event>) {
    let owner = member(OWNER, "owner@x.io", vec![]);
    let key = key_of("key_owner", OWNER, vec![Scope::Admin, Scope::Sessions]);
    let mut journal = OrgState::found(OrgId::new("org_t"), "t", owner, key, Timestamp(0)).unwrap();
    let mut state = OrgState::empty(OrgId::new("org_t"));
    for e in &journal {
        state.apply(e);
    }
    let admin = MemberId::new(OWNER);
    for i in 0..4 {
        let m = member(&format!("usr_m{i}"), &format!("m{i}@x.io"), vec![]);
        run(&mut state, &mut journal, |s| s.add_member(&admin, m)).unwrap();
        let k = key_of(
            &format!("key_m{i}"),
            &format!("usr_m{i}"),
            vec![Scope::Sessions],
        );
        run(&mut state, &mut journal, |s| {
            s.create_key(&admin, k, Timestamp(0))
        })
        .unwrap();
    }
    for (i, s) in seats.iter().enumerate() {
        let id = PoolId::new(format!("pool_{i}"));
        let spec = floating("kre", *s as i64, 10);
        run(&mut state, &mut journal, |st| {
            st.create_pool(&admin, id, spec, Timestamp(0))
        })
        .unwrap();
    }
    (state, journal)
}

fn request(m: u8, fp: Option<&str>) -> AcquireRequest {
    AcquireRequest {
        member: MemberId::new(format!("usr_m{m}")),
        key: KeyId::new(format!("key_m{m}")),
        product: "kre".into(),
        fingerprint: fp.map(str::to_owned),
        ttl_seconds: None,
        meta: None,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire { member: u8, fp: Option<u8> },
    Heartbeat { pick: usize, by: Option<u8> },
    Release { pick: usize, by: Option<u8> },
    Resize { pool: usize, seats: i64 },
    DeletePool { pool: usize },
    AddMember { n: u8 },
    Revoke { member: u8 },
    Advance { ms: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..5, proptest::option::of(0u8..6)).prop_map(|(member, fp)| Op::Acquire { member, fp }),
        2 => (any::<usize>(), proptest::option::of(0u8..4)).prop_map(|(pick, by)| Op::Heartbeat { pick, by }),
        2 => (any::<usize>(), proptest::option::of(0u8..4)).prop_map(|(pick, by)| Op::Release { pick, by }),
        1 => (0usize..3, -1i64..5).prop_map(|(pool, seats)| Op::Resize { pool, seats }),
        1 => (0usize..3).prop_map(|pool| Op::DeletePool { pool }),
        1 => (0u8..6).prop_map(|n| Op::AddMember { n }),
        1 => (0u8..5).prop_map(|member| Op::Revoke { member }),
        2 => (0u16..15_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn live_ids(state: &OrgState) -> Vec<SessionId> {
    state
        .sessions(&MemberId::new(OWNER), &Default::default(), None, usize::MAX)
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.lease.id)
        .collect()
}

fn image(s: &OrgState) -> serde_json::Value {
    serde_json::to_value(s.snapshot()).unwrap()
}

/// What the indexes answer: live per pool (deadline sets), the next deadline, and each
/// machine's live lease (holder index). A state rebuilt from its image must agree.
fn views(s: &OrgState, now: Timestamp) -> (Vec<(String, u32)>, Option<Timestamp>, Vec<bool>) {
    let owner = MemberId::new(OWNER);
    let pools = s.pools(&owner, None, None, usize::MAX, now).unwrap().items;
    let live = pools
        .iter()
        .map(|p| (p.pool.id.to_string(), p.live))
        .collect();
    let held = s
        .snapshot()
        .leases
        .iter()
        .filter(|l| l.fingerprint.is_some() && l.expires_at > now)
        .map(|l| {
            let req = AcquireRequest {
                member: l.member.clone(),
                key: l.key.clone(),
                product: l.product.to_string(),
                fingerprint: l.fingerprint.as_deref().map(str::to_owned),
                ttl_seconds: None,
                meta: None,
            };
            // A machine with a live lease renews it rather than taking a second seat.
            s.acquire(&req, SessionId::new("ses_probe"), now)
                .is_ok_and(|a| !a.value.fresh && a.value.lease.id == l.id)
        })
        .collect();
    (live, s.next_deadline(), held)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn caps_hold_refusals_change_nothing_and_replay_rebuilds(
        seats in proptest::collection::vec(1u32..4, 1..3),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let (mut state, mut journal) = org(&seats);
        let owner = MemberId::new(OWNER);
        let mut now = Timestamp(1_000);
        let mut next_id = 0u64;
        for op in ops {
            let before = image(&state);
            let result: Result<(), DomainError> = match op.clone() {
                Op::Acquire { member, fp } => {
                    let fp = fp.map(|f| format!("fp{f}"));
                    let req = request(member, fp.as_deref());
                    let held = fp.as_ref().and_then(|f| {
                        live_ids(&state).into_iter().find(|id| {
                            let l = state.lease(id.as_str()).unwrap();
                            l.member == req.member && l.fingerprint.as_deref() == Some(f.as_str()) && l.expires_at > now
                        })
                    });
                    next_id += 1;
                    let id = SessionId::new(format!("ses_{next_id:08}"));
                    let r = run(&mut state, &mut journal, |s| s.acquire(&req, id, now));
                    match &r {
                        Ok(a) => {
                            // Idempotent: a machine with a live lease gets that lease back.
                            prop_assert_eq!(a.fresh, held.is_none());
                            if let Some(h) = &held {
                                prop_assert_eq!(&a.lease.id, h);
                            }
                        }
                        Err(DomainError::SeatCapReached { retry_after, .. }) => {
                            prop_assert!(held.is_none());
                            prop_assert!(*retry_after >= 1);
                        }
                        Err(DomainError::NotEntitled { .. } | DomainError::KeyRevoked) => {}
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                    r.map(drop)
                }
                Op::Heartbeat { pick, by } | Op::Release { pick, by } => {
                    let ids = live_ids(&state);
                    let id = ids.get(pick % ids.len().max(1)).map_or("ses_none".into(), |i| i.to_string());
                    let holder = state.lease(&id).map(|l| l.member.clone());
                    let who = by.map_or(holder.clone().unwrap_or(owner.clone()), |m| MemberId::new(format!("usr_m{m}")));
                    let r = if matches!(op, Op::Heartbeat { .. }) {
                        run(&mut state, &mut journal, |s| s.heartbeat(&who, &id, now)).map(drop)
                    } else {
                        run(&mut state, &mut journal, |s| s.release(&who, &id, now)).map(drop)
                    };
                    if r.is_err() {
                        // Another member's lease, an ended one, or one past its expiry.
                        prop_assert_eq!(r.clone().unwrap_err(), DomainError::SessionNotFound);
                        let lease = state.lease(&id);
                        prop_assert!(lease.is_none_or(|l| Some(&l.member) != Some(&who) || l.expires_at <= now));
                    }
                    r
                }
                Op::Resize { pool, seats } => {
                    let id = format!("pool_{pool}");
                    let patch = PoolPatch { seats: Some(seats), expires_at: None };
                    run(&mut state, &mut journal, |s| s.update_pool(&owner, &id, patch, now)).map(drop)
                }
                Op::DeletePool { pool } => {
                    let id = format!("pool_{pool}");
                    run(&mut state, &mut journal, |s| s.delete_pool(&owner, &id, now))
                }
                Op::AddMember { n } => {
                    // Some of these repeat an e-mail, and are refused.
                    let m = member(&format!("usr_x{next_id}"), &format!("x{n}@x.io"), vec![]);
                    next_id += 1;
                    run(&mut state, &mut journal, |s| s.add_member(&owner, m)).map(drop)
                }
                Op::Revoke { member } => {
                    let id = format!("key_m{member}");
                    let r = run(&mut state, &mut journal, |s| s.revoke_key(&owner, &id, now));
                    // Revoking a key ends the leases taken with it.
                    prop_assert!(state.snapshot().leases.iter().all(|l| l.key.as_str() != id));
                    r
                }
                Op::Advance { ms } => {
                    now = Timestamp(now.millis() + ms as i64);
                    let before = live_ids(&state);
                    let expired: Vec<_> = before
                        .iter()
                        .filter(|id| state.lease(id.as_str()).unwrap().expires_at <= now)
                        .cloned()
                        .collect();
                    let n = run(&mut state, &mut journal, |s| Ok(s.expire(now, usize::MAX))).unwrap();
                    // Expiry frees exactly the expired leases.
                    prop_assert_eq!(n, expired.len());
                    let after = live_ids(&state);
                    prop_assert_eq!(after.len(), before.len() - expired.len());
                    prop_assert!(after.iter().all(|id| !expired.contains(id)));
                    Ok(())
                }
            };
            if result.is_err() {
                // A refused command leaves the state exactly as it was.
                prop_assert_eq!(&image(&state), &before, "{:?} changed state", op);
            }
            // Applying events keeps every index as a rebuild from the image would.
            prop_assert_eq!(views(&state, now), views(&OrgState::restore(state.snapshot()), now));
            // live ≤ seats on every pool, after every step.
            let page = state.pools(&owner, None, None, usize::MAX, now).unwrap();
            for p in page.items {
                prop_assert!(p.live <= p.pool.seats, "{} live on {} seats", p.live, p.pool.seats);
            }
        }
        // The journal alone rebuilds the same state, and so does a snapshot.
        let mut replayed = OrgState::empty(OrgId::new("org_t"));
        for e in &journal {
            replayed.apply(e);
        }
        prop_assert_eq!(image(&replayed), image(&state));
        prop_assert_eq!(image(&OrgState::restore(state.snapshot())), image(&state));
    }
}

const LIMITS: WaitLimits = WaitLimits {
    per_key: 8,
    per_member: 8,
    per_org: 16,
};

fn waiter(id: u64, req: AcquireRequest, deadline: i64) -> Waiter {
    Waiter {
        id,
        request: req,
        deadline: Timestamp(deadline),
    }
}

/// Serves the queue as the actor does; answers the waiters granted, in order.
fn serve(state: &mut OrgState, now: Timestamp) -> Vec<u64> {
    let mut served = Vec::new();
    let n = std::cell::Cell::new(0);
    let new_id = || {
        n.set(n.get() + 1);
        SessionId::new(format!("ses_w{}", n.get()))
    };
    while let Some(turn) = state.next_turn(now, |_| false, new_id) {
        match turn {
            Turn::Gone(w) => {
                state.dequeue(w);
            }
            Turn::Answer(w, result) => {
                state.dequeue(w);
                if let Ok(applied) = result {
                    state.apply_all(applied);
                    served.push(w);
                }
            }
        }
    }
    served
}

#[test]
fn waiters_are_served_in_order_and_time_out() {
    let (mut state, mut journal) = org(&[1]);
    let now = Timestamp(1_000);
    let held = run(&mut state, &mut journal, |s| {
        s.acquire(&request(0, None), SessionId::new("ses_a"), now)
    })
    .unwrap()
    .lease;
    state
        .enqueue(waiter(1, request(1, None), 5_000), LIMITS, now)
        .unwrap();
    state
        .enqueue(waiter(2, request(2, None), 9_000), LIMITS, now)
        .unwrap();
    run(&mut state, &mut journal, |s| {
        s.release(&held.member, "ses_a", now)
    })
    .unwrap();
    // A newcomer does not take the seat a waiter could take.
    assert!(matches!(
        state.acquire(&request(3, None), SessionId::new("ses_x"), now),
        Err(DomainError::SeatCapReached { .. })
    ));
    assert_eq!(
        serve(&mut state, now),
        vec![1],
        "the first waiter is served first"
    );
    assert_eq!(state.next_deadline(), Some(Timestamp(9_000)));
    let timed_out = state.timed_out(Timestamp(9_000));
    assert_eq!(timed_out.len(), 1);
    assert!(matches!(
        timed_out[0],
        (2, DomainError::SeatCapReached { .. })
    ));
}

/// Defect 3: a front waiter that no free pool can serve holds nobody else off.
#[test]
fn a_waiter_no_pool_can_serve_blocks_no_one() {
    let (mut state, mut journal) = org(&[1]);
    let owner = MemberId::new(OWNER);
    let now = Timestamp(1_000);
    // pool_0: 1 seat, ttl 10 (taken); pool_1: 1 seat, ttl 5.
    run(&mut state, &mut journal, |s| {
        s.create_pool(&owner, PoolId::new("pool_1"), floating("kre", 1, 5), now)
    })
    .unwrap();
    let taken = run(&mut state, &mut journal, |s| {
        s.acquire(
            &AcquireRequest {
                ttl_seconds: Some(10),
                ..request(0, None)
            },
            SessionId::new("ses_a"),
            now,
        )
    })
    .unwrap();
    assert_eq!(taken.lease.pool.as_str(), "pool_0");
    // The front waiter needs ttl 10: only the full pool_0 fits it.
    let long = AcquireRequest {
        ttl_seconds: Some(10),
        ..request(1, None)
    };
    state.enqueue(waiter(1, long, 60_000), LIMITS, now).unwrap();
    // A newcomer that fits pool_1 takes its seat: no waiter could.
    let newcomer = run(&mut state, &mut journal, |s| {
        s.acquire(&request(2, None), SessionId::new("ses_n"), now)
    })
    .unwrap();
    assert_eq!(newcomer.lease.pool.as_str(), "pool_1");
    // A second waiter that fits pool_1 is served when pool_1 frees, past the front one.
    state
        .enqueue(waiter(2, request(3, None), 60_000), LIMITS, now)
        .unwrap();
    run(&mut state, &mut journal, |s| {
        s.release(&MemberId::new("usr_m2"), "ses_n", now)
    })
    .unwrap();
    assert_eq!(serve(&mut state, now), vec![2]);
    // And when pool_0 frees, the front waiter gets it.
    run(&mut state, &mut journal, |s| {
        s.release(&MemberId::new("usr_m0"), "ses_a", now)
    })
    .unwrap();
    assert_eq!(serve(&mut state, now), vec![1]);
}

#[test]
fn waiting_is_limited_per_key_per_member_and_per_org() {
    let (mut state, mut journal) = org(&[1]);
    let owner = MemberId::new(OWNER);
    let now = Timestamp(1_000);
    // A second key of m0: a member with many keys still waits within their own limit.
    let k = key_of("key_m0b", "usr_m0", vec![Scope::Sessions]);
    run(&mut state, &mut journal, |s| s.create_key(&owner, k, now)).unwrap();
    let other_key = |m: u8| AcquireRequest {
        key: KeyId::new(format!("key_m{m}b")),
        ..request(m, None)
    };
    let limits = WaitLimits {
        per_key: 2,
        per_member: 3,
        per_org: 4,
    };
    let limited = |r: Result<(), DomainError>| matches!(r, Err(DomainError::RateLimited { .. }));
    for i in 0..2 {
        state
            .enqueue(waiter(i, request(0, None), 9_000), limits, now)
            .unwrap();
    }
    assert!(limited(state.enqueue(
        waiter(2, request(0, None), 9_000),
        limits,
        now
    )));
    state
        .enqueue(waiter(3, other_key(0), 9_000), limits, now)
        .unwrap();
    assert!(limited(state.enqueue(
        waiter(4, other_key(0), 9_000),
        limits,
        now
    )));
    state
        .enqueue(waiter(5, request(1, None), 9_000), limits, now)
        .unwrap();
    assert!(limited(state.enqueue(
        waiter(6, request(2, None), 9_000),
        limits,
        now
    )));
    state.dequeue(0);
    state
        .enqueue(waiter(7, request(2, None), 9_000), limits, now)
        .unwrap();
}

/// Defect 2: re-acquiring keeps no lease alive on a pool that expired.
#[test]
fn a_repeated_acquire_does_not_renew_a_lease_of_an_expired_pool() {
    let (mut state, mut journal) = org(&[]);
    let owner = MemberId::new(OWNER);
    let now = Timestamp(1_000);
    let trial = PoolSpec {
        source: PoolSource::Trial,
        expires_at: Some(Timestamp(5_000)),
        ..floating("kre", 2, 10)
    };
    run(&mut state, &mut journal, |s| {
        s.create_pool(&owner, PoolId::new("pool_t"), trial, now)
    })
    .unwrap();
    let first = run(&mut state, &mut journal, |s| {
        s.acquire(&request(0, Some("m")), SessionId::new("ses_1"), now)
    })
    .unwrap();
    assert!(first.fresh);
    // After the trial ends, the same machine is not renewed: nothing entitles it.
    let later = Timestamp(6_000);
    assert!(matches!(
        state.acquire(&request(0, Some("m")), SessionId::new("ses_2"), later),
        Err(DomainError::NotEntitled { .. })
    ));
    assert_eq!(
        state
            .heartbeat(&MemberId::new("usr_m0"), "ses_1", later)
            .unwrap_err(),
        DomainError::PoolExpired
    );
    // With a purchased pool beside it, the old lease ends and a new one is granted there.
    run(&mut state, &mut journal, |s| {
        s.create_pool(&owner, PoolId::new("pool_p"), floating("kre", 1, 10), later)
    })
    .unwrap();
    let again = run(&mut state, &mut journal, |s| {
        s.acquire(&request(0, Some("m")), SessionId::new("ses_3"), later)
    })
    .unwrap();
    assert!(again.fresh);
    assert_eq!(again.lease.pool.as_str(), "pool_p");
    assert!(state.lease("ses_1").is_none(), "the trial lease ended");
    assert_eq!(state.sessions_live(), 1);
}

/// Defect 9: expiry ends leases in bounded chunks.
#[test]
fn expiry_is_chunked() {
    let (mut state, mut journal) = org(&[100]);
    let now = Timestamp(1_000);
    for i in 0..25 {
        run(&mut state, &mut journal, |s| {
            s.acquire(
                &request(0, None),
                SessionId::new(format!("ses_{i:03}")),
                now,
            )
        })
        .unwrap();
    }
    let later = Timestamp(60_000);
    let mut chunks = Vec::new();
    loop {
        let n = run(&mut state, &mut journal, |s| Ok(s.expire(later, 10))).unwrap();
        if n == 0 {
            break;
        }
        chunks.push(n);
    }
    assert_eq!(chunks, vec![10, 10, 5]);
    assert_eq!(state.sessions_live(), 0);
}

/// Defect 7: an administrator manages keys below the owner, never the owner's; the
/// owner's last admin key stays; revoking a key ends the leases taken with it.
#[test]
fn key_management_respects_the_owner() {
    let (mut state, mut journal) = org(&[5]);
    let owner = MemberId::new(OWNER);
    let admin = MemberId::new("usr_admin");
    let now = Timestamp(1_000);
    let m = member("usr_admin", "admin@x.io", vec![TenantRole::Administrator]);
    run(&mut state, &mut journal, |s| s.add_member(&owner, m)).unwrap();
    let owner_key = key_of("key_evil", OWNER, vec![Scope::Admin]);
    assert!(matches!(
        state.create_key(&admin, owner_key, now),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        state.revoke_key(&admin, "key_owner", now),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        state.revoke_key(&owner, "key_owner", now),
        Err(DomainError::Conflict { .. })
    ));
    // The owner may replace it, then revoke the old one.
    let second = key_of("key_owner2", OWNER, vec![Scope::Admin]);
    run(&mut state, &mut journal, |s| {
        s.create_key(&owner, second, now)
    })
    .unwrap();
    run(&mut state, &mut journal, |s| {
        s.revoke_key(&owner, "key_owner", now)
    })
    .unwrap();
    // An expired admin key is no spare: the last live one still cannot go.
    let soon = ApiKey {
        expires_at: Some(Timestamp(2_000)),
        ..key_of("key_soon", OWNER, vec![Scope::Admin])
    };
    run(&mut state, &mut journal, |s| {
        s.create_key(&owner, soon, now)
    })
    .unwrap();
    assert!(matches!(
        state.revoke_key(&owner, "key_owner2", Timestamp(3_000)),
        Err(DomainError::Conflict { .. })
    ));
    // An administrator manages a plain member's keys, and revoking ends their leases.
    run(&mut state, &mut journal, |s| {
        s.acquire(&request(1, Some("a")), SessionId::new("ses_k"), now)
    })
    .unwrap();
    run(&mut state, &mut journal, |s| {
        s.revoke_key(&admin, "key_m1", now)
    })
    .unwrap();
    assert!(state.lease("ses_k").is_none());
    assert_eq!(
        state.authorize(&admin, Action::ManagePools),
        Decision {
            allowed: true,
            reason: "administrator"
        }
    );
}

/// Defect 4: `meta` is a small flat object.
#[test]
fn meta_is_bounded_and_flat() {
    use crate::domain::lease::check_meta;
    use serde_json::json;
    assert!(check_meta(&json!({"host": "ci-7", "n": 3, "ok": true, "none": null})).is_ok());
    assert!(check_meta(&json!({"nested": {"a": 1}})).is_err());
    assert!(check_meta(&json!(["a"])).is_err());
    assert!(check_meta(&json!({"big": "x".repeat(1100)})).is_err());
}

/// After a restart every lease lives at least one ttl: a heartbeat acknowledged before
/// its flush keeps its promise, and nothing lives longer than that.
#[test]
fn the_reclaim_window_gives_every_lease_one_ttl_from_the_restart() {
    let (mut state, mut journal) = org(&[5]);
    let t0 = Timestamp(1_000);
    for (i, ttl) in [(0, 10), (1, 3)] {
        let req = AcquireRequest {
            ttl_seconds: Some(ttl),
            ..request(i, None)
        };
        run(&mut state, &mut journal, |s| {
            s.acquire(&req, SessionId::new(format!("ses_{i}")), t0)
        })
        .unwrap();
    }
    // Restart 5 s later: each lease expires one ttl after the restart (ses_1's journaled
    // expiry has passed: a heartbeat may have been acknowledged and not flushed).
    let restart = Timestamp(6_000);
    for e in state.reclaim_window(restart) {
        state.apply(&e);
    }
    assert_eq!(state.lease("ses_0").unwrap().expires_at, Timestamp(16_000));
    assert_eq!(state.lease("ses_1").unwrap().expires_at, Timestamp(9_000));
    // A lease whose expiry is already past the window keeps it.
    let late = AcquireRequest {
        ttl_seconds: Some(10),
        ..request(2, None)
    };
    run(&mut state, &mut journal, |s| {
        s.acquire(&late, SessionId::new("ses_2"), Timestamp(5_500))
    })
    .unwrap();
    let window = state.reclaim_window(Timestamp(5_000));
    assert!(window.is_empty(), "{window:?}");
    assert!(
        state.reclaim_window(restart).is_empty(),
        "applied once is enough"
    );
}

/// A pool that expired renewed nothing after its expiry: the reclaim window gives its
/// leases one ttl from the pool's end, not from the restart.
#[test]
fn the_reclaim_window_ends_with_the_pool() {
    let (mut state, mut journal) = org(&[]);
    let owner = MemberId::new(OWNER);
    let t0 = Timestamp(1_000);
    let trial = PoolSpec {
        source: PoolSource::Trial,
        expires_at: Some(Timestamp(5_000)),
        ..floating("kre", 2, 10)
    };
    run(&mut state, &mut journal, |s| {
        s.create_pool(&owner, PoolId::new("pool_t"), trial, t0)
    })
    .unwrap();
    run(&mut state, &mut journal, |s| {
        s.acquire(&request(0, None), SessionId::new("ses_t"), t0)
    })
    .unwrap();
    // The server was down from 2 s to 60 s; the pool ended at 5 s.
    let window = state.reclaim_window(Timestamp(60_000));
    for e in &window {
        state.apply(e);
    }
    assert_eq!(state.lease("ses_t").unwrap().expires_at, Timestamp(15_000));
}

/// A lease rebuilt from disk shares its member, key, pool and product strings with its
/// org, as a lease granted live does: a million leases must not each carry copies.
#[test]
fn leases_share_the_orgs_strings_also_after_a_restore() {
    let (mut state, mut journal) = org(&[5]);
    let id = SessionId::new("ses_1");
    let req = request(0, Some("fp"));
    run(&mut state, &mut journal, |s| {
        s.acquire(&req, id.clone(), Timestamp(1))
    })
    .unwrap();
    let json = serde_json::to_vec(&state.snapshot()).unwrap();
    let restored = OrgState::restore(serde_json::from_slice(&json).unwrap());
    let mut replayed = OrgState::empty(OrgId::new("org_t"));
    let json = serde_json::to_vec(&journal).unwrap();
    for e in serde_json::from_slice::<Vec<Event>>(&json).unwrap() {
        replayed.apply(&e);
    }
    let owner = MemberId::new(OWNER);
    for s in [&state, &restored, &replayed] {
        let lease = s.lease(id.as_str()).unwrap();
        let member = s.member(&owner, "usr_m0").unwrap();
        let key = s.keys().find(|k| k.id == lease.key).unwrap();
        let pool = s.pool(&owner, "pool_0").unwrap();
        assert!(lease.member.same(&member.id));
        assert!(lease.key.same(&key.id));
        assert!(lease.pool.same(&pool.id));
        assert!(std::sync::Arc::ptr_eq(&lease.product, &pool.product));
    }
}

#[derive(Debug, Clone)]
enum SeatOp {
    Allocate(Vec<u8>),
    Revoke(Vec<u8>),
    Transfer(u8, u8),
    Resize(i64),
    Remove(u8),
}

fn seat_op() -> impl Strategy<Value = SeatOp> {
    let members = proptest::collection::vec(0u8..6, 1..4);
    prop_oneof![
        3 => members.clone().prop_map(SeatOp::Allocate),
        2 => members.prop_map(SeatOp::Revoke),
        2 => (0u8..6, 0u8..6).prop_map(|(a, b)| SeatOp::Transfer(a, b)),
        1 => (0i64..5).prop_map(SeatOp::Resize),
        1 => (0u8..4).prop_map(SeatOp::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Allocated ≤ seats after every step of any sequence of allocations, revocations,
    /// transfers, resizes and removals; a refused step changes nothing (a list that does
    /// not fit allocates no one); the journal and a snapshot rebuild the same state.
    #[test]
    fn named_seats_never_exceed_the_pool(
        seats in 1i64..4,
        ops in proptest::collection::vec(seat_op(), 1..60),
    ) {
        let (mut state, mut journal) = org(&[]);
        let owner = MemberId::new(OWNER);
        let now = Timestamp(1_000);
        let spec = PoolSpec { kind: PoolKind::Named, ..floating("kse", seats, 10) };
        let id = PoolId::new("pool_named");
        run(&mut state, &mut journal, |s| s.create_pool(&owner, id, spec, now)).unwrap();
        // m4 and m5 are not members: naming them refuses the whole list.
        let who = |m: &u8| format!("usr_m{m}");
        for op in ops {
            let before = image(&state);
            let result = match &op {
                SeatOp::Allocate(ms) => {
                    let users: Vec<String> = ms.iter().map(who).collect();
                    run(&mut state, &mut journal, |s| s.allocate(&owner, "pool_named", &users, now)).map(drop)
                }
                SeatOp::Revoke(ms) => {
                    let users: Vec<String> = ms.iter().map(who).collect();
                    run(&mut state, &mut journal, |s| s.revoke(&owner, "pool_named", &users, now)).map(drop)
                }
                SeatOp::Transfer(a, b) => {
                    run(&mut state, &mut journal, |s| s.transfer(&owner, "pool_named", &who(a), &who(b), now)).map(drop)
                }
                SeatOp::Resize(n) => {
                    let patch = PoolPatch { seats: Some(*n), expires_at: None };
                    run(&mut state, &mut journal, |s| s.update_pool(&owner, "pool_named", patch, now)).map(drop)
                }
                SeatOp::Remove(m) => {
                    run(&mut state, &mut journal, |s| s.remove_member(&owner, &who(m), now)).map(drop)
                }
            };
            if result.is_err() {
                prop_assert_eq!(&image(&state), &before, "{:?} changed state", op);
            }
            let pool = state.pool(&owner, "pool_named").unwrap();
            prop_assert!(pool.allocated.len() as u32 <= pool.seats, "{:?}", pool);
            prop_assert!(pool.allocated.iter().all(|m| state.member(&owner, m.as_str()).is_ok()));
        }
        let mut replayed = OrgState::empty(OrgId::new("org_t"));
        for e in &journal {
            replayed.apply(e);
        }
        prop_assert_eq!(image(&replayed), image(&state));
        prop_assert_eq!(image(&OrgState::restore(state.snapshot())), image(&state));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However a member's roles come (directly, through groups, through Everyone, or as
    /// project owner), no (L) right is ever granted without a named seat of the
    /// project's product.
    #[test]
    fn no_licensed_right_without_a_seat(
        direct in proptest::collection::vec(0usize..6, 0..3),
        via_group in proptest::collection::vec(0usize..6, 0..3),
        via_everyone in proptest::collection::vec(0usize..6, 0..2),
        in_group in any::<bool>(),
        seated in any::<bool>(),
        owns in any::<bool>(),
    ) {
        use crate::domain::roles::{valid_names, licensed, BUILTIN};
        let (mut state, mut journal) = org(&[]);
        let owner = MemberId::new(OWNER);
        let now = Timestamp(1_000);
        let named = PoolSpec { kind: PoolKind::Named, ..floating("tm", 5, 10) };
        run(&mut state, &mut journal, |s| s.create_pool(&owner, PoolId::new("pool_tm"), named, now)).unwrap();
        let m = "usr_m1";
        if seated {
            run(&mut state, &mut journal, |s| s.allocate(&owner, "pool_tm", &[m.to_owned()], now)).unwrap();
        }
        run(&mut state, &mut journal, |s| {
            s.create_project(&owner, ProjectId::new("prj_p"), "p", "tm", now)
        }).unwrap();
        let members = if in_group { vec![m.to_owned()] } else { vec![] };
        run(&mut state, &mut journal, |s| {
            s.create_group(&owner, GroupId::new("grp_g"), "g", &members, vec![], now)
        }).unwrap();
        // Role 0 stands for "assigned with no role" (read_only); "owner" is never assignable.
        let roles = |picks: &[usize]| -> Vec<String> {
            picks.iter().filter(|i| **i > 0).map(|i| BUILTIN[*i].to_owned()).collect()
        };
        for (subject, picks) in [(m, &direct), ("grp_g", &via_group), ("everyone", &via_everyone)] {
            if !picks.is_empty() {
                run(&mut state, &mut journal, |s| s.set_access(&owner, "prj_p", subject, subject != m, &roles(picks), now)).unwrap();
            }
        }
        if owns {
            run(&mut state, &mut journal, |s| s.transfer_project(&owner, "prj_p", m)).unwrap();
        }
        let view = state.access();
        let who = MemberId::new(m);
        let project = view.project("prj_p").unwrap();
        for name in valid_names() {
            let verdict = view.check(&who, project, &name, now);
            if verdict.allowed && licensed(&name) {
                prop_assert!(seated, "{} granted without a seat: {:?}", name, verdict);
            }
        }
    }
}

/// A change to who may do what, as an admin makes it.
#[derive(Debug, Clone)]
enum AccessOp {
    Project(u8),
    /// Project, subject (members 0..4, groups 4..6, 6 = everyone), roles (built-in
    /// indexes, then the custom roles).
    Assign(u8, u8, Vec<u8>),
    Unassign(u8, u8),
    Transfer(u8, u8),
    /// Group, its members, and whether it makes them administrators.
    Group(u8, Vec<u8>, bool),
    DeleteGroup(u8),
    Role(u8, bool),
    DeleteRole(u8),
    Allocate(Vec<u8>),
    Revoke(Vec<u8>),
    TransferSeat(u8, u8),
    AddMember(u8),
    RemoveMember(u8),
    /// Whether the built-in group makes everyone an administrator.
    Everyone(bool),
}

fn access_op() -> impl Strategy<Value = AccessOp> {
    let members = proptest::collection::vec(0u8..4, 0..4);
    prop_oneof![
        2 => (0u8..3).prop_map(AccessOp::Project),
        5 => (0u8..3, 0u8..7, proptest::collection::vec(0u8..8, 0..3))
            .prop_map(|(p, s, r)| AccessOp::Assign(p, s, r)),
        2 => (0u8..3, 0u8..7).prop_map(|(p, s)| AccessOp::Unassign(p, s)),
        1 => (0u8..3, 0u8..4).prop_map(|(p, m)| AccessOp::Transfer(p, m)),
        2 => (0u8..2, members.clone(), any::<bool>()).prop_map(|(g, m, a)| AccessOp::Group(g, m, a)),
        1 => (0u8..2).prop_map(AccessOp::DeleteGroup),
        2 => (0u8..2, any::<bool>()).prop_map(|(r, t)| AccessOp::Role(r, t)),
        1 => (0u8..2).prop_map(AccessOp::DeleteRole),
        2 => members.clone().prop_map(AccessOp::Allocate),
        1 => members.prop_map(AccessOp::Revoke),
        1 => (0u8..4, 0u8..4).prop_map(|(a, b)| AccessOp::TransferSeat(a, b)),
        1 => (4u8..6).prop_map(AccessOp::AddMember),
        1 => (0u8..4).prop_map(AccessOp::RemoveMember),
        1 => any::<bool>().prop_map(AccessOp::Everyone),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The access view is rebuilt a part at a time (members, roles, one project): after
    /// any sequence of admin changes it equals a view built afresh from the state.
    #[test]
    fn the_access_view_kept_up_to_date_equals_one_built_afresh(
        ops in proptest::collection::vec(access_op(), 1..40),
    ) {
        use crate::domain::roles::BUILTIN;
        let (mut state, mut journal) = org(&[]);
        let owner = MemberId::new(OWNER);
        let now = Timestamp(1_000);
        let named = PoolSpec { kind: PoolKind::Named, ..floating("tm", 3, 10) };
        run(&mut state, &mut journal, |s| s.create_pool(&owner, PoolId::new("pool_tm"), named, now)).unwrap();
        let member = |m: &u8| format!("usr_m{m}");
        let members = |ms: &[u8]| -> Vec<String> { ms.iter().map(member).collect() };
        for op in ops {
            let role = |r: &u8| match BUILTIN.get(*r as usize + 1) {
                Some(b) => (*b).to_owned(),
                None => format!("rol_c{}", *r as usize + 1 - BUILTIN.len()),
            };
            let _ = match &op {
                AccessOp::Project(p) => run(&mut state, &mut journal, |s| {
                    s.create_project(&owner, ProjectId::new(format!("prj_{p}")), &format!("p{p}"), "tm", now)
                }).map(drop),
                AccessOp::Assign(p, subject, roles) => {
                    let (who, group) = match subject {
                        0..4 => (member(subject), false),
                        4..6 => (format!("grp_g{}", subject - 4), true),
                        _ => ("everyone".to_owned(), true),
                    };
                    let roles: Vec<String> = roles.iter().map(role).collect();
                    run(&mut state, &mut journal, |s| s.set_access(&owner, &format!("prj_{p}"), &who, group, &roles, now)).map(drop)
                }
                AccessOp::Unassign(p, subject) => {
                    let who = match subject {
                        0..4 => member(subject),
                        4..6 => format!("grp_g{}", subject - 4),
                        _ => "everyone".to_owned(),
                    };
                    run(&mut state, &mut journal, |s| s.remove_access(&owner, &format!("prj_{p}"), &[who], now)).map(drop)
                }
                AccessOp::Transfer(p, m) => run(&mut state, &mut journal, |s| {
                    s.transfer_project(&owner, &format!("prj_{p}"), &member(m))
                }).map(drop),
                AccessOp::Group(g, ms, admin) => {
                    let roles = if *admin { vec![TenantRole::Administrator] } else { vec![] };
                    let id = format!("grp_g{g}");
                    if state.group(&owner, &id).is_ok() {
                        run(&mut state, &mut journal, |s| s.change_group(&owner, &id, None, Some(&members(ms)), Some(roles))).map(drop)
                    } else {
                        run(&mut state, &mut journal, |s| {
                            s.create_group(&owner, GroupId::new(id.clone()), &format!("g{g}"), &members(ms), roles, now)
                        }).map(drop)
                    }
                }
                AccessOp::DeleteGroup(g) => run(&mut state, &mut journal, |s| s.delete_group(&owner, &format!("grp_g{g}"))).map(drop),
                AccessOp::Role(r, defects) => {
                    let tasks = if *defects { "defects" } else { "manual_execution" };
                    let spec = RoleSpec {
                        name: Some(format!("c{r}")),
                        description: None,
                        permissions: None,
                        tasks: Some(vec![tasks.to_owned()]),
                    };
                    let id = format!("rol_c{r}");
                    if state.role(&owner, &id).is_ok() {
                        run(&mut state, &mut journal, |s| s.update_role(&owner, &id, spec)).map(drop)
                    } else {
                        run(&mut state, &mut journal, |s| s.create_role(&owner, RoleId::new(id.clone()), spec, now)).map(drop)
                    }
                }
                AccessOp::DeleteRole(r) => run(&mut state, &mut journal, |s| s.delete_role(&owner, &format!("rol_c{r}"))).map(drop),
                AccessOp::Allocate(ms) => run(&mut state, &mut journal, |s| s.allocate(&owner, "pool_tm", &members(ms), now)).map(drop),
                AccessOp::Revoke(ms) => run(&mut state, &mut journal, |s| s.revoke(&owner, "pool_tm", &members(ms), now)).map(drop),
                AccessOp::TransferSeat(a, b) => run(&mut state, &mut journal, |s| s.transfer(&owner, "pool_tm", &member(a), &member(b), now)).map(drop),
                AccessOp::AddMember(m) => {
                    let added = self::member(&format!("usr_m{m}"), &format!("m{m}@x.io"), vec![]);
                    run(&mut state, &mut journal, |s| s.add_member(&owner, added)).map(drop)
                }
                AccessOp::RemoveMember(m) => run(&mut state, &mut journal, |s| s.remove_member(&owner, &member(m), now)).map(drop),
                AccessOp::Everyone(admin) => {
                    let roles = if *admin { vec![TenantRole::Administrator] } else { vec![] };
                    run(&mut state, &mut journal, |s| s.change_group(&owner, "everyone", None, None, Some(roles))).map(drop)
                }
            };
            prop_assert_eq!(&**state.access(), &state.rebuilt_access(), "after {:?}", op);
        }
        // A replay applies every event and refreshes once, as recovery does.
        let mut replayed = OrgState::empty(OrgId::new("org_t"));
        for e in &journal {
            replayed.apply(e);
        }
        replayed.refresh_access();
        prop_assert_eq!(&**replayed.access(), &**state.access());
    }
}
