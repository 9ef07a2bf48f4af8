//! The one place the server reads the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::Timestamp;

/// The current time.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    Timestamp(d.as_millis() as i64)
}
