//! `vm:<HOST>`: the VM that an inventory host is, from `hosts/<HOST>/machine.yaml` (L2).
//!
//! Its disks are built from images (input edges), so a rebuilt image replaces the VM: a disk is
//! made anew, not edited. Changing the hypervisor, the provider or the vmid replaces it too;
//! cores and memory are changed in place.

use hl_engine::{
    canonical_pretty, Artifact, Edge, EdgeKind, Error, Layer, Node, Origin, RealizeCtx,
    Requirement, Rule,
};
use serde_json::{json, Value};

use crate::{address, image, yaml, Ctx};

/// The rule of `vm` nodes.
pub struct VmRule;

impl Rule for VmRule {
    fn kind(&self) -> &'static str {
        "vm"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L2
    }
    fn replace_keys(&self) -> &'static [&'static str] {
        &["hypervisor", "provider", "vmid"]
    }
    fn replace_on_inputs(&self) -> bool {
        true
    }
    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        let images: serde_json::Map<String, Value> = ctx
            .inputs
            .iter()
            .map(|(a, d)| (a.to_string(), Value::String(d.hex())))
            .collect();
        let spec = json!({ "machine": node.params, "images": images });
        Ok(Artifact::single("vm.json", canonical_pretty(&spec)))
    }
    fn requirements(&self, node: &Node) -> Vec<Requirement> {
        let mut out = Vec::new();
        if node
            .params
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or("proxmox")
            == "proxmox"
        {
            out.push(Requirement::Env {
                name: "PROXMOX_API_TOKEN".into(),
            });
        }
        if let Some(h) = node.params.get("hypervisor").and_then(Value::as_str) {
            out.push(Requirement::Reachable {
                host: h.to_string(),
            });
        }
        out
    }
}

/// Discovers one VM per host folder holding a `machine.yaml`.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    let hosts = ctx.layout_path(&ctx.topology.layout.hosts, "hosts")?;
    let mut out = Vec::new();
    for dir in ctx.list_dir(&hosts)? {
        let path = dir.join("machine.yaml").map_err(Error::Internal)?;
        if !ctx.files.is_file(&path) {
            continue;
        }
        let host = dir.file_name().to_string();
        let origin = Origin::file(path.clone());
        if !ctx.topology.hosts.is_empty() && !ctx.topology.hosts.contains_key(&host) {
            return Err(ctx.unknown_host("the folder", &host, origin));
        }
        let params = yaml::one(ctx.files, &path)?;
        let hypervisor = params
            .get("hypervisor")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::repo(
                    format!("{path} names no hypervisor"),
                    Some(origin.clone()),
                    Some("add `hypervisor: <HOST>`, the inventory host that runs this VM".into()),
                )
            })?;
        if !ctx.topology.hosts.is_empty() && !ctx.topology.hosts.contains_key(hypervisor) {
            let at = yaml::locate(ctx.files, &path, Some("hypervisor"), hypervisor);
            return Err(ctx.unknown_host(&format!("{path}: hypervisor"), hypervisor, at));
        }
        let mut edges = image::depends_on(ctx, &path, &params)?;
        for disk in params
            .get("disks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(img) = disk.get("image").and_then(Value::as_str) {
                let at = yaml::locate(ctx.files, &path, Some("image"), img);
                edges.push(Edge {
                    to: address("image", img, None, &at)?,
                    kind: EdgeKind::Input,
                    origin: Some(at),
                });
            }
        }
        let mut labels = ctx.host_labels(&host);
        labels.insert(hypervisor.to_string());
        out.push(Node {
            address: address("vm", &host, None, &origin)?,
            layer: Layer::L2,
            params: params.into(),
            files: Vec::new(),
            edges,
            labels,
            origin,
        });
    }
    Ok(out)
}
