//! Opaque identifiers. They are minted outside the domain (the caller supplies
//! randomness and time) and only compared and stored here.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Wraps an id string as it came from the wire or the store.
            pub fn new(s: impl Into<Arc<str>>) -> Self {
                Self(s.into())
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether both are the same allocation (not merely equal).
            pub fn same(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An organization (tenant).
    OrgId, "org"
);
id_type!(
    /// A member of an organization.
    MemberId, "usr"
);
id_type!(
    /// An API key; also the lookup prefix inside the key's secret string.
    KeyId, "key"
);
id_type!(
    /// A seat pool.
    PoolId, "pool"
);
id_type!(
    /// A session (lease) on a floating pool.
    SessionId, "ses"
);
id_type!(
    /// A machine activated for a product.
    ActivationId, "act"
);

id_type!(
    /// A project (seed 002's test project).
    ProjectId, "prj"
);
id_type!(
    /// A group of members; the built-in one is `everyone`.
    GroupId, "grp"
);
id_type!(
    /// A project role: a built-in one's id is its name, a custom one's is minted.
    RoleId, "rol"
);

/// Crockford base32, lower case: ids sort in the order they were minted.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new id `{prefix}_{time}{random}`: 9 characters of milliseconds then 10 of
/// randomness, so ids of one kind sort by creation time. Pure: the caller supplies both.
pub fn mint(prefix: &str, now: super::Timestamp, random: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 20);
    s.push_str(prefix);
    s.push('_');
    let ms = now.millis().max(0) as u64;
    for i in (0..9).rev() {
        s.push(ALPHABET[((ms >> (i * 5)) & 31) as usize] as char);
    }
    for i in (0..10).rev() {
        s.push(ALPHABET[((random >> (i * 5)) & 31) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn minted_ids_sort_by_time() {
        let a = mint("ses", Timestamp(1_000), u64::MAX);
        let b = mint("ses", Timestamp(1_001), 0);
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.len(), "ses_".len() + 19);
    }
}
