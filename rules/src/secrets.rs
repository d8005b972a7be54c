//! Plaintext secret detection. Secrets live in SOPS files only; a literal value for a
//! secret-looking variable in a compose file or a committed dotenv file is refused before
//! anything is hashed, so it never reaches output, state or the cache.

use hl_engine::{Error, RepoPath};
use serde_json::Value;

use crate::yaml;

/// Whether a variable name looks like it holds a secret.
pub fn secret_like(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "SECRET",
        "PRIVATE_KEY",
        "API_KEY",
        "ACCESS_KEY",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n.ends_with("_KEY")
}

/// Whether a value is a literal (not empty, not a `${VAR}` / `$VAR` interpolation, not a file
/// reference such as `/run/secrets/x` which is how compose secrets are meant to be passed).
fn literal(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && !v.contains('$') && !v.starts_with("/run/secrets/")
}

/// The refusal of a literal secret, placed where `name` is written in `text`, the file's text.
fn refuse(name: &str, path: &RepoPath, text: &str) -> Error {
    Error::secret(
        format!("plaintext secret `{name}` in {path}"),
        Some(yaml::locate_in(text, path, None, name, 1)),
        Some(format!(
            "use `${{{name}}}` and set it on the host (/opt/homelab/config/<svc>/.env), or keep it in a SOPS-encrypted file"
        )),
    )
}

/// Refuses literal secret values in a compose `environment` (list or map form) parsed from
/// `text`, the text of `path`.
pub fn check_environment(env: &Value, path: &RepoPath, text: &str) -> Result<(), Error> {
    let pairs: Vec<(String, String)> = match env {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .filter(|(_, v)| v != "null")
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    };
    for (k, v) in pairs {
        if secret_like(&k) && literal(&v) {
            return Err(refuse(&k, path, text));
        }
    }
    Ok(())
}

/// Refuses a committed dotenv file that sets a secret-looking variable, unless it is SOPS.
pub fn check_dotenv(text: &str, path: &RepoPath) -> Result<(), Error> {
    if yaml::text_is_sops(text) {
        return Ok(());
    }
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches(['"', '\'']);
            if secret_like(k.trim()) && literal(v) {
                return Err(refuse(k.trim(), path, text));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_like_names() {
        for (name, want) in [
            ("DB_PASSWORD", true),
            ("CF_API_TOKEN", true),
            ("GF_SECURITY_ADMIN_PASSWORD__FILE", true),
            ("AGE_KEY", true),
            ("TZ", false),
            ("MQTT_USER", false),
            ("KEYBOARD", false),
        ] {
            assert_eq!(secret_like(name), want, "{name}");
        }
    }

    #[test]
    fn literal_values_only() {
        for (v, want) in [
            ("hunter2", true),
            ("${DB_PASSWORD}", false),
            ("", false),
            ("/run/secrets/db", false),
        ] {
            assert_eq!(literal(v), want, "{v}");
        }
    }
}
