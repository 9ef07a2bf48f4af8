//! Running it: the `health` and `config` subcommands, as a container or an operator
//! uses them.

use std::process::{Command, Output};

use crate::crash::Server;
use crate::helpers::OPERATOR;

fn seatkeeper(args: &[&str], env: &[(&str, &str)]) -> Output {
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
