//! The `seatkeeper` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Verify a lease or activation token offline: signature, key id and expiry (30 s
    /// leeway), and the organization and product if given. Prints its claims as JSON
    /// and exits 0, or says why not and exits 1.
    Verify {
        /// The token (a compact JWS).
        token: String,
        /// The server's public keys: a JWKS file, or an http:// URL serving it
        /// (`/.well-known/jwks.json`).
        #[arg(long)]
        jwks: String,
        /// Refuse tokens of any other organization.
        #[arg(long)]
        org: Option<String>,
        /// Refuse tokens of any other product.
        #[arg(long)]
        product: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(config),
        Command::Verify {
            token,
            jwks,
            org,
            product,
        } => verify(&token, &jwks, org.as_deref(), product.as_deref()),
    }
}

fn verify(token: &str, jwks: &str, org: Option<&str>, product: Option<&str>) -> ExitCode {
    let keys = match seatkeeper::client::load_jwks(jwks) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("seatkeeper verify: {e}");
            return ExitCode::from(2);
        }
    };
    let expect = seatkeeper::client::Expect { org, product };
    match seatkeeper::client::verify(token.trim(), &keys, &expect) {
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
