//! Offline verification of the tokens seatkeeper signs, as an air-gapped runtime does
//! it: with the server's public keys (its JWKS) and a clock, and nothing else.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The `iss` claim of every token seatkeeper signs.
pub const ISSUER: &str = "seatkeeper";

/// How far a token's `exp` may lie in the past and still pass: clocks of offline
/// machines drift.
pub const LEEWAY_SECONDS: u64 = 30;

/// Which kind of token a caller expects: a lease token is never taken for an
/// activation token (good for 30 days) or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A session lease's token: `sid`, no `kind`.
    Lease,
    /// A machine activation's token: `kind: "activation"`, `aid` and `fp`.
    Activation,
}

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
    #[error("issued in the future (iat more than {LEEWAY_SECONDS} s ahead)")]
    NotYetIssued,
    #[error("not a {0:?} token")]
    WrongKind(Kind),
    #[error("issued for machine {found:?}, not {expected:?}")]
    OtherMachine { expected: String, found: String },
    #[error("claims: {0}")]
    Claims(String),
}

/// What the caller expects of a token beyond a good signature and a live `exp`. One
/// server key signs every organization's tokens, so the org is not optional.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub org: &'a str,
    pub kind: Kind,
    pub product: Option<&'a str>,
    pub fingerprint: Option<&'a str>,
}

/// Verifies `token` against `jwks`: EdDSA only (never `none`, never a symmetric
/// algorithm), a `kid` the JWKS holds, a valid signature, issued by seatkeeper, of the
/// kind and org expected, neither expired nor issued in the future beyond
/// [`LEEWAY_SECONDS`], and for the product and machine expected, if given.
pub fn verify(
    token: &str,
    jwks: &JwkSet,
    expect: &Expect,
    now: i64,
) -> Result<Claims, VerifyError> {
    let header = decode_header(token).map_err(|e| {
        // jsonwebtoken cannot even parse `alg: none`: name it for what it is.
        match token_alg(token) {
            Some(alg) if alg != "EdDSA" => VerifyError::Algorithm(alg),
            _ => VerifyError::Malformed(e.to_string()),
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
    validation.set_issuer(&[ISSUER]);
    validation.validate_aud = false;
    // Checked below against the caller's clock, so the rule is testable.
    validation.validate_exp = false;
    let claims = decode::<Claims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                VerifyError::Issuer(token_claim(token, "iss").unwrap_or_default())
            }
            jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                VerifyError::Claims(e.to_string())
            }
            _ => VerifyError::Malformed(e.to_string()),
        })?
        .claims;
    if claims.exp + (LEEWAY_SECONDS as i64) < now {
        return Err(VerifyError::Expired);
    }
    if claims.iat > now + LEEWAY_SECONDS as i64 {
        return Err(VerifyError::NotYetIssued);
    }
    let kind_matches = match expect.kind {
        Kind::Lease => claims.kind.is_none() && claims.sid.is_some() && claims.aid.is_none(),
        Kind::Activation => {
            claims.kind.as_deref() == Some("activation")
                && claims.aid.is_some()
                && claims.sid.is_none()
                && claims.fp.is_some()
        }
    };
    if !kind_matches {
        return Err(VerifyError::WrongKind(expect.kind));
    }
    if expect.org != claims.org {
        return Err(VerifyError::OtherOrg {
            expected: expect.org.to_owned(),
            found: claims.org,
        });
    }
    if let Some(product) = expect.product.filter(|p| *p != claims.product) {
        return Err(VerifyError::OtherProduct {
            expected: product.to_owned(),
            found: claims.product,
        });
    }
    if let Some(fp) = expect.fingerprint {
        if claims.fp.as_deref() != Some(fp) {
            return Err(VerifyError::OtherMachine {
                expected: fp.to_owned(),
                found: claims.fp.unwrap_or_default(),
            });
        }
    }
    Ok(claims)
}

/// The `alg` a token's header claims, read leniently.
fn token_alg(token: &str) -> Option<String> {
    part_field(token, 0, "alg")
}

/// A claim of a token's payload, read leniently (for error messages only).
fn token_claim(token: &str, name: &str) -> Option<String> {
    part_field(token, 1, name)
}

fn part_field(token: &str, part: usize, name: &str) -> Option<String> {
    use base64::Engine;
    let text = token.split('.').nth(part)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_owned)
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    use super::*;
    use crate::tokens::{ActivationClaims, LeaseClaims, Signer};

    const NOW: i64 = 2_000_000_000;

    fn lease(org: &str, exp: i64) -> LeaseClaims<'_> {
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

    fn expect(org: &str) -> Expect<'_> {
        Expect {
            org,
            kind: Kind::Lease,
            product: None,
            fingerprint: None,
        }
    }

    fn signer() -> Signer {
        Signer::from_seed(&[7; 32])
    }

    #[test]
    fn a_good_token_passes_with_its_claims() {
        let s = signer();
        let token = s.sign(&lease("org_a", NOW + 60));
        let strict = Expect {
            product: Some("kre"),
            fingerprint: Some("m1"),
            ..expect("org_a")
        };
        let claims = verify(&token, s.jwks(), &strict, NOW).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("ses_1"));
        assert_eq!(claims.exp, NOW + 60);
        // Within the leeway an offline clock may drift by, either way.
        assert!(verify(&token, s.jwks(), &expect("org_a"), NOW + 60 + 10).is_ok());
        assert!(verify(&token, s.jwks(), &expect("org_a"), NOW - 10).is_ok());
    }

    #[test]
    fn tampered_forged_expired_and_foreign_tokens_are_refused() {
        let s = signer();
        let jwks = s.jwks();
        let good = s.sign(&lease("org_a", NOW + 60));
        let parts: Vec<&str> = good.split('.').collect();
        let ours = expect("org_a");
        let check = |token: &str, expect: &Expect| verify(token, jwks, expect, NOW);

        // A payload changed after signing.
        let payload = B64.encode(serde_json::to_vec(&lease("org_b", NOW + 60)).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(check(&tampered, &ours), Err(VerifyError::Signature));

        // Signed by another server's key, under its own kid and under ours.
        let other = Signer::from_seed(&[8; 32]);
        let foreign = other.sign(&lease("org_a", NOW + 60));
        assert!(matches!(
            check(&foreign, &ours),
            Err(VerifyError::UnknownKid(_))
        ));
        let f: Vec<&str> = foreign.split('.').collect();
        let relabelled = format!("{}.{}.{}", parts[0], f[1], f[2]);
        assert_eq!(check(&relabelled, &ours), Err(VerifyError::Signature));

        // `alg: none` with no signature, and a header naming HS256.
        for alg in ["none", "HS256"] {
            let head = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"x"}}"#));
            let forged = format!("{head}.{}.", parts[1]);
            let refused = check(&forged, &ours);
            assert!(
                matches!(refused, Err(VerifyError::Algorithm(_))),
                "{alg}: {refused:?}"
            );
        }

        // No kid at all.
        let head = B64.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
        let kidless = format!("{head}.{}.{}", parts[1], parts[2]);
        assert_eq!(check(&kidless, &ours), Err(VerifyError::NoKid));

        // Expired beyond the leeway; issued beyond it in the future.
        assert_eq!(
            verify(&good, jwks, &ours, NOW + 60 + 31),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(&good, jwks, &ours, NOW - 60 - 31),
            Err(VerifyError::NotYetIssued)
        );

        // Another issuer, signed with our key.
        let mut stranger = lease("org_a", NOW + 60);
        stranger.iss = "someone-else";
        assert!(matches!(
            check(&s.sign(&stranger), &ours),
            Err(VerifyError::Issuer(_))
        ));

        // Another organization's, product's or machine's token.
        assert!(matches!(
            check(&good, &expect("org_b")),
            Err(VerifyError::OtherOrg { .. })
        ));
        let kse = Expect {
            product: Some("kse"),
            ..expect("org_a")
        };
        assert!(matches!(
            check(&good, &kse),
            Err(VerifyError::OtherProduct { .. })
        ));
        let machine = Expect {
            fingerprint: Some("m2"),
            ..expect("org_a")
        };
        assert!(matches!(
            check(&good, &machine),
            Err(VerifyError::OtherMachine { .. })
        ));

        // Not a token.
        assert!(matches!(
            check("garbage", &ours),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn a_lease_token_is_never_taken_for_an_activation_token_nor_back() {
        let s = signer();
        let jwks = s.jwks();
        let lease_token = s.sign(&lease("org_a", NOW + 60));
        let activation_token = s.sign(&ActivationClaims {
            iss: ISSUER,
            sub: "usr_1",
            org: "org_a",
            product: "kre",
            aid: "act_1",
            fp: "m1",
            kind: "activation",
            iat: NOW,
            exp: NOW + 30 * 86_400,
        });
        let activation = Expect {
            kind: Kind::Activation,
            ..expect("org_a")
        };
        let claims = verify(&activation_token, jwks, &activation, NOW).unwrap();
        assert_eq!(claims.aid.as_deref(), Some("act_1"));
        assert_eq!(
            verify(&activation_token, jwks, &expect("org_a"), NOW),
            Err(VerifyError::WrongKind(Kind::Lease))
        );
        assert_eq!(
            verify(&lease_token, jwks, &activation, NOW),
            Err(VerifyError::WrongKind(Kind::Activation))
        );
    }
}
