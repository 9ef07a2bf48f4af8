//! `seatkeeper run -- CMD`: holds a seat for any program while it runs, as FlexNet's
//! and RLM's client libraries do for programs that link them.

use std::time::Duration;

use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

use super::runtime::{AcquireOptions, Client, ClientError, Lease};

/// Exit codes of the wrapper itself (sysexits.h); otherwise it exits with the
/// command's status (128 + the signal that ended it).
pub mod exit {
    /// No seat was free (after `--wait`, if given).
    pub const SEAT_UNAVAILABLE: u8 = 75;
    /// The key's member is not entitled to the product, or its pool expired.
    pub const NOT_ENTITLED: u8 = 77;
    /// The server refused the key.
    pub const BAD_KEY: u8 = 78;
    /// The server could not be reached to acquire.
    pub const UNREACHABLE: u8 = 69;
    /// Another error from the server.
    pub const SERVER_ERROR: u8 = 70;
    /// The command could not be started.
    pub const CANNOT_START: u8 = 127;
}

/// What to do with the command when its lease is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnLeaseLost {
    /// Send it SIGTERM.
    Stop,
    /// Let it finish.
    Continue,
}

/// How to run (not `Debug`: it holds the key).
#[derive(Clone)]
pub struct RunOptions {
    pub server: String,
    pub key: String,
    pub product: String,
    pub fingerprint: String,
    pub wait_seconds: u64,
    pub on_lease_lost: OnLeaseLost,
    pub command: Vec<String>,
}

/// Acquires, runs the command while heartbeating, releases; answers the exit code.
pub async fn run(options: RunOptions) -> u8 {
    let client = Client::new(&options.server, &options.key);
    let acquire = AcquireOptions {
        product: &options.product,
        fingerprint: Some(&options.fingerprint),
        wait_seconds: options.wait_seconds,
        ttl_seconds: None,
    };
    // Watched from the start: a Ctrl-C while queueing for a seat gives up the wait.
    let (mut interrupt, mut terminate, mut hangup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(i), Ok(t), Ok(h)) => (i, t, h),
        _ => {
            eprintln!("seatkeeper run: cannot watch signals");
            return exit::SERVER_ERROR;
        }
    };
    let acquired = tokio::select! {
        acquired = client.acquire(&acquire) => acquired,
        _ = interrupt.recv() => return 128 + libc::SIGINT as u8,
        _ = terminate.recv() => return 128 + libc::SIGTERM as u8,
        _ = hangup.recv() => return 128 + libc::SIGHUP as u8,
    };
    let lease = match acquired {
        Ok(lease) => lease,
        Err(e) => {
            eprintln!("seatkeeper run: {e}");
            return match e {
                ClientError::SeatCapReached { .. } => exit::SEAT_UNAVAILABLE,
                ClientError::NotEntitled(_) | ClientError::PoolExpired(_) => exit::NOT_ENTITLED,
                ClientError::Unauthorized(_) | ClientError::Forbidden(_) => exit::BAD_KEY,
                ClientError::Unreachable(_) => exit::UNREACHABLE,
                _ => exit::SERVER_ERROR,
            };
        }
    };
    let token_file = match TokenFile::create(&lease.token) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("seatkeeper run: cannot write the token file: {e}");
            let _ = client.release(&lease.session_id).await;
            return exit::SERVER_ERROR;
        }
    };
    let mut command = Command::new(&options.command[0]);
    command
        .args(&options.command[1..])
        // The key takes and ends seats (or more): the command gets its lease, not it.
        .env_remove("SEATKEEPER_KEY")
        .env("SEATKEEPER_SESSION", &lease.session_id)
        .env("SEATKEEPER_TOKEN", &lease.token)
        .env("SEATKEEPER_TOKEN_FILE", &token_file.path);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        // A wrapper killed outright cannot stop the command: the kernel does, so no
        // command runs on without a seat.
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("seatkeeper run: cannot start {:?}: {e}", options.command[0]);
            let _ = client.release(&lease.session_id).await;
            return exit::CANNOT_START;
        }
    };
    let pid = child.id().map(|p| p as i32);
    let forward = |sig: i32| {
        if let Some(pid) = pid {
            // SAFETY: a signal to the child this process started and has not reaped.
            unsafe { libc::kill(pid, sig) };
        }
    };
    let mut keeper = Keeper::new(&lease, acquire, token_file);
    let mut held = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = interrupt.recv() => forward(libc::SIGINT),
            _ = terminate.recv() => forward(libc::SIGTERM),
            _ = hangup.recv() => forward(libc::SIGHUP),
            _ = tokio::time::sleep_until(keeper.next), if held => {
                // Bounded by the heartbeat interval, so signals and the command's exit
                // wait at most that long behind a silent server.
                match keeper.beat(&client).await {
                    Beat::Held => {}
                    Beat::Lost(why) => {
                        held = false;
                        eprintln!("seatkeeper run: the seat is lost: {why}");
                        if options.on_lease_lost == OnLeaseLost::Stop {
                            forward(libc::SIGTERM);
                        }
                    }
                }
            }
        }
    };
    // Released unless the server already ended it (a refused heartbeat may leave the
    // lease live: pool expired, key revoked).
    if !keeper.ended {
        if let Err(e) = client.release(&keeper.session).await {
            eprintln!("seatkeeper run: release failed ({e}); the seat frees at its expiry");
        }
    }
    match status {
        Ok(s) => exit_code_of(s),
        Err(e) => {
            eprintln!("seatkeeper run: lost track of the command: {e}");
            exit::SERVER_ERROR
        }
    }
}

/// The wrapper's exit code for the command's status: its code, or 128 + its signal.
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => exit::SERVER_ERROR,
    }
}

/// Keeps a lease alive: heartbeats at the server's interval, retries with backoff
/// until the lease's expiry while the server cannot be reached (or asks to slow down),
/// and takes a new lease if another wrapper sharing its fingerprint released this one.
struct Keeper<'a> {
    session: String,
    acquire: AcquireOptions<'a>,
    interval: Duration,
    /// When the lease ends unless extended.
    expires: tokio::time::Instant,
    /// When to heartbeat next.
    next: tokio::time::Instant,
    backoff: Duration,
    token_file: TokenFile,
    /// Whether the server ended the lease (nothing to release).
    ended: bool,
}

enum Beat {
    Held,
    Lost(String),
}

impl<'a> Keeper<'a> {
    fn new(lease: &Lease, acquire: AcquireOptions<'a>, token_file: TokenFile) -> Keeper<'a> {
        let interval = Duration::from_secs(lease.heartbeat_interval_seconds.max(1));
        let now = tokio::time::Instant::now();
        Keeper {
            session: lease.session_id.clone(),
            acquire,
            interval,
            expires: now + remaining(&lease.expires_at, interval),
            next: now + interval,
            backoff: Duration::from_millis(250),
            token_file,
            ended: false,
        }
    }

    async fn beat(&mut self, client: &Client) -> Beat {
        let left = (self.expires).saturating_duration_since(tokio::time::Instant::now());
        let limit = self.interval.min(left);
        let limit = limit.max(Duration::from_millis(500));
        let answer = tokio::time::timeout(limit, client.heartbeat(&self.session))
            .await
            .unwrap_or_else(|_| Err(ClientError::Unreachable("no answer in time".into())));
        let now = tokio::time::Instant::now();
        match answer {
            Ok(renewed) => {
                self.renewed(&renewed.token, &renewed.expires_at, now);
                Beat::Held
            }
            Err(
                ClientError::Unreachable(e)
                | ClientError::Other { message: e, .. }
                | ClientError::RateLimited {
                    retry_after: _,
                    message: e,
                },
            ) => {
                if now >= self.expires {
                    self.ended = true;
                    return Beat::Lost(format!(
                        "no heartbeat reached the server before expiry ({e})"
                    ));
                }
                eprintln!("seatkeeper run: heartbeat failed ({e}); retrying");
                self.next = (now + self.backoff).min(self.expires);
                self.backoff = (self.backoff * 2).min(self.interval);
                Beat::Held
            }
            // Ended: by an admin, or released by another wrapper with this fingerprint.
            // A seat free now is taken again.
            // Without queueing, and within the same bound as a heartbeat: the loop that
            // forwards signals and notices the command's exit waits on this.
            Err(ClientError::SessionNotFound) => match self.take_again(client, limit).await {
                Ok(lease) => {
                    eprintln!("seatkeeper run: the lease had ended; holding a new one");
                    self.session = lease.session_id.clone();
                    self.renewed(&lease.token, &lease.expires_at, now);
                    Beat::Held
                }
                Err(e) => {
                    self.ended = true;
                    Beat::Lost(format!("the lease had ended and no seat is free now ({e})"))
                }
            },
            Err(e) => Beat::Lost(e.to_string()),
        }
    }

    async fn take_again(&self, client: &Client, limit: Duration) -> Result<Lease, ClientError> {
        let now = AcquireOptions {
            wait_seconds: 0,
            ..self.acquire.clone()
        };
        tokio::time::timeout(limit, client.acquire(&now))
            .await
            .unwrap_or_else(|_| Err(ClientError::Unreachable("no answer in time".into())))
    }

    fn renewed(&mut self, token: &str, expires_at: &str, now: tokio::time::Instant) {
        self.expires = now + remaining(expires_at, self.interval);
        self.next = now + self.interval;
        self.backoff = Duration::from_millis(250);
        if let Err(e) = self.token_file.write(token) {
            eprintln!("seatkeeper run: cannot refresh the token file: {e}");
        }
    }
}

/// The latest lease token, for the command to read (`SEATKEEPER_TOKEN_FILE`): the one
/// in its environment stops verifying a ttl after it started. Only the user may read
/// it; removed when the wrapper ends.
struct TokenFile {
    path: std::path::PathBuf,
}

impl TokenFile {
    fn create(token: &str) -> std::io::Result<TokenFile> {
        let name = format!("seatkeeper-token-{}-{}", std::process::id(), rand_suffix());
        let file = TokenFile {
            path: std::env::temp_dir().join(name),
        };
        file.write(token)?;
        Ok(file)
    }

    /// Replaces the token whole (write beside, rename over), so a reader never sees
    /// half of one.
    fn write(&self, token: &str) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let next = self.path.with_extension("next");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            // Never through a file or link someone else left in the shared directory.
            .create_new(true)
            .mode(0o600)
            .open(&next)?;
        let written = f
            .write_all(token.as_bytes())
            .and_then(|()| std::fs::rename(&next, &self.path));
        if written.is_err() {
            // Ours (created just now): gone, so the next heartbeat's write can succeed.
            let _ = std::fs::remove_file(&next);
        }
        written
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// How long until an RFC 3339 instant by the local clock, at most three heartbeat
/// intervals (the default ttl) so a skewed clock cannot stretch it.
fn remaining(at: &str, interval: Duration) -> Duration {
    let left = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(|at| {
            (at - time::OffsetDateTime::now_utc())
                .as_seconds_f64()
                .max(0.0)
        })
        .map(Duration::from_secs_f64)
        .unwrap_or(interval * 3);
    left.min(interval * 3)
}

/// The machine's stable fingerprint: its machine id (else its host name), so a
/// wrapper restarted on the same machine gets its live lease back, not a second seat.
pub fn machine_fingerprint() -> Option<String> {
    [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_owned())
    .filter(|s| !s.is_empty())
}
