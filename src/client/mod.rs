//! What a client runtime needs beside the server: a client of the runtime API, the
//! `seatkeeper run` wrapper built on it, and offline verification of the tokens the
//! server signs.

pub mod run;
pub mod runtime;
pub mod status;
pub mod verify;

pub use runtime::{AcquireOptions, Client, ClientError, Lease, Renewed, Verdict};

pub use verify::{verify, Claims, Expect, Kind, VerifyError};

/// Refuses a server URL this build cannot speak to, rather than failing later as
/// "unreachable": `https://` needs the `tls` feature.
pub fn check_server_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || (cfg!(feature = "tls") && url.starts_with("https://")) {
        Ok(())
    } else if url.starts_with("https://") {
        Err(format!("{url}: this build has no TLS (the `tls` feature); reach the server over http:// (loopback or a trusted network)"))
    } else {
        Err(format!("{url}: not an http:// or https:// URL"))
    }
}

/// The server's public keys, from a JWKS file or a URL serving one.
pub fn load_jwks(source: &str) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        check_server_url(source)?;
        fetch(source)?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("cannot read {source}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{source} is not a JWKS: {e}"))
}

/// A JWKS is a few hundred bytes; anything far larger is not one.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// GETs `url` on a runtime of its own, within 10 s and [`MAX_JWKS_BYTES`].
fn fetch(url: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut response =
            (client.get(url).send().await).map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            (response.chunk().await).map_err(|e| format!("cannot read {url}: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "{url}: more than {MAX_JWKS_BYTES} bytes: not a JWKS"
                ));
            }
        }
        String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))
    })
}

/// The README's Rust examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
