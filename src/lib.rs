//! seatkeeper: a floating-license and seat server. One actor per organization owns its
//! pools and leases; sled keeps every acknowledged change; actix-web is the wire.
//!
//! The `server` feature (on by default) builds all of that. Without it
//! (`default-features = false`) the crate is only [`client`]: the runtime API client,
//! the `run` wrapper's logic and offline token verification, with none of the
//! server's dependencies (actix, sled, the metrics exporter).

pub mod client;

#[cfg(feature = "server")]
pub mod actors;
#[cfg(feature = "server")]
mod app;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod domain;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod secrets;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod tokens;

#[cfg(feature = "server")]
pub use app::*;
