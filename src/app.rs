//! The server as a whole: recover the store, start the actors, bind, serve.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::Ordering;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use rand::Rng;
use thiserror::Error;

use crate::actors::{ActorSettings, Directory};
use crate::config::Config;
use crate::domain::{Timestamp, WaitLimits};
use crate::http::AppState;
use crate::store::{Store, StoreError};
use crate::tokens::Signer;
use crate::{http, secrets};

/// The shortest operator token accepted: it founds organizations, so it must not be
/// guessable.
pub const MIN_OPERATOR_TOKEN: usize = 32;

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
    /// The configuration cannot be served safely.
    #[error("configuration: {0}")]
    Config(String),
}

/// A built server, bound and ready to run.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    /// The listener of `metrics.bind`, if set.
    metrics: Option<Server>,
    store: Store,
    state: web::Data<AppState>,
}

impl Application {
    /// Recovers the store, starts the organization actors and binds the listener.
    /// Must run inside an actix system (the actors live on its arbiters).
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let io = |what: String| move |source| StartError::Io { what, source };
        // First: the actors started below count their recovered leases into the gauges,
        // and counts made before a recorder exists are lost.
        crate::telemetry::prometheus();
        let figures = crate::telemetry::figures();
        (figures.pool_series_limit).store(config.metrics.max_pool_series, Ordering::Relaxed);
        // Before anything is written or recovered: a bad certificate costs nothing then.
        let tls = crate::tls::server_config(&config.tls)?;
        secure_data_dir(&config.data_dir)?;
        // Before anything is written into it, such as a generated operator token.
        crate::store::backup::check_restored(&config.data_dir)?;
        raise_open_file_limit();
        no_transparent_huge_pages();
        let operator_token = operator_token(&config)?;
        let started = std::time::Instant::now();
        let (store, recovered) = Store::open(&config.data_dir)?;
        let signer = Signer::from_seed(&store.signing_seed()?);
        let leases: usize = recovered.iter().map(|r| r.state.sessions_live()).sum();
        let orgs = recovered.len();
        let settings = ActorSettings {
            snapshot_every: config.store.snapshot_every,
            wait_limits: WaitLimits {
                per_key: config.sessions.max_waiters_per_key,
                per_member: config.sessions.max_waiters_per_member,
                per_org: config.sessions.max_waiters_per_org,
            },
        };
        (figures.recovery_micros).store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        tracing::info!(
            orgs,
            leases,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );

        // Bound before any actor starts: a refused bind leaves no actor to stop.
        let metrics = match &config.metrics.bind {
            Some(bind) => Some(metrics_server(bind)?),
            None => None,
        };
        let listener =
            TcpListener::bind(&config.bind).map_err(io(format!("bind {}", config.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(io("listener address".into()))?;
        let directory = Directory::start(store.clone(), recovered, config.placement(), settings);
        if config.store.audit_retention_days > 0 {
            prune_audit_log(store.clone(), config.store.audit_retention_days);
        }
        let state = web::Data::new(AppState {
            directory,
            signer,
            store: store.clone(),
            operator_hash: secrets::hash(&operator_token),
            max_wait_seconds: config.sessions.max_wait_seconds,
            access_log: config.access_log,
            metrics_elsewhere: config.metrics.bind.is_some(),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            state.directory.adopt_worker();
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(http::record_metrics))
                .wrap(middleware::from_fn(http::trace_request))
                .configure(http::configure)
        })
        .workers(config.http_workers())
        .on_connect(http::peer::on_connect);
        let listening = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        };
        let server = match listening {
            Ok(server) => server.run(),
            Err(e) => {
                app_state.directory.stop().await;
                return Err(io(format!("listen on {addr}"))(e));
            }
        };
        tracing::info!(
            http_workers = config.http_workers(),
            actor_threads = config.actor_threads,
            "serving"
        );
        tracing::info!("listening on {scheme}://{addr}");
        Ok(Application {
            addr,
            server,
            metrics,
            store,
            state: app_state,
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the server handle), lets requests
    /// in flight finish, then flushes the store.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let metrics = self.metrics.map(|server| {
            let handle = server.handle();
            actix_web::rt::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "the /metrics listener stopped");
                }
            });
            handle
        });
        let served = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        // The actor threads stop first: none decides a change once the store is closed
        // (actors on the HTTP workers end with them, unwaited; see `Directory::stop`).
        self.state.directory.stop().await;
        // Flushed whether serving ended well or not.
        let closed = self.store.close().await;
        served.map_err(|source| StartError::Io {
            what: "serve".into(),
            source,
        })?;
        closed?;
        tracing::info!("stopped; store flushed");
        Ok(())
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The listener of `metrics.bind`: `/metrics` alone, on one worker, stopped with the
/// API's listener rather than by signals of its own.
fn metrics_server(bind: &str) -> Result<Server, StartError> {
    let io = |what: String| move |source| StartError::Io { what, source };
    let listener = TcpListener::bind(bind).map_err(io(format!("bind metrics.bind {bind}")))?;
    let addr = listener
        .local_addr()
        .map_err(io("metrics listener address".into()))?;
    let server = HttpServer::new(|| App::new().configure(http::configure_metrics_only))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(io(format!("listen on {addr}")))?
        .run();
    tracing::info!("serving /metrics alone on http://{addr}");
    Ok(server)
}

/// Raises the soft limit on open files to the hard one: every connection holds a
/// descriptor, and every queued acquire a second one (its connection's duplicate), so
/// the usual soft limit of 1,024 would refuse connections long before memory runs out.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !raised {
        tracing::warn!("could not raise the open-file limit; many waiting clients may be refused");
    }
}

/// Turns transparent huge pages off for this process (as Redis does at start). The
/// allocator asks for them, and each first touch of a huge page zeroes 2 MiB at once
/// on the thread that touched it: while leases pile up, the org actor's thread stalled
/// in those faults, and every acquire waiting on it too (the acquire's p99 6.1–6.5 →
/// 3.6–4.0 ms without them, at the same req/s). A setting of the process, inherited
/// by nothing it does not start.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: prctl with integer arguments only; it changes a flag of this process.
        let set = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused) };
        if set != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not turn transparent huge pages off; latency may have spikes");
        }
    }
}

/// Makes the data directory, and what the server keeps in it, accessible to the
/// server's user only: it holds the token signing key and the operator token. A
/// directory that already existed is tightened; one that cannot be is refused.
fn secure_data_dir(dir: &Path) -> Result<(), StartError> {
    // SAFETY: umask only sets the process's file-creation mask; it has no
    // memory-safety preconditions. Every file created from here on (sled's included,
    // also the ones it creates later) is private to this user.
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir).map_err(|source| StartError::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    make_private(dir, &std::fs::metadata(dir).map_err(inspect(dir))?)?;
    for name in ["store", "snapshots", "operator_token", "operator_token.tmp"] {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            make_private_tree(&path)?;
        }
    }
    Ok(())
}

fn inspect(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        what: format!("inspect {}", path.display()),
        source,
    }
}

/// Takes group and other permissions off `path` and, if it is a directory, everything
/// below it. A symbolic link or a file of another user is refused: while the directory
/// was open to others, anyone could have planted one to read or choose our secrets.
fn make_private_tree(path: &Path) -> Result<(), StartError> {
    let meta = std::fs::symlink_metadata(path).map_err(inspect(path))?;
    if meta.file_type().is_symlink() {
        return Err(StartError::Config(format!(
            "{} is a symbolic link; the data directory must hold the server's own files",
            path.display()
        )));
    }
    make_private(path, &meta)?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| StartError::Io {
            what: format!("list {}", path.display()),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| StartError::Io {
                what: format!("list {}", path.display()),
                source,
            })?;
            make_private_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn make_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), StartError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(StartError::Config(format!(
            "{} belongs to user {}, not to this server's user {me}; the data directory \
             holds secrets and must be the server's own",
            path.display(),
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
            |source| StartError::Io {
                what: format!("make {} private to this user", path.display()),
                source,
            },
        )?;
    }
    Ok(())
}

/// The operator token from config, or the one generated into the data dir on first
/// start. A configured token shorter than [`MIN_OPERATOR_TOKEN`] is refused (and not
/// echoed); a token file that is empty or unreadable is replaced, not fatal.
fn operator_token(config: &Config) -> Result<String, StartError> {
    if let Some(token) = &config.operator_token {
        if token.starts_with("sk_") {
            return Err(StartError::Config(
                "operator_token must not start with \"sk_\", which marks API keys \
                 (its value is not shown)"
                    .into(),
            ));
        }
        if token.chars().count() < MIN_OPERATOR_TOKEN {
            return Err(StartError::Config(format!(
                "operator_token must be at least {MIN_OPERATOR_TOKEN} characters; \
                 the configured one is shorter (its value is not shown)"
            )));
        }
        return Ok(token.clone());
    }
    let path = config.data_dir.join("operator_token");
    match std::fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(token) if token.trim().chars().count() >= MIN_OPERATOR_TOKEN => {
                return Ok(token.trim().to_owned())
            }
            _ => tracing::warn!(
                path = %path.display(),
                "the operator token file holds no usable token; generating a new one"
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "the operator token file cannot be read; generating a new one"
        ),
    }
    let token: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token = format!("op_{token}");
    write_private(&path, &token).map_err(|source| StartError::Io {
        what: format!("write {}", path.display()),
        source,
    })?;
    tracing::info!(path = %path.display(), "generated the operator token; it is in this file");
    Ok(token)
}

/// Replaces `path` with `contents`, readable by this user only. Written beside it and
/// renamed over it, so a crash leaves the old file or the new one, never a torn one.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // A stale temporary file (or a link planted in its place) goes; the new one must be
    // created here, never opened through a link.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Prunes audit entries older than `days`, now and every hour after, on a thread of its
/// own (a prune of a long log is sled work no request should wait behind).
fn prune_audit_log(store: Store, days: u64) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    let spawned = std::thread::Builder::new()
        .name("audit-retention".into())
        .spawn(move || loop {
            let cutoff =
                Timestamp(crate::actors::clock::now().millis() - (days * 86_400_000) as i64);
            match store.prune_audit(cutoff) {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "audit entries past retention pruned"),
                Err(e) => tracing::warn!(error = %e, "audit retention prune failed"),
            }
            std::thread::sleep(EVERY);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "audit retention thread not started");
    }
}
