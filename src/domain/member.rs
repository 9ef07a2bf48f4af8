//! Members of an organization and their tenant roles.

use serde::{Deserialize, Serialize};

use super::{DomainError, MemberId, Timestamp};

/// A tenant-wide role. Plain members hold none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
// The API description names its values (a derive only: no behaviour here).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantRole {
    /// Exactly one per organization.
    Owner,
    /// Manages members, keys, pools and sessions.
    Administrator,
    /// May create projects.
    ProjectCreator,
}

/// A normalized (trimmed, lower-cased) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` with no spaces, at most 254 characters.
    pub fn parse(raw: &str) -> Result<Email, DomainError> {
        let s = raw.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(char::is_whitespace)
            && s.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'));
        if valid {
            Ok(Email(s))
        } else {
            Err(DomainError::invalid(
                "email",
                format!("not an e-mail address: {raw:?}"),
            ))
        }
    }

    /// The address as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member (user) of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub email: Email,
    pub name: Option<String>,
    pub tenant_roles: Vec<TenantRole>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalized_and_checked() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "@x", "ann@", "a b@x", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
