//! seatkeeper: a floating-license and seat server. One actor per organization owns its
//! pools and leases; sled keeps every acknowledged change; actix-web is the wire.

pub mod actors;
pub mod config;
pub mod domain;
pub mod http;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tokens;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use rand::Rng;
use thiserror::Error;

use crate::actors::Directory;
use crate::config::Config;
use crate::http::AppState;
use crate::store::{Store, StoreError};
use crate::tokens::Signer;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The data directory, the token file or the listener failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The store could not be opened or recovered.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A built server, bound and ready to run.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    store: Store,
}

impl Application {
    /// Recovers the store, starts the organization actors and binds the listener.
    /// Must run inside an actix system (the actors live on its arbiters).
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let io = |what: String| move |source| StartError::Io { what, source };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(io(format!("create {}", config.data_dir.display())))?;
        let operator_token = operator_token(&config)?;
        let started = std::time::Instant::now();
        let (store, recovered) = Store::open(&config.data_dir)?;
        let signer = Signer::from_seed(&store.signing_seed()?);
        let leases: usize = recovered.iter().map(|r| r.state.sessions_live()).sum();
        let orgs = recovered.len();
        let directory = Directory::start(
            store.clone(),
            recovered,
            config.actor_threads(),
            config.store.snapshot_every,
        );
        tracing::info!(
            orgs,
            leases,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );

        let state = web::Data::new(AppState {
            directory,
            signer,
            operator_hash: secrets::hash(&operator_token),
            max_wait_seconds: config.sessions.max_wait_seconds,
        });
        crate::telemetry::prometheus();
        let listener =
            TcpListener::bind(&config.bind).map_err(io(format!("bind {}", config.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(io("listener address".into()))?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(http::record_metrics))
                .configure(http::configure)
        })
        .workers(config.http_workers())
        .listen(listener)
        .map_err(io(format!("listen on {addr}")))?
        .run();
        tracing::info!("listening on http://{addr}");
        Ok(Application {
            addr,
            server,
            store,
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the server handle), lets requests
    /// in flight finish, then flushes the store.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        self.server.await.map_err(|source| StartError::Io {
            what: "serve".into(),
            source,
        })?;
        self.store.close().await?;
        tracing::info!("stopped; store flushed");
        Ok(())
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The operator token from config, or the one generated into the data dir on first start.
fn operator_token(config: &Config) -> Result<String, StartError> {
    if let Some(token) = &config.operator_token {
        return Ok(token.clone());
    }
    let path = config.data_dir.join("operator_token");
    let io = |what: &str, path: &Path, source| StartError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", &path, e)),
    }
    let token: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token = format!("op_{token}");
    write_private(&path, &token).map_err(|e| io("write", &path, e))?;
    tracing::info!(path = %path.display(), "generated the operator token; it is in this file");
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
