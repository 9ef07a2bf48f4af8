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

/// How to run.
#[derive(Debug, Clone)]
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
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            eprintln!("seatkeeper run: cannot watch signals");
            return exit::SERVER_ERROR;
        }
    };
    let acquired = tokio::select! {
        acquired = client.acquire(&acquire) => acquired,
        _ = interrupt.recv() => return 128 + libc::SIGINT as u8,
        _ = terminate.recv() => return 128 + libc::SIGTERM as u8,
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
    let mut child = match Command::new(&options.command[0])
        .args(&options.command[1..])
        .env("SEATKEEPER_SESSION", &lease.session_id)
        .env("SEATKEEPER_TOKEN", &lease.token)
        .spawn()
    {
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
    let mut keeper = Keeper::new(&lease);
    let mut held = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = interrupt.recv() => forward(libc::SIGINT),
            _ = terminate.recv() => forward(libc::SIGTERM),
            _ = tokio::time::sleep_until(keeper.next), if held => {
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
    if held {
        if let Err(e) = client.release(&lease.session_id).await {
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

/// Keeps a lease alive: heartbeats at the server's interval, and while the server
/// cannot be reached, retries with backoff until the lease's expiry.
struct Keeper {
    session: String,
    interval: Duration,
    /// When the lease ends unless extended.
    expires: tokio::time::Instant,
    /// When to heartbeat next.
    next: tokio::time::Instant,
    backoff: Duration,
}

enum Beat {
    Held,
    Lost(String),
}

impl Keeper {
    fn new(lease: &Lease) -> Keeper {
        let interval = Duration::from_secs(lease.heartbeat_interval_seconds.max(1));
        let now = tokio::time::Instant::now();
        Keeper {
            session: lease.session_id.clone(),
            interval,
            expires: now + remaining(&lease.expires_at).unwrap_or(interval * 3),
            next: now + interval,
            backoff: Duration::from_millis(250),
        }
    }

    async fn beat(&mut self, client: &Client) -> Beat {
        let now = tokio::time::Instant::now();
        match client.heartbeat(&self.session).await {
            Ok(renewed) => {
                self.expires = now + remaining(&renewed.expires_at).unwrap_or(self.interval * 3);
                self.next = now + self.interval;
                self.backoff = Duration::from_millis(250);
                Beat::Held
            }
            Err(ClientError::Unreachable(e)) | Err(ClientError::Other { message: e, .. }) => {
                if now >= self.expires {
                    return Beat::Lost(format!(
                        "no heartbeat reached the server before expiry ({e})"
                    ));
                }
                eprintln!("seatkeeper run: heartbeat failed ({e}); retrying");
                self.next = (now + self.backoff).min(self.expires);
                self.backoff = (self.backoff * 2).min(self.interval);
                Beat::Held
            }
            Err(e) => Beat::Lost(e.to_string()),
        }
    }
}

/// How long until an RFC 3339 instant, from the system clock.
fn remaining(at: &str) -> Option<Duration> {
    let at =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs_f64(left.as_seconds_f64().max(0.0)))
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
