//! What a client runtime needs beside the server: for now, offline verification of
//! the tokens the server signs.

pub mod verify;

pub use verify::{verify, Claims, Expect, VerifyError};

/// The server's public keys, from a JWKS file or an `http://` URL serving one.
pub fn load_jwks(source: &str) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let text = if source.starts_with("https://") {
        return Err(format!(
            "{source}: https is not built in; fetch the JWKS (curl -o jwks.json …) and pass the file"
        ));
    } else if source.starts_with("http://") {
        fetch(source)?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("cannot read {source}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{source} is not a JWKS: {e}"))
}

/// GETs `url` on a runtime of its own.
fn fetch(url: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let response = reqwest::get(url)
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        response
            .text()
            .await
            .map_err(|e| format!("cannot read {url}: {e}"))
    })
}
