//! Layered configuration: the embedded `config/default.toml`, then an optional file,
//! then `SEATKEEPER_*` environment variables (`__` separates nested keys).

use std::path::{Path, PathBuf};

use crate::actors::Placement;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The defaults shipped in the binary.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize)]
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
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Threads of their own for the organization actors; 0 runs them on the HTTP workers.
    pub actor_threads: usize,
    /// Session settings.
    pub sessions: SessionsConfig,
    /// Store settings.
    pub store: StoreConfig,
}

/// Session settings.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// Journal length (events) after which an organization is snapshotted; the real
    /// threshold is at least twice the organization's size, so snapshots stay amortized.
    pub snapshot_every: u64,
    /// Days an audit entry is kept; 0 keeps them forever.
    pub audit_retention_days: u64,
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let mut config: Config = figment
            .merge(Env::prefixed("SEATKEEPER_").split("__"))
            .extract()
            .map_err(Box::new)?;
        if config.operator_token.as_deref().is_some_and(str::is_empty) {
            config.operator_token = None;
        }
        Ok(config)
    }

    /// The embedded defaults alone (for tests, which then override fields).
    pub fn defaults() -> Config {
        Figment::from(Toml::string(DEFAULTS))
            .extract()
            .expect("embedded defaults are valid")
    }

    /// HTTP workers after resolving 0.
    pub fn http_workers(&self) -> usize {
        match self.workers {
            0 => cores(),
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
