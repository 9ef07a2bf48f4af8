//! Starting the app and talking to it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use seatkeeper::config::Config;
use seatkeeper::Application;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The operator token every test app is configured with.
pub const OPERATOR: &str = "op-test-token-0123456789abcdefghijklmnop";

/// A running app with its own data directory.
pub struct TestApp {
    pub base: String,
    client: reqwest::Client,
    /// The data directory, removed when the app is dropped (none for an app started elsewhere).
    _dir: Option<TempDir>,
}

/// An organization created through the API, with its owner's key.
pub struct TestOrg {
    pub id: String,
    pub owner_id: String,
    pub owner_key: String,
}

/// Starts the real application on a random port with a fresh sled directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with the test's changes to the configuration.
pub async fn spawn_app_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".into();
    config.data_dir = dir.path().to_path_buf();
    config.operator_token = Some(OPERATOR.into());
    config.workers = 2;
    change(&mut config);
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(config).await.expect("app builds");
            tx.send(app.addr()).expect("test alive");
            app.run_until_stopped().await.expect("app runs");
        })
    });
    let addr = rx.recv().expect("app started");
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _dir: Some(dir),
    }
}

/// Polls `check` until it yields a value or `within` passes (then panics with `what`).
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// A test app at an address already running (the crash test's child process).
    pub fn at(addr: &str) -> TestApp {
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            _dir: None,
        }
    }

    /// A test app at `base` (`https://…`), spoken to through `client`.
    pub fn with_client(base: String, client: reqwest::Client) -> TestApp {
        TestApp {
            base,
            client,
            _dir: None,
        }
    }

    /// Sends a request with an optional bearer and JSON body; answers status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let bytes = res.bytes().await.expect("body read");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    /// Sends raw bytes as the body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let res = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    /// Creates a pool from `spec` (product, kind, seats, ...); answers its id.
    pub async fn create_pool(&self, org: &TestOrg, spec: Value) -> String {
        let (status, body) = self
            .post(&format!("/v1/orgs/{}/pools", org.id), &org.owner_key, spec)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().into()
    }

    /// Adds a member by e-mail; answers their id.
    pub async fn add_member(&self, org: &TestOrg, email: &str) -> String {
        let (status, user) = self
            .post(
                &format!("/v1/orgs/{}/users", org.id),
                &org.owner_key,
                json!({ "email": email }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        user["id"].as_str().unwrap().to_owned()
    }

    /// The organization's audit log, newest first, every page.
    pub async fn audit(&self, org: &TestOrg) -> Vec<Value> {
        let path = format!("/v1/orgs/{}/audit", org.id);
        let mut items = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let url = match &before {
                Some(b) => format!("{path}?limit=1000&before={b}"),
                None => format!("{path}?limit=1000"),
            };
            let (status, body) = self.get(&url, &org.owner_key).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(n) => before = Some(n.to_owned()),
                None => return items,
            }
        }
    }

    /// Creates an organization through the operator token.
    pub async fn create_org(&self, name: &str) -> TestOrg {
        let email = format!("owner-{}@example.com", uuid::Uuid::new_v4());
        let (status, body) = self
            .post(
                "/v1/orgs",
                OPERATOR,
                json!({"name": name, "owner_email": email}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        TestOrg {
            id: body["id"].as_str().unwrap().into(),
            owner_id: body["owner"]["id"].as_str().unwrap().into(),
            owner_key: body["owner_api_key"].as_str().unwrap().into(),
        }
    }

    /// Creates a floating pool of `product`; answers its id.
    pub async fn floating_pool(
        &self,
        org: &TestOrg,
        product: &str,
        seats: u32,
        ttl: u32,
    ) -> String {
        let (status, body) = self
            .post(
                &format!("/v1/orgs/{}/pools", org.id),
                &org.owner_key,
                json!({"product": product, "kind": "floating", "seats": seats, "ttl_seconds": ttl}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().into()
    }

    /// The public keys that verify the app's tokens.
    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let url = format!("{}/.well-known/jwks.json", self.base);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The address the app listens on, `host:port`.
    pub fn addr(&self) -> &str {
        let base = self.base.trim_start_matches("https://");
        base.trim_start_matches("http://")
    }

    /// Adds a member and gives them a key with `scopes`; answers (member id, key).
    pub async fn member_with_key(&self, org: &TestOrg, scopes: &[&str]) -> (String, String) {
        let email = format!("m-{}@example.com", uuid::Uuid::new_v4());
        let (status, user) = self
            .post(
                &format!("/v1/orgs/{}/users", org.id),
                &org.owner_key,
                json!({"email": email}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let id = user["id"].as_str().unwrap().to_owned();
        let (status, key) = self
            .post(
                &format!("/v1/orgs/{}/users/{id}/api-keys", org.id),
                &org.owner_key,
                json!({"name": "runtime", "scopes": scopes}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        (id, key["key"].as_str().unwrap().to_owned())
    }

    /// Acquires a seat of `product` for `fingerprint`.
    pub async fn acquire(
        &self,
        key: &str,
        product: &str,
        fingerprint: &str,
    ) -> (StatusCode, Value) {
        self.post(
            "/v1/sessions",
            key,
            json!({"product": product, "fingerprint": fingerprint}),
        )
        .await
    }

    /// Heartbeats a session.
    pub async fn heartbeat(&self, key: &str, session: &str) -> (StatusCode, Value) {
        self.post(&format!("/v1/sessions/{session}/heartbeat"), key, json!({}))
            .await
    }

    /// Releases a session.
    pub async fn release(&self, key: &str, session: &str) -> (StatusCode, Value) {
        self.delete(&format!("/v1/sessions/{session}"), key).await
    }

    /// The pool as an admin sees it.
    pub async fn pool(&self, org: &TestOrg, pool: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/orgs/{}/pools/{pool}", org.id), &org.owner_key)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Every live session of the organization, following the cursor.
    pub async fn all_sessions(&self, org: &TestOrg) -> Vec<Value> {
        self.all(&format!("/v1/orgs/{}/sessions", org.id), &org.owner_key)
            .await
    }

    /// Every item of a list, following the cursor.
    pub async fn all(&self, path: &str, key: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                Some(a) => format!("{path}?limit=1000&after={a}"),
                None => format!("{path}?limit=1000"),
            };
            let (status, body) = self.get(&url, key).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            items.extend(body["items"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(n) => after = Some(n.to_owned()),
                None => return items,
            }
        }
    }
}

/// Writes, by hand, an acquire that queues up to 30 s for a seat of `kre` on `conn`: a
/// client that then goes away without reading the answer.
pub fn send_queued_acquire(conn: &mut impl std::io::Write, key: &str, fingerprint: &str) {
    let body =
        json!({"product": "kre", "wait_seconds": 30, "fingerprint": fingerprint}).to_string();
    write!(
        conn,
        "POST /v1/sessions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    conn.flush().unwrap();
}
