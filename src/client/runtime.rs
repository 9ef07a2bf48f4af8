//! A small async client of the runtime API (acquire, heartbeat, release, the
//! authorization query), with one error variant per server error code.
//!
//! ```no_run
//! use seatkeeper::client::{AcquireOptions, Client, ClientError};
//!
//! async fn build() -> Result<(), ClientError> {
//!     let client = Client::new("http://127.0.0.1:8080", "sk_…");
//!     let wanted = AcquireOptions { product: "kre", fingerprint: Some("agent-7"), wait_seconds: 30, ..Default::default() };
//!     let lease = client.acquire(&wanted).await?; // ClientError::SeatCapReached when none frees
//!     client.heartbeat(&lease.session_id).await?; // every lease.heartbeat_interval_seconds
//!     client.release(&lease.session_id).await
//! }
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// A client of one server, acting through one API key (`sessions` scope). Not
/// `Debug`: it holds the key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// A granted lease.
#[derive(Debug, Clone, Deserialize)]
pub struct Lease {
    pub session_id: String,
    /// The signed lease token, verifiable offline with the server's JWKS.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub heartbeat_interval_seconds: u64,
}

/// A lease extended by a heartbeat.
#[derive(Debug, Clone, Deserialize)]
pub struct Renewed {
    pub expires_at: String,
    pub token: String,
}

/// The authorization query's answer for one permission.
#[derive(Debug, Clone, Deserialize)]
pub struct Verdict {
    pub allowed: bool,
    pub reasons: Vec<String>,
}

/// What to acquire.
#[derive(Debug, Clone, Default)]
pub struct AcquireOptions<'a> {
    pub product: &'a str,
    /// The machine; the same fingerprint gets the same live lease back.
    pub fingerprint: Option<&'a str>,
    /// How long to queue for a seat when the pool is full (0: answer at once).
    pub wait_seconds: u64,
    pub ttl_seconds: Option<u64>,
}

/// Why a call failed: one variant per error code the server answers, and one for a
/// server that could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no seat free: {message}")]
    SeatCapReached {
        retry_after: Option<u64>,
        message: String,
    },
    #[error("not entitled: {0}")]
    NotEntitled(String),
    #[error("the pool has expired: {0}")]
    PoolExpired(String),
    #[error("the key was refused: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("the session has ended")]
    SessionNotFound,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("rate limited: retry after {retry_after:?} s")]
    RateLimited {
        retry_after: Option<u64>,
        message: String,
    },
    #[error("{status} {code}: {message}")]
    Other {
        status: u16,
        code: String,
        message: String,
    },
    #[error("server unreachable: {0}")]
    Unreachable(String),
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`) using `key`.
    pub fn new(base: &str, key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }

    /// Acquires a seat, queueing up to `wait_seconds` for one.
    pub async fn acquire(&self, options: &AcquireOptions<'_>) -> Result<Lease, ClientError> {
        let mut body = json!({"product": options.product, "wait_seconds": options.wait_seconds});
        if let Some(fp) = options.fingerprint {
            body["fingerprint"] = json!(fp);
        }
        if let Some(ttl) = options.ttl_seconds {
            body["ttl_seconds"] = json!(ttl);
        }
        let timeout = Duration::from_secs(options.wait_seconds.saturating_add(30));
        let request = self.http.post(self.url("/v1/sessions")).json(&body);
        self.send(request, timeout).await
    }

    /// Extends a lease; [`ClientError::SessionNotFound`] once it has ended.
    pub async fn heartbeat(&self, session: &str) -> Result<Renewed, ClientError> {
        let path = format!("/v1/sessions/{session}/heartbeat");
        let request = self.http.post(self.url(&path));
        self.send(request, Duration::from_secs(30)).await
    }

    /// Ends a lease at once.
    pub async fn release(&self, session: &str) -> Result<(), ClientError> {
        let request = self
            .http
            .delete(self.url(&format!("/v1/sessions/{session}")));
        let response = self.call(request, Duration::from_secs(30)).await?;
        drop(response);
        Ok(())
    }

    /// May the key's member (or `user`, asked by an owner or administrator) do
    /// `permission` in `project`?
    pub async fn check(
        &self,
        org: &str,
        project: &str,
        permission: &str,
        user: Option<&str>,
    ) -> Result<Verdict, ClientError> {
        let mut query = vec![("project", project), ("permission", permission)];
        query.extend(user.map(|u| ("user", u)));
        let request = (self
            .http
            .get(self.url(&format!("/v1/orgs/{org}/authz/check"))))
        .query(&query);
        self.send(request, Duration::from_secs(30)).await
    }

    /// The org's usage (an owner's or administrator's key with the `admin` scope).
    pub async fn usage(&self, org: &str) -> Result<Value, ClientError> {
        let request = self.http.get(self.url(&format!("/v1/orgs/{org}/usage")));
        self.send(request, Duration::from_secs(30)).await
    }

    /// Every live session of the org, following the pages (admins).
    pub async fn sessions(&self, org: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "1000".to_owned())];
            query.extend(after.take().map(|a| ("after", a)));
            let request =
                (self.http.get(self.url(&format!("/v1/orgs/{org}/sessions")))).query(&query);
            let page: Value = self.send(request, Duration::from_secs(30)).await?;
            items.extend(page["items"].as_array().into_iter().flatten().cloned());
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let response = self.call(request, timeout).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Unreachable(format!("unreadable answer: {e}")))
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(&self.key)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(error_of(status, &body))
    }
}

/// The error a server's JSON error body names.
fn error_of(status: u16, body: &Value) -> ClientError {
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let message = text("message");
    let retry_after = body["retry_after"].as_u64();
    match body["error"].as_str().unwrap_or_default() {
        "seat_cap_reached" => ClientError::SeatCapReached {
            retry_after,
            message,
        },
        "not_entitled" => ClientError::NotEntitled(message),
        "pool_expired" => ClientError::PoolExpired(message),
        "unauthorized" => ClientError::Unauthorized(message),
        "forbidden" => ClientError::Forbidden(message),
        "session_not_found" => ClientError::SessionNotFound,
        "not_found" => ClientError::NotFound(message),
        "invalid" => ClientError::Invalid {
            field: text("field"),
            message,
        },
        "rate_limited" => ClientError::RateLimited {
            retry_after,
            message,
        },
        code => ClientError::Other {
            status,
            code: code.to_owned(),
            message,
        },
    }
}
