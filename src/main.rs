//! The `seatkeeper` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Read;

use clap::{Parser, Subcommand};
use seatkeeper::client::run::{self, OnLeaseLost};
use seatkeeper::client::{self, Expect, Kind};
use seatkeeper::config::{Config, Overrides};
use seatkeeper::store::backup::Backup;
use seatkeeper::{telemetry, Application};

// Many short-lived buffers cross threads on every request (worker → actor → writer);
// glibc's malloc spent ~8% of the server's CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Floating-license and seat server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Its configuration: the defaults embedded in the binary, then
    /// --config FILE, then SEATKEEPER_* variables, then flags.
    Serve {
        /// A TOML file layered over the embedded defaults.
        #[arg(long, env = "SEATKEEPER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print the configuration `serve` would run with, as TOML (the operator token
    /// masked), and exit; exit 2 if it is invalid.
    Config {
        #[arg(long, env = "SEATKEEPER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Take a consistent backup of a running server (every organization, its audit log
    /// and the token signing key) into DIR/seatkeeper.backup, checked before it is kept.
    Backup {
        /// The server's base URL.
        #[arg(long, env = "SEATKEEPER_URL")]
        server: String,
        /// The operator token (prefer the variable: `ps` shows flags).
        #[arg(long, env = "SEATKEEPER_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
        /// The directory to write the backup into (created if missing; an existing
        /// backup there is never overwritten).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Write a new data directory from a backup (DIR/seatkeeper.backup, or the file
    /// itself), then start the server on it with `seatkeeper serve`. The data directory
    /// must be empty (an `operator_token` may be there).
    Restore {
        /// The backup directory or file.
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// The data directory to create.
        #[arg(long, env = "SEATKEEPER_DATA_DIR", value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Exit 0 if the server is ready (`GET /readyz` answers 200 within 3 s), else 1: a
    /// container health check that needs no curl. The server is found from --url, else
    /// from the configuration's `bind` (an unspecified host is read as loopback) and
    /// `tls` (https when a certificate is set, not verified: nothing secret is sent).
    Health {
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "SEATKEEPER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Hold a seat of PRODUCT while CMD runs: acquire (queueing up to --wait), start
    /// CMD, heartbeat at the server's interval, forward SIGINT/SIGTERM, release when
    /// it exits, and exit with its status. Own exit codes: 75 no seat free, 77 not
    /// entitled, 78 key refused, 69 server unreachable, 70 other server error, 127
    /// CMD cannot start.
    Run {
        /// The server's base URL.
        #[arg(long, env = "SEATKEEPER_URL")]
        server: String,
        /// An API key with the `sessions` scope.
        #[arg(long, env = "SEATKEEPER_KEY", hide_env_values = true)]
        key: String,
        #[arg(long)]
        product: String,
        /// The machine (default: its machine id): the same fingerprint gets the same
        /// live lease back, so wrappers on one machine share one seat unless given
        /// their own.
        #[arg(long)]
        fingerprint: Option<String>,
        /// How long to queue for a seat when the pool is full, in seconds (`30` or
        /// `30s`).
        #[arg(long, default_value = "0", value_parser = seconds)]
        wait: u64,
        /// What happens to CMD if the seat is lost (the server says the lease ended, or
        /// it could not be reached before the lease expired).
        #[arg(long, value_enum, default_value = "stop")]
        on_lease_lost: OnLeaseLost,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// A table of the organization's pools (seats, allocated, live, peak) and who
    /// holds each live session, like `lmutil lmstat` (an owner's or administrator's
    /// key with the `admin` scope).
    Status {
        #[arg(long, env = "SEATKEEPER_URL")]
        server: String,
        #[arg(long, env = "SEATKEEPER_KEY", hide_env_values = true)]
        key: String,
        /// The organization's id.
        #[arg(long, env = "SEATKEEPER_ORG")]
        org: String,
    },
    /// Verify a lease or activation token offline: signature, key id, kind, org, and
    /// `exp`/`iat` with 30 s leeway; the product and machine if given. Prints its claims
    /// as JSON and exits 0, or says why not and exits 1 (2: the JWKS cannot be read).
    Verify {
        /// The token (a compact JWS), or `-` to read it from standard input (a command
        /// line is visible to other users of the machine).
        token: String,
        /// The server's public keys: a JWKS file, or a URL serving it
        /// (`/.well-known/jwks.json`; across a network use https, or a file: plain
        /// HTTP is no trust anchor).
        #[arg(long)]
        jwks: String,
        /// The organization the token must be of (one server key signs every org's).
        #[arg(long)]
        org: String,
        /// Which kind of token it must be.
        #[arg(long, value_enum, default_value = "lease")]
        kind: Kind,
        /// Refuse tokens of any other product.
        #[arg(long)]
        product: Option<String>,
        /// Refuse tokens issued to any other machine fingerprint.
        #[arg(long)]
        fingerprint: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config, overrides } => match load(config, &overrides) {
            Ok(config) => serve(config),
            Err(code) => code,
        },
        Command::Config { config, overrides } => match load(config, &overrides) {
            Ok(config) => {
                print!("{}", config.masked_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Backup {
            server,
            operator_token,
            to,
        } => backup(&server, &operator_token, &to),
        Command::Restore { from, data_dir } => restore(&from, &data_dir),
        Command::Health {
            url,
            config,
            overrides,
        } => {
            let url = match url {
                Some(url) => url,
                None => match load(config, &overrides) {
                    Ok(config) => {
                        let scheme = if config.tls.cert.is_some() {
                            "https"
                        } else {
                            "http"
                        };
                        format!("{scheme}://{}", loopback_for(&config.bind))
                    }
                    Err(code) => return code,
                },
            };
            health(&url)
        }
        Command::Run {
            server,
            key,
            product,
            fingerprint,
            wait,
            on_lease_lost,
            command,
        } => {
            if let Err(e) = client::check_server_url(&server) {
                eprintln!("seatkeeper run: {e}");
                return ExitCode::from(64);
            }
            let Some(fingerprint) = fingerprint.or_else(run::machine_fingerprint) else {
                eprintln!("seatkeeper run: no machine id here; give --fingerprint");
                return ExitCode::from(64);
            };
            let options = run::RunOptions {
                server,
                key,
                product,
                fingerprint,
                wait_seconds: wait,
                on_lease_lost,
                command,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            ExitCode::from(runtime.block_on(run::run(options)))
        }
        Command::Status { server, key, org } => {
            if let Err(e) = client::check_server_url(&server) {
                eprintln!("seatkeeper status: {e}");
                return ExitCode::from(64);
            }
            let client = client::Client::new(&server, &key);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            match runtime.block_on(client::status::report(&client, &org)) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("seatkeeper status: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Verify {
            token,
            jwks,
            org,
            kind,
            product,
            fingerprint,
        } => {
            let expect = Expect {
                org: &org,
                kind,
                product: product.as_deref(),
                fingerprint: fingerprint.as_deref(),
            };
            verify(&token, &jwks, &expect)
        }
    }
}

fn verify(token: &str, jwks: &str, expect: &Expect) -> ExitCode {
    let token = if token == "-" {
        let mut read = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut read) {
            eprintln!("seatkeeper verify: cannot read the token: {e}");
            return ExitCode::from(2);
        }
        read
    } else {
        token.to_owned()
    };
    let keys = match client::load_jwks(jwks) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("seatkeeper verify: {e}");
            return ExitCode::from(2);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match client::verify(token.trim(), &keys, expect, now) {
        Ok(claims) => {
            println!(
                "{}",
                serde_json::to_string(&claims).expect("claims serialize")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seatkeeper verify: refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds, written `30` or `30s`.
fn seconds(text: &str) -> Result<u64, String> {
    text.strip_suffix('s')
        .unwrap_or(text)
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))
}

/// The effective configuration, or the exit code for a bad one (said on stderr).
fn load(file: Option<PathBuf>, overrides: &Overrides) -> Result<Config, ExitCode> {
    Config::load(file.as_deref(), overrides).map_err(|e| {
        eprintln!("seatkeeper: bad configuration: {e}");
        ExitCode::from(2)
    })
}

/// `bind` as an address to connect to: an unspecified host (0.0.0.0, [::]) is loopback.
fn loopback_for(bind: &str) -> String {
    match bind.rsplit_once(':') {
        Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => bind.to_owned(),
    }
}

fn health(url: &str) -> ExitCode {
    let url = format!("{}/readyz", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let answer = runtime.block_on(async {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            // It sends nothing and reads only a status, and a certificate is seldom
            // issued for the loopback address it calls: like an HTTPS probe of
            // Kubernetes, it does not verify the certificate.
            .danger_accept_invalid_certs(true)
            .build()?
            .get(&url)
            .send()
            .await
    });
    match answer {
        Ok(r) if r.status().is_success() => {
            println!("ready: {url}");
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("not ready: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("not ready: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The file a backup directory holds.
const BACKUP_FILE: &str = "seatkeeper.backup";

fn backup(server: &str, token: &str, to: &Path) -> ExitCode {
    let fail = |why: String| {
        eprintln!("seatkeeper backup: {why}");
        ExitCode::FAILURE
    };
    if let Err(e) = client::check_server_url(server) {
        return fail(e.to_string());
    }
    let url = format!("{}/v1/backup", server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let answer = runtime.block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        Ok::<_, reqwest::Error>((status, r.bytes().await?))
    });
    let bytes = match answer {
        Ok((status, bytes)) if status.is_success() => bytes,
        Ok((status, body)) => {
            return fail(format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        }
        Err(e) => return fail(format!("{url}: {e}")),
    };
    let backup = match Backup::decode(&bytes) {
        Ok(b) => b,
        Err(e) => return fail(format!("the server's answer is not a whole backup: {e}")),
    };
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
    let file = to.join(BACKUP_FILE);
    if let Err(e) = write_new(to, &file, &bytes) {
        return fail(format!("{}: {e}", to.display()));
    }
    println!(
        "backup of {} organizations ({} audit entries, {} bytes) written to {}",
        backup.snapshots.len(),
        backup.audit.len(),
        bytes.len(),
        file.display()
    );
    ExitCode::SUCCESS
}

/// Writes `bytes` to `file` in `dir`, never replacing an existing file, even by a race:
/// a partial file of this run's own, synced, then linked to its name (or, where the
/// filesystem has no links, renamed with `RENAME_NOREPLACE`), then the directory synced.
/// Partial files left by runs that died (their process is gone) are removed first.
fn write_new(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    std::fs::create_dir_all(dir)?;
    let prefix = format!("{BACKUP_FILE}.");
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".partial"))
            .and_then(|pid| pid.parse::<libc::pid_t>().ok());
        // SAFETY: signal 0 only asks whether the process exists.
        if pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == -1)
            && Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let partial = dir.join(format!("{BACKUP_FILE}.{}.partial", std::process::id()));
    let exists = || {
        Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists; choose another directory", file.display()),
        )
    };
    let written = std::fs::File::create_new(&partial).and_then(|mut out| {
        std::io::Write::write_all(&mut out, bytes)?;
        out.sync_all()
    });
    let published = written.and_then(|()| match std::fs::hard_link(&partial, file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(exists()),
        Err(_) => rename_noreplace(&partial, file).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => exists(),
            _ => e,
        }),
    });
    let _ = std::fs::remove_file(&partial);
    published?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!("{} written, but not synced: {e}", file.display()),
            )
        })
}

/// `rename(from, to)` that fails with `AlreadyExists` rather than replace `to`.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let renamed = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if renamed == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn restore(from: &Path, data_dir: &Path) -> ExitCode {
    let fail = |why: String| {
        eprintln!("seatkeeper restore: {why}");
        ExitCode::FAILURE
    };
    let file = if from.is_dir() {
        from.join(BACKUP_FILE)
    } else {
        from.to_owned()
    };
    let backup = match std::fs::read(&file) {
        Ok(bytes) => match Backup::decode(&bytes) {
            Ok(b) => b,
            Err(e) => return fail(format!("{}: {e}", file.display())),
        },
        Err(e) => return fail(format!("{}: {e}", file.display())),
    };
    // SAFETY: umask only changes this process's file creation mask; the data directory
    // holds secrets, as the server keeps it.
    unsafe { libc::umask(0o077) };
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        return fail(format!("{}: {e}", data_dir.display()));
    }
    if let Err(e) = backup.restore(data_dir) {
        return fail(e.to_string());
    }
    println!(
        "restored {} organizations ({} audit entries) into {}; start it with: seatkeeper serve --data-dir {}",
        backup.snapshots.len(),
        backup.audit.len(),
        data_dir.display(),
        data_dir.display()
    );
    ExitCode::SUCCESS
}

fn serve(config: Config) -> ExitCode {
    telemetry::init_logs(&config.log, config.log_format);
    let result = actix_web::rt::System::new()
        .block_on(async move { Application::build(config).await?.run_until_stopped().await });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "seatkeeper stopped with an error");
            ExitCode::FAILURE
        }
    }
}
