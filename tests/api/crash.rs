//! `kill -9` the real binary while writers are being acknowledged, restart it on the
//! same data directory, and find every acknowledged change.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::helpers::{eventually, TestApp, TestOrg, OPERATOR};

/// The server binary running as a child process.
struct Server {
    child: Child,
    app: TestApp,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Server::start_with(dir, 100)
    }

    /// Starts the binary snapshotting every `snapshot_every` events (at least twice the
    /// org's size), so small values make kills land during compaction.
    fn start_with(dir: &Path, snapshot_every: u64) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .arg("serve")
            .env("SEATKEEPER_BIND", "127.0.0.1:0")
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
        let addr = loop {
            let line = lines
                .next()
                .expect("the server logs its address before exiting")
                .expect("read log");
            if let Some((_, rest)) = line.split_once("listening on http://") {
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

    fn kill_9(self) {
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
    /// Granted and not released: live after a restart, with the same expiry.
    sessions: HashMap<String, String>,
    /// Released: gone after a restart.
    released: HashSet<String>,
    /// Every acquire acknowledged, released since or not.
    acquired: usize,
    users: Vec<String>,
}

/// Writers that acquire seats and add members until the server dies under them. With
/// `cycle`, each writer heartbeats each new lease and releases its previous one, so
/// the org stays small while its journal grows.
async fn write_until_killed(
    server: Server,
    org: &TestOrg,
    acked: Arc<Mutex<Acknowledged>>,
    at_least: usize,
    cycle: bool,
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
            let mut previous: Option<String> = None;
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
                    {
                        let mut acked = acked.lock().unwrap();
                        acked.sessions.insert(sid.to_owned(), exp.to_owned());
                        acked.acquired += 1;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    if cycle {
                        // A heartbeat is answered before its flush; its promise must hold.
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
                            let exp = body["expires_at"].as_str().unwrap().to_owned();
                            let mut acked = acked.lock().unwrap();
                            let promised = acked.sessions.get_mut(sid).unwrap();
                            *promised = exp.max(promised.clone());
                        }
                        if let Some(old) = previous.replace(sid.to_owned()) {
                            // Unknown until answered: neither live nor released for sure.
                            acked.lock().unwrap().sessions.remove(&old);
                            let res = client
                                .delete(format!("{base}/v1/sessions/{old}"))
                                .bearer_auth(&key)
                                .send()
                                .await;
                            let Ok(res) = res else { return };
                            if res.status() == StatusCode::NO_CONTENT {
                                acked.lock().unwrap().released.insert(old);
                            }
                        }
                    }
                }
                if i % (if cycle { 32 } else { 4 }) == 0 {
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
                        acked
                            .lock()
                            .unwrap()
                            .users
                            .push(body["id"].as_str().unwrap().to_owned());
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
    kill_9_rounds(100, 3, false, 3600).await;
}

/// Heartbeats and releases are answered before their flush. After `kill -9` no
/// acknowledged heartbeat's expiry is broken, a release that was lost keeps its seat
/// for at most one more ttl, and no cap is exceeded.
#[tokio::test]
async fn kill_9_keeps_heartbeat_promises_and_bounds_lost_releases() {
    kill_9_rounds(100, 3, true, 30).await;
}

/// With a tiny snapshot threshold the org is snapshotted every few dozen events, so
/// the kills land while snapshots are written and the journal behind them is deleted.
#[tokio::test]
async fn kill_9_during_compaction_loses_no_acknowledged_change() {
    let dir = kill_9_rounds(1, 4, true, 3600).await;
    let db = sled::open(dir.path().join("store")).unwrap();
    let snapshots = db.open_tree("snapshots").unwrap();
    assert!(!snapshots.is_empty(), "the rounds crossed compaction");
}

/// Rounds of writers killed mid-stream and a restart that must find every
/// acknowledged change; answers the data directory. `ttl` is the big pool's lease time.
async fn kill_9_rounds(
    snapshot_every: u64,
    rounds: usize,
    cycle: bool,
    ttl: u32,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), snapshot_every);
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
        server = Server::start_with(dir.path(), snapshot_every);
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
            let acked = acked.lock().unwrap();
            // Live, and expiring no sooner than promised (whole-second RFC 3339 strings
            // compare as times).
            let lost_sessions: Vec<_> = acked
                .sessions
                .iter()
                .filter(|(id, exp)| live.get(*id).is_none_or(|e| e < *exp))
                .collect();
            assert!(
                lost_sessions.is_empty(),
                "round {round}: lost or changed leases {lost_sessions:?}"
            );
            // A release lost with the crash keeps its seat one ttl after the restart at most.
            let limit = listening + time::Duration::seconds(ttl as i64 + 1);
            let held_too_long: Vec<_> = acked
                .released
                .iter()
                .filter_map(|id| live.get(id).map(|exp| (id, exp)))
                .filter(|(_, exp)| time::OffsetDateTime::parse(exp, &Rfc3339).unwrap() > limit)
                .collect();
            assert!(
                held_too_long.is_empty(),
                "round {round}: released leases held past one ttl: {held_too_long:?}"
            );
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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
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

    let server = Server::start(dir.path());
    let live = server.app.all_sessions(&org).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], lease["session_id"]);
    // At least the promised expiry: recovery gives every lease one ttl from the restart.
    let (now, promised) = (live[0]["expires_at"].as_str(), lease["expires_at"].as_str());
    assert!(now >= promised, "{now:?} < {promised:?}");
    server.kill_9();
}
