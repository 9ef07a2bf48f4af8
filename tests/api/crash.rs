//! `kill -9` the real binary while writers are being acknowledged, restart it on the
//! same data directory, and find every acknowledged change.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, TestApp, TestOrg, OPERATOR};

/// The server binary running as a child process.
struct Server {
    child: Child,
    app: TestApp,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .arg("serve")
            .env("SEATKEEPER_BIND", "127.0.0.1:0")
            .env("SEATKEEPER_DATA_DIR", dir)
            .env("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)
            .env("SEATKEEPER_LOG", "info")
            // Small, so the rounds cross snapshots and journal compaction too.
            .env("SEATKEEPER_STORE__SNAPSHOT_EVERY", "100")
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

    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

/// What the writers were told was done.
#[derive(Default)]
struct Acknowledged {
    sessions: HashMap<String, String>,
    users: Vec<String>,
}

/// Writers that acquire seats and add members until the server dies under them.
async fn write_until_killed(
    server: Server,
    org: &TestOrg,
    acked: Arc<Mutex<Acknowledged>>,
    at_least: usize,
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
                    acked
                        .lock()
                        .unwrap()
                        .sessions
                        .insert(sid.to_owned(), exp.to_owned());
                    count.fetch_add(1, Ordering::Relaxed);
                }
                if i % 4 == 0 {
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
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let org = server.app.create_org("crash").await;
    server.app.floating_pool(&org, "kre", 1_000_000, 3600).await;
    let small = server.app.floating_pool(&org, "kse", 3, 3600).await;
    for m in ["a", "b", "c"] {
        assert_eq!(
            server.app.acquire(&org.owner_key, "kse", m).await.0,
            StatusCode::CREATED
        );
    }
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut server = server;
    for round in 1..=3 {
        write_until_killed(server, &org, acked.clone(), round * 150).await;
        server = Server::start(dir.path());
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
            let lost_sessions: Vec<_> = acked
                .sessions
                .iter()
                .filter(|(id, exp)| live.get(*id) != Some(*exp))
                .collect();
            assert!(
                lost_sessions.is_empty(),
                "round {round}: lost or changed leases {lost_sessions:?}"
            );
            let lost_users: Vec<_> = acked.users.iter().filter(|u| !users.contains(u)).collect();
            assert!(
                lost_users.is_empty(),
                "round {round}: lost members {lost_users:?}"
            );
            assert!(acked.sessions.len() >= round * 150);
        }

        // The cap holds across the restart: the small pool is still full.
        let (status, body) = app.acquire(&org.owner_key, "kse", "d").await;
        assert_eq!(status, StatusCode::CONFLICT, "round {round}: {body}");
        assert_eq!(app.pool(&org, &small).await["live"], 3);
    }
    server.kill_9();
}

#[tokio::test]
async fn sigterm_drains_flushes_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let org = server.app.create_org("term").await;
    server.app.floating_pool(&org, "kre", 5, 3600).await;
    let (_, lease) = server.app.acquire(&org.owner_key, "kre", "m").await;
    let Server { mut child, .. } = server;
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit on SIGTERM");

    let server = Server::start(dir.path());
    let live = server.app.all_sessions(&org).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], lease["session_id"]);
    assert_eq!(live[0]["expires_at"], lease["expires_at"]);
    server.kill_9();
}
