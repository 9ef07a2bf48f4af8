//! Layered configuration: the embedded `config/default.toml`, then an optional file,
//! then `SEATKEEPER_*` environment variables, then command-line flags (`__` separates
//! nested keys in a variable's name: `SEATKEEPER_STORE__SNAPSHOT_EVERY`).

use std::path::{Path, PathBuf};

use crate::actors::Placement;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The defaults shipped in the binary.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on; port 0 picks a free one.
    pub bind: String,
    /// Where the store and the generated operator token live.
    pub data_dir: PathBuf,
    /// The operator's bootstrap token; generated into the data dir when unset.
    #[serde(default)]
    pub operator_token: Option<String>,
    /// Log filter, `RUST_LOG` syntax.
    pub log: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Whether every HTTP request is logged.
    pub access_log: bool,
    /// HTTP worker threads; 0 means one per core and one more.
    pub workers: usize,
    /// Threads of their own for the organization actors; 0 runs them on the HTTP workers.
    pub actor_threads: usize,
    /// Session settings.
    pub sessions: SessionsConfig,
    /// Store settings.
    pub store: StoreConfig,
    /// Metrics settings.
    pub metrics: MetricsConfig,
    /// TLS settings; plain HTTP unless both paths are set.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// TLS settings: PEM files read at start.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Metrics settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Pools that get gauges of their own (labelled org, pool, product).
    pub max_pool_series: usize,
    /// A listener of its own for `/metrics` (which the API's then does not serve).
    #[serde(default)]
    pub bind: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Session settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// The longest `wait_seconds` an acquire may ask for.
    pub max_wait_seconds: u64,
    /// Acquires one API key may have queued at once.
    pub max_waiters_per_key: u32,
    /// Acquires one member may have queued at once, with all their keys.
    pub max_waiters_per_member: u32,
    /// Acquires one organization may have queued at once.
    pub max_waiters_per_org: u32,
}

/// Store settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Journal length (events) after which an organization is snapshotted; the real
    /// threshold is at least twice the organization's size, so snapshots stay amortized.
    pub snapshot_every: u64,
    /// Days an audit entry is kept; 0 keeps them forever.
    pub audit_retention_days: u64,
}

impl Config {
    /// Defaults, then `file` if given, then the overrides (flags, else variables).
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = overrides.layer(figment).extract().map_err(Box::new)?;
        if config.operator_token.as_deref().is_some_and(str::is_empty) {
            config.operator_token = None;
        }
        Ok(config)
    }

    /// The effective configuration as TOML, the operator token masked.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.operator_token = shown
            .operator_token
            .as_ref()
            .map(|t| format!("<set: {} characters>", t.chars().count()));
        let mut text = toml::to_string(&shown).expect("the configuration serializes");
        if self.operator_token.is_none() {
            text.insert_str(
                0,
                &format!(
                    "# operator_token unset: generated into {}\n",
                    self.data_dir.join("operator_token").display()
                ),
            );
        }
        text
    }

    /// The embedded defaults alone (for tests, which then override fields).
    pub fn defaults() -> Config {
        Figment::from(Toml::string(DEFAULTS))
            .extract()
            .expect("embedded defaults are valid")
    }

    /// HTTP workers after resolving 0: one more than the cores, so a worker the
    /// scheduler sets aside holds fewer of the connections waiting on the actors.
    pub fn http_workers(&self) -> usize {
        match self.workers {
            0 => cores() + 1,
            n => n,
        }
    }

    /// Where the organization actors run: 0 threads means on the HTTP workers.
    pub fn placement(&self) -> Placement {
        match self.actor_threads {
            0 => Placement::Workers(self.http_workers()),
            n => Placement::Dedicated(n),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One flag per configuration key, each also read from its `SEATKEEPER_*` variable; what
/// is given overrides the file and the embedded defaults.
#[derive(Debug, Default, clap::Args)]
pub struct Overrides {
    #[arg(long, env = "SEATKEEPER_BIND", value_name = "HOST:PORT",
        help = described("Address to listen on; port 0 picks a free one (the bound address is logged)", "bind"))]
    bind: Option<String>,
    #[arg(long, env = "SEATKEEPER_DATA_DIR", value_name = "DIR",
        help = described("Directory of the store, the signing key and the generated operator token", "data_dir"))]
    data_dir: Option<PathBuf>,
    #[arg(
        long,
        env = "SEATKEEPER_OPERATOR_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help = "The operator's bootstrap token, at least 32 characters (prefer the variable: \
            `ps` shows flags) [default: generated into DATA_DIR/operator_token]"
    )]
    operator_token: Option<String>,
    #[arg(long, env = "SEATKEEPER_LOG", value_name = "FILTER",
        help = described("Log filter, RUST_LOG syntax (e.g. seatkeeper=debug,info)", "log"))]
    log: Option<String>,
    #[arg(long, env = "SEATKEEPER_LOG_FORMAT", value_enum,
        help = described("Log lines as text or one JSON object per line", "log_format"))]
    log_format: Option<LogFormat>,
    #[arg(long, env = "SEATKEEPER_ACCESS_LOG", value_name = "BOOL",
        help = described("One info line per HTTP request (method, path, status, time)", "access_log"))]
    access_log: Option<bool>,
    #[arg(long, env = "SEATKEEPER_WORKERS", value_name = "N",
        help = described("HTTP worker threads; 0 means one per core and one more", "workers"))]
    workers: Option<usize>,
    #[arg(long, env = "SEATKEEPER_ACTOR_THREADS", value_name = "N",
        help = described("Threads of their own for the organization actors; 0 runs them on the HTTP workers", "actor_threads"))]
    actor_threads: Option<usize>,
    #[arg(long, env = "SEATKEEPER_SESSIONS__MAX_WAIT_SECONDS", value_name = "SECONDS",
        help = described("The longest wait_seconds an acquire may ask for", "sessions.max_wait_seconds"))]
    sessions_max_wait_seconds: Option<u64>,
    #[arg(long, env = "SEATKEEPER_SESSIONS__MAX_WAITERS_PER_KEY", value_name = "N",
        help = described("Acquires one API key may have queued at once", "sessions.max_waiters_per_key"))]
    sessions_max_waiters_per_key: Option<u32>,
    #[arg(long, env = "SEATKEEPER_SESSIONS__MAX_WAITERS_PER_MEMBER", value_name = "N",
        help = described("Acquires one member may have queued at once, with all their keys", "sessions.max_waiters_per_member"))]
    sessions_max_waiters_per_member: Option<u32>,
    #[arg(long, env = "SEATKEEPER_SESSIONS__MAX_WAITERS_PER_ORG", value_name = "N",
        help = described("Acquires one organization may have queued at once", "sessions.max_waiters_per_org"))]
    sessions_max_waiters_per_org: Option<u32>,
    #[arg(long, env = "SEATKEEPER_STORE__SNAPSHOT_EVERY", value_name = "EVENTS",
        help = described("Journal events after which an organization is snapshotted (at least 2 x its size)", "store.snapshot_every"))]
    store_snapshot_every: Option<u64>,
    #[arg(long, env = "SEATKEEPER_STORE__AUDIT_RETENTION_DAYS", value_name = "DAYS",
        help = described("Days an audit entry is kept; 0 keeps them forever", "store.audit_retention_days"))]
    store_audit_retention_days: Option<u64>,
    #[arg(long, env = "SEATKEEPER_METRICS__MAX_POOL_SERIES", value_name = "N",
        help = described("Pools that get gauges of their own at /metrics (labelled org, pool, product); the rest only in seatkeeper_pools_without_series and the lease total", "metrics.max_pool_series"))]
    metrics_max_pool_series: Option<usize>,
    #[arg(
        long,
        env = "SEATKEEPER_METRICS__BIND",
        value_name = "HOST:PORT",
        help = "Serve /metrics on this address alone (plain HTTP), not on the API's [default: unset: /metrics on the API's listener]"
    )]
    metrics_bind: Option<String>,
    #[arg(
        long,
        env = "SEATKEEPER_TLS__CERT",
        value_name = "PEM",
        help = "Certificate chain (PEM, leaf first) to serve HTTPS with; needs --tls-key [default: unset: plain HTTP]"
    )]
    tls_cert: Option<PathBuf>,
    #[arg(
        long,
        env = "SEATKEEPER_TLS__KEY",
        value_name = "PEM",
        help = "Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert [default: unset: plain HTTP]"
    )]
    tls_key: Option<PathBuf>,
}

impl Overrides {
    /// Merges every value given on top of `figment`.
    fn layer(&self, figment: Figment) -> Figment {
        fn set<T: Serialize>(figment: Figment, key: &str, value: &Option<T>) -> Figment {
            match value {
                Some(v) => figment.merge(Serialized::default(key, v)),
                None => figment,
            }
        }
        let f = set(figment, "bind", &self.bind);
        let f = set(f, "data_dir", &self.data_dir);
        let f = set(f, "operator_token", &self.operator_token);
        let f = set(f, "log", &self.log);
        let f = set(f, "log_format", &self.log_format);
        let f = set(f, "access_log", &self.access_log);
        let f = set(f, "workers", &self.workers);
        let f = set(f, "actor_threads", &self.actor_threads);
        let f = set(
            f,
            "sessions.max_wait_seconds",
            &self.sessions_max_wait_seconds,
        );
        let f = set(
            f,
            "sessions.max_waiters_per_key",
            &self.sessions_max_waiters_per_key,
        );
        let f = set(
            f,
            "sessions.max_waiters_per_member",
            &self.sessions_max_waiters_per_member,
        );
        let f = set(
            f,
            "sessions.max_waiters_per_org",
            &self.sessions_max_waiters_per_org,
        );
        let f = set(f, "store.snapshot_every", &self.store_snapshot_every);
        let f = set(
            f,
            "store.audit_retention_days",
            &self.store_audit_retention_days,
        );
        let f = set(f, "metrics.max_pool_series", &self.metrics_max_pool_series);
        let f = set(f, "metrics.bind", &self.metrics_bind);
        let f = set(f, "tls.cert", &self.tls_cert);
        set(f, "tls.key", &self.tls_key)
    }
}

/// A flag's help: what it sets, and the embedded default of `key` (a dotted path).
fn described(what: &str, key: &str) -> String {
    let defaults: toml::Table = DEFAULTS.parse().expect("embedded defaults are valid");
    let mut value = defaults.get(key.split('.').next().unwrap_or(key));
    for part in key.split('.').skip(1) {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(toml::Value::String(s)) => format!("{what} [default: {s}]"),
        Some(v) => format!("{what} [default: {v}]"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    /// Every key of the configuration has a flag (`store.snapshot_every` →
    /// `--store-snapshot-every`) and a variable, so `--help` lists them all.
    #[test]
    fn every_key_has_a_flag_and_a_variable() {
        fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in table {
                let key = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(t) => keys(&format!("{key}."), t, out),
                    _ => out.push(key),
                }
            }
        }
        let mut config = Config::defaults();
        // Keys unset by default are left out of the TOML: set them so they are walked.
        config.operator_token = Some("x".repeat(32));
        config.tls.cert = Some("cert.pem".into());
        config.tls.key = Some("key.pem".into());
        config.metrics.bind = Some("127.0.0.1:9090".into());
        let table: toml::Table = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        let mut all = Vec::new();
        keys("", &table, &mut all);
        let command = Overrides::augment_args(Command::new("t"));
        for key in all {
            let flag = key.replace(['.', '_'], "-");
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(flag.as_str()))
                .unwrap_or_else(|| panic!("no --{flag} for {key}"));
            let var = format!("SEATKEEPER_{}", key.replace('.', "__").to_uppercase());
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&var)), "{key}");
        }
    }

    /// A misspelt key is refused, not ignored: `[tls] certificate = …` must not start
    /// a server on plain HTTP.
    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "[tls]\ncertificate = \"c.pem\"\n",
            "bnid = \"127.0.0.1:1\"\n",
        ] {
            let file = dir.path().join("seatkeeper.toml");
            std::fs::write(&file, text).unwrap();
            let refused = Config::load(Some(&file), &Overrides::default());
            assert!(refused.is_err(), "{text}");
        }
    }

    #[test]
    fn flags_override_the_file_and_the_token_is_masked() {
        let overrides = Overrides {
            bind: Some("0.0.0.0:9".into()),
            store_snapshot_every: Some(7),
            operator_token: Some("t".repeat(40)),
            ..Overrides::default()
        };
        let config = Config::load(None, &overrides).unwrap();
        assert_eq!(config.bind, "0.0.0.0:9");
        assert_eq!(config.store.snapshot_every, 7);
        assert_eq!(
            config.sessions.max_wait_seconds,
            Config::defaults().sessions.max_wait_seconds
        );
        let shown = config.masked_toml();
        assert!(!shown.contains(&"t".repeat(40)), "{shown}");
        assert!(shown.contains("<set: 40 characters>"), "{shown}");
    }
}
