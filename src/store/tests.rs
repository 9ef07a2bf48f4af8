//! The store against a real sled directory: recovery, crash ordering at every write,
//! refusals, and the golden files that pin the on-disk formats.

use std::path::Path;

use super::record::{decode_entry, Record};
use super::*;
use crate::domain::{
    Actor, ApiKey, Email, KeyId, Lease, Member, MemberId, PoolId, Scope, SessionId, TenantRole,
    Timestamp,
};

const OWNER: &str = "usr_owner";

fn member(id: &str) -> Member {
    Member {
        id: MemberId::new(id),
        email: Email::parse(&format!("{id}@example.com")).unwrap(),
        name: None,
        tenant_roles: vec![],
        created_at: Timestamp(1),
    }
}

/// The events of an org founded with an owner, then `n` more members, one per event.
fn history(n: usize) -> Vec<Event> {
    history_of("org_t", n)
}

/// [`history`] of the org `org`.
fn history_of(org: &str, n: usize) -> Vec<Event> {
    let key = ApiKey {
        id: KeyId::new("key_t"),
        member: MemberId::new(OWNER),
        name: "k".into(),
        hash: "00".repeat(32),
        scopes: vec![Scope::Admin],
        expires_at: None,
        created_at: Timestamp(1),
    };
    let mut events =
        OrgState::found(OrgId::new(org), "t", member(OWNER), key, Timestamp(1)).unwrap();
    events.extend((0..n).map(|i| Event::MemberAdded(member(&format!("usr_{i:03}")))));
    events
}

/// A change of `events` with no audit entries.
fn change<'a>(
    org: &'a OrgId,
    first_seq: u64,
    at: Timestamp,
    actor: &'a Actor,
    events: &'a [Event],
) -> Change<'a> {
    Change {
        org,
        first_seq,
        at,
        actor,
        events,
        audit: &[],
    }
}

fn replay(events: &[Event]) -> OrgState {
    replay_of("org_t", events)
}

fn replay_of(org: &str, events: &[Event]) -> OrgState {
    let mut state = OrgState::empty(OrgId::new(org));
    for e in events {
        state.apply(e);
    }
    state
}

fn image(state: &OrgState) -> serde_json::Value {
    serde_json::to_value(state.snapshot()).unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Reopens a store closed in this process. sled's I/O threads let go of the
/// directory's lock a moment after its last handle drops (a killed process has no such
/// window), so this waits for the lock, boundedly.
fn reopen(dir: &Path) -> Result<(Store, Vec<Recovered>), StoreError> {
    retry_lock(|| Store::open(dir))
}

/// Calls `open` until it stops failing on sled's directory lock, boundedly.
fn retry_lock<T, E: Into<StoreError>>(
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open().map_err(Into::into) {
            Err(StoreError::Sled(sled::Error::Io(e)))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now()
            }
            other => return other,
        }
    }
}

/// The audit entry [`write`] gives each event.
fn audited() -> [crate::domain::Audit; 1] {
    [crate::domain::Audit {
        event: 0,
        entry: crate::domain::AuditEntry {
            action: "member.added",
            target: "t".into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
        },
    }]
}

/// How many audit entries org_t has.
fn audit_count(store: &Store) -> usize {
    let org = OrgId::new("org_t");
    let (mut n, mut before) = (0, None);
    loop {
        let page = store.audit_page(&org, before, 100).unwrap();
        n += page.items.len();
        match page.next {
            Some(next) => before = Some(audit::Cursor::parse(&next).unwrap()),
            None => return n,
        }
    }
}

/// Journals `events` one by one as the actor does, each with an audit entry,
/// snapshotting every `every` events; answers how many were acknowledged before the
/// writer stopped answering.
fn write(dir: &Path, faults: Faults, events: &[Event], every: usize) -> usize {
    let org = OrgId::new("org_t");
    let (store, recovered) = Store::open_with(dir, faults).unwrap();
    assert!(recovered.is_empty());
    let audit = audited();
    let acked = block_on(async {
        let mut acked = 0;
        let mut since_snapshot = 0;
        for (i, e) in events.iter().enumerate() {
            let seq = i as u64 + 1;
            let one = Change {
                audit: &audit,
                ..change(
                    &org,
                    seq,
                    Timestamp(2),
                    &Actor::System,
                    std::slice::from_ref(e),
                )
            };
            let ack = store.append(one, Durability::Flushed);
            since_snapshot += 1;
            if since_snapshot == every {
                store.snapshot(replay(&events[..=i]).snapshot(), seq);
                since_snapshot = 0;
            }
            if ack.durable().await.is_err() {
                break;
            }
            acked = i + 1;
        }
        let _ = store.close().await;
        acked
    });
    drop(store);
    acked
}

#[test]
fn recovery_rebuilds_from_snapshot_then_journal() {
    let dir = tempfile::tempdir().unwrap();
    let events = history(4);
    // A snapshot after event 3, then the rest only in the journal.
    assert_eq!(
        write(dir.path(), Faults::default(), &events, 3),
        events.len()
    );
    let (_store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered.len(), 1);
    let r = &recovered[0];
    assert_eq!(r.seq, events.len() as u64);
    assert_eq!(r.journal_len, 1, "events 1-6 came from snapshots");
    assert_eq!(image(&r.state), image(&replay(&events)));
    let owner = MemberId::new(OWNER);
    assert_eq!(
        r.state.member(&owner, OWNER).unwrap().tenant_roles,
        vec![TenantRole::Owner]
    );
}

/// Defect 1: the writer stops, as under `kill -9`, after each of its writes in turn,
/// while snapshots compact the journal; every acknowledged event comes back, and the
/// audit entries of exactly the events that did (each round writes its audit entries to
/// sled before its frame, so some crashes fall between the two). Once with segments so
/// small that they fill, go and are carried all along.
#[test]
fn a_crash_at_any_write_loses_nothing_acknowledged() {
    let events = history(30);
    for (die_after, segment_bytes) in (1..=80).flat_map(|n| [(n, None), (n, Some(2048))]) {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults {
            die_after_writes: Some(die_after),
            segment_bytes,
            ..Faults::default()
        };
        let acked = write(dir.path(), faults, &events, 4);
        let (store, recovered) =
            reopen(dir.path()).unwrap_or_else(|e| panic!("crash after write {die_after}: {e}"));
        let seq = recovered.first().map_or(0, |r| r.seq as usize);
        assert!(
            seq >= acked,
            "crash after write {die_after}: {acked} acknowledged, {seq} recovered"
        );
        assert_eq!(
            audit_count(&store),
            seq,
            "crash after write {die_after}: audit entries of the recovered events only"
        );
        if let Some(r) = recovered.first() {
            assert_eq!(image(&r.state), image(&replay(&events[..seq])));
        }
    }
}

/// Journals events 1..=`last_kept`, snapshots at `snapshot` if given, then journals
/// the rest from `last_kept + 2` on: event `last_kept + 1` is missing. Answers why the
/// store then refuses to open.
fn open_with_a_gap(last_kept: usize, snapshot: Option<u64>) -> StoreError {
    let dir = tempfile::tempdir().unwrap();
    let events = history(3);
    let org = OrgId::new("org_t");
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        block_on(async {
            let kept = &events[..last_kept];
            let by = &Actor::System;
            store
                .append(change(&org, 1, Timestamp(2), by, kept), Durability::Flushed)
                .durable()
                .await
                .unwrap();
            if let Some(seq) = snapshot {
                store.snapshot(replay(&events[..seq as usize]).snapshot(), seq);
                store.barrier().durable().await.unwrap();
            }
            let rest = &events[last_kept + 1..];
            let from = last_kept as u64 + 2;
            store
                .append(
                    change(&org, from, Timestamp(2), by, rest),
                    Durability::Flushed,
                )
                .durable()
                .await
                .unwrap();
            store.close().await.unwrap();
        });
    }
    reopen(dir.path()).err().expect("refused")
}

#[test]
fn a_gap_in_the_journal_refuses_to_start() {
    let err = open_with_a_gap(3, None);
    assert!(
        matches!(
            err,
            StoreError::Gap {
                expected: 4,
                found: 5,
                ..
            }
        ),
        "{err}"
    );
    // Right after a snapshot of events 1-4, event 5 is missing.
    let err = open_with_a_gap(4, Some(4));
    assert!(
        matches!(
            err,
            StoreError::Gap {
                expected: 5,
                found: 6,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn data_from_before_the_record_envelope_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let journal = db.open_tree("journal").unwrap();
        let bare = serde_json::to_vec(&history(0)[0]).unwrap();
        journal
            .insert(journal_key(&OrgId::new("org_t"), 1), bare)
            .unwrap();
        db.flush().unwrap();
    }
    let err = reopen(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Legacy), "{err}");
}

/// Journal records of this format version, one per event kind, as written to disk.
const GOLDEN_JOURNAL: &str = include_str!("../../tests/golden/journal_v1.jsonl");
/// A snapshot of this format version, as written to disk.
const GOLDEN_SNAPSHOT: &str = include_str!("../../tests/golden/snapshot_v1.json");

#[test]
fn golden_records_of_this_version_still_decode() {
    let mut state = OrgState::empty(OrgId::new("org_golden"));
    let mut kinds = std::collections::BTreeSet::new();
    for (i, line) in GOLDEN_JOURNAL.lines().enumerate() {
        let record = decode_record(b"golden", line.as_bytes()).unwrap();
        let actor = record.actor();
        // What this version writes for the decoded record is the same bytes.
        let again = serde_json::to_string(&Record::new(record.at, &actor, &record.event)).unwrap();
        assert_eq!(again, line, "line {}", i + 1);
        let kind = serde_json::to_value(&record.event).unwrap()["type"].clone();
        kinds.insert(kind.as_str().unwrap().to_owned());
        state.apply(&record.event);
    }
    assert_eq!(kinds.len(), 10, "every event kind is pinned: {kinds:?}");
    let snapshot = snapshot::decode(b"golden", GOLDEN_SNAPSHOT.trim().as_bytes()).unwrap();
    assert_eq!(snapshot.seq, 13);
    let restored = OrgState::restore(snapshot.state);
    // Pools' peaks came after this snapshot was written: restoring one knows only the
    // leases still live, where replay saw every grant.
    let without_peaks = |state: &OrgState| {
        let mut image = image(state);
        for pool in image["pools"].as_array_mut().unwrap() {
            pool.as_object_mut().unwrap().remove("peak");
        }
        image
    };
    assert_eq!(without_peaks(&restored), without_peaks(&state));
    assert!(restored.lease("ses_golden2").is_some());
    assert_eq!(
        restored.lease("ses_golden2").map(|l| l.key.clone()),
        Some(KeyId::new("key_golden"))
    );
    assert!(restored
        .lease(SessionId::new("ses_golden").as_str())
        .is_none());
}

/// An entry that a snapshot cuts through the middle of (the writer joined events 1-6,
/// the snapshot came after event 4): recovery replays only what follows the snapshot,
/// keeps the entry, and the writer deletes it once a later snapshot covers all of it.
#[test]
fn an_entry_a_snapshot_cuts_through_is_replayed_from_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::new("org_t");
    let events = history(6);
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let mut entry = Entry::new();
        for e in &events[..6] {
            entry.push(Timestamp(2), &Actor::System, e);
        }
        db.open_tree("journal")
            .unwrap()
            .insert(journal_key(&org, 1), entry.into_bytes())
            .unwrap();
        // Where versions before snapshot files kept them: opening moves it to a file.
        db.open_tree("snapshots")
            .unwrap()
            .insert(
                org.as_str(),
                snapshot::encode(&replay(&events[..4]).snapshot(), 4),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let (store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!((recovered[0].seq, recovered[0].journal_len), (6, 2));
    assert!(dir.path().join("snapshots/org_t.snap").exists());
    assert_eq!(image(&recovered[0].state), image(&replay(&events[..6])));
    block_on(async {
        let by = &Actor::System;
        let rest = &events[6..];
        store
            .append(change(&org, 7, Timestamp(2), by, rest), Durability::Flushed)
            .durable()
            .await
            .unwrap();
        store.snapshot(replay(&events).snapshot(), events.len() as u64);
        // The first barrier's flush makes the snapshot durable; the entries it
        // supersedes are deleted in a round after it.
        store.barrier().durable().await.unwrap();
        store.barrier().durable().await.unwrap();
        store.close().await.unwrap();
    });
    drop(store);
    let journal_keys = retry_lock(|| sled::open(dir.path().join("store")))
        .unwrap()
        .open_tree("journal")
        .unwrap()
        .len();
    assert_eq!(journal_keys, 0, "opening moved sled's journal to the log");
    let (_store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(
        (recovered[0].seq, recovered[0].journal_len),
        (events.len() as u64, 0)
    );
    assert_eq!(image(&recovered[0].state), image(&replay(&events)));
}

/// A journal entry of this format version: the first three golden records, joined as
/// the writer joins one org's records of a round (hex, as written to disk).
const GOLDEN_ENTRY: &str = include_str!("../../tests/golden/journal_entry_v1.hex");

#[test]
fn golden_entries_of_this_version_still_decode() {
    let bytes = hex::decode(GOLDEN_ENTRY.trim()).unwrap();
    let records = decode_entry(b"golden", &bytes).unwrap();
    let lines: Vec<&str> = GOLDEN_JOURNAL.lines().take(3).collect();
    assert_eq!(records.len(), lines.len());
    let mut first = Entry::new();
    let mut rest = Entry::new();
    for (i, (record, line)) in records.iter().zip(&lines).enumerate() {
        assert_eq!(record, &decode_record(b"golden", line.as_bytes()).unwrap());
        let into = if i == 0 { &mut first } else { &mut rest };
        into.push(record.at, &record.actor(), &record.event);
    }
    first.join(&rest);
    assert_eq!(
        first.into_bytes(),
        bytes,
        "this version writes the same bytes"
    );
    // A bare record, as written before entries joined records, is an entry of one.
    assert_eq!(
        decode_entry(b"golden", lines[0].as_bytes()).unwrap(),
        records[..1]
    );
    for bad in [
        &bytes[..bytes.len() - 1],
        &bytes[..1],
        &[0xE2, 0, 0, 0, 0][..],
    ] {
        assert!(decode_entry(b"golden", bad).is_err());
    }
}

/// A heartbeat is acknowledged before its flush. The writer dies right before writing
/// one; after recovery the reclaim window still keeps the expiry it promised.
#[test]
fn a_heartbeat_lost_before_its_flush_keeps_its_promise() {
    use crate::domain::{AcquireRequest, PoolId, PoolKind, PoolSource, PoolSpec};
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::new("org_t");
    let owner = MemberId::new(OWNER);
    let t0 = Timestamp(1_000_000);
    let mut state = replay(&history(0));
    let mut events = history(0);
    let spec = PoolSpec {
        product: "kre".into(),
        kind: PoolKind::Floating,
        seats: 1,
        source: PoolSource::Purchased,
        expires_at: None,
        includes: vec![],
        entitled: None,
        ttl_seconds: Some(30),
        max_machines: None,
    };
    let pool = state
        .create_pool(&owner, PoolId::new("pool_t"), spec, t0)
        .unwrap();
    events.extend(state.apply_all(pool).1);
    let req = AcquireRequest {
        member: owner.clone(),
        key: KeyId::new("key_t"),
        product: "kre".into(),
        fingerprint: None,
        ttl_seconds: None,
        meta: None,
    };
    let granted = state.acquire(&req, SessionId::new("ses_t"), t0).unwrap();
    events.extend(state.apply_all(granted).1);
    // Ten seconds later the holder heartbeats, and is promised t0 + 10 s + 30 s.
    let t1 = Timestamp(t0.millis() + 10_000);
    let beat = state.heartbeat(&owner, "ses_t", t1).unwrap();
    let promised = beat.value.expires_at;
    let renewal = beat.events;
    {
        // The founding, the pool and the grant take the writer's first round (one
        // write); it dies before writing the heartbeat's.
        let faults = Faults {
            die_after_writes: Some(1),
            ..Faults::default()
        };
        let (store, _) = Store::open_with(dir.path(), faults).unwrap();
        block_on(async {
            let by = &Actor::System;
            let flushed = store.append(change(&org, 1, t0, by, &events), Durability::Flushed);
            flushed.durable().await.unwrap();
            let seq = events.len() as u64 + 1;
            let journaled =
                store.append(change(&org, seq, t1, by, &renewal), Durability::Journaled);
            // Answered at once, as the heartbeat's client was.
            journaled.durable().await.unwrap();
            let _ = store.close().await;
        });
    }
    let (_store, mut recovered) = reopen(dir.path()).unwrap();
    let r = &mut recovered[0];
    assert_eq!(
        r.seq,
        events.len() as u64,
        "the heartbeat never reached the disk"
    );
    assert!(r.state.lease("ses_t").unwrap().expires_at < promised);
    // The restart comes after the heartbeat was answered.
    let restart = Timestamp(t1.millis() + 500);
    for e in r.state.reclaim_window(restart) {
        r.state.apply(&e);
    }
    assert!(r.state.lease("ses_t").unwrap().expires_at >= promised);
}

/// The golden format-1 snapshot's state with three more leases: one with `meta`, one
/// with no fingerprint, one in a second pool and product.
fn golden_state_with_more_leases() -> Snapshot {
    let mut state = snapshot::decode(b"golden", GOLDEN_SNAPSHOT.trim().as_bytes())
        .unwrap()
        .state;
    let first = state.leases.iter().next().unwrap().clone();
    let more = [
        Lease {
            id: SessionId::new("ses_golden3"),
            meta: Some(Box::new(serde_json::json!({"host": "ci-7", "build": 42}))),
            ..first.clone()
        },
        Lease {
            id: SessionId::new("ses_golden4"),
            fingerprint: None,
            ..first.clone()
        },
        Lease {
            id: SessionId::new("ses_golden5"),
            product: "kse".into(),
            pool: PoolId::new("pool_golden_kse"),
            ..first.clone()
        },
    ];
    state.leases = state.leases.iter().cloned().chain(more).collect();
    state
}

/// A binary snapshot (format 2) of [`golden_state_with_more_leases`] after event 13,
/// as written to disk, in hex.
const GOLDEN_SNAPSHOT_V2: &str = include_str!("../../tests/golden/snapshot_v2.hex");

#[test]
fn golden_binary_snapshots_still_decode_and_encode_the_same() {
    let bytes = hex::decode(GOLDEN_SNAPSHOT_V2.trim()).unwrap();
    let decoded = snapshot::decode(b"golden", &bytes).unwrap();
    assert_eq!(decoded.seq, 13);
    assert_eq!(decoded.state, golden_state_with_more_leases());
    assert_eq!(
        hex::encode(snapshot::encode(&decoded.state, 13)),
        GOLDEN_SNAPSHOT_V2.trim(),
        "this version writes the same bytes"
    );
    // Strings a snapshot repeats are one allocation once decoded.
    let leases: Vec<&Lease> = decoded.state.leases.iter().collect();
    assert!(leases[0].member.same(&leases[1].member));
    assert!(Arc::ptr_eq(&leases[0].product, &leases[2].product));
}

#[test]
fn a_cut_or_damaged_binary_snapshot_is_refused_not_misread() {
    let bytes = snapshot::encode(&golden_state_with_more_leases(), 13);
    for cut in 0..bytes.len() {
        assert!(
            snapshot::decode(b"s", &bytes[..cut]).is_err(),
            "a snapshot cut at byte {cut} of {} decoded",
            bytes.len()
        );
    }
    let mut newer = bytes.clone();
    newer[3] = 3;
    assert!(matches!(
        snapshot::decode(b"s", &newer),
        Err(StoreError::Version { found: 3, .. })
    ));
    for at in [9, bytes.len() / 2, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x04;
        assert!(
            matches!(
                snapshot::decode(b"s", &damaged),
                Err(StoreError::Malformed { .. })
            ),
            "a bit flipped at byte {at} is refused"
        );
    }
    let mut longer = bytes;
    longer.push(0);
    assert!(matches!(
        snapshot::decode(b"s", &longer),
        Err(StoreError::Malformed { .. })
    ));
}

/// A crash while a snapshot file was being written leaves its temporary file: the
/// last complete snapshot is used and the temporary file is dropped.
#[test]
fn a_half_written_snapshot_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::new("org_t");
    let events = history(4);
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        block_on(async {
            store
                .append(
                    change(&org, 1, Timestamp(2), &Actor::System, &events),
                    Durability::Flushed,
                )
                .durable()
                .await
                .unwrap();
            store.snapshot(replay(&events).snapshot(), events.len() as u64);
            store.barrier().durable().await.unwrap();
            store.close().await.unwrap();
        });
    }
    let partial = dir.path().join("snapshots/org_t.tmp");
    std::fs::write(&partial, b"SKS\x02cut short").unwrap();
    let (_store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(
        (recovered[0].seq, recovered[0].journal_len),
        (events.len() as u64, 0)
    );
    assert_eq!(image(&recovered[0].state), image(&replay(&events)));
    assert!(!partial.exists(), "the temporary file is gone");
}

/// Audit entries are written with their change, paged newest first within their org,
/// and pruned by age only.
#[test]
fn audit_entries_page_newest_first_and_prune_by_age() {
    use crate::domain::{Audit, AuditEntry};
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let events = history(3);
    let entry = |target: &str| AuditEntry {
        action: "member.added",
        target: target.into(),
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    };
    let (a, b) = (OrgId::new("org_a"), OrgId::new("org_b"));
    block_on(async {
        for (org, at) in [(&a, 1_000), (&b, 1_500), (&a, 2_000), (&a, 3_000)] {
            let audit = [Audit {
                event: 0,
                entry: entry(&format!("t{at}")),
            }];
            let change = Change {
                org,
                first_seq: at as u64,
                at: Timestamp(at),
                actor: &Actor::System,
                events: &events[..1],
                audit: &audit,
            };
            store
                .append(change, Durability::Flushed)
                .durable()
                .await
                .unwrap();
        }
    });
    let targets = |page: &Page<audit::Logged>| -> Vec<String> {
        page.items.iter().map(|l| l.target.clone()).collect()
    };
    let first = store.audit_page(&a, None, 2).unwrap();
    assert_eq!(targets(&first), ["t3000", "t2000"]);
    let cursor = audit::Cursor::parse(first.next.as_deref().unwrap()).unwrap();
    let rest = store.audit_page(&a, Some(cursor), 2).unwrap();
    assert_eq!(
        (targets(&rest), rest.next),
        (vec!["t1000".to_owned()], None)
    );

    assert_eq!(store.prune_audit(Timestamp(2_000)).unwrap(), 2);
    assert_eq!(
        targets(&store.audit_page(&a, None, 10).unwrap()),
        ["t3000", "t2000"]
    );
    assert!(store.audit_page(&b, None, 10).unwrap().items.is_empty());
}

/// Deleting an org: once its purge is acknowledged nothing of it comes back, even what
/// a crash left behind after the tombstone was flushed (here, its snapshot file and a
/// journal entry put back as if their removal never happened).
#[test]
fn a_purged_org_never_comes_back_in_part() {
    let dir = tempfile::tempdir().unwrap();
    let events = history(4);
    assert_eq!(
        write(dir.path(), Faults::default(), &events, 3),
        events.len()
    );
    let snapshot = dir.path().join("snapshots/org_t.snap");
    let kept = std::fs::read(&snapshot).unwrap();
    let (store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered.len(), 1);
    let org = OrgId::new("org_t");
    block_on(async {
        store.purge(&org).durable().await.unwrap();
        // Left over by a crash between the tombstone's flush and the removals.
        let leftover = change(&org, 99, Timestamp(2), &Actor::System, &events[..1]);
        store
            .append(leftover, Durability::Flushed)
            .durable()
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    drop(store);
    std::fs::write(&snapshot, kept).unwrap();

    let (_store, recovered) = reopen(dir.path()).unwrap();
    assert!(recovered.is_empty(), "the org stays deleted");
    assert!(!snapshot.exists(), "its leftovers are removed at start");
}

/// The journal's segment files, by name.
fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Where the frames of a segment end: the first frame header of length zero.
fn frames_end(bytes: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            return pos;
        }
        pos += 8 + len;
    }
}

/// Appends `events` to org_t from event `first` on, one change each, and closes.
fn append_all(store: Store, first: u64, events: &[Event]) {
    let org = OrgId::new("org_t");
    block_on(async {
        for (seq, e) in (first..).zip(events) {
            let one = change(
                &org,
                seq,
                Timestamp(2),
                &Actor::System,
                std::slice::from_ref(e),
            );
            store
                .append(one, Durability::Flushed)
                .durable()
                .await
                .unwrap();
        }
        store.close().await.unwrap();
    });
}

/// A frame a crash cut short at the end of the log is dropped (also when the next
/// segment was already created, empty), and what is written after it, into the next
/// segments too, reads back: the torn bytes were cleared, or they would read as damage
/// once their segment is no longer the last.
#[test]
fn a_torn_frame_at_the_end_is_cut_and_written_over() {
    let dir = tempfile::tempdir().unwrap();
    let events = history(40);
    assert_eq!(write(dir.path(), Faults::default(), &events[..4], 0), 4);
    let [segment] = &segment_files(dir.path())[..] else {
        panic!("one segment")
    };
    let path = dir.path().join("journal").join(segment);
    let mut bytes = std::fs::read(&path).unwrap();
    let end = frames_end(&bytes);
    // A header promising more than reached the disk, then some of its pages: the first
    // and, as a power loss may leave them, a later one without those between.
    bytes[end..end + 4].copy_from_slice(&7992u32.to_le_bytes());
    bytes[end + 8..end + 2000].fill(0xAB);
    bytes[end + 6000..end + 8000].fill(0xAB);
    std::fs::write(&path, &bytes).unwrap();
    // And the next segment, created ahead, with nothing written to it yet.
    let ahead = dir.path().join("journal").join(format!("{:016x}.log", 2));
    std::fs::write(&ahead, vec![0u8; 1 << 20]).unwrap();

    let small = Faults {
        segment_bytes: Some(4096),
        ..Faults::default()
    };
    let (store, recovered) = retry_lock(|| Store::open_with(dir.path(), small.clone())).unwrap();
    assert_eq!(recovered[0].seq, 4, "the torn frame is cut");
    let cut = path.with_extension(format!("log.cut-{end}"));
    assert_eq!(std::fs::read(cut).unwrap().len(), 8000, "and kept aside");
    append_all(store, 5, &events[4..]);
    assert!(
        segment_files(dir.path()).len() > 1,
        "the log went on in new segments"
    );
    let (_store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered[0].seq, events.len() as u64);
    assert_eq!(image(&recovered[0].state), image(&replay(&events)));
}

/// A frame that fails its check in a segment the writer went past is damage, not a
/// torn write: the store refuses to start rather than drop what follows it.
#[test]
fn a_damaged_frame_before_the_end_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let events = history(40);
    let small = Faults {
        segment_bytes: Some(4096),
        ..Faults::default()
    };
    assert_eq!(write(dir.path(), small, &events, 0), events.len());
    let files = segment_files(dir.path());
    assert!(files.len() > 1);
    let path = dir.path().join("journal").join(&files[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let err = reopen(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Malformed { .. }), "{err}");
}

/// An org that journals once and then idles does not keep the segments it wrote in:
/// what it still needs is carried forward, the old files go, and both orgs recover.
#[test]
fn an_idle_orgs_entry_is_carried_and_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let small = Faults {
        segment_bytes: Some(16 << 10),
        ..Faults::default()
    };
    let (store, _) = Store::open_with(dir.path(), small).unwrap();
    let idle = history_of("org_i", 0);
    let busy = history(400);
    block_on(async {
        let org = OrgId::new("org_i");
        let by = &Actor::System;
        store
            .append(
                change(&org, 1, Timestamp(2), by, &idle),
                Durability::Flushed,
            )
            .durable()
            .await
            .unwrap();
        let org = OrgId::new("org_t");
        for (i, e) in busy.iter().enumerate() {
            let seq = i as u64 + 1;
            let one = change(&org, seq, Timestamp(2), by, std::slice::from_ref(e));
            store
                .append(one, Durability::Flushed)
                .durable()
                .await
                .unwrap();
            if seq % 10 == 0 {
                store.snapshot(replay(&busy[..=i]).snapshot(), seq);
            }
        }
        store.close().await.unwrap();
    });
    drop(store);
    let files = segment_files(dir.path());
    assert!(files.len() <= 3, "old segments went: {files:?}");
    assert!(
        !files.contains(&format!("{:016x}.log", 1)),
        "the idle org's entry left the first segment: {files:?}"
    );
    let (_store, mut recovered) = reopen(dir.path()).unwrap();
    recovered.sort_by_key(|r| r.state.id().to_string());
    assert_eq!(recovered.len(), 2);
    assert_eq!(
        image(&recovered[0].state),
        image(&replay_of("org_i", &idle))
    );
    assert_eq!(recovered[1].seq, busy.len() as u64);
    assert_eq!(image(&recovered[1].state), image(&replay(&busy)));
}

/// Audit entries reach sled before their events' frame; a crash between the two leaves
/// entries of events that never were, and recovery removes just those.
#[test]
fn audit_entries_of_a_cut_frame_are_removed_at_start() {
    use crate::domain::{Audit, AuditEntry};
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::new("org_t");
    let events = history(0);
    let entry = |target: &str| AuditEntry {
        action: "member.added",
        target: target.into(),
        before: serde_json::Value::Null,
        after: serde_json::Value::Null,
    };
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        let audit = [Audit {
            event: 0,
            entry: entry("kept"),
        }];
        let first = Change {
            audit: &audit,
            ..change(&org, 1, Timestamp(2), &Actor::System, &events)
        };
        block_on(async {
            store
                .append(first, Durability::Flushed)
                .durable()
                .await
                .unwrap();
            store.close().await.unwrap();
        });
    }
    let after = events.len() as u64 + 1;
    {
        // As the writer leaves it when a crash cuts the next round's frame: that round's
        // audit entries, of an event after the last, and of an org never journaled.
        let db = retry_lock(|| sled::open(dir.path().join("store"))).unwrap();
        let audit = db.open_tree("audit").unwrap();
        let mut in_flight = Vec::new();
        for (org, seq) in [(&org, after), (&OrgId::new("org_z"), 1)] {
            let (k, v) = audit::encode(org, seq, 0, Timestamp(3), &Actor::System, &entry("cut"));
            in_flight.extend_from_slice(&(k.len() as u32).to_le_bytes());
            in_flight.extend_from_slice(&k);
            audit.insert(k, v).unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert(IN_FLIGHT, in_flight)
            .unwrap();
        db.flush().unwrap();
    }
    let (store, recovered) = reopen(dir.path()).unwrap();
    assert_eq!(recovered[0].seq, after - 1);
    let targets = |org: &OrgId| -> Vec<String> {
        let page = store.audit_page(org, None, 10).unwrap();
        page.items.into_iter().map(|l| l.target).collect()
    };
    assert_eq!(targets(&org), ["kept"]);
    assert!(targets(&OrgId::new("org_z")).is_empty());
}

/// A sled journal bigger than a segment moves to the log whole and stays there: the
/// segments it fills are kept (and synced), not deleted as unneeded before recovery has
/// said what it needs.
#[test]
fn a_sled_journal_larger_than_a_segment_moves_whole() {
    let dir = tempfile::tempdir().unwrap();
    let org = OrgId::new("org_t");
    let events = history(60);
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let journal = db.open_tree("journal").unwrap();
        for (i, e) in events.iter().enumerate() {
            let mut entry = Entry::new();
            entry.push(Timestamp(2), &Actor::System, e);
            journal
                .insert(journal_key(&org, i as u64 + 1), entry.into_bytes())
                .unwrap();
        }
        db.flush().unwrap();
    }
    let small = Faults {
        segment_bytes: Some(4096),
        ..Faults::default()
    };
    let (store, recovered) = Store::open_with(dir.path(), small.clone()).unwrap();
    assert_eq!(recovered[0].seq, events.len() as u64);
    assert_eq!(image(&recovered[0].state), image(&replay(&events)));
    // Journaling on after the move, past the segment created ahead while it ran:
    // nothing may have been deleted as unneeded.
    let more = history(100);
    append_all(store, events.len() as u64 + 1, &more[events.len()..]);
    assert!(segment_files(dir.path()).len() > 1);
    for round in 0..2 {
        let (store, recovered) =
            retry_lock(|| Store::open_with(dir.path(), small.clone())).unwrap();
        assert_eq!(recovered[0].seq, more.len() as u64, "open {round}");
        assert_eq!(image(&recovered[0].state), image(&replay(&more)));
        block_on(store.close()).unwrap();
    }
}

/// A bad frame in the last segment with frames after it is damage, not a torn write:
/// the frames after it were flushed and acknowledged, so the store refuses to start
/// (and cuts nothing).
#[test]
fn a_damaged_frame_followed_by_others_in_the_last_segment_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let events = history(6);
    assert_eq!(
        write(dir.path(), Faults::default(), &events, 0),
        events.len()
    );
    let [segment] = &segment_files(dir.path())[..] else {
        panic!("one segment")
    };
    let path = dir.path().join("journal").join(segment);
    let sound = std::fs::read(&path).unwrap();
    // A flipped payload byte, and a length that now claims past the end of the file.
    for (at, flip) in [(20, 0xFF), (3, 0x01)] {
        let mut bytes = sound.clone();
        bytes[at] ^= flip;
        std::fs::write(&path, &bytes).unwrap();
        let err = reopen(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Malformed { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
    }
}
