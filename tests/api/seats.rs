//! Members, named seats, entitlement, bundles, expiry, usage and the audit log, from the
//! outside.

use std::time::{Duration, SystemTime};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crash::Server;
use crate::helpers::{eventually, spawn_app, TestApp, TestOrg};

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: u64) -> String {
    let t = SystemTime::now() + Duration::from_secs(secs);
    OffsetDateTime::from(t).format(&Rfc3339).unwrap()
}

/// The actions of the audit log, newest first.
fn actions(log: &[Value]) -> Vec<&str> {
    log.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

async fn allocations(app: &TestApp, org: &TestOrg, pool: &str) -> Vec<String> {
    let path = format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);
    let items = app.all(&path, &org.owner_key).await;
    items
        .iter()
        .map(|a| a["user"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn members_are_added_in_bulk_all_or_none_and_ownership_is_transferred() {
    let app = spawn_app().await;
    let org = app.create_org("members").await;
    let users = format!("/v1/orgs/{}/users", org.id);

    let (status, body) = app
        .post(
            &users,
            &org.owner_key,
            json!({"users": [
                {"email": " Ann@Example.COM "},
                {"email": "bob@example.com", "tenant_roles": ["administrator"]},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let added = body["items"].as_array().unwrap();
    assert_eq!(added[0]["email"], "ann@example.com");
    let ann = added[0]["id"].as_str().unwrap().to_owned();
    let bob = added[1]["id"].as_str().unwrap().to_owned();

    // One duplicate refuses the whole list.
    let (status, body) = app
        .post(
            &users,
            &org.owner_key,
            json!({"users": [{"email": "cy@example.com"}, {"email": "ANN@example.com"}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let listed = app.all(&users, &org.owner_key).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let (status, body) = app
        .post(&users, &org.owner_key, json!({"email": "not-an-address"}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );

    let user = |id: &str| format!("{users}/{id}");
    let (status, body) = app
        .patch(
            &user(&ann),
            &org.owner_key,
            json!({"tenant_roles": ["project_creator"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tenant_roles"], json!(["project_creator"]));

    // The owner stays owner until someone else is made owner, and only the owner can.
    let (status, _) = app
        .patch(
            &user(&org.owner_id),
            &org.owner_key,
            json!({"tenant_roles": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let bob_key = {
        let (status, key) = app
            .post(
                &format!("{}/api-keys", user(&bob)),
                &org.owner_key,
                json!({"name": "bob", "scopes": ["admin"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        key["key"].as_str().unwrap().to_owned()
    };
    let (status, _) = app
        .patch(&user(&ann), &bob_key, json!({"tenant_roles": ["owner"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An administrator mints Ann a key and keeps it; it must not outlive her becoming owner.
    let (status, kept) = app
        .post(
            &format!("{}/api-keys", user(&ann)),
            &bob_key,
            json!({"name": "kept", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    let kept = kept["key"].as_str().unwrap();
    let (status, body) = app
        .patch(
            &user(&ann),
            &org.owner_key,
            json!({"tenant_roles": ["owner"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ann_key = body["owner_api_key"].as_str().unwrap();
    assert_eq!(app.get(&users, kept).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&users, ann_key).await.0, StatusCode::OK);
    let (_, old) = app.get(&user(&org.owner_id), &org.owner_key).await;
    assert_eq!(old["tenant_roles"], json!(["administrator"]));
    let (status, _) = app.delete(&user(&ann), &org.owner_key).await;
    assert_eq!(status, StatusCode::CONFLICT, "the owner cannot be removed");

    let log = app.audit(&org).await;
    let roles: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "member.roles_changed")
        .collect();
    assert_eq!(roles.len(), 3, "{log:?}");
    // The transfer: one entry per member affected, the old owner's newest.
    assert_eq!(roles[0]["target"], org.owner_id.as_str());
    assert_eq!(roles[0]["before"]["tenant_roles"], json!(["owner"]));
    assert_eq!(roles[0]["after"]["tenant_roles"], json!(["administrator"]));
    assert_eq!(roles[1]["actor"], org.owner_id.as_str());
    assert_eq!(
        roles[1]["before"]["tenant_roles"],
        json!(["project_creator"])
    );
    assert_eq!(roles[1]["after"]["tenant_roles"], json!(["owner"]));
}

#[tokio::test]
async fn a_signed_in_member_is_removed_only_once_their_sessions_end() {
    let app = spawn_app().await;
    let org = app.create_org("signed-in").await;
    app.floating_pool(&org, "kre", 2, 60).await;
    let (member, key) = app.member_with_key(&org, &["sessions"]).await;
    let (status, lease) = app.acquire(&key, "kre", "m1").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let sid = lease["session_id"].as_str().unwrap();
    let user = format!("/v1/orgs/{}/users/{member}", org.id);

    let (status, body) = app.delete(&user, &org.owner_key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "user_signed_in");
    assert_eq!(body["sessions"][0]["id"], sid);

    let session = format!("/v1/orgs/{}/sessions/{sid}", org.id);
    assert_eq!(
        app.delete(&session, &org.owner_key).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&user, &org.owner_key).await.0,
        StatusCode::NO_CONTENT
    );
    // Their keys stopped working with them.
    let (status, _) = app.acquire(&key, "kre", "m1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get(&user, &org.owner_key).await.0,
        StatusCode::NOT_FOUND
    );

    let log = app.audit(&org).await;
    assert_eq!(
        &actions(&log)[..3],
        ["member.removed", "key.revoked", "session.ended"]
    );
    assert_eq!(log[0]["target"], member.as_str());
    assert_eq!(log[0]["before"]["id"], member.as_str());
    assert!(log[0]["after"].is_null());
}

#[tokio::test]
async fn named_allocation_is_all_or_nothing_and_seats_move_in_one_step() {
    let app = spawn_app().await;
    let org = app.create_org("named").await;
    let other = app.create_org("other").await;
    let pool = app
        .create_pool(&org, json!({"product": "kse", "kind": "named", "seats": 2}))
        .await;
    let m1 = app.add_member(&org, "m1@example.com").await;
    let m2 = app.add_member(&org, "m2@example.com").await;
    let m3 = app.add_member(&org, "m3@example.com").await;
    let stranger = app.add_member(&other, "m4@example.com").await;
    let path = format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);

    let (status, body) = app
        .post(
            &path,
            &org.owner_key,
            json!({"users": [m1, "M2@example.com", m3]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        (
            body["error"].as_str(),
            body["free"].as_u64(),
            body["requested"].as_u64()
        ),
        (Some("quota_exceeded"), Some(2), Some(3))
    );
    for users in [json!([m1, "nobody@example.com"]), json!([m1, stranger])] {
        let (status, body) = app
            .post(&path, &org.owner_key, json!({ "users": users }))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
    assert!(
        allocations(&app, &org, &pool).await.is_empty(),
        "nothing changed"
    );

    let (status, body) = app
        .post(
            &path,
            &org.owner_key,
            json!({"users": [m1, "m2@example.com"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"allocated": 2, "seats": 2, "free": 0}));
    let (status, body) = app
        .post(&path, &org.owner_key, json!({"users": [m1]}))
        .await;
    assert_eq!(
        (status, body["allocated"].as_u64()),
        (StatusCode::OK, Some(2)),
        "a no-op"
    );

    let pool_path = format!("/v1/orgs/{}/pools/{pool}", org.id);
    let (status, body) = app
        .patch(&pool_path, &org.owner_key, json!({"seats": 1}))
        .await;
    assert_eq!(
        (status, body["allocated"].as_u64()),
        (StatusCode::CONFLICT, Some(2))
    );
    assert_eq!(app.pool(&org, &pool).await["seats"], 2);

    let (status, body) = app
        .post(
            &format!("{path}/transfer"),
            &org.owner_key,
            json!({"from": m2, "to": "m3@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut held = allocations(&app, &org, &pool).await;
    held.sort();
    let mut expected = vec![m1.clone(), m3.clone()];
    expected.sort();
    assert_eq!(held, expected);
    let (_, user) = app
        .get(&format!("/v1/orgs/{}/users/{m3}", org.id), &org.owner_key)
        .await;
    assert_eq!(user["seats"], json!([{"product": "kse", "pool": pool}]));

    assert_eq!(
        app.delete(&format!("{path}/{m1}"), &org.owner_key).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{path}/{m1}"), &org.owner_key).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = app
        .post(
            &format!("{path}/revoke"),
            &org.owner_key,
            json!({"users": [m3, m2]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"allocated": 0, "seats": 2, "free": 2}));

    // Newest first, one entry per member, paged by `before`.
    let log = app.audit(&org).await;
    assert_eq!(
        &actions(&log)[..5],
        [
            "allocation.revoked",
            "allocation.revoked",
            "allocation.transferred",
            "allocation.added",
            "allocation.added",
        ]
    );
    assert_eq!(log[2]["before"]["user"], m2.as_str());
    assert_eq!(log[2]["after"]["user"], m3.as_str());
    let audit = format!("/v1/orgs/{}/audit", org.id);
    let (_, first) = app.get(&format!("{audit}?limit=2"), &org.owner_key).await;
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, log[1]["id"]);
    let (_, second) = app
        .get(&format!("{audit}?limit=2&before={next}"), &org.owner_key)
        .await;
    assert_eq!(second["items"][0], log[2]);
    // Another org's admin sees none of it.
    let (status, _) = app.get(&audit, &other.owner_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_allocations_never_exceed_the_seats() {
    let app = spawn_app().await;
    let org = app.create_org("race").await;
    let pool = app
        .create_pool(&org, json!({"product": "kse", "kind": "named", "seats": 5}))
        .await;
    let mut members = Vec::new();
    for i in 0..30 {
        members.push(app.add_member(&org, &format!("r{i}@example.com")).await);
    }
    let path = format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);
    let tasks = members.iter().map(|m| {
        let (app, path, key) = (&app, &path, &org.owner_key);
        async move { app.post(path, key, json!({ "users": [m] })).await }
    });
    let answers = futures::future::join_all(tasks).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let full = (answers.iter())
        .filter(|(s, b)| *s == StatusCode::CONFLICT && b["error"] == "quota_exceeded")
        .count();
    assert_eq!((ok, full), (5, 25), "{answers:?}");
    assert_eq!(allocations(&app, &org, &pool).await.len(), 5);
}

#[tokio::test]
async fn bundles_and_entitled_lists() {
    let app = spawn_app().await;
    let org = app.create_org("bundles").await;
    let kaneai = app
        .create_pool(
            &org,
            json!({"product": "kaneai", "kind": "named", "seats": 3, "includes": ["test-manager"]}),
        )
        .await;
    let (status, body) = app
        .post(
            &format!("/v1/orgs/{}/pools", org.id),
            &org.owner_key,
            json!({"product": "kre", "kind": "floating", "seats": 3, "includes": ["kse"]}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("includes"))
    );
    let kre = app.floating_pool(&org, "kre", 3, 60).await;
    let (m1, k1) = app.member_with_key(&org, &["sessions"]).await;
    let (_, k2) = app.member_with_key(&org, &["sessions"]).await;

    let alloc = |pool: &str| format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);
    assert_eq!(
        app.post(&alloc(&kaneai), &org.owner_key, json!({"users": [m1]}))
            .await
            .0,
        StatusCode::OK
    );
    let user = format!("/v1/orgs/{}/users/{m1}", org.id);
    let (_, body) = app.get(&user, &org.owner_key).await;
    assert_eq!(
        body["seats"],
        json!([{"product": "kaneai", "pool": kaneai}, {"product": "test-manager", "pool": kaneai}])
    );

    // Every member may run kre until its entitled list names someone.
    assert_eq!(app.acquire(&k2, "kre", "a").await.0, StatusCode::CREATED);
    assert_eq!(
        app.post(&alloc(&kre), &org.owner_key, json!({"users": [m1]}))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = app.acquire(&k2, "kre", "b").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled"))
    );
    assert_eq!(app.acquire(&k1, "kre", "c").await.0, StatusCode::CREATED);

    let (status, usage) = app
        .get(&format!("/v1/orgs/{}/usage", org.id), &org.owner_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let product = |name: &str| {
        usage["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["product"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        product("test-manager"),
        json!({"product": "test-manager", "seats": 3, "allocated": 1, "live": 0})
    );
    assert_eq!(
        product("kre"),
        json!({"product": "kre", "seats": 3, "allocated": 1, "live": 2})
    );

    // Revoking the bundle seat takes the included one with it.
    assert_eq!(
        app.delete(&format!("{}/{m1}", alloc(&kaneai)), &org.owner_key)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, body) = app.get(&user, &org.owner_key).await;
    assert_eq!(body["seats"], json!([]));
}

#[tokio::test]
async fn usage_counts_peak_and_denials_and_they_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let org = app.create_org("usage").await;
    let pool = app.floating_pool(&org, "kre", 2, 60).await;
    let (_, key) = app.member_with_key(&org, &["sessions"]).await;
    let (_, first) = app.acquire(&key, "kre", "a").await;
    assert_eq!(app.acquire(&key, "kre", "b").await.0, StatusCode::CREATED);
    let (status, _) = app.acquire(&key, "kre", "c").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let sid = first["session_id"].as_str().unwrap();
    assert_eq!(app.release(&key, sid).await.0, StatusCode::NO_CONTENT);
    // An acknowledged admin change is flushed with everything journaled before it.
    app.floating_pool(&org, "kse", 1, 60).await;
    server.kill_9();

    let server = Server::start(dir.path());
    let (status, usage) = server
        .app
        .get(&format!("/v1/orgs/{}/usage", org.id), &org.owner_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let kre = usage["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == pool.as_str())
        .unwrap();
    assert_eq!(
        (
            &kre["seats"],
            &kre["live"],
            &kre["peak"],
            &kre["denials"],
            &kre["expired"]
        ),
        (&json!(2), &json!(1), &json!(2), &json!(1), &json!(false)),
        "{kre}"
    );
}

#[tokio::test]
async fn a_trial_expires_by_its_deadline_across_a_restart_and_releases_its_seats() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let org = app.create_org("trial").await;
    let expires_at = in_secs(2);
    let trial = app
        .create_pool(
            &org,
            json!({"product": "kse", "kind": "named", "seats": 2, "source": "trial", "expires_at": expires_at}),
        )
        .await;
    let m1 = app.add_member(&org, "t1@example.com").await;
    let alloc = format!("/v1/orgs/{}/pools/{trial}/allocations", org.id);
    assert_eq!(
        app.post(&alloc, &org.owner_key, json!({"users": [m1]}))
            .await
            .0,
        StatusCode::OK
    );
    server.kill_9();

    // Down while the trial ends: the restart finds its deadline passed.
    let end = OffsetDateTime::parse(&expires_at, &Rfc3339).unwrap();
    let wait = end - OffsetDateTime::now_utc();
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
    let server = Server::start(dir.path());
    let app = &server.app;
    let pool = eventually(
        "the trial's seats are released",
        Duration::from_secs(10),
        || async {
            let pool = app.pool(&org, &trial).await;
            (pool["allocated"] == 0).then_some(pool)
        },
    )
    .await;
    assert_eq!(pool["expired"], true);
    let (status, body) = app
        .post(&alloc, &org.owner_key, json!({"users": [m1]}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("pool_expired"))
    );
    let (_, usage) = app
        .get(&format!("/v1/orgs/{}/usage", org.id), &org.owner_key)
        .await;
    assert_eq!(
        usage["products"],
        json!([{"product": "kse", "seats": 0, "allocated": 0, "live": 0}])
    );

    let log = app.audit(&org).await;
    assert_eq!(&actions(&log)[..2], ["allocation.released", "pool.expired"]);
    assert_eq!(
        (&log[0]["actor"], &log[0]["target"]),
        (&json!("system"), &json!(m1))
    );
}

#[tokio::test]
async fn activations_need_a_seat_respect_max_machines_and_end_with_the_seat() {
    let app = spawn_app().await;
    let org = app.create_org("activations").await;
    let kse = app
        .create_pool(
            &org,
            json!({"product": "kse", "kind": "named", "seats": 2, "max_machines": 2}),
        )
        .await;
    let (member, key) = app.member_with_key(&org, &["sessions"]).await;
    let (_, other_key) = app.member_with_key(&org, &["sessions"]).await;
    let activate = |fp: &str| json!({"product": "kse", "fingerprint": fp, "hostname": "build-1"});

    let (status, body) = app.post("/v1/activations", &key, activate("fp1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled"))
    );
    let alloc = format!("/v1/orgs/{}/pools/{kse}/allocations", org.id);
    assert_eq!(
        app.post(&alloc, &org.owner_key, json!({"users": [member]}))
            .await
            .0,
        StatusCode::OK
    );

    let (status, first) = app.post("/v1/activations", &key, activate("fp1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let aid = first["activation_id"].as_str().unwrap().to_owned();
    let token = first["token"].as_str().unwrap();
    let jwks = app.jwks().await;
    let jwk = jwks
        .find(&decode_header(token).unwrap().kid.unwrap())
        .unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["seatkeeper"]);
    let claims = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims;
    assert_eq!(
        (
            &claims["kind"],
            &claims["aid"],
            &claims["fp"],
            &claims["sub"],
            &claims["product"]
        ),
        (
            &json!("activation"),
            &json!(aid),
            &json!("fp1"),
            &json!(member),
            &json!("kse")
        )
    );
    let days = (claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()) / 86_400;
    assert_eq!(days, 30);

    let (status, again) = app.post("/v1/activations", &key, activate("fp1")).await;
    assert_eq!(
        (status, &again["activation_id"]),
        (StatusCode::OK, &json!(aid)),
        "idempotent"
    );
    assert_eq!(
        app.post("/v1/activations", &key, activate("fp2")).await.0,
        StatusCode::CREATED
    );
    let (status, body) = app.post("/v1/activations", &key, activate("fp3")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "machine_limit_reached");
    assert_eq!(body["machines"].as_array().unwrap().len(), 2);

    let refresh = format!("/v1/activations/{aid}/refresh");
    let (status, body) = app.post(&refresh, &key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string() && body["expires_at"].is_string());
    // Another member's key finds nothing there.
    assert_eq!(
        app.post(&refresh, &other_key, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/v1/activations/{aid}"), &other_key)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let listing = format!("/v1/orgs/{}/activations", org.id);
    assert_eq!(app.all(&listing, &org.owner_key).await.len(), 2);
    let (_, usage) = app
        .get(&format!("/v1/orgs/{}/usage", org.id), &org.owner_key)
        .await;
    assert_eq!(
        (&usage["pools"][0]["activated"], &usage["pools"][0]["live"]),
        (&json!(2), &json!(0))
    );

    // Revoking the seat deactivates the member's machines.
    assert_eq!(
        app.delete(&format!("{alloc}/{member}"), &org.owner_key)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post(&refresh, &key, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(app.all(&listing, &org.owner_key).await.is_empty());
    let (_, all) = app
        .get(&format!("{listing}?all=true"), &org.owner_key)
        .await;
    let all = all["items"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|a| a["deactivated_at"].is_string()),
        "{all:?}"
    );
    let log = app.audit(&org).await;
    assert_eq!(
        &actions(&log)[..3],
        [
            "allocation.revoked",
            "activation.deactivated",
            "activation.deactivated"
        ]
    );
    assert!(actions(&log).contains(&"activation.created"));
}

#[tokio::test]
async fn floating_activations_record_machines_without_taking_seats() {
    let app = spawn_app().await;
    let org = app.create_org("floating-activations").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let (_, key) = app.member_with_key(&org, &["sessions"]).await;
    for fp in ["a", "b", "c"] {
        let (status, body) = app
            .post(
                "/v1/activations",
                &key,
                json!({"product": "kre", "fingerprint": fp}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(app.acquire(&key, "kre", "a").await.0, StatusCode::CREATED);
    let (_, usage) = app
        .get(&format!("/v1/orgs/{}/usage", org.id), &org.owner_key)
        .await;
    let p = &usage["pools"][0];
    assert_eq!(
        (&p["id"], &p["activated"], &p["live"]),
        (&json!(pool), &json!(3), &json!(1))
    );
    let (_, admin_list) = app
        .get(&format!("/v1/orgs/{}/activations", org.id), &org.owner_key)
        .await;
    let id = admin_list["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.delete(
            &format!("/v1/orgs/{}/activations/{id}", org.id),
            &org.owner_key
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.all(&format!("/v1/orgs/{}/activations", org.id), &org.owner_key)
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn two_admins_allocating_the_last_seats_at_once_never_overfill() {
    let app = spawn_app().await;
    let org = app.create_org("two-admins").await;
    let pool = app
        .create_pool(&org, json!({"product": "kse", "kind": "named", "seats": 4}))
        .await;
    let mut admins = Vec::new();
    for i in 0..2 {
        let (status, admin) = app
            .post(
                &format!("/v1/orgs/{}/users", org.id),
                &org.owner_key,
                json!({"email": format!("admin{i}@example.com"), "tenant_roles": ["administrator"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{admin}");
        let id = admin["id"].as_str().unwrap();
        let (_, key) = app
            .post(
                &format!("/v1/orgs/{}/users/{id}/api-keys", org.id),
                &org.owner_key,
                json!({"name": "admin", "scopes": ["admin"]}),
            )
            .await;
        admins.push(key["key"].as_str().unwrap().to_owned());
    }
    let path = format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);
    for round in 0..10 {
        let mut teams = Vec::new();
        for t in 0..2 {
            let mut team = Vec::new();
            for i in 0..3 {
                team.push(
                    app.add_member(&org, &format!("t{round}-{t}-{i}@example.com"))
                        .await,
                );
            }
            teams.push(team);
        }
        let (a, b) = tokio::join!(
            app.post(&path, &admins[0], json!({ "users": teams[0] })),
            app.post(&path, &admins[1], json!({ "users": teams[1] })),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{a:?} {b:?}"
        );
        let refused = if a.0 == StatusCode::CONFLICT {
            &a.1
        } else {
            &b.1
        };
        assert_eq!(
            (&refused["error"], &refused["free"], &refused["requested"]),
            (&json!("quota_exceeded"), &json!(1), &json!(3))
        );
        let held = allocations(&app, &org, &pool).await;
        assert_eq!(held.len(), 3);
        let winner = if a.0 == StatusCode::OK {
            &teams[0]
        } else {
            &teams[1]
        };
        assert!(winner.iter().all(|m| held.contains(m)), "all or nothing");
        let (status, _) = app
            .post(
                &format!("{path}/revoke"),
                &org.owner_key,
                json!({ "users": held }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn allocating_while_a_trial_expires_leaves_no_seat_behind() {
    let app = spawn_app().await;
    let org = app.create_org("expiring").await;
    let trial = app
        .create_pool(
            &org,
            json!({"product": "kse", "kind": "named", "seats": 1000, "source": "trial", "expires_at": in_secs(2)}),
        )
        .await;
    let mut members = Vec::new();
    for i in 0..400 {
        members.push(app.add_member(&org, &format!("e{i}@example.com")).await);
    }
    let path = format!("/v1/orgs/{}/pools/{trial}/allocations", org.id);
    // Two admins' worth of allocations, one member at a time, until the trial ends.
    let allocate = |half: usize| {
        let (app, path, key) = (&app, &path, &org.owner_key);
        let mine: Vec<&String> = members.iter().skip(half).step_by(2).collect();
        async move {
            let mut granted = 0;
            // Past the end of the list, the last member again (a no-op while the
            // trial lasts) until the trial's end is seen.
            for i in 0.. {
                let m = mine[i.min(mine.len() - 1)];
                let (status, body) = app.post(path, key, json!({ "users": [m] })).await;
                match (status, body["error"].as_str()) {
                    (StatusCode::OK, _) if i < mine.len() => granted += 1,
                    (StatusCode::OK, _) => {}
                    (StatusCode::CONFLICT, Some("pool_expired")) => return granted,
                    other => panic!("{other:?}: {body}"),
                }
            }
            unreachable!()
        }
    };
    let (a, b) = tokio::join!(allocate(0), allocate(1));
    assert!(a + b > 0, "some allocations came before the end");
    eventually(
        "every seat is released",
        Duration::from_secs(10),
        || async { (app.pool(&org, &trial).await["allocated"] == 0).then_some(()) },
    )
    .await;
    let log = app.audit(&org).await;
    let count = |action: &str| log.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("allocation.added"), a + b);
    assert_eq!(
        count("allocation.released"),
        a + b,
        "each release is logged"
    );
}

#[tokio::test]
async fn two_machines_activating_at_the_limit_at_once_take_one_place() {
    let app = spawn_app().await;
    let org = app.create_org("machine-race").await;
    let pool = app
        .create_pool(
            &org,
            json!({"product": "kse", "kind": "named", "seats": 1, "max_machines": 2}),
        )
        .await;
    let (member, key) = app.member_with_key(&org, &["sessions"]).await;
    let (status, _) = app
        .post(
            &format!("/v1/orgs/{}/pools/{pool}/allocations", org.id),
            &org.owner_key,
            json!({ "users": [member] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let activate = |fp: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            app.post(
                "/v1/activations",
                key,
                json!({"product": "kse", "fingerprint": fp}),
            )
            .await
        }
    };
    assert_eq!(activate("first").await.0, StatusCode::CREATED);
    let (a, b) = tokio::join!(activate("second"), activate("third"));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let refused = if a.0 == StatusCode::CONFLICT {
        &a.1
    } else {
        &b.1
    };
    assert_eq!(refused["error"], "machine_limit_reached");
    assert_eq!(refused["machines"].as_array().unwrap().len(), 2);
    let (_, list) = app
        .get(&format!("/v1/orgs/{}/activations", org.id), &org.owner_key)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn admin_changes_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let org = app.create_org("durable-admin").await;
    let pool = app
        .create_pool(&org, json!({"product": "kse", "kind": "named", "seats": 3}))
        .await;
    let ann = app.add_member(&org, "ann@example.com").await;
    let bob = app.add_member(&org, "bob@example.com").await;
    let cat = app.add_member(&org, "cat@example.com").await;
    let alloc = format!("/v1/orgs/{}/pools/{pool}/allocations", org.id);
    let ok = |r: (StatusCode, Value)| assert!(r.0.is_success(), "{:?}", r);
    ok(app
        .post(&alloc, &org.owner_key, json!({"users": [ann, bob]}))
        .await);
    ok(app
        .post(
            &format!("{alloc}/transfer"),
            &org.owner_key,
            json!({"from": bob, "to": cat}),
        )
        .await);
    ok(app
        .post(
            &format!("{alloc}/revoke"),
            &org.owner_key,
            json!({"users": [ann]}),
        )
        .await);
    ok(app
        .patch(
            &format!("/v1/orgs/{}/users/{bob}", org.id),
            &org.owner_key,
            json!({"tenant_roles": ["administrator"]}),
        )
        .await);
    ok(app
        .delete(&format!("/v1/orgs/{}/users/{ann}", org.id), &org.owner_key)
        .await);
    server.kill_9();

    let server = Server::start(dir.path());
    let app = &server.app;
    assert_eq!(allocations(app, &org, &pool).await, [cat]);
    let (_, user) = app
        .get(&format!("/v1/orgs/{}/users/{bob}", org.id), &org.owner_key)
        .await;
    assert_eq!(user["tenant_roles"], json!(["administrator"]));
    let (status, _) = app
        .get(&format!("/v1/orgs/{}/users/{ann}", org.id), &org.owner_key)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = app.audit(&org).await;
    assert_eq!(
        &actions(&log)[..5],
        [
            "member.removed",
            "member.roles_changed",
            "allocation.revoked",
            "allocation.transferred",
            "allocation.added"
        ]
    );
}
