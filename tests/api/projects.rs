//! Projects, access, groups, custom roles and the authorization query (seed 002).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestOrg};

/// The permission table of DESIGN §2, as a client reads it: each row's rights and the
/// roles (owner, test_manager, test_designer, test_executor, manual_tester, read_only)
/// that have them.
const TABLE: &[(&[&str], &str)] = &[
    (&["project.read"], "YYYYYY"),
    (&["project.update", "project.delete"], "Y-----"),
    (&["project.assign_access"], "YY----"),
    (&["project.settings"], "YY----"),
    (&["reports.read"], "YYYYYY"),
    (&["integrations.write"], "YY----"),
    (&["requirements.read"], "YYYYYY"),
    (
        &["requirements.write", "requirements.assign_tests"],
        "YYY---",
    ),
    (&["test_cases.read"], "YYYYYY"),
    (
        &[
            "test_cases.write",
            "test_cases.add_steps",
            "test_cases.link_automation",
        ],
        "YYY---",
    ),
    (&["documents.write", "labels.write"], "YYY---"),
    (&["custom_fields.write"], "YY----"),
    (&["test_sets.read"], "YYYYYY"),
    (
        &[
            "test_sets.write",
            "test_sets.assign_tests",
            "test_sets.link_orchestrator",
        ],
        "YYY---",
    ),
    (&["executions.read"], "YYYYYY"),
    (&["executions.read_details"], "YYYYYY"),
    (&["executions.manual"], "YY-YY-"),
    (&["executions.automated", "executions.rerun"], "YY-Y--"),
    (&["results.write"], "YY-YY-"),
    (&["defects.write"], "YY-YY-"),
    (&["roles.write"], "Y-----"),
];

const ROLES: [&str; 5] = [
    "test_manager",
    "test_designer",
    "test_executor",
    "manual_tester",
    "read_only",
];

fn path(org: &TestOrg, rest: &str) -> String {
    format!("/v1/orgs/{}{rest}", org.id)
}

async fn check(app: &TestApp, org: &TestOrg, key: &str, query: &str) -> (StatusCode, Value) {
    app.get(&path(org, &format!("/authz/check?{query}")), key)
        .await
}

/// A member with `roles` and an admin+sessions key; answers (id, key).
async fn member(app: &TestApp, org: &TestOrg, roles: &[&str]) -> (String, String) {
    let email = format!("p-{}@example.com", uuid::Uuid::new_v4());
    let (status, user) = app
        .post(
            &path(org, "/users"),
            &org.owner_key,
            json!({"email": email, "tenant_roles": roles}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, key) = app
        .post(
            &path(org, &format!("/users/{id}/api-keys")),
            &org.owner_key,
            json!({"name": "k", "scopes": ["admin", "sessions"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (id, key["key"].as_str().unwrap().to_owned())
}

async fn seat(app: &TestApp, org: &TestOrg, pool: &str, users: &[&str]) {
    let (status, body) = app
        .post(
            &path(org, &format!("/pools/{pool}/allocations")),
            &org.owner_key,
            json!({"users": users}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn assign(
    app: &TestApp,
    org: &TestOrg,
    key: &str,
    project: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.call(
        reqwest::Method::PUT,
        &path(org, &format!("/projects/{project}/access")),
        Some(key),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn every_cell_of_the_permission_table_through_the_query() {
    let app = spawn_app().await;
    let org = app.create_org("table").await;
    let pool = app
        .create_pool(&org, json!({"product": "tm", "kind": "named", "seats": 10}))
        .await;
    let (creator, creator_key) = member(&app, &org, &["project_creator"]).await;
    let (status, project) = app
        .post(
            &path(&org, "/projects"),
            &creator_key,
            json!({"name": "web", "product": "tm"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    assert_eq!(project["owner"], json!(creator));
    let project = project["id"].as_str().unwrap().to_owned();
    let mut users = vec![creator.clone()];
    for role in ROLES {
        let (id, _) = member(&app, &org, &[]).await;
        let roles = if role == "read_only" {
            json!([])
        } else {
            json!([role])
        };
        let (status, body) = assign(
            &app,
            &org,
            &creator_key,
            &project,
            json!({"user": id, "roles": roles}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the creator has no seat yet: {body}"
        );
        let (status, body) = assign(
            &app,
            &org,
            &org.owner_key,
            &project,
            json!({"user": id, "roles": roles}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        users.push(id);
    }
    let all: Vec<&str> = users.iter().map(String::as_str).collect();
    seat(&app, &org, &pool, &all).await;

    let mut wrong = Vec::new();
    for (rights, row) in TABLE {
        for right in *rights {
            for (column, want) in row.chars().enumerate() {
                let q = format!(
                    "user={}&project={project}&permission={right}",
                    users[column]
                );
                let (status, body) = check(&app, &org, &org.owner_key, &q).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                if body["allowed"] != json!(want == 'Y') {
                    wrong.push(format!(
                        "{right} as {}: {body}",
                        ["owner"].iter().chain(ROLES.iter()).nth(column).unwrap()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Without a seat only the unmarked reads remain, and the reason says so.
    let reader = users[5].clone();
    let (status, _) = app
        .post(
            &path(&org, &format!("/pools/{pool}/allocations/revoke")),
            &org.owner_key,
            json!({"users": [reader]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = check(
        &app,
        &org,
        &org.owner_key,
        &format!("user={reader}&project={project}&permission=executions.read"),
    )
    .await;
    assert_eq!(body["allowed"], true, "{body}");
    let (_, body) = check(
        &app,
        &org,
        &org.owner_key,
        &format!("user={reader}&project={project}&permission=executions.read_details"),
    )
    .await;
    assert_eq!(body["allowed"], false, "{body}");
    assert!(
        body["reasons"].to_string().contains("missing seat"),
        "{body}"
    );
}

#[tokio::test]
async fn projects_groups_custom_roles_and_the_query_with_reasons() {
    let app = spawn_app().await;
    let org = app.create_org("access").await;
    let pool = app
        .create_pool(&org, json!({"product": "tm", "kind": "named", "seats": 10}))
        .await;
    let (plain, plain_key) = member(&app, &org, &[]).await;
    let (tester, tester_key) = member(&app, &org, &[]).await;
    seat(&app, &org, &pool, &[&tester, &org.owner_id]).await;

    // Only owners, administrators and project creators create projects.
    let body = json!({"name": "api", "product": "tm"});
    assert_eq!(
        app.post(&path(&org, "/projects"), &plain_key, body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, project) = app
        .post(&path(&org, "/projects"), &org.owner_key, body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    // A member not assigned does not see it, and learns nothing of it.
    assert_eq!(
        app.get(&path(&org, &format!("/projects/{project}")), &plain_key)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = app.get(&path(&org, "/projects"), &plain_key).await;
    assert_eq!(listed["items"], json!([]));
    let q = format!("project={project}&permission=executions.manual");
    assert_eq!(
        check(&app, &org, &tester_key, &q).await.0,
        StatusCode::NOT_FOUND
    );

    // A group with test_executor: the tester is allowed through it, and the reason says so.
    let (status, group) = app
        .post(
            &path(&org, "/groups"),
            &org.owner_key,
            json!({"name": "qa", "members": [tester]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let (status, _) = assign(
        &app,
        &org,
        &org.owner_key,
        &project,
        json!({"group": group, "roles": ["test_executor"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = check(&app, &org, &tester_key, &q).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("test_executor via group qa"),
        "{body}"
    );
    // The batch form answers each permission.
    let (_, batch) = check(
        &app,
        &org,
        &tester_key,
        &format!("project={project}&permission=executions.manual,roles.write"),
    )
    .await;
    assert_eq!(batch["results"][0]["allowed"], true, "{batch}");
    assert_eq!(batch["results"][1]["allowed"], false, "{batch}");
    assert_eq!(batch["allowed"], false);
    // Unknown names list the valid ones; a plain member may not ask about another.
    let (status, body) = check(
        &app,
        &org,
        &tester_key,
        &format!("project={project}&permission=executions.fly"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("executions.manual"),
        "{body}"
    );
    let (status, _) = check(&app, &org, &plain_key, &format!("user={tester}&{q}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Everyone as read_only: the plain member now sees it, without the (L) rights.
    assert_eq!(
        assign(
            &app,
            &org,
            &org.owner_key,
            &project,
            json!({"group": "everyone", "roles": []})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, body) = check(
        &app,
        &org,
        &plain_key,
        &format!("project={project}&permission=test_cases.read"),
    )
    .await;
    assert_eq!(body["allowed"], true, "{body}");
    assert!(
        body["reasons"][0].as_str().unwrap().contains("read_only"),
        "{body}"
    );
    assert_eq!(
        app.get(&path(&org, &format!("/projects/{project}")), &plain_key)
            .await
            .0,
        StatusCode::OK
    );

    // Removing the seat changes the answer at once.
    let (status, _) = app
        .post(
            &path(&org, &format!("/pools/{pool}/allocations/revoke")),
            &org.owner_key,
            json!({"users": [tester]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = check(&app, &org, &tester_key, &q).await;
    assert_eq!(body["allowed"], false, "{body}");
    assert!(
        body["reasons"].to_string().contains("missing seat"),
        "{body}"
    );
    seat(&app, &org, &pool, &[&tester]).await;

    // A custom role: defects only; cloned, edited, and deleted from every assignment.
    let (status, role) = app
        .post(
            &path(&org, "/roles"),
            &org.owner_key,
            json!({"name": "triage", "description": "files defects", "permissions": {"test_cases": ["update"]}, "tasks": ["defects"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert!(
        role["permissions"]["test_cases"] == json!(["read", "update"]),
        "{role}"
    );
    let role = role["id"].as_str().unwrap().to_owned();
    let (status, copy) = app
        .post(
            &path(&org, &format!("/roles/{role}/clone")),
            &org.owner_key,
            json!({"name": "triage 2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let (status, edited) = app
        .patch(
            &path(&org, &format!("/roles/{role}")),
            &org.owner_key,
            json!({"tasks": ["defects", "manual_execution"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (status, _) = assign(
        &app,
        &org,
        &org.owner_key,
        &project,
        json!({"user": plain, "roles": [role]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    seat(&app, &org, &pool, &[&plain]).await;
    let defects = format!("project={project}&permission=defects.write");
    let (_, body) = check(&app, &org, &plain_key, &defects).await;
    assert_eq!(body["allowed"], true, "{body}");
    assert!(
        body["reasons"][0].as_str().unwrap().contains("triage"),
        "{body}"
    );
    assert_eq!(
        app.delete(&path(&org, &format!("/roles/{role}")), &org.owner_key)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, access) = app
        .get(
            &path(&org, &format!("/projects/{project}/access/{plain}")),
            &org.owner_key,
        )
        .await;
    assert_eq!(
        access["roles"],
        json!([]),
        "deleted from the assignment: {access}"
    );
    let (_, body) = check(&app, &org, &plain_key, &defects).await;
    assert_eq!(body["allowed"], false, "{body}");

    // Ownership moves; the old owner stays as read_only; removal drops assignments.
    let (status, moved) = app
        .post(
            &path(&org, &format!("/projects/{project}/transfer-ownership")),
            &org.owner_key,
            json!({"to": tester}),
        )
        .await;
    assert_eq!(
        (status, &moved["owner"]),
        (StatusCode::OK, &json!(tester)),
        "{moved}"
    );
    let (_, old) = app
        .get(
            &path(
                &org,
                &format!("/projects/{project}/access/{}", org.owner_id),
            ),
            &org.owner_key,
        )
        .await;
    assert_eq!(old["roles"], json!([]), "{old}");
    // A path takes the member's e-mail; a body's `user` never names a group.
    let (_, owner) = app
        .get(
            &path(&org, &format!("/users/{}", org.owner_id)),
            &org.owner_key,
        )
        .await;
    let email = owner["email"].as_str().unwrap();
    let (status, by_email) = app
        .get(
            &path(&org, &format!("/projects/{project}/access/{email}")),
            &org.owner_key,
        )
        .await;
    assert_eq!(
        (status, &by_email["user"]),
        (StatusCode::OK, &json!(org.owner_id)),
        "{by_email}"
    );
    let (status, _) = assign(
        &app,
        &org,
        &org.owner_key,
        &project,
        json!({"user": "everyone", "roles": []}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path(&org, &format!("/users/{plain}")), &org.owner_key)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = app
        .get(
            &path(&org, &format!("/projects/{project}/access/{plain}")),
            &org.owner_key,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A licensed project owner may add roles, but only tenant admins change them.
    let (status, mine) = app
        .post(
            &path(&org, "/roles"),
            &tester_key,
            json!({"name": "mine", "tasks": ["defects"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let copy = copy["id"].as_str().unwrap();
    let (status, _) = app
        .patch(
            &path(&org, &format!("/roles/{copy}")),
            &tester_key,
            json!({"tasks": []}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Several assignments removed at once.
    let (status, left) = app
        .post(
            &path(&org, &format!("/projects/{project}/access/remove")),
            &tester_key,
            json!({"subjects": [group, "everyone"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["items"].as_array().unwrap().len(), 1, "{left}");
    let log = app.audit(&org).await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in [
        "project.created",
        "access.assigned",
        "ownership.transferred",
        "role.created",
        "role.deleted",
        "group.created",
        "access.removed",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

/// Many admins at once each change one member's access and ask right after the
/// acknowledgement: every answer already reflects its own change, however the flushes
/// behind the others' changes were ordered.
#[tokio::test]
async fn the_query_reads_each_acknowledged_change_while_others_write() {
    let app = spawn_app().await;
    let org = app.create_org("read-your-writes").await;
    let (status, project) = app
        .post(
            &path(&org, "/projects"),
            &org.owner_key,
            json!({"name": "busy", "product": "tm"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(member(&app, &org, &[]).await.0);
    }
    let (app, org, project) = (&app, &org, &project);
    let writers = users.iter().map(|user| async move {
        let query = format!("user={user}&project={project}&permission=executions.read");
        for _ in 0..10 {
            let body = json!({"user": user, "roles": []});
            let (status, body) = assign(app, org, &org.owner_key, project, body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (status, verdict) = check(app, org, &org.owner_key, &query).await;
            assert_eq!(status, StatusCode::OK, "{verdict}");
            assert_eq!(verdict["allowed"], json!(true), "{verdict}");
            let access = path(org, &format!("/projects/{project}/access/{user}"));
            let (status, body) = app.delete(&access, &org.owner_key).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            let (status, verdict) = check(app, org, &org.owner_key, &query).await;
            assert_eq!(status, StatusCode::OK, "{verdict}");
            assert_eq!(verdict["allowed"], json!(false), "{verdict}");
        }
    });
    futures::future::join_all(writers).await;
}
