//! YAML as real homelab repos hold it: multi-document files, anchors, merge keys (`<<`), tags,
//! Flux `${VAR}` substitutions (kept as text). Everything becomes a `serde_json::Value` so it
//! can be hashed canonically, and every syntax error names file:line:col.

mod fast;
mod scalar;

use hl_engine::{Error, FileSet, Origin, RepoPath};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use serde_yaml_ng::Value as Yaml;

fn syntax_error(path: &RepoPath, e: &serde_yaml_ng::Error) -> Error {
    let origin = e.location().map(|l| Origin {
        path: path.clone(),
        line: l.line() as u32,
        col: l.column() as u32,
    });
    let msg = e.to_string();
    // serde_yaml_ng appends " at line X column Y"; the origin carries that already.
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    Error::repo(
        format!(
            "malformed YAML in {}: {msg}",
            origin.as_ref().map_or(path.to_string(), |o| o.to_string())
        ),
        origin.or_else(|| Some(Origin::file(path.clone()))),
        Some("fix the YAML at the marked position; `yamllint` shows the same".into()),
    )
}

/// Every document of a YAML file, merge keys applied, as JSON values. Empty documents are
/// skipped. The text is parsed where the run keeps the file's bytes, not from a copy
/// ([`FileSet::read_str`] copies every file it is asked for: realize reads most of a large
/// homelab's tree).
pub fn docs(files: &FileSet, path: &RepoPath) -> Result<Vec<Value>, Error> {
    let bytes = files.read(path)?;
    docs_of(utf8(&bytes, path)?, path)
}

/// The bytes of a file as text; the same refusal as [`FileSet::read_str`], for derivations that
/// are handed bytes (see [`FileSet::derive`]).
pub fn utf8<'b>(bytes: &'b [u8], path: &RepoPath) -> Result<&'b str, Error> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::repo(format!("{path} is not UTF-8 text"), None, None))
}

/// [`docs`] over text already read: by the fast path when it takes the text, else by the
/// full parser (which alone makes errors).
pub fn docs_of(text: &str, path: &RepoPath) -> Result<Vec<Value>, Error> {
    match fast::docs(text) {
        Some(docs) => Ok(docs),
        None => full_docs(text, path),
    }
}

/// [`docs_of`] by the full parser alone.
fn full_docs(text: &str, path: &RepoPath) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let mut y: Yaml =
            serde::Deserialize::deserialize(de).map_err(|e| syntax_error(path, &e))?;
        y.apply_merge().map_err(|e| syntax_error(path, &e))?;
        if !y.is_null() {
            out.push(to_json(y));
        }
    }
    Ok(out)
}

/// The single document of a YAML file (`null` when empty).
pub fn one(files: &FileSet, path: &RepoPath) -> Result<Value, Error> {
    let bytes = files.read(path)?;
    one_of(utf8(&bytes, path)?, path)
}

/// [`one`] over text already read.
pub fn one_of(text: &str, path: &RepoPath) -> Result<Value, Error> {
    let mut docs = docs_of(text, path)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.pop().expect("one document")),
        n => Err(Error::repo(
            format!("{path} holds {n} YAML documents where one is expected"),
            Some(Origin::file(path.clone())),
            Some("remove the extra `---` separators".into()),
        )),
    }
}

/// A typed config file: parsed (syntax errors located), merged, then checked against `T`
/// (schema errors located where serde can say, e.g. an unknown field).
pub fn typed<T: DeserializeOwned>(files: &FileSet, path: &RepoPath) -> Result<T, Error> {
    let bytes = files.read(path)?;
    typed_of(utf8(&bytes, path)?, path)
}

/// [`typed`] over text already read.
pub fn typed_of<T: DeserializeOwned>(text: &str, path: &RepoPath) -> Result<T, Error> {
    let value = {
        let mut docs = docs_of(text, path)?;
        if docs.len() > 1 {
            return Err(Error::repo(
                format!(
                    "{path} holds {} YAML documents where one is expected",
                    docs.len()
                ),
                Some(Origin::file(path.clone())),
                None,
            ));
        }
        docs.pop().unwrap_or(Value::Object(Map::new()))
    };
    serde_json::from_value(value).map_err(|e| {
        // Re-parse typed for a location; works whenever the file has no merge keys.
        let located = serde_yaml_ng::from_str::<T>(text).err();
        let origin = located.as_ref().and_then(|e| e.location()).map(|l| Origin {
            path: path.clone(),
            line: l.line() as u32,
            col: l.column() as u32,
        });
        Error::repo(
            format!(
                "invalid {}: {e}",
                origin.as_ref().map_or(path.to_string(), |o| o.to_string())
            ),
            origin.or_else(|| Some(Origin::file(path.clone()))),
            Some(format!(
                "see docs/layout.md for the keys `{}` takes",
                path.file_name()
            )),
        )
    })
}

/// Converts YAML to JSON: tags are dropped (the tagged value is kept), non-string keys become
/// their YAML text, non-finite floats become strings.
pub fn to_json(y: Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Number::from_f64(f).map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(seq) => Value::Array(seq.into_iter().map(to_json).collect()),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    other => serde_yaml_ng::to_string(&other)
                        .map(|s| s.trim_end().to_string())
                        .unwrap_or_default(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => to_json(t.value),
    }
}

/// Where `needle` is first written in `path` at or after the line holding `after` (when given):
/// a best-effort origin for references, since YAML values carry no positions once parsed.
pub fn locate(files: &FileSet, path: &RepoPath, after: Option<&str>, needle: &str) -> Origin {
    locate_nth(files, path, after, needle, 1)
}

/// Like [`locate`], for the `n`th (1-based) occurrence; a match must stand as a whole token, so
/// `kube-cp-1` does not match inside `kube-cp-10`.
pub fn locate_nth(
    files: &FileSet,
    path: &RepoPath,
    after: Option<&str>,
    needle: &str,
    n: usize,
) -> Origin {
    match files.read_str(path) {
        Ok(text) => locate_in(&text, path, after, needle, n),
        Err(_) => Origin::file(path.clone()),
    }
}

/// [`locate_nth`] over text already read.
pub fn locate_in(
    text: &str,
    path: &RepoPath,
    after: Option<&str>,
    needle: &str,
    n: usize,
) -> Origin {
    let token = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut armed = after.is_none();
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        if !armed {
            armed = after.is_some_and(|a| line.contains(a));
            if !armed {
                continue;
            }
        }
        for (col, _) in line.match_indices(needle) {
            let before = line[..col].chars().next_back();
            let after_c = line[col + needle.len()..].chars().next();
            let starts = needle.chars().next().is_some_and(token);
            let ends = needle.chars().next_back().is_some_and(token);
            if (starts && before.is_some_and(token)) || (ends && after_c.is_some_and(token)) {
                continue;
            }
            seen += 1;
            if seen == n {
                return Origin {
                    path: path.clone(),
                    line: i as u32 + 1,
                    col: col as u32 + 1,
                };
            }
        }
    }
    Origin::file(path.clone())
}

/// Whether a parsed document is SOPS-encrypted (it carries SOPS metadata).
pub fn is_sops(doc: &Value) -> bool {
    doc.get("sops").and_then(Value::as_object).is_some_and(|m| {
        m.contains_key("mac") || m.contains_key("version") || m.contains_key("lastmodified")
    })
}

/// Whether a file's raw text is SOPS-encrypted, for formats other than YAML (dotenv, ini).
pub fn text_is_sops(text: &str) -> bool {
    text.contains("ENC[AES256_GCM,")
        && (text.contains("sops_version") || text.contains("sops_mac") || text.contains("sops:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p() -> RepoPath {
        RepoPath::new("services/x/docker-compose.yml").unwrap()
    }

    #[test]
    fn anchors_merge_keys_and_multiple_documents() {
        let text = "x-logging: &log\n  driver: json-file\nservices:\n  a:\n    <<: {image: busybox}\n    logging: *log\n---\n---\nkind: Second\n";
        let docs = docs_of(text, &p()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0]["services"]["a"],
            json!({"image": "busybox", "logging": {"driver": "json-file"}})
        );
        assert_eq!(docs[1], json!({"kind": "Second"}));
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = docs_of("services:\n  a:\n    image: [unclosed\n", &p()).unwrap_err();
        let o = err.origin().unwrap();
        assert_eq!(o.path, p());
        assert!(o.line >= 3, "line {}", o.line);
        assert!(
            err.to_string()
                .starts_with("malformed YAML in services/x/docker-compose.yml:"),
            "{err}"
        );
    }

    #[test]
    fn flux_substitutions_stay_text() {
        let docs = docs_of("host: app.${SECRET_DOMAIN}\nreplicas: ${REPLICAS}\n", &p()).unwrap();
        assert_eq!(
            docs[0],
            json!({"host": "app.${SECRET_DOMAIN}", "replicas": "${REPLICAS}"})
        );
    }
}
