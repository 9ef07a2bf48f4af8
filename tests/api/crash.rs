//! `kill -9` the real binary while writers are being acknowledged, restart it on the
//! same data directory, and find every acknowledged change.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::helpers::{eventually, TestApp, TestOrg, OPERATOR};

/// The server binary running as a child process.
pub struct Server {
    child: Child,
    pub app: TestApp,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, 100, 1)
    }

    /// Starts the binary on `addr` (`127.0.0.1:0`: a free port).
    pub fn start_at(dir: &Path, addr: &str) -> Server {
        Server::start_on(dir, 100, addr, 1)
    }

    /// Starts the binary snapshotting every `snapshot_every` events (at least twice the
    /// org's size), so small values make kills land during compaction, with the org
    /// actors on `actor_threads` threads of their own (0: on the HTTP workers).
    fn start_with(dir: &Path, snapshot_every: u64, actor_threads: usize) -> Server {
        Server::start_on(dir, snapshot_every, "127.0.0.1:0", actor_threads)
    }

    fn start_on(dir: &Path, snapshot_every: u64, bind: &str, actor_threads: usize) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .arg("serve")
            .env("SEATKEEPER_BIND", bind)
            .env("SEATKEEPER_ACTOR_THREADS", actor_threads.to_string())
            .env("SEATKEEPER_DATA_DIR", dir)
            .env("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)
            .env("SEATKEEPER_LOG", "info")
            .env(
                "SEATKEEPER_STORE__SNAPSHOT_EVERY",
                snapshot_every.to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start seatkeeper");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut placed = false;
        let addr = loop {
            let line = lines
                .next()
                .expect("the server logs its address before exiting")
                .expect("read log");
            if line.contains(" serving") {
                // The placement the test asked for is the one the server runs.
                let wanted = format!("actor_threads={actor_threads}");
                assert!(line.contains(&wanted), "{wanted} in {line}");
                placed = true;
            }
            if let Some((_, rest)) = line.split_once("listening on http://") {
                assert!(placed, "the server logs its threads before it listens");
                break rest.trim().to_owned();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            app: TestApp::at(&addr),
        }
    }

    pub fn kill_9(self) {
        drop(self);
    }
}

/// A server is never left running: a test that fails mid-way still kills its child.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the writers were told was done.
#[derive(Default)]
struct Acknowledged {
    /// Granted and not released, with the latest expiry promised: live after a restart
    /// until at least then.
    sessions: HashMap<String, String>,
    /// Released, with the writer and the step at which it heard so. A release is
    /// answered before its flush; but once the same writer has had a later flushed
    /// answer, the release is durable too (one journal, in order), so it stays gone.
    released: HashMap<String, (usize, u64)>,
    /// Each writer's step of its latest flushed answer (an acquire or a new member).
    last_flushed: HashMap<usize, u64>,
    /// Every acquire acknowledged, released since or not.
    acquired: usize,
    users: Vec<String>,
}

/// Writers that acquire seats and add members until the server dies under them. With
/// `cycle`, each writer heartbeats each of its leases once it is that old, then releases
/// it: held over a second, a heartbeat's expiry is a later whole second than the
/// acquire's; held for no time, the org stays small while its journal grows.
async fn write_until_killed(
    server: Server,
    org: &TestOrg,
    acked: Arc<Mutex<Acknowledged>>,
    at_least: usize,
    cycle: Option<Duration>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (client, base, key, org_id) = (
            client.clone(),
            server.app.base.clone(),
            org.owner_key.clone(),
            org.id.clone(),
        );
        let (acked, stop, count) = (acked.clone(), stop.clone(), count.clone());
        writers.push(tokio::spawn(async move {
            // This writer's leases, oldest first, and whether each was heartbeated.
            let mut held: VecDeque<(String, Instant, bool)> = VecDeque::new();
            // Counts this writer's acknowledged requests, which it sends one at a time.
            let mut step = 0u64;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let fp = format!("w{w}-{i}-{}", uuid::Uuid::new_v4());
                let res = client
                    .post(format!("{base}/v1/sessions"))
                    .bearer_auth(&key)
                    .json(&json!({"product": "kre", "fingerprint": fp}))
                    .send()
                    .await;
                let Ok(res) = res else { return };
                if res.status() == StatusCode::CREATED {
                    let Ok(body) = res.json::<Value>().await else {
                        return;
                    };
                    let (sid, exp) = (
                        body["session_id"].as_str().unwrap(),
                        body["expires_at"].as_str().unwrap(),
                    );
                    step += 1;
                    {
                        let mut acked = acked.lock().unwrap();
                        acked.sessions.insert(sid.to_owned(), exp.to_owned());
                        acked.acquired += 1;
                        acked.last_flushed.insert(w, step);
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    if cycle.is_some() {
                        held.push_back((sid.to_owned(), Instant::now(), false));
                    }
                }
                // Each lease is heartbeated once it is over a second old (so its new
                // expiry is a later whole second than the acquire's), then released.
                match held.front().cloned() {
                    Some((old, _, true)) => {
                        held.pop_front();
                        // Unknown until answered: neither live nor released for sure.
                        acked.lock().unwrap().sessions.remove(&old);
                        let res = client
                            .delete(format!("{base}/v1/sessions/{old}"))
                            .bearer_auth(&key)
                            .send()
                            .await;
                        let Ok(res) = res else { return };
                        if res.status() == StatusCode::NO_CONTENT {
                            step += 1;
                            acked.lock().unwrap().released.insert(old, (w, step));
                        }
                    }
                    Some((sid, at, false)) if cycle.is_some_and(|hold| at.elapsed() >= hold) => {
                        let res = client
                            .post(format!("{base}/v1/sessions/{sid}/heartbeat"))
                            .bearer_auth(&key)
                            .send()
                            .await;
                        let Ok(res) = res else { return };
                        if res.status() == StatusCode::OK {
                            let Ok(body) = res.json::<Value>().await else {
                                return;
                            };
                            step += 1;
                            let exp = body["expires_at"].as_str().unwrap().to_owned();
                            let mut acked = acked.lock().unwrap();
                            let promised = acked.sessions.get_mut(&sid).unwrap();
                            *promised = exp.max(promised.clone());
                            held.front_mut().unwrap().2 = true;
                        }
                    }
                    _ => {}
                }
                if i % (if cycle.is_some() { 32 } else { 4 }) == 0 {
                    let res = client
                        .post(format!("{base}/v1/orgs/{org_id}/users"))
                        .bearer_auth(&key)
                        .json(&json!({"email": format!("{fp}@example.com")}))
                        .send()
                        .await;
                    let Ok(res) = res else { return };
                    if res.status() == StatusCode::CREATED {
                        let Ok(body) = res.json::<Value>().await else {
                            return;
                        };
                        step += 1;
                        let mut acked = acked.lock().unwrap();
                        acked.users.push(body["id"].as_str().unwrap().to_owned());
                        acked.last_flushed.insert(w, step);
                    }
                }
            }
        }));
    }
    eventually(
        "writers got acknowledgements",
        Duration::from_secs(60),
        || {
            let n = count.load(Ordering::Relaxed);
            async move { (n >= at_least).then_some(()) }
        },
    )
    .await;
    // Killed mid-stream: writers still have requests in flight.
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer task");
    }
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_change() {
    kill_9_rounds(100, 3, None, 3600, 1).await;
}

/// The same with the org actors on the HTTP workers, where each worker recovers its
/// share of the orgs as it starts.
#[tokio::test]
async fn kill_9_loses_no_acknowledged_change_with_actors_on_the_workers() {
    kill_9_rounds(100, 2, None, 3600, 0).await;
}

/// Heartbeats and releases are answered before their flush. After `kill -9` no
/// acknowledged heartbeat's expiry is broken, a release that was lost keeps its seat
/// for at most one more ttl, and no cap is exceeded.
#[tokio::test]
async fn kill_9_keeps_heartbeat_promises_and_bounds_lost_releases() {
    kill_9_rounds(100, 3, Some(Duration::from_millis(1100)), 30, 1).await;
}

/// With a tiny snapshot threshold the org is snapshotted every few dozen events, so
/// the kills land while snapshots are written and the journal behind them is deleted.
#[tokio::test]
async fn kill_9_during_compaction_loses_no_acknowledged_change() {
    let dir = kill_9_rounds(1, 4, Some(Duration::ZERO), 3600, 1).await;
    let snapshots = std::fs::read_dir(dir.path().join("snapshots")).unwrap();
    assert!(
        snapshots
            .filter_map(Result::ok)
            .any(|f| f.file_name().to_string_lossy().ends_with(".snap")),
        "the rounds crossed compaction"
    );
}

/// Rounds of writers killed mid-stream and a restart that must find every
/// acknowledged change; answers the data directory. `ttl` is the big pool's lease time.
async fn kill_9_rounds(
    snapshot_every: u64,
    rounds: usize,
    cycle: Option<Duration>,
    ttl: u32,
    actor_threads: usize,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), snapshot_every, actor_threads);
    let org = server.app.create_org("crash").await;
    server.app.floating_pool(&org, "kre", 1_000_000, ttl).await;
    let small = server.app.floating_pool(&org, "kse", 3, 3600).await;
    for m in ["a", "b", "c"] {
        assert_eq!(
            server.app.acquire(&org.owner_key, "kse", m).await.0,
            StatusCode::CREATED
        );
    }
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut server = server;
    for round in 1..=rounds {
        write_until_killed(server, &org, acked.clone(), round * 150, cycle).await;
        server = Server::start_with(dir.path(), snapshot_every, actor_threads);
        // Recovery ran before the server listened: its restart time is before this.
        let listening = time::OffsetDateTime::now_utc();
        let app = &server.app;

        let live: HashMap<String, String> = app
            .all_sessions(&org)
            .await
            .into_iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_owned(),
                    s["expires_at"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let users: Vec<String> = app
            .all(&format!("/v1/orgs/{}/users", org.id), &org.owner_key)
            .await
            .into_iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect();
        {
            let mut acked = acked.lock().unwrap();
            // Every lease promised past now is live, expiring no sooner than promised;
            // one whose promise has run out (rounds can outlast a short ttl) may be gone.
            let checked = time::OffsetDateTime::now_utc();
            let time_of = |exp: &str| time::OffsetDateTime::parse(exp, &Rfc3339).unwrap();
            let lost_sessions: Vec<_> = acked
                .sessions
                .iter()
                .filter(|(_, exp)| time_of(exp) > checked)
                .filter(|(id, exp)| live.get(*id).is_none_or(|e| time_of(e) < time_of(exp)))
                .collect();
            assert!(
                lost_sessions.is_empty(),
                "round {round}: lost or shortened leases {lost_sessions:?}"
            );
            // A release may come back only if it was its writer's last answer before the
            // kill (a later flushed answer would have flushed it too), and then for one
            // ttl after the restart at most.
            let limit = listening + time::Duration::seconds(ttl as i64 + 1);
            let back: Vec<_> = acked
                .released
                .iter()
                .filter_map(|(id, at)| live.get(id).map(|exp| (id, at, time_of(exp))))
                .filter(|(_, (w, step), exp)| {
                    acked.last_flushed.get(w).is_some_and(|f| f > step) || *exp > limit
                })
                .collect();
            assert!(
                back.is_empty(),
                "round {round}: released leases came back {back:?}"
            );
            // Steps count per round; a release that came back stays live (a lost one).
            let returned: Vec<String> = (acked.released.keys())
                .filter(|id| live.contains_key(*id))
                .cloned()
                .collect();
            for id in returned {
                acked.released.remove(&id);
            }
            acked.last_flushed.clear();
            let lost_users: Vec<_> = acked.users.iter().filter(|u| !users.contains(u)).collect();
            assert!(
                lost_users.is_empty(),
                "round {round}: lost members {lost_users:?}"
            );
            assert!(acked.acquired >= round * 150);
        }

        // The live-sessions gauge counts what recovery brought back.
        let metrics = reqwest::get(format!("{}/metrics", app.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let gauge = metrics
            .lines()
            .find_map(|l| l.strip_prefix("seatkeeper_sessions_live "))
            .map(|v| v.trim().parse::<f64>().unwrap());
        assert_eq!(
            gauge,
            Some(live.len() as f64),
            "round {round}: sessions_live"
        );

        // No pool holds more live sessions than seats.
        for pool in app
            .all(&format!("/v1/orgs/{}/pools", org.id), &org.owner_key)
            .await
        {
            assert!(pool["live"].as_u64() <= pool["seats"].as_u64(), "{pool}");
        }

        // The cap holds across the restart: the small pool is still full.
        let (status, body) = app.acquire(&org.owner_key, "kse", "d").await;
        assert_eq!(status, StatusCode::CONFLICT, "round {round}: {body}");
        assert_eq!(app.pool(&org, &small).await["live"], 3);
    }
    server.kill_9();
    dir
}

#[tokio::test]
async fn sigterm_drains_flushes_and_exits_0() {
    sigterm_drains_and_flushes(1).await;
}

#[tokio::test]
async fn sigterm_drains_flushes_and_exits_0_with_actors_on_the_workers() {
    sigterm_drains_and_flushes(0).await;
}

async fn sigterm_drains_and_flushes(actor_threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), 100, actor_threads);
    let org = server.app.create_org("term").await;
    server.app.floating_pool(&org, "kre", 5, 3600).await;
    let (_, lease) = server.app.acquire(&org.owner_key, "kre", "m").await;
    let mut server = server;
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    drop(server);
    assert_eq!(exit.code(), Some(0), "clean exit on SIGTERM");

    let server = Server::start_with(dir.path(), 100, actor_threads);
    let live = server.app.all_sessions(&org).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], lease["session_id"]);
    // At least the promised expiry: recovery gives every lease one ttl from the restart.
    let (now, promised) = (live[0]["expires_at"].as_str(), lease["expires_at"].as_str());
    assert!(now >= promised, "{now:?} < {promised:?}");
    server.kill_9();
}
