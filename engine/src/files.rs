//! Repo paths and the repo's files: read at most once per run, hashed through the stat cache.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::digest::{Content, Digest};
use crate::error::Error;
use crate::statcache::{StatCache, StatKey};

/// A path inside the repo: relative, `/`-separated, normalised, never escaping the root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoPath(String);

impl RepoPath {
    /// Checks and normalises a repo-relative path (`a/./b` -> `a/b`); refuses absolute paths
    /// and any `..` that climbs out of the repo.
    pub fn new(s: &str) -> Result<RepoPath, String> {
        Self::root().join(s)
    }

    /// The repo root itself (the empty path).
    pub fn root() -> RepoPath {
        RepoPath(String::new())
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
        Ok(RepoPath(parts.join("/")))
    }

    /// The path as written, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder holding this path.
    pub fn parent(&self) -> RepoPath {
        match self.0.rsplit_once('/') {
            Some((p, _)) => RepoPath(p.to_string()),
            None => RepoPath::root(),
        }
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Whether `self` is `dir` or lies below it.
    pub fn starts_with(&self, dir: &RepoPath) -> bool {
        dir.0.is_empty() || self.0 == dir.0 || self.0.starts_with(&format!("{}/", dir.0))
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
        p.0
    }
}

/// Counts of the work a run did, for `--stats` and for tests that assert a no-op does nothing.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files whose metadata was read.
    pub files_statted: AtomicU64,
    /// Files whose content was hashed.
    pub files_hashed: AtomicU64,
    /// Files whose content was read (by loaders, hashing or realize).
    pub files_read: AtomicU64,
    /// Nodes realized (action-cache misses).
    pub nodes_realized: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot as plain numbers.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            files_statted: self.files_statted.load(Ordering::Relaxed),
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            files_read: self.files_read.load(Ordering::Relaxed),
            nodes_realized: self.nodes_realized.load(Ordering::Relaxed),
        }
    }
}

/// [`Stats`] as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Files whose metadata was read.
    pub files_statted: u64,
    /// Files whose content was hashed.
    pub files_hashed: u64,
    /// Files whose content was read.
    pub files_read: u64,
    /// Nodes realized.
    pub nodes_realized: u64,
}

/// The repo's files for one run: each read at most once, each hashed at most once.
#[derive(Debug)]
pub struct FileSet {
    root: PathBuf,
    canon_root: PathBuf,
    bytes: Mutex<HashMap<RepoPath, Arc<Vec<u8>>>>,
    digests: Mutex<HashMap<RepoPath, Digest<Content>>>,
    /// What this run did.
    pub stats: Stats,
}

impl FileSet {
    /// The files of the repo at `root`.
    pub fn new(root: &Path) -> Result<FileSet, Error> {
        let canon_root = root
            .canonicalize()
            .map_err(|e| Error::io("cannot open repo", root, e))?;
        Ok(FileSet {
            root: root.to_path_buf(),
            canon_root,
            bytes: Mutex::default(),
            digests: Mutex::default(),
            stats: Stats::default(),
        })
    }

    /// The repo root on disk.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The on-disk path of a repo path.
    pub fn abs(&self, p: &RepoPath) -> PathBuf {
        if p.as_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(p.as_str())
        }
    }

    /// Refuses a path that resolves, through symlinks, to somewhere outside the repo.
    pub fn check_inside(&self, p: &RepoPath) -> Result<(), Error> {
        let abs = self.abs(p);
        match abs.canonicalize() {
            Ok(real) if real.starts_with(&self.canon_root) => Ok(()),
            Ok(real) => Err(Error::repo(
                format!("{p} is a symlink to {}, outside the repo", real.display()),
                None,
                Some(
                    "keep every input inside the repo; copy the file in instead of linking it"
                        .into(),
                ),
            )),
            Err(e) => Err(Error::io("cannot resolve", abs, e)),
        }
    }

    /// Whether a file or folder exists at `p` (a dangling symlink does not).
    pub fn exists(&self, p: &RepoPath) -> bool {
        self.abs(p).exists()
    }

    /// Whether `p` is a folder.
    pub fn is_dir(&self, p: &RepoPath) -> bool {
        self.abs(p).is_dir()
    }

    /// The bytes of `p`, read once per run; refuses a symlink out of the repo.
    pub fn read(&self, p: &RepoPath) -> Result<Arc<Vec<u8>>, Error> {
        if let Some(b) = self.bytes.lock().expect("no panics hold this lock").get(p) {
            return Ok(b.clone());
        }
        let abs = self.abs(p);
        let meta =
            std::fs::symlink_metadata(&abs).map_err(|e| Error::io("cannot read", &abs, e))?;
        if meta.file_type().is_symlink() {
            self.check_inside(p)?;
        }
        let data = Arc::new(std::fs::read(&abs).map_err(|e| Error::io("cannot read", &abs, e))?);
        Stats::bump(&self.stats.files_read);
        self.bytes
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone(), data.clone());
        Ok(data)
    }

    /// The content of `p` as UTF-8 text.
    pub fn read_str(&self, p: &RepoPath) -> Result<String, Error> {
        let b = self.read(p)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::repo(format!("{p} is not UTF-8 text"), None, None))
    }

    /// Hashes every path (in parallel), trusting the stat cache where a file's size, times and
    /// inode are unchanged, so a no-op run reads and hashes nothing.
    pub fn hash_all(&self, paths: &[RepoPath], cache: &StatCache) -> Result<StatCache, Error> {
        type Hashed = (RepoPath, StatKey, Digest<Content>);
        let results: Vec<Result<Hashed, Error>> = paths
            .par_iter()
            .map(|p| {
                let abs = self.abs(p);
                let meta = std::fs::symlink_metadata(&abs)
                    .map_err(|e| Error::io("cannot stat", &abs, e))?;
                Stats::bump(&self.stats.files_statted);
                let meta = if meta.file_type().is_symlink() {
                    self.check_inside(p)?;
                    std::fs::metadata(&abs).map_err(|e| Error::io("cannot stat", &abs, e))?
                } else {
                    meta
                };
                let key = StatKey::of(&meta);
                if let Some(d) = cache.lookup(p, &key) {
                    return Ok((p.clone(), key, d));
                }
                let bytes = self.read(p)?;
                Stats::bump(&self.stats.files_hashed);
                Ok((p.clone(), key, Digest::of(&bytes)))
            })
            .collect();
        let mut next = StatCache::fresh_like(cache);
        let mut digests = self.digests.lock().expect("no panics hold this lock");
        for r in results {
            let (p, key, d) = r?;
            next.insert(p.clone(), key, d);
            digests.insert(p, d);
        }
        Ok(next)
    }

    /// The content digest of a path hashed by [`FileSet::hash_all`].
    pub fn digest(&self, p: &RepoPath) -> Option<Digest<Content>> {
        self.digests
            .lock()
            .expect("no panics hold this lock")
            .get(p)
            .copied()
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
