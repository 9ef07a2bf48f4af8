//! The runtime routes: acquire, heartbeat, release, waiting, expiry, tokens.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

#[tokio::test]
async fn concurrent_acquires_never_exceed_the_cap() {
    // By default the org actors run on a thread of their own.
    cap_holds_under_a_race(&spawn_app().await).await;
}

#[tokio::test]
async fn concurrent_acquires_never_exceed_the_cap_with_actors_on_the_http_workers() {
    // The org created first lives on one worker and the requests arrive on both.
    cap_holds_under_a_race(&spawn_app_with(|c| c.actor_threads = 0).await).await;
}

async fn cap_holds_under_a_race(app: &TestApp) {
    let org = app.create_org("race").await;
    let pool = app.floating_pool(&org, "kre", 5, 60).await;

    let attempts = (0..120).map(|i| {
        let key = org.owner_key.clone();
        async move { app.acquire(&key, "kre", &format!("machine-{i}")).await }
    });
    let answers = join_all(attempts).await;

    let granted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(granted.len(), 5, "exactly the seats are granted");
    assert_eq!(refused.len(), 115, "every other acquire is refused");
    for body in refused {
        assert_eq!(body["error"], "seat_cap_reached");
        assert!(body["retry_after"].as_u64().unwrap() >= 1, "{body}");
    }
    let ids: HashSet<&str> = granted
        .iter()
        .map(|b| b["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(app.pool(&org, &pool).await["live"], 5);
    assert_eq!(app.all_sessions(&org).await.len(), 5);
}

#[tokio::test]
async fn acquire_is_idempotent_per_machine() {
    let app = spawn_app().await;
    let org = app.create_org("idem").await;
    let pool = app.floating_pool(&org, "kre", 3, 60).await;

    let (s1, first) = app.acquire(&org.owner_key, "kre", "laptop").await;
    assert_eq!(s1, StatusCode::CREATED, "{first}");
    let (s2, again) = app.acquire(&org.owner_key, "kre", "laptop").await;
    assert_eq!(s2, StatusCode::OK, "a repeat finds the live lease: {again}");
    assert_eq!(again["session_id"], first["session_id"]);
    assert_eq!(app.pool(&org, &pool).await["live"], 1);

    // Many at once for one new machine: one lease, one 201, the rest 200.
    let answers = join_all((0..20).map(|_| app.acquire(&org.owner_key, "kre", "desktop"))).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let ids: HashSet<String> = answers
        .iter()
        .map(|(s, b)| {
            assert!(s.is_success(), "{b}");
            b["session_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(app.pool(&org, &pool).await["live"], 2);

    // Another member with the same fingerprint holds a seat of their own.
    let (_, other) = app.member_with_key(&org, &["sessions"]).await;
    let (s3, theirs) = app.acquire(&other, "kre", "laptop").await;
    assert_eq!(s3, StatusCode::CREATED);
    assert_ne!(theirs["session_id"], first["session_id"]);
}

#[tokio::test]
async fn heartbeat_extends_and_release_ends() {
    let app = spawn_app().await;
    let org = app.create_org("hb").await;
    let pool = app.floating_pool(&org, "kre", 1, 30).await;
    let (status, lease) = app.acquire(&org.owner_key, "kre", "m").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(lease["heartbeat_interval_seconds"], 10);
    let id = lease["session_id"].as_str().unwrap();

    let (status, beat) = app.heartbeat(&org.owner_key, id).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert!(beat["expires_at"].as_str().unwrap() >= lease["expires_at"].as_str().unwrap());
    assert!(beat["token"].as_str().unwrap().split('.').count() == 3);

    let (status, _) = app.release(&org.owner_key, id).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.pool(&org, &pool).await["live"], 0);
    let (status, body) = app.heartbeat(&org.owner_key, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "session_not_found");
    let (status, _) = app.release(&org.owner_key, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The seat is free again.
    assert_eq!(
        app.acquire(&org.owner_key, "kre", "m2").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn sessions_belong_to_their_member() {
    let app = spawn_app().await;
    let org = app.create_org("own").await;
    app.floating_pool(&org, "kre", 2, 60).await;
    let (_, alice) = app.member_with_key(&org, &["sessions"]).await;
    let (_, lease) = app.acquire(&alice, "kre", "a").await;
    let id = lease["session_id"].as_str().unwrap();

    // The owner's key is another member's: their runtime routes do not see the lease.
    let (status, body) = app.heartbeat(&org.owner_key, id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    assert_eq!(
        app.release(&org.owner_key, id).await.0,
        StatusCode::NOT_FOUND
    );

    // An admin ends it through the organization's route.
    let (status, _) = app
        .delete(
            &format!("/v1/orgs/{}/sessions/{id}", org.id),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.heartbeat(&alice, id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_waiting_acquire_is_granted_when_a_seat_frees_in_fifo_order() {
    let app = spawn_app().await;
    let org = app.create_org("wait").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let (_, held) = app.acquire(&org.owner_key, "kre", "holder").await;

    let first = app.post(
        "/v1/sessions",
        &org.owner_key,
        json!({"product": "kre", "fingerprint": "first", "wait_seconds": 30}),
    );
    let second = async {
        // Queue behind `first`.
        eventually("first waiter queued", Duration::from_secs(10), || async {
            (app.pool(&org, &pool).await["waiting"] == 1).then_some(())
        })
        .await;
        let second = app.post(
            "/v1/sessions",
            &org.owner_key,
            json!({"product": "kre", "fingerprint": "second", "wait_seconds": 30}),
        );
        let release = async {
            eventually("second waiter queued", Duration::from_secs(10), || async {
                (app.pool(&org, &pool).await["waiting"] == 2).then_some(())
            })
            .await;
            let id = held["session_id"].as_str().unwrap();
            app.release(&org.owner_key, id).await
        };
        let (second, released) = tokio::join!(second, release);
        assert_eq!(released.0, StatusCode::NO_CONTENT);
        second
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(
        first.0,
        StatusCode::CREATED,
        "the first waiter gets the freed seat: {}",
        first.1
    );
    assert_eq!(second.0, StatusCode::CONFLICT, "{}", second.1);
    assert_eq!(second.1["error"], "seat_cap_reached");
}

#[tokio::test]
async fn a_waiting_acquire_times_out_like_a_full_pool() {
    let app = spawn_app().await;
    let org = app.create_org("timeout").await;
    app.floating_pool(&org, "kre", 1, 60).await;
    app.acquire(&org.owner_key, "kre", "holder").await;
    let started = Instant::now();
    let (status, body) = app
        .post(
            "/v1/sessions",
            &org.owner_key,
            json!({"product": "kre", "fingerprint": "w", "wait_seconds": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "seat_cap_reached");
    assert!(body["retry_after"].as_u64().is_some());
    assert!(started.elapsed() >= Duration::from_millis(950), "it waited");
}

#[tokio::test]
async fn an_unrenewed_lease_expires_and_frees_its_seat() {
    let app = spawn_app().await;
    let org = app.create_org("expiry").await;
    let pool = app.floating_pool(&org, "kre", 1, 1).await;
    let (status, lease) = app.acquire(&org.owner_key, "kre", "a").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.acquire(&org.owner_key, "kre", "b").await.0,
        StatusCode::CONFLICT
    );

    eventually("the lease expires", Duration::from_secs(10), || async {
        (app.pool(&org, &pool).await["live"] == 0).then_some(())
    })
    .await;
    let id = lease["session_id"].as_str().unwrap();
    let (status, body) = app.heartbeat(&org.owner_key, id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    assert_eq!(
        app.acquire(&org.owner_key, "kre", "b").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn lease_tokens_verify_against_the_jwks() {
    let app = spawn_app().await;
    let org = app.create_org("jwt").await;
    app.floating_pool(&org, "kre", 1, 60).await;
    let (_, lease) = app.acquire(&org.owner_key, "kre", "fp-1").await;
    let token = lease["token"].as_str().unwrap();

    let jwks = app.jwks().await;
    let kid = decode_header(token).unwrap().kid.expect("kid in header");
    let jwk = jwks.find(&kid).expect("kid in the JWKS");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["seatkeeper"]);
    let claims = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], org.owner_id.as_str());
    assert_eq!(claims["org"], org.id.as_str());
    assert_eq!(claims["product"], "kre");
    assert_eq!(claims["sid"], lease["session_id"]);
    assert_eq!(claims["fp"], "fp-1");
    // `exp` is the lease's whole-second expiry; `iat` the signing time, never later.
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((60..=61).contains(&lifetime), "{lifetime}");

    // A token altered by one character does not verify.
    let mut forged = token.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(decode::<Value>(&forged, &DecodingKey::from_jwk(jwk).unwrap(), &validation).is_err());
}

#[tokio::test]
async fn entitlement_decides_who_may_run() {
    let app = spawn_app().await;
    let org = app.create_org("entitled").await;
    let (status, body) = app.acquire(&org.owner_key, "kre", "x").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled")),
        "no pool"
    );

    let (alice_id, alice) = app.member_with_key(&org, &["sessions"]).await;
    let (_, bob) = app.member_with_key(&org, &["sessions"]).await;
    let (status, pool) = app
        .post(
            &format!("/v1/orgs/{}/pools", org.id),
            &org.owner_key,
            json!({"product": "kre", "kind": "floating", "seats": 5, "entitled": [alice_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pool}");
    assert_eq!(pool["entitled"], json!([alice_id]));
    assert_eq!(app.acquire(&alice, "kre", "x").await.0, StatusCode::CREATED);
    let (status, body) = app.acquire(&bob, "kre", "x").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled"))
    );
}
