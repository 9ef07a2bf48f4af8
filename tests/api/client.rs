//! The client side, run as its users run it: the real `seatkeeper` binary beside a real
//! server.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::crash::Server;
use crate::helpers::{eventually, spawn_app, TestApp, TestOrg};

fn seatkeeper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(args)
        .output()
        .expect("run seatkeeper")
}

/// `seatkeeper verify` accepts a real lease token against the server's JWKS (by URL or
/// file) and refuses it tampered with or for another organization or product.
#[tokio::test]
async fn verify_checks_a_lease_token_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let org = app.create_org("verify").await;
    app.floating_pool(&org, "kre", 2, 60).await;
    let (status, lease) = app.acquire(&org.owner_key, "kre", "box-1").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let token = lease["token"].as_str().unwrap();
    let url = format!("{}/.well-known/jwks.json", app.base);
    let file = dir.path().join("jwks.json");
    let jwks = reqwest::get(&url).await.unwrap().text().await.unwrap();
    std::fs::write(&file, jwks).unwrap();
    let file = file.to_str().unwrap();

    for source in [url.as_str(), file] {
        let out = seatkeeper(&["verify", token, "--jwks", source, "--org", &org.id]);
        assert!(out.status.success(), "{out:?}");
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["sid"], lease["session_id"]);
        assert_eq!(claims["org"].as_str(), Some(org.id.as_str()));
    }

    // One character in the middle of the payload changed (the last one may carry only
    // padding bits).
    let mut parts: Vec<Vec<u8>> = token.split('.').map(|p| p.as_bytes().to_vec()).collect();
    let middle = parts[1].len() / 2;
    parts[1][middle] = if parts[1][middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(parts.join(&b'.')).unwrap();
    let org_id = org.id.as_str();
    for (args, why) in [
        (
            vec!["verify", tampered.as_str(), "--jwks", file, "--org", org_id],
            "signature",
        ),
        (
            vec!["verify", token, "--jwks", file, "--org", "org_other"],
            "organization",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--product",
                "kse",
            ],
            "product",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--fingerprint",
                "box-2",
            ],
            "machine",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--kind",
                "activation",
            ],
            "Activation",
        ),
    ] {
        let out = seatkeeper(&args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
    }
    // From standard input, so the token stays off the command line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(["verify", "-", "--jwks", file, "--org", org_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    // An unreadable JWKS is a usage error, not a refusal.
    let out = seatkeeper(&[
        "verify",
        token,
        "--jwks",
        "/nonexistent/jwks.json",
        "--org",
        org_id,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `seatkeeper run … -- sh -c SCRIPT`, started (not waited for), its stderr piped.
fn wrapper(app: &TestApp, key: &str, extra: &[&str], script: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(["run", "--server", &app.base, "--product", "kre"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env("SEATKEEPER_KEY", key)
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("start seatkeeper run")
}

/// Waits until the pool shows `want` (live, waiting).
async fn until_live(app: &TestApp, org: &TestOrg, pool: &str, want: (u64, u64), what: &str) {
    eventually(what, Duration::from_secs(10), || async {
        (live(app, org, pool).await == want).then_some(())
    })
    .await;
}

/// The wrapper's exit, which must come within 20 s (a hang fails the test).
async fn waited(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the wrapper exits")
        .unwrap()
}

async fn live(app: &TestApp, org: &TestOrg, pool: &str) -> (u64, u64) {
    let p = app.pool(org, pool).await;
    (p["live"].as_u64().unwrap(), p["waiting"].as_u64().unwrap())
}

/// The wrapper holds exactly one seat while its command runs, gives it back when the
/// command exits, and exits with the command's status; its own failures have their
/// own codes.
#[tokio::test]
async fn run_holds_one_seat_while_the_command_runs() {
    let app = spawn_app().await;
    let org = app.create_org("wrapper").await;
    let pool = app.floating_pool(&org, "kre", 2, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.02; done; test -n \"$SEATKEEPER_TOKEN\" && test -s \"$SEATKEEPER_TOKEN_FILE\" && test -z \"$SEATKEEPER_KEY\" && exit 3",
        go = go.display()
    );
    let mut child = wrapper(&app, &org.owner_key, &["--fingerprint", "box-1"], &script);
    until_live(&app, &org, &pool, (1, 0), "one seat held").await;
    std::fs::write(&go, "").unwrap();
    let status = waited(&mut child).await;
    assert_eq!(status.code(), Some(3));
    assert_eq!(live(&app, &org, &pool).await, (0, 0), "released on exit");

    // The wrapper's own failures.
    let quick = |key: &str, product: &str| {
        let out = seatkeeper(&[
            "run",
            "--server",
            &app.base,
            "--key",
            key,
            "--product",
            product,
            "--fingerprint",
            "box-9",
            "--",
            "true",
        ]);
        out.status.code()
    };
    assert_eq!(quick("sk_bad_key", "kre"), Some(78), "bad key");
    assert_eq!(quick(&org.owner_key, "kse"), Some(77), "not entitled");
    let full = app.floating_pool(&org, "tiny", 1, 60).await;
    let (status, _) = app.acquire(&org.owner_key, "tiny", "holder").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(quick(&org.owner_key, "tiny"), Some(75), "no seat free");
    assert_eq!(live(&app, &org, &full).await, (1, 0));
    let out = seatkeeper(&[
        "run",
        "--server",
        "http://127.0.0.1:9",
        "--key",
        "k",
        "--product",
        "kre",
        "--fingerprint",
        "f",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(69), "unreachable");
}

/// Two wrappers on a one-seat pool with --wait: the second runs its command only once
/// the first has finished.
#[tokio::test]
async fn two_wrappers_on_one_seat_take_turns() {
    let app = spawn_app().await;
    let org = app.create_org("turns").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let (go, second_ran) = (dir.path().join("go"), dir.path().join("second"));
    let first_script = format!("while [ ! -e {} ]; do sleep 0.02; done", go.display());
    let mut first = wrapper(&app, &org.owner_key, &["--fingerprint", "a"], &first_script);
    until_live(&app, &org, &pool, (1, 0), "the first holds the seat").await;
    let second_script = format!("touch {}", second_ran.display());
    let extra = ["--fingerprint", "b", "--wait", "30s"];
    let mut second = wrapper(&app, &org.owner_key, &extra, &second_script);
    until_live(&app, &org, &pool, (1, 1), "the second queues").await;
    assert!(!second_ran.exists(), "the second ran without a seat");
    std::fs::write(&go, "").unwrap();
    assert!(waited(&mut first).await.success());
    assert!(waited(&mut second).await.success());
    assert!(second_ran.exists());
    assert_eq!(live(&app, &org, &pool).await, (0, 0));
}

/// A wrapper killed with -9 cannot release: its seat frees at the lease's expiry.
#[tokio::test]
async fn a_killed_wrapper_frees_its_seat_within_the_ttl() {
    let app = spawn_app().await;
    let org = app.create_org("killed").await;
    let pool = app.floating_pool(&org, "kre", 1, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (gone, ready) = (dir.path().join("gone"), dir.path().join("ready"));
    let script = format!(
        "trap 'touch {}; exit 0' TERM; touch {}; while :; do sleep 0.02; done",
        gone.display(),
        ready.display()
    );
    let mut child = wrapper(&app, &org.owner_key, &["--fingerprint", "k"], &script);
    until_live(&app, &org, &pool, (1, 0), "the seat is held").await;
    // The seat is held before the command starts: kill the wrapper only once it runs.
    eventually("the command runs", Duration::from_secs(10), || async {
        ready.exists().then_some(())
    })
    .await;
    let group = child.id().unwrap() as i32;
    child.start_kill().unwrap();
    waited(&mut child).await;
    let killed = std::time::Instant::now();
    until_live(&app, &org, &pool, (0, 0), "the seat frees").await;
    // The lease's expiry is rounded up to a whole second; the rest is slack for a
    // loaded machine.
    assert!(
        killed.elapsed() < Duration::from_secs(2 + 3),
        "within the ttl"
    );
    // The command does not run on without a seat: the kernel stops it.
    eventually(
        "the command is stopped",
        Duration::from_secs(10),
        || async { gone.exists().then_some(()) },
    )
    .await;
    unsafe { libc::killpg(group, libc::SIGKILL) };
}

/// SIGTERM to the wrapper reaches the command; the wrapper then releases and exits
/// with the command's status.
#[tokio::test]
async fn the_wrapper_forwards_sigterm_to_the_command() {
    let app = spawn_app().await;
    let org = app.create_org("signals").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while :; do sleep 0.02; done",
        ready.display()
    );
    let mut child = wrapper(&app, &org.owner_key, &["--fingerprint", "s"], &script);
    eventually("the command runs", Duration::from_secs(10), || async {
        ready.exists().then_some(())
    })
    .await;
    assert_eq!(live(&app, &org, &pool).await, (1, 0));
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    assert_eq!(waited(&mut child).await.code(), Some(42));
    assert_eq!(live(&app, &org, &pool).await, (0, 0));
}

/// `seatkeeper status` lists the pools with their counts and who holds each live
/// session; a key without the admin scope is refused.
#[tokio::test]
async fn status_shows_pools_and_who_holds_the_seats() {
    let app = spawn_app().await;
    let org = app.create_org("status").await;
    let pool = app.floating_pool(&org, "kre", 3, 60).await;
    for fp in ["desk-1", "desk-2"] {
        assert_eq!(
            app.acquire(&org.owner_key, "kre", fp).await.0,
            StatusCode::CREATED
        );
    }
    let (_, owner) = app
        .get(
            &format!("/v1/orgs/{}/users/{}", org.id, org.owner_id),
            &org.owner_key,
        )
        .await;
    let out = seatkeeper(&[
        "status",
        "--server",
        &app.base,
        "--key",
        &org.owner_key,
        "--org",
        &org.id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(&pool))
        .expect("the pool's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[1..7],
        ["kre", "floating", "3", "0", "2", "2"],
        "{text}"
    );
    assert!(text.contains(&format!("{pool} (kre): 2 in use")), "{text}");
    let email = owner["email"].as_str().unwrap();
    for fp in ["desk-1", "desk-2"] {
        assert!(
            text.lines().any(|l| l.contains(email) && l.contains(fp)),
            "{fp}: {text}"
        );
    }
    let (_, runtime) = app.member_with_key(&org, &["sessions"]).await;
    let out = seatkeeper(&[
        "status", "--server", &app.base, "--key", &runtime, "--org", &org.id,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
}

/// An admin ends the wrapper's session and another client takes the seat: its next
/// heartbeat hears so, no seat is free to take again, it says the seat is lost and
/// stops the command (the default), and exits with the command's status.
#[tokio::test]
async fn a_lost_lease_stops_the_command() {
    let app = spawn_app().await;
    let org = app.create_org("lost").await;
    app.floating_pool(&org, "kre", 1, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while :; do sleep 0.02; done",
        ready.display()
    );
    let child = wrapper(&app, &org.owner_key, &["--fingerprint", "l"], &script);
    eventually("the command runs", Duration::from_secs(10), || async {
        ready.exists().then_some(())
    })
    .await;
    let sessions = app.all_sessions(&org).await;
    let id = sessions[0]["id"].as_str().unwrap();
    let (status, body) = app
        .delete(
            &format!("/v1/orgs/{}/sessions/{id}", org.id),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Someone else takes the freed seat before the wrapper's next heartbeat, so it
    // cannot take a new lease (as it would with the seat still free).
    let (status, body) = app.acquire(&org.owner_key, "kre", "other").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("the wrapper stops within a heartbeat interval or two")
        .unwrap();
    assert_eq!(out.status.code(), Some(42));
    assert!(String::from_utf8_lossy(&out.stderr).contains("seat is lost"));
}

/// The server goes away (kill -9) while the wrapper runs: its heartbeats fail and are
/// retried until the server is back on the same address, the seat is kept (recovery
/// extends every lease by a ttl), and the command runs on undisturbed.
#[tokio::test]
async fn the_wrapper_rides_out_a_server_restart() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let addr = server.app.base.trim_start_matches("http://").to_owned();
    let org = server.app.create_org("restart").await;
    let pool = server.app.floating_pool(&org, "kre", 1, 6).await;
    let work = tempfile::tempdir().unwrap();
    let (ready, go) = (work.path().join("ready"), work.path().join("go"));
    let script = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.02; done",
        ready.display(),
        go.display()
    );
    let mut child = wrapper(
        &server.app,
        &org.owner_key,
        &["--fingerprint", "r"],
        &script,
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    eventually("the command runs", Duration::from_secs(10), || async {
        ready.exists().then_some(())
    })
    .await;
    server.kill_9();
    let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
        .await
        .expect("a failed heartbeat within an interval")
        .unwrap()
        .unwrap();
    assert!(line.contains("heartbeat failed"), "{line}");
    let server = Server::start_at(data.path(), &addr);
    let (app, org) = (&server.app, &org);
    // A heartbeat got through again: the lease's expiry moved past the one recovery set.
    let recovered = app.all_sessions(org).await[0]["expires_at"].clone();
    eventually(
        "a heartbeat after the restart",
        Duration::from_secs(15),
        || async { (app.all_sessions(org).await[0]["expires_at"] != recovered).then_some(()) },
    )
    .await;
    std::fs::write(&go, "").unwrap();
    let status = waited(&mut child).await;
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push_str(&line);
    }
    assert!(!rest.contains("lost"), "{rest}");
    let p = app.pool(org, &pool).await;
    assert_eq!((&p["live"], &p["waiting"]), (&json!(0), &json!(0)));
}
