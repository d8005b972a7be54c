//! Flux mode: one `k8s:<namespace>/<name>` node per Flux Kustomization in the tree. Its params
//! are its `spec` (so a changed `postBuild.substitute` value re-plans it), its `dependsOn` are
//! order edges, and its inputs are what kustomize-controller builds from `spec.path` plus
//! `spec.components`.
//!
//! The namespace is the one the object ends up in: a kustomization that includes the file
//! with `namespace:` (or the parent's `targetNamespace`) overrides `metadata.namespace`, as
//! home-ops trees rely on (`apps/<ns>/kustomization.yaml` sets `namespace: <ns>` for every
//! `ks.yaml` below it, and `dependsOn` entries name that namespace).

use std::collections::{BTreeMap, BTreeSet};

use hl_engine::{Edge, EdgeKind, Error, Kind, Layer, Node, Origin, RepoPath};
use serde_json::{Map, Value};

use super::facts::FluxFacts;
use super::resolve::{Collected, Kustomize};
use super::tree::Tree;
use super::{at, concrete, FLUX, MODE};
use crate::Ctx;

/// Where Flux Kustomizations live when nothing says otherwise.
const DEFAULT_NAMESPACE: &str = "flux-system";

/// One Flux Kustomization, as read from its file.
struct FluxDoc {
    file: RepoPath,
    name: String,
    /// `metadata.namespace` as written.
    namespace: Option<String>,
    spec: Value,
    /// Its `name:` line.
    origin: Origin,
    deps: Vec<Dep>,
    /// Its `spec.path` line (or `spec:`), for errors about the path and components.
    path_origin: Origin,
}

/// One `spec.dependsOn` entry.
struct Dep {
    name: String,
    namespace: Option<String>,
    origin: Origin,
}

/// The nodes of a Flux tree.
pub(super) fn discover(ctx: &Ctx, tree: &mut Tree, root: &RepoPath) -> Result<Vec<Node>, Error> {
    let docs = scan(ctx, tree, root)?;
    if docs.is_empty() {
        ctx.note(format!("no Flux Kustomization under {root}: no k8s nodes"));
        return Ok(Vec::new());
    }
    // Every node's inputs first: a Kustomization's namespace comes from whichever node
    // builds its file, so addresses are known only once all are collected.
    let mut kustomize = Kustomize::default();
    let mut namespaces: BTreeMap<RepoPath, String> = BTreeMap::new();
    let mut collected = Vec::with_capacity(docs.len());
    for d in &docs {
        let c = build_inputs(ctx, tree, &mut kustomize, d)?;
        for (f, ns) in c.iter().flat_map(|c| &c.namespaces) {
            namespaces.entry(f.clone()).or_insert_with(|| ns.clone());
        }
        collected.push(c);
    }
    docs.into_iter()
        .zip(collected)
        .map(|(d, c)| node(tree, d, c.as_ref(), &namespaces))
        .collect()
}

/// Every Flux Kustomization in the files below `root`, in path order.
fn scan(ctx: &Ctx, tree: &mut Tree, root: &RepoPath) -> Result<Vec<FluxDoc>, Error> {
    let mut out = Vec::new();
    for file in tree.flux_files(root) {
        for f in &tree.facts(&file)?.flux {
            out.extend(read(ctx, &file, f)?);
        }
    }
    Ok(out)
}

/// Reads one Kustomization of `file`; `None` for a template whose name Flux substitutes.
fn read(ctx: &Ctx, file: &RepoPath, f: &FluxFacts) -> Result<Option<FluxDoc>, Error> {
    let doc = &f.doc;
    let origin = f.name.origin(file);
    let Some(name) = doc.pointer("/metadata/name").and_then(Value::as_str) else {
        let o = f.kind.origin(file);
        return Err(Error::repo(
            format!("Flux Kustomization in {o} has no metadata.name"),
            Some(o),
            Some("give it a name: `metadata: {name: <app>}`".into()),
        ));
    };
    let namespace = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    if !concrete(name) || namespace.as_deref().is_some_and(|n| !concrete(n)) {
        ctx.note(format!(
            "{origin}: Flux Kustomization `{name}` is a template (Flux substitutes its name): not a node"
        ));
        return Ok(None);
    }
    let spec = doc
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let deps = depends_on(file, f, name, &spec)?;
    let path_origin = f.path.origin(file);
    Ok(Some(FluxDoc {
        file: file.clone(),
        name: name.to_string(),
        namespace,
        spec,
        origin,
        deps,
        path_origin,
    }))
}

/// The `spec.dependsOn` entries (`{name, namespace?}`), each located at its `name:` line.
fn depends_on(file: &RepoPath, f: &FluxFacts, name: &str, spec: &Value) -> Result<Vec<Dep>, Error> {
    let entries = match spec.get("dependsOn") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            let o = f.depends_on.origin(file);
            return Err(Error::repo(
                format!("spec.dependsOn of Flux Kustomization `{name}` in {o} is not a list"),
                Some(o),
                Some(
                    "write it as a list: `dependsOn: [{name: other, namespace: flux-system}]`"
                        .into(),
                ),
            ));
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(j, e)| {
            let Some(dep) = e.get("name").and_then(Value::as_str) else {
                let o = f.depends_on.origin(file);
                return Err(Error::repo(
                    format!("an entry of spec.dependsOn of Flux Kustomization `{name}` in {o} has no name"),
                    Some(o),
                    Some("each entry is `{name: other}`, with `namespace:` when it lives elsewhere".into()),
                ));
            };
            Ok(Dep {
                name: dep.to_string(),
                namespace: e.get("namespace").and_then(Value::as_str).map(str::to_string),
                origin: f.deps.get(j).unwrap_or(&f.depends_on).origin(file),
            })
        })
        .collect()
}

/// The inputs of a Kustomization: `spec.path` (relative to the repo root; Flux's default is
/// the source's root) and `spec.components` (relative to the path). `None` when the path is
/// not in this repo (another source) or is itself substituted.
fn build_inputs(
    ctx: &Ctx,
    tree: &mut Tree,
    kustomize: &mut Kustomize,
    d: &FluxDoc,
) -> Result<Option<Collected>, Error> {
    let o = &d.path_origin;
    let written =
        match d.spec.get("path") {
            None | Some(Value::Null) => "./",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(Error::repo(
                format!(
                    "spec.path of Flux Kustomization `{}` in {o} is not a string",
                    d.name
                ),
                Some(o.clone()),
                Some(
                    "write the folder relative to the repo root, e.g. `path: ./kubernetes/apps`"
                        .into(),
                ),
            )),
        };
    if !concrete(written) {
        ctx.note(format!("{o}: spec.path `{written}` of Flux Kustomization `{}` is substituted by Flux: no input files", d.name));
        return Ok(None);
    }
    let path = RepoPath::new(written).map_err(|e| {
        Error::repo(
            format!("spec.path of Flux Kustomization `{}` in {o}: {e}", d.name),
            Some(o.clone()),
            Some(format!(
                "spec.path is relative to the repo root, e.g. `./{}`",
                d.file.parent()
            )),
        )
    })?;
    // A folder a walk found exists and is inside the repo: only other paths are probed.
    if tree.found(&path) != Some(Kind::Dir) && !probe_path(ctx, d, written, &path)? {
        return Ok(None);
    }
    let mut roots = vec![path.clone()];
    for c in d
        .spec
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        roots.push(component(ctx, tree, &path, c, d)?);
    }
    let outer = d
        .spec
        .get("targetNamespace")
        .and_then(Value::as_str)
        .filter(|s| concrete(s));
    kustomize.collect(tree, &roots, outer).map(Some)
}

/// Refuses a `spec.path` that does not exist, leaves the repo or is not a folder; `false` when
/// it is not in this repo (the Kustomization's source is another one), which is a note.
fn probe_path(ctx: &Ctx, d: &FluxDoc, written: &str, path: &RepoPath) -> Result<bool, Error> {
    let o = &d.path_origin;
    if !ctx.files.exists(path) {
        let source = d
            .spec
            .pointer("/sourceRef/kind")
            .and_then(Value::as_str)
            .unwrap_or("GitRepository");
        if source != "GitRepository" {
            ctx.note(format!(
                "{o}: spec.path `{written}` of Flux Kustomization `{}` is not in this repo (its source is a {source}): no input files",
                d.name
            ));
            return Ok(false);
        }
        return Err(Error::repo(
            format!(
                "spec.path `{written}` of Flux Kustomization `{}` in {o} does not exist",
                d.name
            ),
            Some(o.clone()),
            Some("spec.path is relative to the repo root: fix it, or create the folder".into()),
        ));
    }
    ctx.files.check_inside(path).map_err(|e| at(e, o.clone()))?;
    if !ctx.files.is_dir(path) {
        return Err(Error::repo(
            format!(
                "spec.path `{written}` of Flux Kustomization `{}` in {o} is a file, not a folder",
                d.name
            ),
            Some(o.clone()),
            Some("point spec.path at the folder holding the manifests".into()),
        ));
    }
    Ok(true)
}

/// A `spec.components` folder, relative to `spec.path`.
fn component(
    ctx: &Ctx,
    tree: &Tree,
    path: &RepoPath,
    written: &str,
    d: &FluxDoc,
) -> Result<RepoPath, Error> {
    // Located only for an error: the file is not read otherwise.
    let origin = || crate::yaml::locate(ctx.files, &d.file, Some("components"), written);
    let help = || Some("components are folders relative to spec.path, inside the repo".to_string());
    let p = path.join(written).map_err(|e| {
        let o = origin();
        Error::repo(
            format!(
                "spec.components of Flux Kustomization `{}` in {o}: {e}",
                d.name
            ),
            Some(o),
            help(),
        )
    })?;
    if tree.found(&p) == Some(Kind::Dir) {
        return Ok(p);
    }
    if !ctx.files.is_dir(&p) {
        let o = origin();
        return Err(Error::repo(
            format!(
                "component `{written}` of Flux Kustomization `{}` in {o} is not a folder ({p})",
                d.name
            ),
            Some(o),
            help(),
        ));
    }
    ctx.files.check_inside(&p).map_err(|e| at(e, origin()))?;
    Ok(p)
}

/// The node of one Kustomization, once every namespace is known.
fn node(
    tree: &mut Tree,
    d: FluxDoc,
    c: Option<&Collected>,
    namespaces: &BTreeMap<RepoPath, String>,
) -> Result<Node, Error> {
    let ns = namespaces
        .get(&d.file)
        .cloned()
        .or(d.namespace)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let address = crate::address("k8s", &format!("{ns}/{}", d.name), None, &d.origin)?;
    let edges = d
        .deps
        .iter()
        .map(|dep| {
            let dep_ns = dep.namespace.as_deref().unwrap_or(&ns);
            Ok(Edge {
                to: crate::address("k8s", &format!("{dep_ns}/{}", dep.name), None, &dep.origin)?,
                kind: EdgeKind::Order,
                origin: Some(dep.origin.clone()),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut params = Map::new();
    params.insert(MODE.into(), FLUX.into());
    params.insert("spec".into(), d.spec);
    let files = super::inputs(tree, c, &mut params)?;
    Ok(Node {
        address,
        layer: Layer::L4,
        params: Value::Object(params).into(),
        files,
        edges,
        labels: BTreeSet::new(),
        origin: d.origin,
    })
}
