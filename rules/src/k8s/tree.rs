//! The Kubernetes tree on disk: which YAML files exist (one walk per folder, with the `ignore`
//! crate: hidden folders and git-ignored files skipped, symlinks not followed), the facts of
//! each file (derived at most once per run, in parallel since parsing is most of discovery's
//! cost on a large tree, and remembered across runs: see [`super::facts`]), and the checks
//! made on every file a node reads.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use hl_engine::{Error, FileSet, Kind, Origin, RepoPath};
use rayon::prelude::*;
use serde_json::Value;

use super::facts::{self, plaintext_secret, FileFacts};
use super::kustomize::KUSTOMIZATION_FILES;
use super::locate::Spans;
use crate::yaml;

/// The files of the tree, walked on demand, each file's facts derived at most once.
pub(super) struct Tree<'a> {
    /// The repo's files.
    pub files: &'a FileSet,
    /// Every YAML file found by the walks, by its path text (sorted, so a folder's files are
    /// one contiguous range).
    index: BTreeMap<String, RepoPath>,
    /// The folders walked so far.
    walked: Vec<RepoPath>,
    /// Every folder found by the walks.
    dirs: HashSet<RepoPath>,
    /// Folder -> its kustomization file, seeded by the walks, else looked up once.
    kfiles: HashMap<RepoPath, Option<RepoPath>>,
    /// Facts by file. A failure stays here until a node reads the file: a broken file that
    /// nothing uses (a Helm template in the tree) is a note, not an error.
    facts: HashMap<RepoPath, Result<FileFacts, Error>>,
    /// Files holding a Flux Kustomization.
    flux: BTreeSet<RepoPath>,
    /// Whether a non-manifest input (a generator file) is SOPS-encrypted.
    data_sops: HashMap<RepoPath, bool>,
}

impl<'a> Tree<'a> {
    /// An empty tree over the repo's files.
    pub fn new(files: &'a FileSet) -> Tree<'a> {
        Tree {
            files,
            index: BTreeMap::new(),
            walked: Vec::new(),
            dirs: Default::default(),
            kfiles: Default::default(),
            facts: Default::default(),
            flux: BTreeSet::new(),
            data_sops: Default::default(),
        }
    }

    /// Walks `dir` unless a walk already covered it, and derives the facts of every new YAML
    /// file found.
    pub fn walk(&mut self, dir: &RepoPath) -> Result<(), Error> {
        if self.walked.iter().any(|w| dir.starts_with(w)) {
            return Ok(());
        }
        let listing = walk(self.files, dir)?;
        for d in listing.dirs {
            self.kfiles.entry(d.clone()).or_insert(None);
            self.dirs.insert(d);
        }
        let mut fresh = Vec::new();
        for f in listing.files {
            if KUSTOMIZATION_FILES.contains(&f.file_name()) {
                let slot = self.kfiles.entry(f.parent()).or_insert(None);
                // Keep kustomize's order of preference when a folder has several.
                if slot.as_ref().is_none_or(|k| rank(k) > rank(&f)) {
                    *slot = Some(f.clone());
                }
            }
            if !self.facts.contains_key(&f) {
                fresh.push(f.clone());
            }
            self.index.insert(f.as_str().to_string(), f);
        }
        let files = self.files;
        // In small tasks (see `PAR_TASK`): split as rayon would, with the compose loader busy
        // beside it, the last piece ran on one thread for a quarter of a first plan's discovery.
        let results: Vec<(RepoPath, Result<FileFacts, Error>)> = fresh
            .into_par_iter()
            .with_max_len(hl_engine::PAR_TASK)
            .map(|p| {
                let r = facts::file(files, &p);
                (p, r)
            })
            .collect();
        for (p, r) in results {
            if r.as_ref().is_ok_and(|f| !f.flux.is_empty()) {
                self.flux.insert(p.clone());
            }
            self.facts.insert(p, r);
        }
        self.walked.push(dir.clone());
        Ok(())
    }

    /// The YAML files below `dir` (walked first if needed), sorted.
    pub fn yaml_below(&mut self, dir: &RepoPath) -> Result<Vec<RepoPath>, Error> {
        self.walk(dir)?;
        let prefix = if dir.as_str().is_empty() {
            String::new()
        } else {
            format!("{}/", dir.as_str())
        };
        Ok(self
            .index
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, p)| p.clone())
            .collect())
    }

    /// What a walk found at `p`, a YAML file or a folder: either exists and is inside the
    /// repo (walks follow no symlink), so a reference to it needs no probing.
    pub fn found(&self, p: &RepoPath) -> Option<Kind> {
        if self.index.contains_key(p.as_str()) {
            Some(Kind::File)
        } else if self.dirs.contains(p) {
            Some(Kind::Dir)
        } else {
            None
        }
    }

    /// The kustomization file of a folder, if it has one.
    pub fn kfile(&mut self, dir: &RepoPath) -> Option<RepoPath> {
        if let Some(k) = self.kfiles.get(dir) {
            return k.clone();
        }
        let found = KUSTOMIZATION_FILES
            .iter()
            .filter_map(|name| dir.join(name).ok())
            .find(|p| self.files.is_file(p));
        self.kfiles.insert(dir.clone(), found.clone());
        found
    }

    /// Whether any walked file holds a Flux Kustomization.
    pub fn has_flux(&self) -> bool {
        !self.flux.is_empty()
    }

    /// The files holding Flux Kustomizations below `dir`, sorted.
    pub fn flux_files(&self, dir: &RepoPath) -> Vec<RepoPath> {
        self.flux
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect()
    }

    /// Whether `p` holds a Flux Kustomization.
    pub fn is_flux_file(&self, p: &RepoPath) -> bool {
        self.flux.contains(p)
    }

    /// The facts of `p`, derived once; a syntax error is returned (located) the first time
    /// something reads the file.
    pub fn facts(&mut self, p: &RepoPath) -> Result<&FileFacts, Error> {
        match self.facts.get(p) {
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                if let Some(Err(e)) = self.facts.remove(p) {
                    return Err(e);
                }
            }
            None => {
                let f = facts::file(self.files, p)?;
                self.facts.insert(p.clone(), Ok(f));
            }
        }
        match self.facts.get(p) {
            Some(Ok(f)) => Ok(f),
            _ => unreachable!("the facts of {p} were derived above"),
        }
    }

    /// The document kustomize reads from the kustomization file `p` (`null` when it holds no
    /// map); a syntax error is returned as [`Tree::facts`] returns it.
    pub fn kustomization(&mut self, p: &RepoPath) -> Result<Value, Error> {
        Ok(self.facts(p)?.kustomization.clone().unwrap_or(Value::Null))
    }

    /// Refuses a Secret with plaintext values in `p`. A SOPS-encrypted Secret
    /// passes, and so does one whose every value is a Flux `${VAR}` substitution: its values
    /// come from elsewhere (usually a SOPS-encrypted Secret named in `substituteFrom`).
    pub fn check_secrets(&mut self, p: &RepoPath) -> Result<(), Error> {
        if !self.facts(p)?.plaintext_secret {
            return Ok(());
        }
        // The facts say only whether: the error names the Secret and its line, from the text.
        let text = self.files.read_str(p)?;
        let docs = yaml::docs_of(&text, p)?;
        let Some((i, secret)) = docs
            .iter()
            .enumerate()
            .find_map(|(i, d)| plaintext_secret(d).map(|s| (i, s)))
        else {
            return Ok(());
        };
        let spans = Spans::new(&text, docs.len());
        let origin = spans.origin(p, spans.key(i, &["kind"]));
        let name = secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let id = match secret
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        Err(Error::secret(
            format!("plaintext Secret {id} in {p}:{}", origin.line),
            Some(origin),
            Some(format!(
                "encrypt it with sops (docs/layout.md): `sops --encrypt --encrypted-regex '^(data|stringData)$' --in-place {p}`"
            )),
        ))
    }

    /// Whether a non-manifest input (a generator's env file, a values file) is SOPS-encrypted.
    pub fn data_is_sops(&mut self, p: &RepoPath) -> Result<bool, Error> {
        if let Some(&s) = self.data_sops.get(p) {
            return Ok(s);
        }
        let sops = facts::data_is_sops(self.files, p)?;
        self.data_sops.insert(p.clone(), sops);
        Ok(sops)
    }

    /// Notes for the walked files that did not parse and that no node reads.
    pub fn unused_failures(&mut self) -> Vec<String> {
        let mut failed: Vec<(RepoPath, String)> = self
            .facts
            .iter()
            .filter_map(|(p, r)| r.as_ref().err().map(|e| (p.clone(), e.to_string())))
            .collect();
        failed.sort();
        failed
            .into_iter()
            .map(|(_, e)| format!("{e} (not read by any k8s node: skipped)"))
            .collect()
    }
}

/// kustomize's preference among kustomization file names.
fn rank(p: &RepoPath) -> usize {
    KUSTOMIZATION_FILES
        .iter()
        .position(|n| *n == p.file_name())
        .unwrap_or(usize::MAX)
}

/// What one walk found.
#[derive(Default)]
struct Listing {
    files: Vec<RepoPath>,
    dirs: Vec<RepoPath>,
}

/// Walks `dir` for YAML files (`*.yaml`, `*.yml`, `Kustomization`): templates such as `*.j2`
/// are never read. Symlinks are not followed; a YAML or folder symlink that leads out of the
/// repo is refused.
fn walk(files: &FileSet, dir: &RepoPath) -> Result<Listing, Error> {
    let mut out = Listing::default();
    for entry in files.walk(dir, false)? {
        let path = entry.path;
        let yaml = is_yaml_name(path.file_name());
        match entry.kind {
            Kind::Dir => out.dirs.push(path),
            Kind::File if yaml => out.files.push(path),
            Kind::Symlink if yaml || files.is_dir(&path) => {
                files
                    .check_inside(&path)
                    .map_err(|e| super::at(e, Origin::file(path.clone())))?;
                if yaml && files.is_file(&path) {
                    out.files.push(path);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn is_yaml_name(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e);
    name == "Kustomization"
        || ext.is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}
