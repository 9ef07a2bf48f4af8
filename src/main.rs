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
}

fn main() -> ExitCode {
    let Command::Serve { config } = Cli::parse().command;
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
