//! Repo paths: relative, `/`-separated, normalised, never escaping the repo.

use std::fmt;
use std::path::{Component, Path};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path inside the repo: relative, `/`-separated, normalised, never escaping the root.
/// Shared, not copied, when cloned: a large homelab's paths are held by the load cache, the
/// graph, the stat cache and every node's evaluation at once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(Arc<str>);

impl RepoPath {
    /// Checks and normalises a repo-relative path (`a/./b` -> `a/b`); refuses absolute paths
    /// and any `..` that climbs out of the repo.
    pub fn new(s: &str) -> Result<RepoPath, String> {
        // Most paths (every one read back from a cache) are already normal: take them as they
        // are instead of rebuilding them component by component.
        let normal = !s.is_empty()
            && !s.starts_with('/')
            && !s.contains('\\')
            && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if normal {
            return Ok(RepoPath(s.into()));
        }
        Self::root().join(s)
    }

    /// The repo root itself (the empty path).
    pub fn root() -> RepoPath {
        RepoPath("".into())
    }

    /// Resolves `reference` (as written in a file in this folder) against this path.
    /// Absolute references and references that leave the repo are refused.
    pub fn join(&self, reference: &str) -> Result<RepoPath, String> {
        if reference.starts_with('/') || Path::new(reference).is_absolute() {
            return Err(format!(
                "`{reference}` is an absolute path; repo references must be relative"
            ));
        }
        let mut parts: Vec<&str> = self.0.split('/').filter(|p| !p.is_empty()).collect();
        for c in Path::new(reference).components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(format!("`{reference}` escapes the repo"));
                    }
                }
                Component::Normal(p) => parts.push(
                    p.to_str()
                        .ok_or_else(|| format!("`{reference}` is not valid UTF-8"))?,
                ),
                _ => return Err(format!("`{reference}` is not a relative path")),
            }
        }
        Ok(RepoPath(parts.join("/").into()))
    }

    /// The path as written, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder holding this path.
    pub fn parent(&self) -> RepoPath {
        match self.0.rsplit_once('/') {
            Some((p, _)) => RepoPath(p.into()),
            None => RepoPath::root(),
        }
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Whether `self` is `dir` or lies below it.
    pub fn starts_with(&self, dir: &RepoPath) -> bool {
        dir.0.is_empty()
            || self
                .0
                .strip_prefix(&*dir.0)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "." } else { &self.0 })
    }
}

impl TryFrom<String> for RepoPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        RepoPath::new(&s)
    }
}

impl From<RepoPath> for String {
    fn from(p: RepoPath) -> String {
        p.0.to_string()
    }
}

impl Serialize for RepoPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RepoPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a repo path")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RepoPath, E> {
                RepoPath::new(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_normalise_and_refuse_escapes() {
        let base = RepoPath::new("services/mosquitto").unwrap();
        for (reference, want) in [
            ("./mosquitto.conf", Ok("services/mosquitto/mosquitto.conf")),
            ("conf/../a.yaml", Ok("services/mosquitto/a.yaml")),
            ("../../hosts/X/y", Ok("hosts/X/y")),
            ("../../../etc/passwd", Err(())),
            ("/etc/passwd", Err(())),
        ] {
            let got = base
                .join(reference)
                .map(|p| p.as_str().to_string())
                .map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{reference}");
        }
    }
}
