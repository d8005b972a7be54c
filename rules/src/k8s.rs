//! `k8s` nodes (L4): the Kubernetes tree under `layout.kubernetes`, read the way Flux and
//! kustomize read it, so that a node's inputs are exactly the files its build would read.
//!
//! | mode | one node per | address | params |
//! | --- | --- | --- | --- |
//! | flux | Flux `Kustomization` (`kustomize.toolkit.fluxcd.io/*`) | `k8s:<namespace>/<name>` | `mode`, its `spec` |
//! | plain | app folder `<group>/<app>` | `k8s:<group>/<app>` | `mode`, `group`, `app` |
//!
//! Both modes add `remote_resources` (kustomize references to URLs, recorded, never fetched)
//! and `sops_files` (inputs that need decrypting) when there are any. A Flux node's
//! `dependsOn` become order edges; the graph reports unknown ones and cycles.
//!
//! The artifact is the manifest bundle (`bundle`): every document, canonical and sorted, so
//! an edit that kustomize would not see (a comment, key order, an anchor) keeps the output
//! digest and stops at this node (early cutoff).
//!
//! | module | knows |
//! | --- | --- |
//! | `tree` | which YAML files exist (walked once), each one's facts, the secret checks |
//! | `facts` | what discovery needs of each file, derived from its bytes and remembered across runs |
//! | `kustomize` | what a `kustomization.yaml` references, by role |
//! | `resolve` | a folder's input files, as kustomize (or kustomize-controller) builds it |
//! | `flux` / `plain` | the nodes of each mode |
//! | `bundle` | realize: the canonical manifest bundle |
//! | `locate` | lines of keys in YAML text, for origins |

mod bundle;
pub(crate) mod facts;
mod flux;
mod kustomize;
mod locate;
mod plain;
mod resolve;
mod tree;

use std::collections::BTreeSet;

use hl_engine::{
    Artifact, Digest, Error, Layer, Node, Origin, Output, RealizeCtx, RepoPath, Requirement, Rule,
};
use serde_json::{Map, Value};

use crate::inventory::KubernetesMode;
use crate::Ctx;
use resolve::Collected;
use tree::Tree;

/// The rule of `k8s` nodes.
pub struct K8sRule;

impl Rule for K8sRule {
    fn kind(&self) -> &'static str {
        "k8s"
    }

    /// 2: one artifact file per document (`manifests/<n>.json`), ordered by digest within an
    /// identity, where one `manifests.json` held them all.
    fn version(&self) -> u32 {
        2
    }

    fn layer(&self) -> Layer {
        Layer::L4
    }

    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        bundle::render(ctx.files, &node.files)
    }

    fn output_digest(
        &self,
        node: &Node,
        ctx: &RealizeCtx<'_>,
    ) -> Option<Result<Digest<Output>, Error>> {
        Some(bundle::digest(ctx.files, &node.files))
    }

    fn requirements(&self, node: &Node) -> Vec<Requirement> {
        /// The two keys requirements depend on; the rest (a Flux spec) is skipped unparsed.
        #[derive(serde::Deserialize, Default)]
        struct Needs {
            #[serde(default)]
            mode: Option<String>,
            #[serde(default)]
            sops_files: Vec<serde::de::IgnoredAny>,
        }
        let needs: Needs = node.params.read().unwrap_or_default();
        let tool = |name: &str| Requirement::Tool { name: name.into() };
        let mut out = vec![tool("kubectl")];
        if needs.mode.as_deref() == Some(FLUX) {
            out.push(tool("flux"));
        }
        if !needs.sops_files.is_empty() {
            out.push(tool("sops"));
        }
        out
    }
}

/// Params key: `flux` or `plain`, so requirements can tell the modes apart.
const MODE: &str = "mode";
/// The value of [`MODE`] for Flux nodes.
const FLUX: &str = "flux";
/// Params key: inputs that are SOPS-encrypted, which converging has to decrypt.
const SOPS_FILES: &str = "sops_files";
/// Params key: kustomize references to URLs; recorded so a changed ref re-plans the node.
const REMOTE_RESOURCES: &str = "remote_resources";

/// Discovers the `k8s` nodes of the tree at `layout.kubernetes`. An absent tree is a note; a
/// plaintext Secret in any node's input, a reference leaving the repo or a missing input is
/// an error, found here so that bad input changes nothing.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    let layout = &ctx.topology.layout;
    let root = ctx.layout_path(&layout.kubernetes, "kubernetes")?;
    if !ctx.files.is_dir(&root) {
        ctx.note(format!("no Kubernetes tree at {root}: no k8s nodes"));
        return Ok(Vec::new());
    }
    ctx.files.check_inside(&root)?;
    let mut tree = Tree::new(ctx.files);
    tree.walk(&root)?;
    let flux = match layout.kubernetes_mode {
        KubernetesMode::Auto => tree.has_flux(),
        KubernetesMode::Flux => true,
        KubernetesMode::Plain => false,
    };
    let nodes = if flux {
        flux::discover(ctx, &mut tree, &root)?
    } else {
        plain::discover(ctx, &mut tree, &root)?
    };
    for note in tree.unused_failures() {
        ctx.note(note);
    }
    Ok(nodes)
}

/// Finishes a node's params and input files from what its build reads: refuses plaintext
/// Secrets in any manifest, and records remote references and SOPS-encrypted inputs.
fn inputs(
    tree: &mut Tree,
    collected: Option<&Collected>,
    params: &mut Map<String, Value>,
) -> Result<Vec<RepoPath>, Error> {
    let Some(c) = collected else {
        return Ok(Vec::new());
    };
    let mut sops = BTreeSet::new();
    for f in &c.manifests {
        tree.check_secrets(f)?;
        if tree.facts(f)?.sops {
            sops.insert(f.as_str().to_string());
        }
    }
    for f in c.data.iter().chain(&c.values) {
        if tree.data_is_sops(f)? {
            sops.insert(f.as_str().to_string());
        }
    }
    if !c.remote.is_empty() {
        params.insert(REMOTE_RESOURCES.into(), c.remote.iter().cloned().collect());
    }
    if !sops.is_empty() {
        params.insert(SOPS_FILES.into(), sops.into_iter().collect());
    }
    let all: BTreeSet<&RepoPath> = c.manifests.iter().chain(&c.data).chain(&c.values).collect();
    Ok(all.into_iter().cloned().collect())
}

/// Puts `origin` on a repo error that has none.
fn at(e: Error, origin: Origin) -> Error {
    e.placed(&origin, false)
}

/// Whether a name is final, not a Flux `${VAR}` that a parent Kustomization substitutes.
fn concrete(s: &str) -> bool {
    !s.is_empty() && !s.contains("${")
}

#[cfg(test)]
mod tests;
