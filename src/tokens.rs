//! Signed tokens that client runtimes verify offline: Ed25519 JWTs (`alg: EdDSA`) with a
//! `kid`, whose public key is served as a JWKS.
//!
//! The signing key is parsed once and kept; `jsonwebtoken::encode` would decode the
//! PKCS#8 key on every call, which doubles the cost of the hottest routes (see the
//! anchors' RESULTS.md). The output is byte-for-byte what `encode` produces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::client::verify::ISSUER;

/// Claims of a lease token.
#[derive(Debug, Serialize)]
pub struct LeaseClaims<'a> {
    pub iss: &'static str,
    pub sub: &'a str,
    pub org: &'a str,
    pub product: &'a str,
    pub sid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fp: Option<&'a str>,
    pub iat: i64,
    pub exp: i64,
}

/// The claims of an activation token: a machine's right to run a product offline
/// until `exp`, renewed by refreshing.
#[derive(Debug, Serialize)]
pub struct ActivationClaims<'a> {
    pub iss: &'static str,
    pub sub: &'a str,
    pub org: &'a str,
    pub product: &'a str,
    pub aid: &'a str,
    pub fp: &'a str,
    /// Always `"activation"`, so a lease token is never taken for one.
    pub kind: &'static str,
    pub iat: i64,
    pub exp: i64,
}

/// Signs tokens with the server's Ed25519 key.
pub struct Signer {
    key: SigningKey,
    header_b64: String,
    jwks: JwkSet,
}

impl Signer {
    /// The signer of the key with this seed.
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(seed);
        let public = key.verifying_key().to_bytes();
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let header_b64 = B64.encode(serde_json::to_vec(&header).expect("header serializes"));
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(kid),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: B64.encode(public),
            }),
        };
        Signer {
            key,
            header_b64,
            jwks: JwkSet { keys: vec![jwk] },
        }
    }

    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let mut token = String::with_capacity(320);
        token.push_str(&self.header_b64);
        token.push('.');
        B64.encode_string(
            serde_json::to_vec(claims).expect("claims serialize"),
            &mut token,
        );
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.to_bytes(), &mut token);
        token
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Validation};

    #[test]
    fn tokens_verify_against_the_jwks_and_match_jsonwebtoken() {
        let seed = [7u8; 32];
        let signer = Signer::from_seed(&seed);
        let claims = LeaseClaims {
            iss: ISSUER,
            sub: "usr_1",
            org: "org_1",
            product: "kre",
            sid: "ses_1",
            fp: Some("fp"),
            iat: 4_000_000_000,
            exp: 4_000_000_060,
        };
        let token = signer.sign(&claims);

        let jwk = &signer.jwks().keys[0];
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        let data =
            decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
                .unwrap();
        assert_eq!(data.claims["sid"], "ses_1");
        assert_eq!(data.header.kid, jwk.common.key_id);

        let pkcs8 = {
            // RFC 8410 PKCS#8 v1 prefix for an Ed25519 private key, then the 32-byte seed.
            let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
            der.extend_from_slice(&seed);
            der
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = jwk.common.key_id.clone();
        let reference = encode(&header, &claims, &EncodingKey::from_ed_der(&pkcs8)).unwrap();
        assert_eq!(token, reference);
    }
}
