//! Bad input gets a clear JSON error with the right status, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestOrg};

/// What a rejected request must leave untouched.
async fn state(app: &TestApp, org: &TestOrg) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        app.all(&format!("/v1/orgs/{}/pools", org.id), &org.owner_key)
            .await,
        app.all_sessions(org).await,
        app.all(&format!("/v1/orgs/{}/users", org.id), &org.owner_key)
            .await,
    )
}

#[tokio::test]
async fn each_class_of_bad_input_answers_its_status_and_changes_nothing() {
    let app = spawn_app().await;
    let org = app.create_org("bad").await;
    let pool = app.floating_pool(&org, "kre", 2, 60).await;
    app.acquire(&org.owner_key, "kre", "held").await;
    let before = state(&app, &org).await;
    let pools = format!("/v1/orgs/{}/pools", org.id);
    let users = format!("/v1/orgs/{}/users", org.id);
    let key = org.owner_key.as_str();

    // 400: malformed JSON.
    for body in [
        &b"{\"product\":"[..],
        b"not json",
        b"",
        b"{\"product\":\"kre\"} trailing",
    ] {
        let (status, err) = app
            .raw(Method::POST, "/v1/sessions", key, body.to_vec())
            .await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{err}"
        );
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, _) = app.raw(Method::POST, &pools, key, b"[1,2".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, err) = app.get(&format!("{pools}?limit=abc"), key).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    // 413: a body over 64 KiB.
    let big =
        json!({"product": "kre", "fingerprint": "big", "meta": {"blob": "x".repeat(70 * 1024)}});
    let (status, err) = app
        .raw(
            Method::POST,
            "/v1/sessions",
            key,
            big.to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    // 422: well-formed, invalid values; the field is named.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": 0}),
            "seats",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": -3}),
            "seats",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": "ten"}),
            "seats",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "elastic", "seats": 1}),
            "kind",
        ),
        (&pools, json!({"kind": "floating", "seats": 1}), "product"),
        (
            &pools,
            json!({"product": "k r e", "kind": "floating", "seats": 1}),
            "product",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": 1, "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": 1, "expires_at": "soon"}),
            "expires_at",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": 1, "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            &pools,
            json!({"product": "kre", "kind": "floating", "seats": 1, "entitled": ["nobody@example.com"]}),
            "entitled",
        ),
        (
            "/v1/sessions",
            json!({"product": "kre", "ttl_seconds": 0}),
            "ttl_seconds",
        ),
        (
            "/v1/sessions",
            json!({"product": "kre", "ttl_seconds": 61}),
            "ttl_seconds",
        ),
        (
            "/v1/sessions",
            json!({"product": "kre", "wait_seconds": -1}),
            "wait_seconds",
        ),
        (
            "/v1/sessions",
            json!({"product": "kre", "wait_seconds": 100000}),
            "wait_seconds",
        ),
        (
            "/v1/sessions",
            json!({"product": "kre", "fingerprint": ""}),
            "fingerprint",
        ),
        (&users, json!({"email": "not-an-email"}), "email"),
        (
            &users,
            json!({"email": "x@example.com", "tenant_roles": ["owner"]}),
            "tenant_roles",
        ),
        (
            &users,
            json!({"email": "x@example.com", "tenant_roles": ["emperor"]}),
            "tenant_roles[0]",
        ),
    ];
    for (path, body, field) in cases {
        let (status, err) = app.post(path, key, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {err}"
        );
        assert_eq!(err["error"], "invalid", "{err}");
        assert_eq!(err["field"], field, "{path} {body}: {err}");
    }
    let (status, err) = app
        .call(
            Method::PATCH,
            &format!("{pools}/{pool}"),
            Some(key),
            Some(json!({"seats": 0})),
        )
        .await;
    assert_eq!(
        (status, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("seats"))
    );
    let (status, _) = app.get(&format!("{pools}?limit=0"), key).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // 404: unknown ids and routes.
    for path in [
        format!("{pools}/pool_nope"),
        "/v1/orgs/org_nope/pools".to_string(),
        "/v1/nothing".into(),
    ] {
        let (status, err) = app.get(&path, key).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }

    assert_eq!(
        state(&app, &org).await,
        before,
        "no rejected request changed anything"
    );
}
