//! The hardening issue's defects, seen from the outside: bounded input and queues,
//! waiters that left or lost their key, compressed bodies, private data, the owner's
//! keys, and tokens valid when issued.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp, TestOrg, OPERATOR};

/// The id of the key a secret `sk_<suffix>_<random>` belongs to.
fn key_id(secret: &str) -> String {
    let suffix = secret.split('_').nth(1).unwrap();
    format!("key_{suffix}")
}

/// Waits until the pool shows `n` queued acquires.
async fn waiting(app: &TestApp, org: &TestOrg, pool: &str, n: u64) {
    eventually("queued acquires", Duration::from_secs(10), || async {
        (app.pool(org, pool).await["waiting"] == n).then_some(())
    })
    .await;
}

/// Starts an acquire that queues for up to 30 s; answers its eventual status.
fn queue(app: &TestApp, key: &str, fingerprint: &str) -> tokio::task::JoinHandle<StatusCode> {
    let (url, key) = (format!("{}/v1/sessions", app.base), key.to_owned());
    let body = json!({"product": "kre", "wait_seconds": 30, "fingerprint": fingerprint});
    tokio::spawn(async move {
        let res = reqwest::Client::new()
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        res.status()
    })
}

/// Defect 8: fresh tokens are valid now to a strict verifier: `iat` is never later
/// than the moment the client holds the token.
#[tokio::test]
async fn lease_tokens_are_valid_when_issued() {
    let app = spawn_app().await;
    let org = app.create_org("iat").await;
    app.floating_pool(&org, "kre", 100, 60).await;
    let jwks = app.jwks().await;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_issuer(&["seatkeeper"]);
    for i in 0..20 {
        let (status, lease) = app.acquire(&org.owner_key, "kre", &format!("m{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "{lease}");
        let received = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let token = lease["token"].as_str().unwrap();
        let kid = decode_header(token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let claims = decode::<Value>(token, &key, &validation).unwrap().claims;
        let iat = claims["iat"].as_i64().unwrap();
        assert!(iat <= received, "token {i}: iat {iat} is after {received}");
        let (_, heartbeat) = app
            .heartbeat(&org.owner_key, lease["session_id"].as_str().unwrap())
            .await;
        let token = heartbeat["token"].as_str().unwrap();
        let claims = decode::<Value>(token, &key, &validation).unwrap().claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(claims["iat"].as_i64().unwrap() <= now);
    }
}

/// Defect 4: `meta` is a small flat object; anything else answers 422 and takes no seat.
#[tokio::test]
async fn meta_is_small_and_flat() {
    let app = spawn_app().await;
    let org = app.create_org("meta").await;
    let pool = app.floating_pool(&org, "kre", 5, 60).await;
    for meta in [
        json!({"nested": {"deep": true}}),
        json!({"list": [1, 2]}),
        json!("text"),
        json!({"big": "x".repeat(1100)}),
    ] {
        let (status, body) = app
            .post(
                "/v1/sessions",
                &org.owner_key,
                json!({"product": "kre", "meta": meta}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "meta");
    }
    assert_eq!(app.pool(&org, &pool).await["live"], 0);
    let (status, body) = app
        .post(
            "/v1/sessions",
            &org.owner_key,
            json!({"product": "kre", "meta": {"host": "ci-7", "build": 42}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Defect 4: queued acquires are limited per key and per organization (429 with
/// Retry-After), and waiting is answered once the limit frees.
#[tokio::test]
async fn waiting_is_limited_per_key_and_per_org() {
    let app = spawn_app_with(|c| {
        c.sessions.max_waiters_per_key = 2;
        c.sessions.max_waiters_per_org = 3;
    })
    .await;
    let org = app.create_org("limits").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let (_, held) = app.acquire(&org.owner_key, "kre", "holder").await;
    let (_, other) = app.member_with_key(&org, &["sessions"]).await;
    let a = queue(&app, &org.owner_key, "w1");
    waiting(&app, &org, &pool, 1).await;
    let b = queue(&app, &org.owner_key, "w2");
    waiting(&app, &org, &pool, 2).await;
    let over = json!({"product": "kre", "wait_seconds": 30});
    let res = reqwest::Client::new()
        .post(format!("{}/v1/sessions", app.base))
        .bearer_auth(&org.owner_key)
        .json(&over)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after"].as_u64().unwrap() >= 1);
    // Another key may still queue, up to the organization's limit.
    let c = queue(&app, &other, "w3");
    waiting(&app, &org, &pool, 3).await;
    let (status, body) = app.post("/v1/sessions", &other, over.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // A seat that frees goes to the first waiter.
    app.release(&org.owner_key, held["session_id"].as_str().unwrap())
        .await;
    assert_eq!(a.await.unwrap(), StatusCode::CREATED);
    waiting(&app, &org, &pool, 2).await;
    b.abort();
    c.abort();
}

/// Defect 4: a waiter whose client gave up is never handed a seat, neither by a
/// release nor by a pool growing.
#[tokio::test]
async fn a_waiter_whose_client_left_gets_no_seat() {
    let app = spawn_app().await;
    let org = app.create_org("ghosts").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let (_, held) = app.acquire(&org.owner_key, "kre", "holder").await;
    for ghost in ["ghost-A", "ghost-B"] {
        let mut conn = std::net::TcpStream::connect(app.addr()).unwrap();
        crate::helpers::send_queued_acquire(&mut conn, &org.owner_key, ghost);
        waiting(&app, &org, &pool, 1).await;
        // The client gives up, like `curl -m 2`.
        drop(conn);
        if ghost == "ghost-A" {
            let (status, _) = app
                .release(&org.owner_key, held["session_id"].as_str().unwrap())
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        } else {
            let (status, body) = app
                .call(
                    reqwest::Method::PATCH,
                    &format!("/v1/orgs/{}/pools/{pool}", org.id),
                    Some(&org.owner_key),
                    Some(json!({"seats": 2})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let live = app.all_sessions(&org).await;
        assert!(
            live.iter()
                .all(|s| !s["fingerprint"].as_str().unwrap_or("").starts_with("ghost")),
            "a ghost got a seat: {live:?}"
        );
        assert_eq!(app.pool(&org, &pool).await["waiting"], 0);
        // The seat is there for the next client that is.
        let (status, body) = app
            .acquire(&org.owner_key, "kre", &format!("after-{ghost}"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Defect 4 and 7: a waiter whose key is revoked is answered 401 and gets no seat.
#[tokio::test]
async fn a_waiter_whose_key_is_revoked_gets_no_seat() {
    let app = spawn_app().await;
    let org = app.create_org("revoked-waiter").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let (_, held) = app.acquire(&org.owner_key, "kre", "holder").await;
    let (_, key) = app.member_with_key(&org, &["sessions"]).await;
    let waiter = queue(&app, &key, "doomed");
    waiting(&app, &org, &pool, 1).await;
    let (status, _) = app
        .delete(
            &format!("/v1/orgs/{}/api-keys/{}", org.id, key_id(&key)),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(waiter.await.unwrap(), StatusCode::UNAUTHORIZED);
    app.release(&org.owner_key, held["session_id"].as_str().unwrap())
        .await;
    assert_eq!(app.pool(&org, &pool).await["live"], 0);
}

/// The peak memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Defect 5: a small gzip body that would inflate far past the limit is refused
/// without being inflated.
#[tokio::test]
async fn compressed_bodies_are_refused_without_inflating() {
    let app = spawn_app().await;
    let org = app.create_org("gzip").await;
    let pool = app.floating_pool(&org, "kre", 5, 60).await;
    // 60 MiB of JSON, compressed in small pieces so the test itself never holds it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"{\"product\":\"kre\",\"fingerprint\":\"gz\"")
        .unwrap();
    let spaces = [b' '; 64 * 1024];
    for _ in 0..960 {
        gz.write_all(&spaces).unwrap();
    }
    gz.write_all(b"}").unwrap();
    let body = gz.finish().unwrap();
    assert!(body.len() < 64 * 1024, "the compressed body is small");
    let before = peak_rss_kib();
    let res = reqwest::Client::new()
        .post(format!("{}/v1/sessions", app.base))
        .bearer_auth(&org.owner_key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "bad_request");
    // VmHWM is read from per-CPU counters that Linux sums approximately, so a later
    // read can come out a little lower than an earlier one.
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 30, "peak memory grew by {grown_mib} MiB");
    assert_eq!(app.pool(&org, &pool).await["live"], 0);
}

/// Every file and directory under `dir` is closed to group and others.
fn assert_private(dir: &Path) {
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{} is {:o}", dir.display(), mode & 0o777);
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            assert_private(&entry.unwrap().path());
        }
    }
}

/// Defect 6: the data directory and everything in it are private, also when it existed
/// before with open permissions, and an empty token file is replaced, not fatal.
#[tokio::test]
async fn the_data_dir_is_private_and_a_bad_token_file_is_replaced() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_file = dir.join("operator_token");
    std::fs::write(&token_file, "").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = spawn_app_with(|c| {
        c.data_dir = dir.clone();
        c.operator_token = None;
    })
    .await;
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.len() >= 32, "a new token was generated");
    let (status, body) = app
        .post(
            "/v1/orgs",
            token,
            json!({"name": "private", "owner_email": "o@private.io"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_private(&dir);
}

/// Defect 6: a configured operator token shorter than 32 characters is refused at
/// start, without echoing it.
#[test]
fn a_short_operator_token_is_refused_without_echo() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .arg("serve")
        .env("SEATKEEPER_BIND", "127.0.0.1:0")
        .env("SEATKEEPER_DATA_DIR", data.path())
        .env("SEATKEEPER_OPERATOR_TOKEN", "short-but-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("at least 32 characters"), "{said}");
    assert!(
        !said.contains("short-but-secret"),
        "the token was echoed: {said}"
    );
    assert!(OPERATOR.len() >= 32);
}

/// Defect 7: administrators manage keys below the owner, never the owner's; the
/// owner's last admin key stays; revoking a key ends the leases taken with it.
#[tokio::test]
async fn only_the_owner_manages_the_owners_keys() {
    let app = spawn_app().await;
    let org = app.create_org("owner-keys").await;
    let pool = app.floating_pool(&org, "kre", 5, 60).await;
    let (status, admin) = app
        .post(
            &format!("/v1/orgs/{}/users", org.id),
            &org.owner_key,
            json!({"email": "admin@owner-keys.io", "tenant_roles": ["administrator"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let (status, admin_key) = app
        .post(
            &format!(
                "/v1/orgs/{}/users/{}/api-keys",
                org.id,
                admin["id"].as_str().unwrap()
            ),
            &org.owner_key,
            json!({"name": "admin", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin_key}");
    let admin_key = admin_key["key"].as_str().unwrap();
    let owner_keys = format!("/v1/orgs/{}/users/{}/api-keys", org.id, org.owner_id);
    let (status, body) = app
        .post(
            &owner_keys,
            admin_key,
            json!({"name": "mine now", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let owner_key_path = format!("/v1/orgs/{}/api-keys/{}", org.id, key_id(&org.owner_key));
    let (status, body) = app.delete(&owner_key_path, admin_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app.delete(&owner_key_path, &org.owner_key).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the owner's last admin key: {body}"
    );
    assert_eq!(app.get(&owner_keys, &org.owner_key).await.0, StatusCode::OK);

    // An administrator revokes a member's key, and the member's lease ends with it.
    let (_, member_key) = app.member_with_key(&org, &["sessions"]).await;
    let (status, _) = app.acquire(&member_key, "kre", "agent").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .delete(
            &format!("/v1/orgs/{}/api-keys/{}", org.id, key_id(&member_key)),
            admin_key,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.pool(&org, &pool).await["live"], 0);
    let (status, _) = app.acquire(&member_key, "kre", "agent").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Defect 6: a link planted in the data directory (while it was open to others) is
/// refused at start, so nobody can choose or read the server's secrets through it.
#[test]
fn a_link_planted_in_the_data_dir_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let elsewhere = data.path().join("elsewhere");
    std::fs::write(&elsewhere, "op_chosen_by_someone_else_0123456789abcdef").unwrap();
    let dir = data.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("operator_token")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .arg("serve")
        .env("SEATKEEPER_BIND", "127.0.0.1:0")
        .env("SEATKEEPER_DATA_DIR", &dir)
        .env_remove("SEATKEEPER_OPERATOR_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("symbolic link"), "{said}");
}
