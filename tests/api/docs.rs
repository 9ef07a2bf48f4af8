//! The generated references in `docs/` are current: the API reference and
//! `docs/openapi.json` from the served description, the configuration reference from
//! the flags. `UPDATE_DOCS=1 cargo test --test api docs` rewrites them.

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::Value;

fn check(name: &str, fresh: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "docs/{name} is out of date: run UPDATE_DOCS=1 cargo test --test api docs"
    );
}

/// `docs/openapi.json` and `docs/api.md` say what `GET /openapi.json` says.
#[test]
fn the_api_reference_is_current() {
    let doc = serde_json::to_value(seatkeeper::http::openapi()).unwrap();
    check(
        "openapi.json",
        &(serde_json::to_string_pretty(&doc).unwrap() + "\n"),
    );
    check("api.md", &api_markdown(&doc));
}

/// `docs/configuration.md` lists every flag, variable and default `serve --help` does.
#[test]
fn the_configuration_reference_is_current() {
    check("configuration.md", &config_markdown());
}

fn api_markdown(doc: &Value) -> String {
    let mut out = String::from(
        "# API reference\n\n<!-- Generated from the served OpenAPI description (docs/openapi.json) by \
         tests/api/docs.rs: do not edit; `UPDATE_DOCS=1 cargo test --test api docs` rewrites it. -->\n\n\
         Every route the server answers, as `GET /openapi.json` describes it. Bodies and answers \
         are JSON; times are RFC 3339 UTC. `Authorization: Bearer <key>` carries an API key \
         (`sk_…`) or the operator token. Every error is `{\"error\": \"<code>\", \"message\": \"…\", \
         …details}` ([`ErrorBody`](#errorbody)). Who may call each admin route is in the \
         README's table.\n\n",
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let _ = writeln!(out, "## `{} {path}`\n", method.to_uppercase());
            let _ = writeln!(out, "{}\n", op["summary"].as_str().unwrap_or_default());
            if let Some(d) = op["description"].as_str() {
                let _ = writeln!(out, "Auth: {d}\n");
            }
            if let Some(params) = op["parameters"].as_array() {
                for p in params {
                    let _ = writeln!(
                        out,
                        "- {} `{}`{}",
                        p["in"].as_str().unwrap_or_default(),
                        p["name"].as_str().unwrap_or_default(),
                        p["description"]
                            .as_str()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    );
                }
                out.push('\n');
            }
            if let Some(body) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                let _ = writeln!(out, "Body: {}\n", schema_name(&Value::Object(body.clone())));
            }
            let _ = writeln!(out, "| status | meaning | body |\n|---|---|---|");
            for (status, answer) in op["responses"].as_object().unwrap() {
                let schema = &answer["content"]["application/json"]["schema"];
                let _ = writeln!(
                    out,
                    "| {status} | {} | {} |",
                    answer["description"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('|', "\\|"),
                    if schema.is_null() {
                        String::new()
                    } else {
                        schema_name(schema)
                    }
                );
            }
            out.push('\n');
        }
    }
    out.push_str("# Schemas\n\n");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let _ = writeln!(out, "## {name}\n");
        if let Some(values) = schema["enum"].as_array() {
            let values: Vec<String> = values
                .iter()
                .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
                .collect();
            let _ = writeln!(out, "One of {}.\n", values.join(", "));
            continue;
        }
        let required: Vec<&str> = (schema["required"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            out,
            "| field | type | required | meaning |\n|---|---|---|---|"
        );
        for (field, s) in schema["properties"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "| `{field}` | {} | {} | {} |",
                type_of(s),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    ""
                },
                s["description"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', " ")
                    .replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out
}

fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(items) = schema["properties"]["items"]["items"].as_object() {
        return format!(
            "`{{items: [{}], next}}`",
            schema_name(&Value::Object(items.clone())).replace('`', "")
        );
    }
    type_of(schema)
}

fn type_of(s: &Value) -> String {
    if s["$ref"].is_string() {
        return schema_name(s);
    }
    if let Some(all) = s["oneOf"].as_array() {
        return all.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    let t = match &s["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    if t.starts_with("array") {
        return format!("array of {}", type_of(&s["items"]));
    }
    match s["format"].as_str() {
        Some(f) => format!("{t} ({f})"),
        None => t,
    }
}

fn config_markdown() -> String {
    use clap::Args;
    let command = seatkeeper::config::Overrides::augment_args(clap::Command::new("serve"));
    let mut out = String::from(
        "# Configuration reference\n\n<!-- Generated from the flags of `seatkeeper serve` by \
         tests/api/docs.rs: do not edit; `UPDATE_DOCS=1 cargo test --test api docs` rewrites it. -->\n\n\
         The server reads the defaults embedded in the binary (below), then the TOML file given \
         by `--config FILE` or `SEATKEEPER_CONFIG`, then `SEATKEEPER_*` variables, then flags; \
         each later one wins. `seatkeeper config` prints the result with the operator token \
         masked.\n\n| flag | variable | meaning and default |\n|---|---|---|\n",
    );
    for arg in command.get_arguments() {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| `--{long}` | `{}` | {} |",
            env.to_string_lossy(),
            help.replace('|', "\\|")
        );
    }
    let _ = write!(
        out,
        "\n## The embedded defaults, with what each key means\n\n```toml\n{}```\n",
        seatkeeper::config::DEFAULTS
    );
    out
}
