//! HTTPS: the rustls server configuration from the PEM files named in `[tls]`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::TlsConfig;
use crate::StartError;

/// The server's TLS configuration, or `None` for plain HTTP (neither path set).
pub fn server_config(tls: &TlsConfig) -> Result<Option<ServerConfig>, StartError> {
    let (cert, key) = match (&tls.cert, &tls.key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(StartError::Config(
                "tls.cert and tls.key go together: set both, or neither for plain HTTP".into(),
            ))
        }
    };
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, format!("no private key read: {e}")))?;
    // ring rather than aws-lc-rs: no C++/cmake build, at the price of rustls' post-quantum
    // key exchange (X25519MLKEM768), which only aws-lc-rs provides; hence the deprecation.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| StartError::Config(format!("tls: {e}")))?;
    Ok(Some(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, StartError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(path, format!("cannot read certificates: {e}")))?;
    if chain.is_empty() {
        return Err(bad(path, "holds no certificate".into()));
    }
    Ok(chain)
}

fn bad(path: &Path, why: String) -> StartError {
    StartError::Config(format!("tls: {}: {why}", path.display()))
}
