//! Merging a host's override over a service's compose file with docker compose's own rules
//! (compose-spec `merge.md`): mappings merge recursively; `environment`, `labels`,
//! `extra_hosts`, `sysctls` merge as maps whatever form each side is written in; `volumes` and
//! `devices` merge by their container path; `ports`, `expose`, `dns` and friends are unioned;
//! `command`, `entrypoint` and `healthcheck.test` are replaced.

use serde_json::{Map, Value};

/// Keys whose sequences are written either as `K=V` lists or as maps, and merge as maps.
const MAP_LIKE: &[&str] = &[
    "environment",
    "labels",
    "extra_hosts",
    "sysctls",
    "annotations",
];
/// Keys whose entries are keyed by their container path.
const BY_TARGET: &[&str] = &["volumes", "devices"];
/// Keys the override replaces outright.
const REPLACED: &[&str] = &["command", "entrypoint", "test"];

/// The canonical form of a compose project: map-like lists become maps, so `environment:
/// [A=1]` and `environment: {A: "1"}` render (and hash) the same.
pub fn normalise(project: &mut Value) {
    if let Some(services) = project.get_mut("services").and_then(Value::as_object_mut) {
        for svc in services.values_mut() {
            if let Some(svc) = svc.as_object_mut() {
                for key in MAP_LIKE {
                    if let Some(v) = svc.get_mut(*key) {
                        *v = Value::Object(as_map(v));
                    }
                }
            }
        }
    }
}

fn as_map(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| {
                // `K=V` (environment, labels) or `host:ip` (extra_hosts); a bare `K` passes the
                // variable through from the environment, kept as null.
                let split = s.split_once('=').or_else(|| s.split_once(':'));
                match split {
                    Some((k, v)) => (k.trim().to_string(), Value::String(v.to_string())),
                    None => (s.to_string(), Value::Null),
                }
            })
            .collect(),
        _ => Map::new(),
    }
}

/// The container path of a volume or device entry (short `src:dst[:mode]` or long form).
pub fn target(entry: &Value) -> Option<String> {
    match entry {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(match parts.len() {
                1 => parts[0].to_string(),
                _ => parts[1].to_string(),
            })
        }
        Value::Object(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Merges `over` into `base` following compose's rules; `key` is the key both sit under.
pub fn merge(base: &mut Value, over: &Value, key: &str) {
    match (base, over) {
        (b, o) if REPLACED.contains(&key) => *b = o.clone(),
        (b @ Value::Array(_), o @ (Value::Array(_) | Value::Object(_)))
            if MAP_LIKE.contains(&key) =>
        {
            let mut m = as_map(b);
            m.extend(as_map(o));
            *b = Value::Object(m);
        }
        (Value::Object(b), o) if MAP_LIKE.contains(&key) => {
            b.extend(as_map(o));
        }
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v, k),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) if BY_TARGET.contains(&key) => {
            for entry in o {
                let t = target(entry);
                match b.iter_mut().find(|e| t.is_some() && target(e) == t) {
                    Some(slot) => *slot = entry.clone(),
                    None => b.push(entry.clone()),
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for entry in o {
                if !b.contains(entry) {
                    b.push(entry.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn override_follows_compose_merge_rules() {
        let mut base = json!({"services": {"app": {
            "image": "app:1",
            "environment": ["TZ=UTC", "LOG=info"],
            "volumes": ["./conf:/etc/app:ro", "data:/data"],
            "ports": ["80:80"],
            "command": ["serve", "--debug"],
        }}});
        let over = json!({"services": {"app": {
            "image": "app:2",
            "environment": {"LOG": "warn"},
            "volumes": ["/srv/app:/data"],
            "ports": ["443:443", "80:80"],
            "command": ["serve"],
        }}});
        merge(&mut base, &over, "");
        normalise(&mut base);
        assert_eq!(
            base,
            json!({"services": {"app": {
                "image": "app:2",
                "environment": {"TZ": "UTC", "LOG": "warn"},
                "volumes": ["./conf:/etc/app:ro", "/srv/app:/data"],
                "ports": ["80:80", "443:443"],
                "command": ["serve"],
            }}})
        );
    }

    #[test]
    fn list_and_map_environments_normalise_alike() {
        let mut a = json!({"services": {"x": {"environment": ["A=1", "B"]}}});
        let mut b = json!({"services": {"x": {"environment": {"A": 1, "B": null}}}});
        normalise(&mut a);
        normalise(&mut b);
        assert_eq!(a, b);
    }
}
