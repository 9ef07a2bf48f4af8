//! Every admin route against every kind of caller, the operator's routes, and the
//! listings' filters.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::crash::Server;
use crate::helpers::{spawn_app, TestApp, TestOrg, OPERATOR};

/// The callers of the table, in its column order.
const CALLERS: [&str; 7] = [
    "owner",
    "administrator",
    "project_creator",
    "member",
    "sessions key",
    "other org",
    "operator",
];

/// Route × caller → status: `Y` the route's success status, `3` 403, `4` 404.
/// `{me}` is the caller's own member id; `{member}`, `{key}`, `{named}`, `{session}` and
/// `{activation}` are made afresh for each cell (see [`Fixture`]); `{fresh}` is a new
/// e-mail. The README's table is this one.
const TABLE: &[(&str, &str, &str, u16, &str)] = &[
    ("GET", "", "", 200, "YY3334Y"),
    ("POST", "/users", r#"{"email":"{fresh}"}"#, 201, "YY33343"),
    ("GET", "/users", "", 200, "YY33343"),
    ("GET", "/users/{owner}", "", 200, "YY33343"),
    ("GET", "/users/{me}", "", 200, "YYYY343"),
    (
        "PATCH",
        "/users/{member}",
        r#"{"tenant_roles":["project_creator"]}"#,
        200,
        "YY33343",
    ),
    ("DELETE", "/users/{member}", "", 204, "YY33343"),
    (
        "POST",
        "/users/{me}/api-keys",
        r#"{"name":"k","scopes":["sessions"]}"#,
        201,
        "YYYY343",
    ),
    ("GET", "/users/{me}/api-keys", "", 200, "YYYY343"),
    (
        "POST",
        "/users/{member}/api-keys",
        r#"{"name":"k","scopes":["sessions"]}"#,
        201,
        "YY33343",
    ),
    (
        "POST",
        "/users/{owner}/api-keys",
        r#"{"name":"k","scopes":["sessions"]}"#,
        201,
        "Y333343",
    ),
    ("GET", "/users/{member}/api-keys", "", 200, "YY33343"),
    ("DELETE", "/api-keys/{key}", "", 204, "YY33343"),
    (
        "POST",
        "/pools",
        r#"{"product":"p","kind":"floating","seats":1}"#,
        201,
        "YY33343",
    ),
    ("GET", "/pools", "", 200, "YY33343"),
    ("GET", "/pools/{named}", "", 200, "YY33343"),
    ("PATCH", "/pools/{named}", r#"{"seats":4}"#, 200, "YY33343"),
    ("DELETE", "/pools/{named}", "", 204, "YY33343"),
    (
        "POST",
        "/pools/{named}/allocations",
        r#"{"users":["{owner}"]}"#,
        200,
        "YY33343",
    ),
    ("GET", "/pools/{named}/allocations", "", 200, "YY33343"),
    (
        "DELETE",
        "/pools/{named}/allocations/{member}",
        "",
        204,
        "YY33343",
    ),
    (
        "POST",
        "/pools/{named}/allocations/revoke",
        r#"{"users":["{member}"]}"#,
        200,
        "YY33343",
    ),
    (
        "POST",
        "/pools/{named}/allocations/transfer",
        r#"{"from":"{member}","to":"{owner}"}"#,
        200,
        "YY33343",
    ),
    ("GET", "/usage", "", 200, "YY33343"),
    ("GET", "/audit", "", 200, "YY33343"),
    ("GET", "/sessions", "", 200, "YY33343"),
    ("DELETE", "/sessions/{session}", "", 204, "YY33343"),
    ("GET", "/activations", "", 200, "YY33343"),
    ("DELETE", "/activations/{activation}", "", 204, "YY33343"),
];

/// What a cell may change, made afresh so no cell sees another's effects: a member
/// with a seat of a named pool, a machine activated on it and a key; and a runner
/// holding a live session.
struct Fixture {
    member: String,
    key: String,
    named: String,
    session: String,
    activation: String,
}

async fn fixture(app: &TestApp, org: &TestOrg) -> Fixture {
    let (member, secret) = app.member_with_key(org, &["sessions"]).await;
    let (status, keys) = app
        .get(
            &format!("/v1/orgs/{}/users/{member}/api-keys", org.id),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let key = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let named = app
        .create_pool(org, json!({"product": "kse", "kind": "named", "seats": 3}))
        .await;
    let (status, body) = app
        .post(
            &format!("/v1/orgs/{}/pools/{named}/allocations", org.id),
            &org.owner_key,
            json!({"users": [member]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/v1/activations",
            &secret,
            json!({"product": "kse", "fingerprint": "fx"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let activation = body["activation_id"].as_str().unwrap().to_owned();
    let (_, runner) = app.member_with_key(org, &["sessions"]).await;
    let (status, body) = app.acquire(&runner, "kre", "fx").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Fixture {
        member,
        key,
        named,
        session: body["session_id"].as_str().unwrap().to_owned(),
        activation,
    }
}

/// Adds a member with `roles` and a key with `scopes`; answers (id, key).
async fn caller(app: &TestApp, org: &TestOrg, roles: &[&str], scopes: &[&str]) -> (String, String) {
    let email = format!("c-{}@example.com", uuid::Uuid::new_v4());
    let (status, user) = app
        .post(
            &format!("/v1/orgs/{}/users", org.id),
            &org.owner_key,
            json!({"email": email, "tenant_roles": roles}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, key) = app
        .post(
            &format!("/v1/orgs/{}/users/{id}/api-keys", org.id),
            &org.owner_key,
            json!({"name": "caller", "scopes": scopes}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (id, key["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_admin_route_answers_each_caller_as_the_table_says() {
    let app = spawn_app().await;
    let org = app.create_org("table").await;
    let other = app.create_org("other").await;
    app.floating_pool(&org, "kre", 1000, 60).await;
    let callers: Vec<(String, String)> = vec![
        (org.owner_id.clone(), org.owner_key.clone()),
        caller(&app, &org, &["administrator"], &["admin", "sessions"]).await,
        caller(&app, &org, &["project_creator"], &["admin"]).await,
        caller(&app, &org, &[], &["admin"]).await,
        caller(&app, &org, &["administrator"], &["sessions"]).await,
        (other.owner_id.clone(), other.owner_key.clone()),
        ("usr_operator".to_owned(), OPERATOR.to_owned()),
    ];
    let mut wrong = Vec::new();
    for &(method, path, body, success, row) in TABLE {
        for (c, expected) in row.chars().enumerate() {
            let (me, key) = &callers[c];
            let fill = |t: &str, f: Option<&Fixture>| {
                let mut t = t
                    .replace("{me}", me)
                    .replace("{owner}", &org.owner_id)
                    .replace(
                        "{fresh}",
                        &format!("n-{}@example.com", uuid::Uuid::new_v4()),
                    );
                if let Some(f) = f {
                    t = t
                        .replace("{member}", &f.member)
                        .replace("{key}", &f.key)
                        .replace("{named}", &f.named)
                        .replace("{session}", &f.session)
                        .replace("{activation}", &f.activation);
                }
                t
            };
            let needs_fixture = [path, body].iter().any(|t| {
                ["{member}", "{key}", "{named}", "{session}", "{activation}"]
                    .iter()
                    .any(|p| t.contains(p))
            });
            let f = if needs_fixture {
                Some(fixture(&app, &org).await)
            } else {
                None
            };
            let url = format!("/v1/orgs/{}{}", org.id, fill(path, f.as_ref()));
            let body = (!body.is_empty())
                .then(|| serde_json::from_str::<Value>(&fill(body, f.as_ref())).unwrap());
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, answer) = app.call(method.clone(), &url, Some(key), body).await;
            let want = match expected {
                'Y' => success,
                '3' => 403,
                _ => 404,
            };
            if status.as_u16() != want {
                wrong.push(format!(
                    "{method} {path} as {}: {status}, want {want}: {answer}",
                    CALLERS[c]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_operator_lists_reads_and_deletes_organizations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let kept = app.create_org("kept").await;
    let doomed = app.create_org("doomed").await;
    let pool = app.floating_pool(&doomed, "kre", 2, 60).await;
    let (_, runtime) = app.member_with_key(&doomed, &["sessions"]).await;
    assert_eq!(
        app.acquire(&runtime, "kre", "m").await.0,
        StatusCode::CREATED
    );

    // Paged in id order, one at a time.
    let (status, first) = app.get("/v1/orgs?limit=1", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let after = first["next"].as_str().unwrap();
    let (_, second) = app
        .get(&format!("/v1/orgs?limit=1&after={after}"), OPERATOR)
        .await;
    assert_eq!(second["next"], Value::Null);
    let mut ids = vec![
        first["items"][0]["id"].clone(),
        second["items"][0]["id"].clone(),
    ];
    ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    let mut want = vec![json!(kept.id), json!(doomed.id)];
    want.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(ids, want);

    let (status, read) = app.get(&format!("/v1/orgs/{}", doomed.id), OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(
        (
            &read["name"],
            &read["owner"]["id"],
            &read["pools"],
            &read["sessions_live"]
        ),
        (
            &json!("doomed"),
            &json!(doomed.owner_id),
            &json!(1),
            &json!(1)
        )
    );
    // Members may not list organizations, nor delete their own.
    assert_eq!(
        app.get("/v1/orgs", &doomed.owner_key).await.0,
        StatusCode::FORBIDDEN
    );
    let path = format!("/v1/orgs/{}", doomed.id);
    assert_eq!(
        app.delete(&path, &doomed.owner_key).await.0,
        StatusCode::FORBIDDEN
    );

    assert_eq!(app.delete(&path, OPERATOR).await.0, StatusCode::NO_CONTENT);
    // Its keys stop at once, its ids are unknown, a second delete finds nothing.
    assert_eq!(
        app.get(&path, &doomed.owner_key).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.acquire(&runtime, "kre", "n").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get(&path, OPERATOR).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, OPERATOR).await.0, StatusCode::NOT_FOUND);
    server.kill_9();

    // Acknowledged, so gone for good; the other org is untouched.
    let server = Server::start(dir.path());
    let app = &server.app;
    let (_, list) = app.get("/v1/orgs", OPERATOR).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["id"], json!(kept.id));
    assert_eq!(app.get(&path, OPERATOR).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&path, &doomed.owner_key).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .get(
            &format!("/v1/orgs/{}/pools/{pool}", doomed.id),
            &kept.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(&format!("/v1/orgs/{}/usage", kept.id), &kept.owner_key)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !std::fs::read_dir(dir.path().join("snapshots"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(&doomed.id)),
        "the deleted org's snapshot is gone"
    );
}

#[tokio::test]
async fn runtimes_list_their_own_sessions_and_admins_filter_them() {
    let app = spawn_app().await;
    let org = app.create_org("listing").await;
    let kre = app.floating_pool(&org, "kre", 5, 60).await;
    let kse = app.floating_pool(&org, "kse", 5, 60).await;
    let (ann, ann_key) = app.member_with_key(&org, &["sessions"]).await;
    let (_, bob_key) = app.member_with_key(&org, &["sessions"]).await;
    let (status, a1) = app
        .post(
            "/v1/sessions",
            &ann_key,
            json!({"product": "kre", "fingerprint": "ann-1", "meta": {"job": "nightly"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a1}");
    app.acquire(&ann_key, "kse", "ann-2").await;
    app.acquire(&bob_key, "kre", "bob-1").await;

    // A runtime sees its own member's leases only; an admin-only key may not ask.
    let (status, mine) = app.get("/v1/sessions", &ann_key).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let mut fps: Vec<&str> = (mine["items"].as_array().unwrap().iter())
        .map(|s| s["fingerprint"].as_str().unwrap())
        .collect();
    fps.sort();
    assert_eq!(fps, ["ann-1", "ann-2"]);
    let (_, admin_only) = app.member_with_key(&org, &["admin"]).await;
    assert_eq!(
        app.get("/v1/sessions", &admin_only).await.0,
        StatusCode::FORBIDDEN
    );

    let (_, user) = app
        .get(&format!("/v1/orgs/{}/users/{ann}", org.id), &org.owner_key)
        .await;
    let email = user["email"].as_str().unwrap().to_owned();
    let (org_id, owner_key) = (&org.id, &org.owner_key);
    let list = |q: String| {
        let app = &app;
        let path = format!("/v1/orgs/{org_id}/sessions?{q}");
        async move {
            let (status, body) = app.get(&path, owner_key).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["items"].as_array().unwrap().clone()
        }
    };
    let by_user = list(format!("user={email}")).await;
    assert_eq!(by_user.len(), 2);
    assert!(by_user.iter().all(|s| s["email"] == json!(email)));
    assert_eq!(list("product=kre".to_string()).await.len(), 2);
    assert_eq!(list(format!("pool={kse}")).await.len(), 1);
    let one = list(format!("user={ann}&pool={kre}")).await;
    assert_eq!(one.len(), 1);
    let s = &one[0];
    assert_eq!(
        (
            &s["fingerprint"],
            &s["meta"],
            &s["acquired_at"],
            &s["last_heartbeat_at"]
        ),
        (
            &json!("ann-1"),
            &json!({"job": "nightly"}),
            &s["acquired_at"],
            &s["acquired_at"]
        )
    );
    assert!(list("user=nobody@example.com".into()).await.is_empty());

    // A heartbeat moves `last_heartbeat_at`, never `acquired_at`.
    let sid = a1["session_id"].as_str().unwrap();
    crate::helpers::eventually(
        "a heartbeat a millisecond later",
        std::time::Duration::from_secs(5),
        || async {
            app.heartbeat(&ann_key, sid).await;
            let s = list(format!("user={ann}&pool={kre}")).await.remove(0);
            (s["last_heartbeat_at"] != s["acquired_at"]).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn members_and_pools_are_found_by_email_and_product() {
    let app = spawn_app().await;
    let org = app.create_org("finders").await;
    let ann = app.add_member(&org, "Ann@Example.com").await;
    app.add_member(&org, "bob@example.com").await;
    let bundle = app
        .create_pool(
            &org,
            json!({"product": "kaneai", "kind": "named", "seats": 2, "includes": ["test-manager"]}),
        )
        .await;
    app.floating_pool(&org, "kre", 1, 60).await;

    let users = format!("/v1/orgs/{}/users", org.id);
    let (_, found) = app
        .get(&format!("{users}?email=ann@example.com"), &org.owner_key)
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["items"][0]["id"], json!(ann));
    let (status, body) = app
        .get(&format!("{users}?email=not-an-email"), &org.owner_key)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // The path takes an e-mail wherever it takes a member id.
    let (status, one) = app
        .get(&format!("{users}/ann@example.com"), &org.owner_key)
        .await;
    assert_eq!((status, &one["id"]), (StatusCode::OK, &json!(ann)));

    let pools = format!("/v1/orgs/{}/pools", org.id);
    for product in ["kaneai", "test-manager"] {
        let (_, found) = app
            .get(&format!("{pools}?product={product}"), &org.owner_key)
            .await;
        let ids: Vec<&Value> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["id"])
            .collect();
        assert_eq!(ids, [&json!(bundle)], "{product}");
    }
    let (_, none) = app
        .get(&format!("{pools}?product=kse"), &org.owner_key)
        .await;
    assert_eq!(none["items"], json!([]));
}
