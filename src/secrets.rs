//! API key secrets and ids: minted here, only their SHA-256 is stored, and a presented
//! key is checked against it in constant time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::ids::mint;
use crate::domain::{ApiKey, KeyId, MemberId, Scope, Timestamp};

/// A newly minted key: the stored record and the secret, shown once.
pub struct NewKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Mints a key for `member`. The secret is `sk_<id suffix>_<32 random chars>`, so the
/// key id can be read from it without a search.
pub fn mint_key(
    member: MemberId,
    name: String,
    scopes: Vec<Scope>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> NewKey {
    let mut rng = rand::thread_rng();
    let id = mint(KeyId::PREFIX, now, rng.gen());
    let suffix = &id[KeyId::PREFIX.len() + 1..];
    let random: String = (0..32)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let secret = format!("sk_{suffix}_{random}");
    NewKey {
        key: ApiKey {
            id: KeyId::new(id),
            member,
            name,
            hash: hex::encode(hash(&secret)),
            scopes,
            expires_at,
            created_at: now,
        },
        secret,
    }
}

/// The key id a presented secret claims to belong to.
pub fn key_id_of(secret: &str) -> Option<String> {
    let rest = secret.strip_prefix("sk_")?;
    let (suffix, _) = rest.split_once('_')?;
    Some(format!("{}_{suffix}", KeyId::PREFIX))
}

/// SHA-256 of a secret.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `secret` hashes to `expected`, in constant time.
pub fn matches(secret: &str, expected: &[u8; 32]) -> bool {
    hash(secret).ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_checks_and_names_its_id() {
        let k = mint_key(
            MemberId::new("usr_x"),
            "k".into(),
            vec![Scope::Sessions],
            None,
            Timestamp(1),
        );
        assert_eq!(key_id_of(&k.secret).as_deref(), Some(k.key.id.as_str()));
        let stored: [u8; 32] = hex::decode(&k.key.hash).unwrap().try_into().unwrap();
        assert!(matches(&k.secret, &stored));
        assert!(!matches(&format!("{}x", k.secret), &stored));
    }
}
