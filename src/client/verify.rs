//! Offline verification of the tokens seatkeeper signs, as an air-gapped runtime does
//! it: with the server's public keys (its JWKS) and a clock, and nothing else.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// How far a token's `exp` may lie in the past and still pass: clocks of offline
/// machines drift.
pub const LEEWAY_SECONDS: u64 = 30;

/// The claims of a verified token: a lease's (`sid`) or an activation's (`aid`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Claims {
    pub iss: String,
    /// The member the token was issued to.
    pub sub: String,
    pub org: String,
    pub product: String,
    /// The session, for a lease token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The activation, for an activation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} refused: seatkeeper signs with EdDSA only")]
    Algorithm(String),
    #[error("the token names no key id (kid)")]
    NoKid,
    #[error("no key {0:?} in the JWKS")]
    UnknownKid(String),
    #[error("the signature does not match")]
    Signature,
    #[error("expired (more than {LEEWAY_SECONDS} s ago)")]
    Expired,
    #[error("issued by {0:?}, not seatkeeper")]
    Issuer(String),
    #[error("issued for organization {found}, not {expected}")]
    OtherOrg { expected: String, found: String },
    #[error("issued for product {found}, not {expected}")]
    OtherProduct { expected: String, found: String },
    #[error("claims: {0}")]
    Claims(String),
}

/// What the caller expects of a token beyond a good signature and a live `exp`.
#[derive(Debug, Clone, Default)]
pub struct Expect<'a> {
    pub org: Option<&'a str>,
    pub product: Option<&'a str>,
}

/// Verifies `token` against `jwks`: EdDSA only (never `none`, never a symmetric
/// algorithm), a `kid` the JWKS holds, a valid signature, issued by seatkeeper, not
/// expired beyond [`LEEWAY_SECONDS`], and for the org and product expected, if given.
pub fn verify(token: &str, jwks: &JwkSet, expect: &Expect) -> Result<Claims, VerifyError> {
    let header = decode_header(token).map_err(|e| {
        // jsonwebtoken cannot even parse `alg: none`: name it for what it is.
        if token_alg(token).is_some_and(|a| a != "EdDSA") {
            VerifyError::Algorithm(token_alg(token).unwrap_or_default())
        } else {
            VerifyError::Malformed(e.to_string())
        }
    })?;
    if header.alg != Algorithm::EdDSA {
        return Err(VerifyError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.ok_or(VerifyError::NoKid)?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| VerifyError::UnknownKid(kid.clone()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = LEEWAY_SECONDS;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.validate_aud = false;
    let claims = decode::<Claims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                VerifyError::Claims(e.to_string())
            }
            _ => VerifyError::Malformed(e.to_string()),
        })?
        .claims;
    if claims.iss != "seatkeeper" {
        return Err(VerifyError::Issuer(claims.iss));
    }
    if let Some(org) = expect.org.filter(|o| *o != claims.org) {
        return Err(VerifyError::OtherOrg {
            expected: org.to_owned(),
            found: claims.org,
        });
    }
    if let Some(product) = expect.product.filter(|p| *p != claims.product) {
        return Err(VerifyError::OtherProduct {
            expected: product.to_owned(),
            found: claims.product,
        });
    }
    Ok(claims)
}

/// The `alg` a token's header claims, read leniently.
fn token_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let head = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    use super::*;
    use crate::tokens::{LeaseClaims, Signer, ISSUER};

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn lease<'a>(org: &'a str, exp: i64) -> LeaseClaims<'a> {
        LeaseClaims {
            iss: ISSUER,
            sub: "usr_1",
            org,
            product: "kre",
            sid: "ses_1",
            fp: Some("m1"),
            iat: exp - 60,
            exp,
        }
    }

    fn signer() -> Signer {
        Signer::from_seed(&[7; 32])
    }

    #[test]
    fn a_good_token_passes_with_its_claims() {
        let s = signer();
        let exp = now() + 60;
        let token = s.sign(&lease("org_a", exp));
        let expect = Expect {
            org: Some("org_a"),
            product: Some("kre"),
        };
        let claims = verify(&token, s.jwks(), &expect).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("ses_1"));
        assert_eq!(claims.exp, exp);
        // Within the leeway an offline clock may drift by.
        let late = s.sign(&lease("org_a", now() - 10));
        assert!(verify(&late, s.jwks(), &Expect::default()).is_ok());
    }

    #[test]
    fn tampered_forged_expired_and_foreign_tokens_are_refused() {
        let s = signer();
        let jwks = s.jwks();
        let good = s.sign(&lease("org_a", now() + 60));
        let parts: Vec<&str> = good.split('.').collect();
        let none = Expect::default();

        // A payload changed after signing.
        let payload = B64.encode(serde_json::to_vec(&lease("org_b", now() + 60)).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered, jwks, &none), Err(VerifyError::Signature));

        // Signed by another server's key, under its own kid and under ours.
        let other = Signer::from_seed(&[8; 32]);
        let foreign = other.sign(&lease("org_a", now() + 60));
        assert!(matches!(
            verify(&foreign, jwks, &none),
            Err(VerifyError::UnknownKid(_))
        ));
        let f: Vec<&str> = foreign.split('.').collect();
        let relabelled = format!("{}.{}.{}", parts[0], f[1], f[2]);
        assert_eq!(
            verify(&relabelled, jwks, &none),
            Err(VerifyError::Signature)
        );

        // `alg: none` with no signature, and a header naming HS256.
        for alg in ["none", "HS256"] {
            let head = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"x"}}"#));
            let forged = format!("{head}.{}.", parts[1]);
            assert!(
                matches!(verify(&forged, jwks, &none), Err(VerifyError::Algorithm(_))),
                "{alg}: {:?}",
                verify(&forged, jwks, &none)
            );
        }

        // No kid at all.
        let head = B64.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
        let kidless = format!("{head}.{}.{}", parts[1], parts[2]);
        assert_eq!(verify(&kidless, jwks, &none), Err(VerifyError::NoKid));

        // Expired beyond the leeway.
        let expired = s.sign(&lease("org_a", now() - 31 - 5));
        assert_eq!(verify(&expired, jwks, &none), Err(VerifyError::Expired));

        // Another organization's or product's token, where the caller names its own.
        let expect = Expect {
            org: Some("org_b"),
            product: None,
        };
        assert!(matches!(
            verify(&good, jwks, &expect),
            Err(VerifyError::OtherOrg { .. })
        ));
        let expect = Expect {
            org: None,
            product: Some("kse"),
        };
        assert!(matches!(
            verify(&good, jwks, &expect),
            Err(VerifyError::OtherProduct { .. })
        ));

        // Not a token.
        assert!(matches!(
            verify("garbage", jwks, &none),
            Err(VerifyError::Malformed(_))
        ));
    }
}
