//! Running it: the `health` and `config` subcommands, as a container or an operator
//! uses them.

use std::process::{Command, Output};

use crate::crash::Server;
use crate::helpers::OPERATOR;

pub(crate) fn seatkeeper(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(args)
        .env_remove("SEATKEEPER_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run seatkeeper")
}

/// `seatkeeper health` exits 0 while the server is ready, found by URL or by the same
/// `bind` the server was given (0.0.0.0 read as loopback), and 1 once it is gone.
#[test]
fn health_is_zero_while_the_server_is_ready_and_one_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.app.addr().to_owned();
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let url = format!("http://{addr}");
    let out = seatkeeper(&["health", "--url", &url], &[]);
    assert!(out.status.success(), "{out:?}");
    let unspecified = format!("0.0.0.0:{port}");
    let out = seatkeeper(&["health"], &[("SEATKEEPER_BIND", &unspecified)]);
    assert!(out.status.success(), "{out:?}");

    server.kill_9();
    let out = seatkeeper(&["health", "--url", &url], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));
}

/// `seatkeeper config` shows the layers merged (file, then variables, then flags) and
/// never the operator token; a value of the wrong type is refused with exit 2.
#[test]
fn config_prints_the_effective_configuration_with_the_token_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seatkeeper.toml");
    std::fs::write(
        &file,
        "bind = \"127.0.0.1:9000\"\nworkers = 3\n[store]\nsnapshot_every = 11\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = seatkeeper(
        &["config", "--config", file, "--workers", "5"],
        &[
            ("SEATKEEPER_OPERATOR_TOKEN", OPERATOR),
            ("SEATKEEPER_STORE__SNAPSHOT_EVERY", "12"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8(out.stdout).unwrap();
    let parsed: toml::Table = shown.parse().expect("the output is TOML");
    assert_eq!(parsed["bind"].as_str(), Some("127.0.0.1:9000"), "{shown}");
    assert_eq!(parsed["workers"].as_integer(), Some(5), "{shown}");
    assert_eq!(parsed["store"]["snapshot_every"].as_integer(), Some(12));
    assert_eq!(
        parsed["sessions"]["max_wait_seconds"].as_integer(),
        Some(600)
    );
    assert!(!shown.contains(OPERATOR), "{shown}");
    assert!(parsed["operator_token"]
        .as_str()
        .unwrap()
        .starts_with("<set"));

    let out = seatkeeper(&["config"], &[("SEATKEEPER_WORKERS", "many")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A real Prometheus scrapes a real server, and seatkeeper's series come back through
/// its query API: the exposition parses, and the names and labels are what the README
/// and the Grafana dashboard query. Needs the `prometheus` binary (Debian package
/// `prometheus`; `scripts/test` and CI install it).
#[tokio::test]
async fn prometheus_scrapes_the_series_a_dashboard_reads() {
    let prometheus = which("prometheus").expect(
        "the prometheus binary is needed (apt-get install prometheus; scripts/test installs it)",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("seatkeeper"));
    let app = &server.app;
    let org = app.create_org("scraped").await;
    let pool = app.floating_pool(&org, "kre", 7, 60).await;
    for fingerprint in ["a", "b", "c"] {
        let (status, body) = app.acquire(&org.owner_key, "kre", fingerprint).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        if fingerprint == "c" {
            let session = body["session_id"].as_str().unwrap();
            let (status, body) = app.release(&org.owner_key, session).await;
            assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{body}");
        }
    }
    let (status, _) = app
        .get(&format!("/v1/orgs/{}/pools/none", org.id), &org.owner_key)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: seatkeeper\n    \
             static_configs:\n      - targets: ['{}']\n",
            app.addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Child(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let query = |q: String| async move {
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        let answer = reqwest::Client::new()
            .get(url)
            .query(&[("query", q)])
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()?;
        let value = answer["data"]["result"][0]["value"][1].as_str()?;
        value.parse::<f64>().ok()
    };
    let within = std::time::Duration::from_secs(60);
    let seats = format!(
        "seatkeeper_pool_seats{{org=\"{}\",pool=\"{pool}\",product=\"kre\"}}",
        org.id
    );
    let live = format!(
        "seatkeeper_pool_sessions_live{{org=\"{}\",pool=\"{pool}\"}}",
        org.id
    );
    for (q, want) in [
        (seats, 7.0),
        (live, 2.0),
        (
            "seatkeeper_acquires_total{outcome=\"granted\"}".to_owned(),
            3.0,
        ),
        (
            "sum(seatkeeper_http_requests_total{route=\"/v1/sessions\",status=\"201\"})".to_owned(),
            3.0,
        ),
        ("seatkeeper_sessions_live".to_owned(), 2.0),
        ("seatkeeper_orgs".to_owned(), 1.0),
        (
            "count(seatkeeper_store_flush_seconds_bucket) > bool 0".to_owned(),
            1.0,
        ),
        ("up{job=\"seatkeeper\"}".to_owned(), 1.0),
    ] {
        let what = format!("{q} = {want} through Prometheus");
        crate::helpers::eventually(&what, within, || {
            let q = q.clone();
            async move { (query(q).await? == want).then_some(()) }
        })
        .await;
    }

    // Every query of the Grafana dashboard is valid PromQL that finds the server's series.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../grafana/seatkeeper.json")).unwrap();
    let queries = (dashboard["panels"].as_array().unwrap().iter())
        .flat_map(|panel| panel["targets"].as_array().unwrap())
        .map(|target| target["expr"].as_str().unwrap())
        .map(|expr| expr.replace("$job", ".*").replace("$__rate_interval", "1m"));
    for q in queries {
        crate::helpers::eventually(&format!("a series for {q}"), within, || {
            let q = q.clone();
            async move { query(q).await.map(drop) }
        })
        .await;
    }
}

/// A child process killed when the test ends, whether it passes or not.
pub(crate) struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// With `metrics.bind`, `/metrics` is served on that listener alone, and the API's
/// listener answers it 404 like any unknown route.
#[tokio::test]
async fn metrics_bind_moves_the_exposition_to_a_listener_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SEATKEEPER_METRICS__BIND", "127.0.0.1:0")];
    let (_server, api, log) = crate::tls::serve(dir.path(), &env).expect("serves");
    let metrics = log
        .lines()
        .find_map(|l| {
            l.split_once("serving /metrics alone on ")
                .map(|(_, a)| a.trim())
        })
        .unwrap_or_else(|| panic!("no metrics listener logged: {log}"));
    let get = |url: String| async move {
        let r = reqwest::get(url).await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let (status, body) = get(format!("{metrics}/metrics")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(body.contains("seatkeeper_orgs"), "{body}");
    let (status, body) = get(format!("{api}/metrics")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("not_found"), "{body}");
    let (status, _) = get(format!("{metrics}/readyz")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let (status, _) = get(format!("{api}/readyz")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// JSON logs at `seatkeeper=debug` with the access log on: one line per admin change
/// (actor, action, target) and per acquire, each in its request's span with the id the
/// client sent or was answered; no key, token or operator token anywhere.
#[tokio::test]
async fn logs_name_each_change_and_request_and_never_a_secret() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .arg("serve")
            .envs([
                ("SEATKEEPER_BIND", "127.0.0.1:0"),
                ("SEATKEEPER_DATA_DIR", dir.path().to_str().unwrap()),
                ("SEATKEEPER_OPERATOR_TOKEN", OPERATOR),
                ("SEATKEEPER_LOG", "seatkeeper=debug,info"),
                ("SEATKEEPER_LOG_FORMAT", "json"),
                ("SEATKEEPER_ACCESS_LOG", "true"),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start seatkeeper"),
    );
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let parsed = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            if tx.send(parsed).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx.recv().expect("the server logs its address");
        let message = line["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        lines.push(line);
        if let Some(addr) = message.strip_prefix("listening on http://") {
            break addr.to_owned();
        }
    };
    let app = crate::helpers::TestApp::at(&addr);
    let org = app.create_org("logged").await;
    let (member, member_key) = app.member_with_key(&org, &["sessions"]).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/orgs/{}/pools", app.base, org.id))
        .bearer_auth(&org.owner_key)
        .header("X-Request-Id", "pool-req-7")
        .json(&serde_json::json!({"product": "kre", "kind": "floating", "seats": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "pool-req-7");
    let pool = answer.json::<serde_json::Value>().await.unwrap()["id"].clone();
    // Members are addressed by e-mail too: the access log writes no address.
    let by_email = format!("/v1/orgs/{}/users/private.person@example.com", org.id);
    let (status, body) = app.get(&by_email, &org.owner_key).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    let (status, lease) = app.acquire(&member_key, "kre", "box").await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{lease}");
    let token = lease["token"].as_str().unwrap().to_owned();
    let session = lease["session_id"].clone();

    // Until the access log line of the acquire, the last request.
    let is_acquire_logged = |l: &serde_json::Value| {
        l["fields"]["message"] == "request" && l["fields"]["path"] == "/v1/sessions"
    };
    while !lines.iter().any(is_acquire_logged) {
        lines.push(
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("the acquire is logged"),
        );
    }

    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for secret in [
        OPERATOR,
        org.owner_key.as_str(),
        member_key.as_str(),
        token.as_str(),
        "private.person",
    ] {
        assert!(
            !text.iter().any(|l| l.contains(secret)),
            "a secret was logged: {secret}"
        );
    }
    let change = |action: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == "admin change" && l["fields"]["action"] == action)
            .unwrap_or_else(|| panic!("no {action} line in {text:#?}"))
    };
    assert_eq!(change("org.created")["fields"]["actor"], "operator");
    let key_created = change("key.created");
    assert!(
        key_created["span"]["request_id"].is_string(),
        "{key_created}"
    );
    let pool_created = change("pool.created");
    assert_eq!(
        pool_created["fields"]["actor"].as_str(),
        Some(org.owner_id.as_str())
    );
    assert_eq!(pool_created["fields"]["target"], pool);
    assert_eq!(pool_created["span"]["request_id"], "pool-req-7");
    let acquire = (lines.iter())
        .find(|l| l["fields"]["message"] == "acquire")
        .expect("the acquire's debug line");
    assert_eq!(acquire["fields"]["outcome"], "granted");
    assert_eq!(acquire["fields"]["member"].as_str(), Some(member.as_str()));
    assert_eq!(acquire["fields"]["session"], session);
    let access = lines.iter().find(|l| is_acquire_logged(l)).unwrap();
    assert_eq!(access["fields"]["status"], 201);
    assert_eq!(access["span"]["request_id"], acquire["span"]["request_id"]);
    let by_email = format!("/v1/orgs/{}/users/{{email}}", org.id);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["path"] == by_email.as_str()),
        "{text:#?}"
    );
}

/// The served description and the router agree: every described method of every path
/// is routed (never 405 nor the unknown-route 404), every other method of a described
/// path answers 405 with `Allow` naming exactly the described ones, and the
/// description leaves out only itself.
#[tokio::test]
async fn openapi_describes_exactly_what_is_routed() {
    let app = crate::helpers::spawn_app().await;
    let client = reqwest::Client::new();
    let doc: serde_json::Value = client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 40, "{} paths", paths.len());
    assert!(!paths.contains_key("/openapi.json"));
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let described: Vec<String> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        assert!(!described.is_empty(), "{path}");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let answer = client
                .request(method.parse().unwrap(), format!("{}{concrete}", app.base))
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let allow = answer
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            if described.iter().any(|m| m == method) {
                assert_ne!(status, 405, "{method} {path} is described but not routed");
                assert_ne!(body["message"], "route not found", "{method} {path}");
                let op = &item[method.to_lowercase()];
                let listed = op["responses"].as_object().unwrap();
                assert!(
                    listed.contains_key(status.as_str()),
                    "{method} {path} answered {status}, not among {:?}",
                    listed.keys().collect::<Vec<_>>()
                );
            } else {
                assert_eq!(status, 405, "{method} {path}: {body}");
                assert_eq!(body["error"], "method_not_allowed");
                let mut allowed: Vec<String> = allow
                    .unwrap_or_default()
                    .split(", ")
                    .map(str::to_owned)
                    .collect();
                allowed.sort();
                let mut want = described.clone();
                want.sort();
                assert_eq!(allowed, want, "{path}");
            }
        }
    }
}

/// What a writer saw acknowledged, and when.
enum Acked {
    Member(String),
    Lease(String),
}

/// `seatkeeper backup` while four writers add members and take leases, then
/// `seatkeeper restore` into a new directory and a server started on it: every change
/// acknowledged before the backup began is there (members, leases, their audit
/// entries), the signing key too (the same JWKS), and the writers went on meanwhile.
#[tokio::test]
async fn a_backup_under_write_load_restores_every_change_acknowledged_before_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("a"));
    let app = &server.app;
    let org = Arc::new(app.create_org("backed-up").await);
    app.floating_pool(&org, "kre", 100_000, 3600).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(Instant, Acked)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, org) = (crate::helpers::TestApp::at(app.addr()), org.clone());
        let (stop, acked) = (stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let done = if i % 4 == 0 {
                    let email = format!("w{w}-{i}@backup.io");
                    let (status, body) = client
                        .post(
                            &format!("/v1/orgs/{}/users", org.id),
                            &org.owner_key,
                            serde_json::json!({"email": email}),
                        )
                        .await;
                    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                    Acked::Member(body["id"].as_str().unwrap().to_owned())
                } else {
                    let (status, body) = client
                        .acquire(&org.owner_key, "kre", &format!("f{w}-{i}"))
                        .await;
                    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
                    Acked::Lease(body["session_id"].as_str().unwrap().to_owned())
                };
                acked.lock().unwrap().push((Instant::now(), done));
            }
        }));
    }
    let count = || acked.lock().unwrap().len();
    crate::helpers::eventually("writers under way", Duration::from_secs(30), || async {
        (count() >= 200).then_some(())
    })
    .await;

    let began = Instant::now();
    let target = dir.path().join("backup");
    let (base, to) = (app.base.clone(), target.to_str().unwrap().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        seatkeeper(
            &["backup", "--server", &base, "--to", &to],
            &[("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let at_backup = count();
    crate::helpers::eventually(
        "writers go on after the backup",
        Duration::from_secs(30),
        || async { (count() >= at_backup + 100).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let jwks = app.jwks().await;
    // A second backup into the same directory never replaces the first.
    let again = seatkeeper(
        &[
            "backup",
            "--server",
            &app.base,
            "--to",
            target.to_str().unwrap(),
        ],
        &[("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)],
    );
    assert!(!again.status.success(), "{again:?}");
    server.kill_9();

    let restored = dir.path().join("b");
    let out = seatkeeper(
        &[
            "restore",
            "--from",
            target.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let out = seatkeeper(
        &[
            "restore",
            "--from",
            target.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success(), "a restore over a store: {out:?}");
    // Nor beside an old store's leftovers, which the server would recover as orgs.
    let leftovers = dir.path().join("leftovers");
    std::fs::create_dir_all(leftovers.join("snapshots")).unwrap();
    let (from, into) = (target.to_str().unwrap(), leftovers.to_str().unwrap());
    let out = seatkeeper(&["restore", "--from", from, "--data-dir", into], &[]);
    assert!(!out.status.success(), "a restore beside leftovers: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{out:?}"
    );

    let server = Server::start(&restored);
    let app = &server.app;
    assert_eq!(app.jwks().await, jwks, "the signing key came back");
    let live: std::collections::HashSet<String> = (app.all_sessions(&org).await.iter())
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let members: std::collections::HashSet<String> = (app
        .all(&format!("/v1/orgs/{}/users", org.id), &org.owner_key)
        .await
        .iter())
    .map(|m| m["id"].as_str().unwrap().to_owned())
    .collect();
    let audited: std::collections::HashSet<String> = (app.audit(&org).await.iter())
        .filter(|e| e["action"] == "member.added")
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    let before: Vec<_> = acked
        .lock()
        .unwrap()
        .drain(..)
        .filter(|(at, _)| *at < began)
        .collect();
    assert!(before.len() >= 200);
    for (_, change) in &before {
        match change {
            Acked::Lease(id) => assert!(
                live.contains(id),
                "lease {id} acknowledged before the backup is gone"
            ),
            Acked::Member(id) => {
                assert!(
                    members.contains(id),
                    "member {id} acknowledged before the backup is gone"
                );
                assert!(audited.contains(id), "member {id}'s audit entry is gone");
            }
        }
    }
}

/// The README's walk-through is `scripts/walkthrough.sh`, verbatim, and the script runs
/// against the real server from another directory, every status as it expects.
#[test]
fn the_walkthrough_runs_against_a_real_server() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("scripts/walkthrough.sh")).unwrap();
    let steps = script
        .split("# --- walk-through ---\n")
        .nth(1)
        .expect("the marker");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```sh\n{steps}```")),
        "the README's walk-through differs from scripts/walkthrough.sh"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let out = Command::new("bash")
        .arg(root.join("scripts/walkthrough.sh"))
        .current_dir(dir.path())
        .env("B", &server.app.base)
        .env("OP", OPERATOR)
        .output()
        .expect("run the walk-through");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("POST /v1/sessions → 409"), "{printed}");
    assert!(printed.contains("\"allowed\":true"), "{printed}");
}

/// A restore that did not finish (its marker left behind, as a crash mid-restore
/// leaves it) is refused at start rather than served with organizations missing.
#[test]
fn an_unfinished_restore_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("RESTORING"), b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .arg("serve")
        .env("SEATKEEPER_BIND", "127.0.0.1:0")
        .env("SEATKEEPER_DATA_DIR", dir.path())
        .env("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unfinished restore"), "{said}");
}
