//! `image:<name>`: a disk or OS image built from a recipe in `inventory/images/` (L1).
//!
//! Images are expensive to build, so they are input-addressed in the plan ("will build") until
//! `hl apply` builds them; their output digest then comes from the action cache. The recipe's
//! keys are the parameters (so a comment in a recipe changes nothing) and the files it names
//! (cloud-init data, a packer template) are inputs.

use hl_engine::{
    ApplyCtx, Artifact, Edge, EdgeKind, Error, JobError, Layer, Node, Origin, RealizeCtx, RepoPath,
    Requirement, Rule,
};
use serde_json::Value;

use crate::{address, yaml, Ctx};

mod build;

/// The rule of `image` nodes.
pub struct ImageRule;

impl Rule for ImageRule {
    fn kind(&self) -> &'static str {
        "image"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L1
    }
    fn cheap(&self) -> bool {
        false
    }
    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        build::build(node, ctx)
    }
    /// Building is the whole of it: the image is in the store, where VMs take it from.
    fn converge(&self, _node: &Node, _ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        Ok(())
    }
    /// Nothing outside the cache to remove; `hl gc` frees the image once nothing reaches it.
    fn destroy(&self, _node: &Node, _ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        Ok(())
    }
    fn host(&self, _node: &Node) -> Option<String> {
        None
    }
    fn requirements(&self, node: &Node) -> Vec<Requirement> {
        let tool = |name: &str| Requirement::Tool {
            name: name.to_string(),
        };
        let mut out: Vec<Requirement> = match node.params.get("builder").and_then(Value::as_str) {
            Some("packer") => vec![tool("packer")],
            Some("command") => node
                .params
                .get("command")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .and_then(Value::as_str)
                .map(tool)
                .into_iter()
                .collect(),
            _ => vec![tool("qemu-img")],
        };
        if let Some(tools) = node.params.get("tools").and_then(Value::as_array) {
            out.extend(tools.iter().filter_map(Value::as_str).map(tool));
        }
        out
    }
}

/// Discovers one image per recipe file.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    let dir = ctx.layout_path(&ctx.topology.layout.images, "images")?;
    if !ctx.files.is_dir(&dir) {
        ctx.note(format!("no image recipes at {dir}/: L1 has no nodes"));
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for path in ctx.list_dir(&dir)? {
        let name = path.file_name();
        let Some(stem) = name
            .strip_suffix(".yaml")
            .or_else(|| name.strip_suffix(".yml"))
        else {
            continue;
        };
        if !ctx.files.is_file(&path) {
            continue;
        }
        out.push(recipe(ctx, &path, stem)?);
    }
    Ok(out)
}

fn recipe(ctx: &Ctx, path: &RepoPath, name: &str) -> Result<Node, Error> {
    let origin = Origin::file(path.clone());
    let params = yaml::one(ctx.files, path)?;
    if !params.is_object() {
        return Err(Error::repo(
            format!("image recipe {path} must be a mapping of keys"),
            Some(origin),
            Some("see docs/layout.md for the keys of an image recipe".into()),
        ));
    }
    let base = path.parent();
    let mut files = Vec::new();
    for key in ["files", "inputs"] {
        for f in params
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(f) = f.as_str() else { continue };
            let p = base.join(f).map_err(|e| {
                Error::repo(
                    format!("{e} ({path}: {key})"),
                    Some(yaml::locate(ctx.files, path, Some(key), f)),
                    Some(
                        "recipe files are relative to the recipe's folder and stay in the repo"
                            .into(),
                    ),
                )
            })?;
            if !ctx.files.is_file(&p) {
                return Err(Error::repo(
                    format!("{path} names {p}, which does not exist"),
                    Some(yaml::locate(ctx.files, path, Some(key), f)),
                    None,
                ));
            }
            // Inside the repo, but not read: the loader takes nothing from the content (realize
            // reads it), so an edit makes no loader run.
            ctx.files.check_inside(&p)?;
            files.push(p);
        }
    }
    let edges = depends_on(ctx, path, &params)?;
    Ok(Node {
        address: address("image", name, None, &origin)?,
        layer: Layer::L1,
        params: params.into(),
        files,
        edges,
        labels: Default::default(),
        origin,
    })
}

/// Extra `depends_on:` addresses a recipe, machine or contract may name (order edges).
pub fn depends_on(ctx: &Ctx, path: &RepoPath, params: &Value) -> Result<Vec<Edge>, Error> {
    let mut out = Vec::new();
    for d in params
        .get("depends_on")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(text) = d.as_str() else { continue };
        let origin = yaml::locate(ctx.files, path, Some("depends_on"), text);
        let to = text.parse().map_err(|e: String| {
            Error::repo(format!("{e} ({origin})"), Some(origin.clone()), None)
        })?;
        out.push(Edge {
            to,
            kind: EdgeKind::Order,
            origin: Some(origin),
        });
    }
    Ok(out)
}
