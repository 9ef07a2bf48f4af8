//! `seatkeeper status`: what `lmutil lmstat` shows a FlexNet admin, a table of the
//! org's pools and who holds their live sessions.

use std::fmt::Write;

use serde_json::Value;

use super::runtime::{Client, ClientError};

/// The status report of `org`, as text.
pub async fn report(client: &Client, org: &str) -> Result<String, ClientError> {
    let usage = client.usage(org).await?;
    let sessions = client.sessions(org).await?;
    Ok(render(&usage, &sessions))
}

/// The pools table, then each pool's live sessions.
fn render(usage: &Value, sessions: &[Value]) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<12} {:<9} {:>7} {:>9} {:>6} {:>6}  expired",
        "pool", "product", "kind", "seats", "allocated", "live", "peak"
    );
    let pools = usage["pools"].as_array().map_or(&[][..], Vec::as_slice);
    for p in pools {
        let _ = writeln!(
            out,
            "{:<28} {:<12} {:<9} {:>7} {:>9} {:>6} {:>6}  {}",
            text(&p["id"]),
            text(&p["product"]),
            text(&p["kind"]),
            text(&p["seats"]),
            text(&p["allocated"]),
            text(&p["live"]),
            text(&p["peak"]),
            if p["expired"] == Value::Bool(true) {
                "yes"
            } else {
                "no"
            },
        );
    }
    for p in pools {
        let held: Vec<&Value> = (sessions.iter()).filter(|s| s["pool"] == p["id"]).collect();
        if held.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} ({}): {} in use",
            text(&p["id"]),
            text(&p["product"]),
            held.len()
        );
        for s in held {
            let _ = writeln!(
                out,
                "  {:<28} {:<24} since {}  expires {}  {}",
                text(&s["email"]),
                text(&s["fingerprint"]),
                text(&s["acquired_at"]),
                text(&s["expires_at"]),
                text(&s["id"]),
            );
        }
    }
    out
}
