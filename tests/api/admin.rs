//! Organizations, members, keys and pools: who may do what, and tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, OPERATOR};

#[tokio::test]
async fn another_organizations_ids_answer_404() {
    let app = spawn_app().await;
    let a = app.create_org("a").await;
    let b = app.create_org("b").await;
    let pool_b = app.floating_pool(&b, "kre", 2, 60).await;
    let (_, lease_b) = app.acquire(&b.owner_key, "kre", "m").await;
    let sid_b = lease_b["session_id"].as_str().unwrap();

    for path in [
        format!("/v1/orgs/{}/users", b.id),
        format!("/v1/orgs/{}/pools", b.id),
        format!("/v1/orgs/{}/pools/{pool_b}", b.id),
        format!("/v1/orgs/{}/sessions", b.id),
        format!("/v1/orgs/{}/users/{}", b.id, b.owner_id),
    ] {
        let (status, body) = app.get(&path, &a.owner_key).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    // B's ids under A's own org path are unknown there too.
    let (status, _) = app
        .get(&format!("/v1/orgs/{}/pools/{pool_b}", a.id), &a.owner_key)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/v1/orgs/{}/sessions/{sid_b}", a.id), &a.owner_key)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.heartbeat(&a.owner_key, sid_b).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing of B changed.
    assert_eq!(app.pool(&b, &pool_b).await["live"], 1);
}

#[tokio::test]
async fn key_scopes_and_member_roles_both_limit_a_caller() {
    let app = spawn_app().await;
    let org = app.create_org("scopes").await;
    let pools = format!("/v1/orgs/{}/pools", org.id);
    app.floating_pool(&org, "kre", 2, 60).await;

    // A runtime key cannot make admin calls.
    let (_, runtime) = app.member_with_key(&org, &["sessions"]).await;
    let (status, body) = app.get(&pools, &runtime).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // An admin-scoped key of a plain member gives no right their roles do not.
    let (_, plain_admin_key) = app.member_with_key(&org, &["admin"]).await;
    let (status, _) = app
        .post(
            &pools,
            &plain_admin_key,
            json!({"product": "x", "kind": "floating", "seats": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ...nor lets it run sessions.
    let (status, _) = app.acquire(&plain_admin_key, "kre", "m").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An administrator may manage pools.
    let (status, admin) = app
        .post(
            &format!("/v1/orgs/{}/users", org.id),
            &org.owner_key,
            json!({"email": "admin@example.com", "tenant_roles": ["administrator"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let admin_id = admin["id"].as_str().unwrap();
    let (_, admin_key) = app
        .post(
            &format!("/v1/orgs/{}/users/{admin_id}/api-keys", org.id),
            &org.owner_key,
            json!({"name": "ops", "scopes": ["admin"]}),
        )
        .await;
    let (status, body) = app.get(&pools, admin_key["key"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // The operator token founds organizations and nothing else; members cannot found them.
    assert_eq!(app.get(&pools, OPERATOR).await.0, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/v1/orgs",
            &org.owner_key,
            json!({"name": "x", "owner_email": "x@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn credentials_are_checked_and_revocation_is_immediate() {
    let app = spawn_app().await;
    let org = app.create_org("keys").await;
    app.floating_pool(&org, "kre", 10, 60).await;
    let (member, key) = app.member_with_key(&org, &["sessions"]).await;

    for bad in [None, Some("sk_nope_nope"), Some("wrong-operator")] {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/sessions",
                bad,
                Some(json!({"product": "kre"})),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    }
    // A key with a forged secret but a real id is refused.
    let (head, last) = key.split_at(key.len() - 1);
    let forged = format!("{head}{}", if last == "x" { "y" } else { "x" });
    assert_ne!(forged, key);
    assert_eq!(
        app.acquire(&forged, "kre", "m").await.0,
        StatusCode::UNAUTHORIZED
    );

    let keys = format!("/v1/orgs/{}/users/{member}/api-keys", org.id);
    let (status, list) = app.get(&keys, &org.owner_key).await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].get("key").is_none(),
        "secrets are never listed: {list}"
    );
    assert!(!list.to_string().contains(&key));
    let key_id = items[0]["id"].as_str().unwrap();

    assert_eq!(app.acquire(&key, "kre", "m").await.0, StatusCode::CREATED);
    let (status, _) = app
        .delete(
            &format!("/v1/orgs/{}/api-keys/{key_id}", org.id),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.acquire(&key, "kre", "m2").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get(&keys, &org.owner_key).await.1["items"], json!([]));
}

#[tokio::test]
async fn pools_keep_live_at_or_under_seats() {
    let app = spawn_app().await;
    let org = app.create_org("pools").await;
    let pool = app.floating_pool(&org, "kre", 3, 60).await;
    let path = format!("/v1/orgs/{}/pools/{pool}", org.id);
    for m in ["a", "b"] {
        assert_eq!(
            app.acquire(&org.owner_key, "kre", m).await.0,
            StatusCode::CREATED
        );
    }
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&org.owner_key),
            Some(json!({"seats": 1})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert_eq!(body["live"], 2);
    let (status, body) = app.delete(&path, &org.owner_key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&org.owner_key),
            Some(json!({"seats": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["seats"].as_u64(), body["live"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        app.acquire(&org.owner_key, "kre", "c").await.0,
        StatusCode::CONFLICT
    );

    for s in app.all_sessions(&org).await {
        let id = s["id"].as_str().unwrap();
        app.delete(
            &format!("/v1/orgs/{}/sessions/{id}", org.id),
            &org.owner_key,
        )
        .await;
    }
    assert_eq!(
        app.delete(&path, &org.owner_key).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &org.owner_key).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn members_are_listed_with_paging() {
    let app = spawn_app().await;
    let org = app.create_org("paging").await;
    let users = format!("/v1/orgs/{}/users", org.id);
    for i in 0..5 {
        let (status, _) = app
            .post(
                &users,
                &org.owner_key,
                json!({"email": format!("u{i}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, dup) = app
        .post(&users, &org.owner_key, json!({"email": "U0@Example.com"}))
        .await;
    assert_eq!(dup["error"], "conflict");

    let (_, p1) = app.get(&format!("{users}?limit=4"), &org.owner_key).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 4);
    let next = p1["next"].as_str().expect("a next cursor");
    let (_, p2) = app
        .get(&format!("{users}?limit=4&after={next}"), &org.owner_key)
        .await;
    assert_eq!(
        p2["items"].as_array().unwrap().len(),
        2,
        "6 members: owner + 5"
    );
    assert!(p2["next"].is_null());
    let owner = app
        .all(&users, &org.owner_key)
        .await
        .into_iter()
        .find(|u| u["id"] == org.owner_id.as_str());
    assert_eq!(owner.unwrap()["tenant_roles"], json!(["owner"]));
}
