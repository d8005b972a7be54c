//! What kustomize reads to build a folder. A folder with a kustomization file is built from it
//! (`resources`, `components`, patches, generators, Helm values: [`refs`]); a folder without
//! one is built from every YAML file below it, a subfolder with its own kustomization file
//! becoming a resource, which is the kustomization kustomize-controller generates.
//!
//! Each folder is resolved once into a [`Unit`] (its direct files and subfolders); a node's
//! inputs are the units reachable from its roots ([`Kustomize::collect`]), so overlays that
//! share a base cost one resolution of the base, and discovery stays linear in the tree.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use hl_engine::{Error, Kind, RepoPath};
use serde_json::Value;

use super::kustomize::{host_like, refs, remote};
use super::tree::Tree;
use super::{at, concrete};
use crate::yaml;

/// One folder as kustomize builds it, without its subfolders' contents.
#[derive(Debug, Default)]
pub(super) struct Unit {
    /// The `namespace:` its kustomization file sets on everything it builds.
    namespace: Option<String>,
    /// Manifest files read directly (the kustomization file itself included).
    manifests: Vec<RepoPath>,
    /// Generator inputs, read as bytes.
    data: Vec<RepoPath>,
    /// Helm values files.
    values: Vec<RepoPath>,
    /// Folders built as part of this one.
    children: Vec<RepoPath>,
    /// Remote references, as written.
    remote: Vec<String>,
}

/// Every input of a node, by role.
#[derive(Debug, Default)]
pub(super) struct Collected {
    /// Files read as manifests.
    pub manifests: BTreeSet<RepoPath>,
    /// Files read as bytes by generators.
    pub data: BTreeSet<RepoPath>,
    /// Helm values files.
    pub values: BTreeSet<RepoPath>,
    /// Remote references.
    pub remote: BTreeSet<String>,
    /// For files holding Flux Kustomizations: the namespace an enclosing kustomization (or
    /// the node's `targetNamespace`) gives them, which overrides their own.
    pub namespaces: BTreeMap<RepoPath, String>,
}

/// Resolved folders, shared by every node of one discovery.
#[derive(Default)]
pub(super) struct Kustomize {
    units: HashMap<RepoPath, Arc<Unit>>,
}

/// What a local or remote reference turned out to be.
enum Target {
    File(RepoPath),
    Dir(RepoPath),
    Remote,
}

impl Kustomize {
    /// The inputs of building `roots` together (a Flux path and its `spec.components`, or an
    /// app folder), `outer_ns` being a namespace set from outside (`targetNamespace`).
    pub fn collect(
        &mut self,
        tree: &mut Tree,
        roots: &[RepoPath],
        outer_ns: Option<&str>,
    ) -> Result<Collected, Error> {
        let mut out = Collected::default();
        let mut seen = HashSet::new();
        let mut stack: Vec<(RepoPath, Option<String>)> = roots
            .iter()
            .rev()
            .map(|r| (r.clone(), outer_ns.map(str::to_string)))
            .collect();
        while let Some((dir, ns)) = stack.pop() {
            // A folder reached twice (a cycle, or a base shared by two overlays) is read once.
            if !seen.insert(dir.clone()) {
                continue;
            }
            let unit = self.unit(tree, &dir)?;
            // kustomize applies the outermost `namespace:` last, so it wins.
            let ns = ns.or_else(|| unit.namespace.clone());
            for f in &unit.manifests {
                if let Some(n) = ns.as_ref().filter(|_| tree.is_flux_file(f)) {
                    out.namespaces.entry(f.clone()).or_insert_with(|| n.clone());
                }
                out.manifests.insert(f.clone());
            }
            out.data.extend(unit.data.iter().cloned());
            out.values.extend(unit.values.iter().cloned());
            out.remote.extend(unit.remote.iter().cloned());
            stack.extend(unit.children.iter().rev().map(|c| (c.clone(), ns.clone())));
        }
        Ok(out)
    }

    fn unit(&mut self, tree: &mut Tree, dir: &RepoPath) -> Result<Arc<Unit>, Error> {
        if let Some(u) = self.units.get(dir) {
            return Ok(u.clone());
        }
        let unit = Arc::new(match tree.kfile(dir) {
            Some(kfile) => explicit(tree, &kfile)?,
            None => generated(tree, dir)?,
        });
        self.units.insert(dir.clone(), unit.clone());
        Ok(unit)
    }
}

/// A folder built from its kustomization file.
fn explicit(tree: &mut Tree, kfile: &RepoPath) -> Result<Unit, Error> {
    let doc = tree.kustomization(kfile)?;
    let refs = refs(&doc);
    let mut unit = Unit {
        namespace: doc
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| concrete(s))
            .map(str::to_string),
        manifests: vec![kfile.clone()],
        ..Unit::default()
    };
    for r in &refs.manifests {
        match resolve(tree, kfile, r, "resource")? {
            Target::File(f) => unit.manifests.push(f),
            Target::Dir(d) => unit.children.push(d),
            Target::Remote => unit.remote.push(r.clone()),
        }
    }
    for r in &refs.data {
        unit.data
            .push(resolve_file(tree, kfile, r, "generator input")?);
    }
    for r in &refs.values {
        unit.values
            .push(resolve_file(tree, kfile, r, "helm values file")?);
    }
    for r in &refs.secret_data {
        let f = resolve_file(tree, kfile, r, "secretGenerator input")?;
        if !tree.data_is_sops(&f)? {
            let origin = yaml::locate(tree.files, kfile, Some("secretGenerator"), r);
            return Err(Error::secret(
                format!("plaintext secretGenerator input {f} in {origin}"),
                Some(origin),
                Some(format!(
                    "encrypt it with sops (docs/layout.md): `sops --encrypt --in-place {f}`"
                )),
            ));
        }
    }
    if let Some(key) = refs.secret_literals.first() {
        let origin = yaml::locate(
            tree.files,
            kfile,
            Some("secretGenerator"),
            &format!("{key}="),
        );
        return Err(Error::secret(
            format!("plaintext secretGenerator literal `{key}` in {origin}"),
            Some(origin),
            Some("move the value to an env file encrypted with sops (`envs:`), or use a Flux `${VAR}` substitution".into()),
        ));
    }
    Ok(unit)
}

/// A folder without a kustomization file: every YAML file below it, a subfolder with its own
/// kustomization file standing in for everything below that subfolder.
fn generated(tree: &mut Tree, dir: &RepoPath) -> Result<Unit, Error> {
    let mut unit = Unit::default();
    let mut skip: Option<String> = None;
    for f in tree.yaml_below(dir)? {
        // Sorted paths keep a folder's files together, so one prefix skips a whole child.
        if skip
            .as_ref()
            .is_some_and(|s| f.as_str().starts_with(s.as_str()))
        {
            continue;
        }
        match nearest_kustomization(tree, dir, &f) {
            Some(child) => {
                skip = Some(format!("{}/", child.as_str()));
                unit.children.push(child);
            }
            None => unit.manifests.push(f),
        }
    }
    Ok(unit)
}

/// The outermost folder strictly between `dir` and `file` that has a kustomization file.
fn nearest_kustomization(tree: &mut Tree, dir: &RepoPath, file: &RepoPath) -> Option<RepoPath> {
    let rel = file
        .as_str()
        .strip_prefix(dir.as_str())?
        .trim_start_matches('/');
    let (folders, _) = rel.rsplit_once('/')?;
    let mut cur = dir.clone();
    for part in folders.split('/') {
        cur = cur.join(part).ok()?;
        if tree.kfile(&cur).is_some() {
            return Some(cur);
        }
    }
    None
}

/// Resolves a reference written in `kfile`: a remote URL, or a file or folder inside the repo.
fn resolve(
    tree: &mut Tree,
    kfile: &RepoPath,
    reference: &str,
    what: &str,
) -> Result<Target, Error> {
    if remote(reference) {
        return Ok(Target::Remote);
    }
    let origin = || yaml::locate(tree.files, kfile, None, reference);
    let path = kfile.parent().join(reference).map_err(|e| {
        let o = origin();
        Error::repo(
            format!("{what} in {o}: {e}"),
            Some(o),
            Some("kustomize references are relative to the kustomization's folder and must stay inside the repo".into()),
        )
    })?;
    // What a walk found exists and is inside the repo: only other paths are probed.
    match tree.found(&path) {
        Some(Kind::File) => return Ok(Target::File(path)),
        Some(Kind::Dir) => return Ok(Target::Dir(path)),
        _ => {}
    }
    if !tree.files.exists(&path) {
        if host_like(reference) {
            return Ok(Target::Remote);
        }
        let o = origin();
        return Err(Error::repo(
            format!("{what} `{reference}` in {o} does not exist ({path})"),
            Some(o),
            Some(format!("fix the path, or remove it from {kfile}")),
        ));
    }
    tree.files
        .check_inside(&path)
        .map_err(|e| at(e, origin()))?;
    Ok(if tree.files.is_dir(&path) {
        Target::Dir(path)
    } else {
        Target::File(path)
    })
}

/// Resolves a reference that must be a local file (a generator input, a values file).
fn resolve_file(
    tree: &mut Tree,
    kfile: &RepoPath,
    reference: &str,
    what: &str,
) -> Result<RepoPath, Error> {
    match resolve(tree, kfile, reference, what)? {
        Target::File(f) => Ok(f),
        Target::Dir(d) => {
            let o = yaml::locate(tree.files, kfile, None, reference);
            Err(Error::repo(
                format!("{what} `{reference}` in {o} is a folder ({d})"),
                Some(o),
                Some("name a file".into()),
            ))
        }
        Target::Remote => {
            let o = yaml::locate(tree.files, kfile, None, reference);
            Err(Error::repo(
                format!("{what} `{reference}` in {o} is remote"),
                Some(o),
                Some("kustomize reads generator and values files from the repo only".into()),
            ))
        }
    }
}
