//! Plain mode: one `k8s:<group>/<app>` node per app folder (`apps/jellyfin`,
//! `platform/ingress`), its inputs what `kustomize build` of the folder reads.

use std::collections::BTreeSet;

use hl_engine::{Error, Layer, Node, Origin, RepoPath};
use serde_json::{Map, Value};

use super::resolve::Kustomize;
use super::tree::Tree;
use super::{at, MODE};
use crate::Ctx;

/// The nodes of a plain tree: every folder two levels below the root.
pub(super) fn discover(ctx: &Ctx, tree: &mut Tree, root: &RepoPath) -> Result<Vec<Node>, Error> {
    let mut kustomize = Kustomize::default();
    let mut nodes = Vec::new();
    for group in folders(ctx, root)? {
        for app in folders(ctx, &group)? {
            let collected = kustomize.collect(tree, std::slice::from_ref(&app), None)?;
            let origin = Origin::file(tree.kfile(&app).unwrap_or_else(|| app.clone()));
            let name = format!("{}/{}", group.file_name(), app.file_name());
            let address = crate::address("k8s", &name, None, &origin)?;
            let mut params = Map::new();
            params.insert(MODE.into(), "plain".into());
            params.insert("group".into(), group.file_name().into());
            params.insert("app".into(), app.file_name().into());
            let files = super::inputs(tree, Some(&collected), &mut params)?;
            nodes.push(Node {
                address,
                layer: Layer::L4,
                params: Value::Object(params).into(),
                files,
                edges: Vec::new(),
                labels: BTreeSet::new(),
                origin,
            });
        }
    }
    if nodes.is_empty() {
        ctx.note(format!(
            "no app folders under {root} (expected <group>/<app>/): no k8s nodes"
        ));
    }
    Ok(nodes)
}

/// The visible subfolders of `dir`, sorted; a symlinked one must stay inside the repo.
fn folders(ctx: &Ctx, dir: &RepoPath) -> Result<Vec<RepoPath>, Error> {
    let mut out = Vec::new();
    for p in ctx.list_dir(dir)? {
        if ctx.files.kind(&p) == Some(hl_engine::Kind::Symlink) {
            ctx.files
                .check_inside(&p)
                .map_err(|e| at(e, Origin::file(p.clone())))?;
        }
        if ctx.files.is_dir(&p) {
            out.push(p);
        }
    }
    Ok(out)
}
