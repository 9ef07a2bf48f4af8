//! The `seatkeeper` command.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Read;

use clap::{Parser, Subcommand};
use seatkeeper::client::run::{self, OnLeaseLost};
use seatkeeper::client::{self, Expect, Kind};
use seatkeeper::config::Config;
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
    /// Run the server (embedded defaults, then --config FILE, then SEATKEEPER_* env).
    Serve {
        /// A TOML file layered over the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
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
        /// The server's public keys: a JWKS file, or an http:// URL serving it
        /// (`/.well-known/jwks.json`; prefer a file or loopback: plain HTTP is not
        /// a trust anchor across a network).
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
        Command::Serve { config } => serve(config),
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

fn serve(config: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("seatkeeper: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(&config.log);
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
