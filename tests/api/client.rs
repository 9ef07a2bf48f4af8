//! The client side, run as its users run it: the real `seatkeeper` binary beside a real
//! server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::crash::Server;

fn seatkeeper(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(args)
        .output()
        .expect("run seatkeeper")
}

/// `seatkeeper verify` accepts a real lease token against the server's JWKS (by URL or
/// file) and refuses it tampered with or for another organization or product.
#[tokio::test]
async fn verify_checks_a_lease_token_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let app = &server.app;
    let org = app.create_org("verify").await;
    app.floating_pool(&org, "kre", 2, 60).await;
    let (status, lease) = app.acquire(&org.owner_key, "kre", "box-1").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let token = lease["token"].as_str().unwrap();
    let url = format!("{}/.well-known/jwks.json", app.base);
    let file = dir.path().join("jwks.json");
    let jwks = reqwest::get(&url).await.unwrap().text().await.unwrap();
    std::fs::write(&file, jwks).unwrap();
    let file = file.to_str().unwrap();

    for source in [url.as_str(), file] {
        let out = seatkeeper(&["verify", token, "--jwks", source, "--org", &org.id]);
        assert!(out.status.success(), "{out:?}");
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["sid"], lease["session_id"]);
        assert_eq!(claims["org"].as_str(), Some(org.id.as_str()));
    }

    // One character in the middle of the payload changed (the last one may carry only
    // padding bits).
    let mut parts: Vec<Vec<u8>> = token.split('.').map(|p| p.as_bytes().to_vec()).collect();
    let middle = parts[1].len() / 2;
    parts[1][middle] = if parts[1][middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(parts.join(&b'.')).unwrap();
    let org_id = org.id.as_str();
    for (args, why) in [
        (
            vec!["verify", tampered.as_str(), "--jwks", file, "--org", org_id],
            "signature",
        ),
        (
            vec!["verify", token, "--jwks", file, "--org", "org_other"],
            "organization",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--product",
                "kse",
            ],
            "product",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--fingerprint",
                "box-2",
            ],
            "machine",
        ),
        (
            vec![
                "verify",
                token,
                "--jwks",
                file,
                "--org",
                org_id,
                "--kind",
                "activation",
            ],
            "Activation",
        ),
    ] {
        let out = seatkeeper(&args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
    }
    // From standard input, so the token stays off the command line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper"))
        .args(["verify", "-", "--jwks", file, "--org", org_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    // An unreadable JWKS is a usage error, not a refusal.
    let out = seatkeeper(&[
        "verify",
        token,
        "--jwks",
        "/nonexistent/jwks.json",
        "--org",
        org_id,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
