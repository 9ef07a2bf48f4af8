//! HTTPS through rustls, with a certificate authority and a server certificate made by
//! the test: the binary serves it, clients that trust the CA get answers, and the
//! subcommands that call a server (`health`, `backup`) speak it too.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::{TestApp, OPERATOR};
use crate::ops::{seatkeeper, Child};

/// A CA, and a certificate it signed for 127.0.0.1 and localhost, written as PEM files.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

impl Pki {
    fn write(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(DnType::CommonName, "seatkeeper test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let put = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_owned()
        };
        Pki {
            ca: put("ca.pem", ca.pem()),
            cert: put("cert.pem", cert.pem()),
            key: put("key.pem", key.serialize_pem()),
        }
    }

    /// The variables that make the server use this certificate.
    fn env(&self) -> [(&str, &str); 2] {
        [
            ("SEATKEEPER_TLS__CERT", self.cert.as_str()),
            ("SEATKEEPER_TLS__KEY", self.key.as_str()),
        ]
    }

    /// A client that trusts this CA alone.
    fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .unwrap()
    }
}

/// A server started by [`serve`]: the child, the URL it logged, and its log until then.
pub(crate) type Serving = (Child, String, String);

/// Starts the binary with `env`; answers it, the URL it logged and its log until then,
/// or, if it exits before listening, its exit code and log.
pub(crate) fn serve(data: &Path, env: &[(&str, &str)]) -> Result<Serving, (Option<i32>, String)> {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
            .arg("serve")
            .env("SEATKEEPER_BIND", "127.0.0.1:0")
            .env("SEATKEEPER_DATA_DIR", data)
            .env("SEATKEEPER_OPERATOR_TOKEN", OPERATOR)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start seatkeeper"),
    );
    let mut log = String::new();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
        if let Some((_, addr)) = line.split_once("listening on ") {
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, addr.trim().to_owned(), log));
        }
    }
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    Err((status.code(), log + &stderr))
}

/// With `tls.cert` and `tls.key` the server speaks HTTPS only: a client trusting the CA
/// founds an org and holds a seat through it; a client that does not trust it, and plain
/// HTTP to the same port, get nothing. `health` finds it from the same configuration,
/// and `backup` reaches it trusting the CA through `SSL_CERT_FILE`.
#[tokio::test]
async fn the_server_speaks_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path());
    let tls_env = pki.env();
    let (_server, url, _) = serve(&dir.path().join("data"), &tls_env).expect("serves");
    let addr = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("logged {url}, not an https:// address"))
        .to_owned();

    let app = TestApp::with_client(url.clone(), pki.client());
    let org = app.create_org("over-tls").await;
    app.floating_pool(&org, "kre", 1, 60).await;
    let (status, lease) = app.acquire(&org.owner_key, "kre", "tls-box").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let (status, body) = app.acquire(&org.owner_key, "kre", "other-box").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let refused = untrusting.get(format!("{url}/readyz")).send().await;
    assert!(refused.is_err(), "a client without the CA got {refused:?}");
    let plain = reqwest::get(format!("http://{addr}/readyz")).await;
    assert!(
        plain
            .as_ref()
            .map_or(true, |r| r.status() != StatusCode::OK),
        "plain HTTP was answered: {plain:?}"
    );

    let out = seatkeeper(&["health", "--url", &url], &[]);
    assert!(out.status.success(), "{out:?}");
    let bind = [("SEATKEEPER_BIND", addr.as_str())];
    let out = seatkeeper(&["health"], &[bind[0], tls_env[0], tls_env[1]]);
    assert!(out.status.success(), "{out:?}");
    let out = seatkeeper(&["health"], &bind);
    assert_eq!(out.status.code(), Some(1), "plain HTTP health: {out:?}");

    let to = dir.path().join("backup");
    let to = to.to_str().unwrap();
    let backup = ["backup", "--server", &url, "--to", to];
    let token = ("SEATKEEPER_OPERATOR_TOKEN", OPERATOR);
    let out = seatkeeper(&backup, &[token, ("SSL_CERT_FILE", "/nonexistent.pem")]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "backup from an untrusted server: {out:?}"
    );
    let out = seatkeeper(&backup, &[token, ("SSL_CERT_FILE", pki.ca.as_str())]);
    assert!(out.status.success(), "{out:?}");
    assert!(Path::new(to).join("seatkeeper.backup").is_file());
}

/// A certificate without its key, or a key that is not the certificate's, stops the
/// server at start with the reason, before it listens.
#[test]
fn a_half_or_mismatched_tls_configuration_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path());
    let other = tempfile::tempdir().unwrap();
    let other = Pki::write(other.path());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("SEATKEEPER_TLS__CERT", &pki.cert)], "go together"),
        (
            &[
                ("SEATKEEPER_TLS__CERT", &pki.cert),
                ("SEATKEEPER_TLS__KEY", &other.key),
            ],
            "keys may not be consistent: KeyMismatch",
        ),
        (
            &[
                ("SEATKEEPER_TLS__CERT", &pki.key),
                ("SEATKEEPER_TLS__KEY", &pki.key),
            ],
            "no certificate",
        ),
    ];
    for (i, (env, why)) in cases.into_iter().enumerate() {
        let data = dir.path().join(format!("data-{i}"));
        let (code, log) = serve(&data, env).err().expect("refused at start");
        assert_ne!(code, Some(0), "{log}");
        assert!(log.contains(why), "case {i}: wanted {why:?} in {log}");
    }
}

/// Over TLS too, a queued acquire whose client gives up gets no seat: the server sees
/// the connection close under the encryption, whether the client says goodbye
/// (`close_notify`, then FIN) or just closes the socket.
#[tokio::test]
async fn a_waiter_that_left_over_tls_gets_no_seat() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::write(dir.path());
    let (_server, url, _) = serve(&dir.path().join("data"), &pki.env()).expect("serves");
    let addr = url.trim_start_matches("https://").to_owned();
    let app = TestApp::with_client(url, pki.client());
    let org = app.create_org("tls-ghosts").await;
    let pool = app.floating_pool(&org, "kre", 1, 60).await;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&pki.ca).unwrap();
    roots
        .add(rustls::pki_types::pem::PemObject::from_pem_slice(&ca).unwrap())
        .unwrap();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for (ghost, says_goodbye) in [("ghost-A", true), ("ghost-B", false)] {
        let (status, held) = app.acquire(&org.owner_key, "kre", "holder").await;
        assert_eq!(status, StatusCode::CREATED, "{held}");
        let name = "127.0.0.1".try_into().unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(&addr).unwrap());
        crate::helpers::send_queued_acquire(&mut tls, &org.owner_key, ghost);
        crate::helpers::eventually(
            "one waiting",
            std::time::Duration::from_secs(10),
            || async { (app.pool(&org, &pool).await["waiting"] == 1).then_some(()) },
        )
        .await;
        // The client gives up.
        if says_goodbye {
            tls.conn.send_close_notify();
            tls.flush().unwrap();
        }
        drop(tls);
        let (status, _) = app
            .release(&org.owner_key, held["session_id"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let live = app.all_sessions(&org).await;
        assert!(live.is_empty(), "{ghost} got the seat: {live:?}");
        assert_eq!(app.pool(&org, &pool).await["waiting"], 0);
    }
}
