//! Reading talhelper's `talconfig.yaml` into `talos:<hostname>` nodes.
//!
//! Only what a node's config is made of goes into it: the talconfig's relevant content as
//! params, and as files the patch files it uses and the cluster's secrets. The talconfig itself
//! is not a file input, so editing one node's patch re-plans only the nodes that use it.

use std::collections::BTreeSet;

use hl_engine::{Edge, EdgeKind, Error, Layer, Node, Origin, RepoPath};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use serde_yaml_ng::Value as Yaml;

use super::patch;
use crate::{yaml, Ctx};

/// The names talhelper reads the cluster from, in the order tried.
const TALCONFIG: [&str; 2] = ["talconfig.yaml", "talconfig.yml"];

/// Cluster secrets beside the talconfig: talhelper's names, and `secrets.yaml` as
/// `talosctl gen secrets` writes it. Each must be SOPS-encrypted.
const SECRETS: [&str; 6] = [
    "talsecret.sops.yaml",
    "talsecret.sops.yml",
    "talsecret.yaml",
    "talsecret.yml",
    "secrets.yaml",
    "secrets.sops.yaml",
];

/// talhelper's `${VAR}` substitution files: they change what talhelper renders, so they are
/// inputs; plaintext is allowed except under a `.sops.` name.
const TALENV: [&str; 4] = [
    "talenv.sops.yaml",
    "talenv.sops.yml",
    "talenv.yaml",
    "talenv.yml",
];

/// Top-level keys that are not cluster fields: each is handled on its own.
const NOT_CLUSTER: [&str; 4] = ["nodes", "patches", "controlPlane", "worker"];

/// Node-entry keys kept out of the `node` param: patches are resolved into `patches`, the
/// others are top-level params of their own (so their change replaces the node).
const NOT_NODE: [&str; 3] = ["patches", "installDisk", "controlPlane"];

/// One patch as a node gets it: its param, and the file it reads when it is a reference.
#[derive(Debug, Clone)]
struct PatchRef {
    param: Value,
    file: Option<RepoPath>,
}

/// The `controlPlane:` or `worker:` section: patches, and node fields as role defaults.
#[derive(Debug, Default)]
struct RoleSection {
    defaults: Map<String, Value>,
    patches: Vec<PatchRef>,
}

/// What every node of the cluster shares.
struct Cluster {
    path: RepoPath,
    fields: Value,
    global: Vec<PatchRef>,
    controlplane: RoleSection,
    worker: RoleSection,
    /// Secrets and env files, all inputs of every node.
    inputs: Vec<RepoPath>,
    /// The SOPS-encrypted ones among them.
    sops: Vec<RepoPath>,
    /// Hosts that are VMs (have `machine.yaml`), by their folder or inventory name.
    vms: Vec<String>,
}

/// One `talos:<hostname>` node per entry of `nodes`; an absent talconfig is a note.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    let dir = ctx.layout_path(&ctx.topology.layout.talos, "talos")?;
    let Some(path) = find_talconfig(ctx, &dir)? else {
        ctx.note(format!(
            "no Talos config at {}: L3 has no nodes",
            join(&dir, TALCONFIG[0])?
        ));
        return Ok(Vec::new());
    };
    let top = match yaml::one(ctx.files, &path)? {
        Value::Object(top) => top,
        Value::Null => {
            ctx.note(format!("{path} is empty: L3 has no nodes"));
            return Ok(Vec::new());
        }
        _ => {
            return Err(Error::repo(
                format!("{path} must be a mapping of cluster fields and `nodes`"),
                Some(Origin::file(path.clone())),
                Some(
                    "see talhelper's talconfig reference: clusterName, endpoint, nodes ...".into(),
                ),
            ))
        }
    };
    let entries = match top.get("nodes") {
        None | Some(Value::Null) => {
            ctx.note(format!("{path} lists no nodes: L3 has no nodes"));
            return Ok(Vec::new());
        }
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(Error::repo(
                format!("`nodes` in {path} must be a list"),
                Some(yaml::locate(ctx.files, &path, None, "nodes:")),
                Some("write each node as `- hostname: ...` under `nodes:`".into()),
            ))
        }
    };
    let cluster = Cluster::load(ctx, path, &dir, &top)?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| cluster.node(ctx, i, e))
        .collect()
}

fn join(dir: &RepoPath, name: &str) -> Result<RepoPath, Error> {
    dir.join(name).map_err(Error::Internal)
}

fn find_talconfig(ctx: &Ctx, dir: &RepoPath) -> Result<Option<RepoPath>, Error> {
    for name in TALCONFIG {
        let path = join(dir, name)?;
        if ctx.files.is_file(&path) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

impl Cluster {
    fn load(
        ctx: &Ctx,
        path: RepoPath,
        dir: &RepoPath,
        top: &Map<String, Value>,
    ) -> Result<Cluster, Error> {
        let fields = top
            .iter()
            .filter(|(k, _)| !NOT_CLUSTER.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let global = patch_refs(
            ctx,
            &path,
            top.get("patches"),
            "the global patches",
            "patches:",
        )?;
        let controlplane = role_section(ctx, &path, top.get("controlPlane"), "controlPlane")?;
        let worker = role_section(ctx, &path, top.get("worker"), "worker")?;
        let (inputs, sops) = cluster_inputs(ctx, dir)?;
        Ok(Cluster {
            fields: Value::Object(fields),
            global,
            controlplane,
            worker,
            inputs,
            sops,
            vms: vm_hosts(ctx)?,
            path,
        })
    }

    fn node(&self, ctx: &Ctx, index: usize, entry: &Value) -> Result<Node, Error> {
        let Value::Object(entry) = entry else {
            return Err(Error::repo(
                format!("node {} of {} must be a mapping", index + 1, self.path),
                Some(yaml::locate(ctx.files, &self.path, None, "nodes:")),
                Some(
                    "each node is `- hostname: ...` with ipAddress, controlPlane, installDisk"
                        .into(),
                ),
            ));
        };
        let hostname = hostname(ctx, &self.path, index, entry)?;
        let origin = locate_hostname(ctx, &self.path, hostname);
        let role = role(entry, hostname, &origin)?;
        let section = if role == "controlplane" {
            &self.controlplane
        } else {
            &self.worker
        };
        let own = patch_refs(
            ctx,
            &self.path,
            entry.get("patches"),
            &format!("node {hostname}"),
            hostname,
        )?;
        let patches: Vec<&PatchRef> = self
            .global
            .iter()
            .chain(&section.patches)
            .chain(&own)
            .collect();
        // talhelper: the role section's node fields are defaults the node entry overrides.
        let mut node: Map<String, Value> = section.defaults.clone();
        node.extend(entry.iter().map(|(k, v)| (k.clone(), v.clone())));
        let install_disk = node.get("installDisk").cloned().unwrap_or(Value::Null);
        node.retain(|k, _| !NOT_NODE.contains(&k.as_str()));
        let params = json!({
            "cluster": self.fields,
            "node": node,
            "role": role,
            "installDisk": install_disk,
            "patches": patches.iter().map(|p| p.param.clone()).collect::<Vec<_>>(),
            "secrets": self.secrets(&patches),
        });
        let mut files: Vec<RepoPath> = patches.iter().filter_map(|p| p.file.clone()).collect();
        files.extend(self.inputs.iter().cloned());
        files.sort();
        files.dedup();
        Ok(Node {
            address: crate::address("talos", hostname, None, &origin)?,
            layer: Layer::L3,
            params: params.into(),
            files,
            edges: self.placement(hostname, &origin)?.into_iter().collect(),
            labels: labels(ctx, hostname),
            origin,
        })
    }

    /// The SOPS files a node's converge decrypts: the cluster's, and its encrypted patches.
    fn secrets(&self, patches: &[&PatchRef]) -> Vec<String> {
        let encrypted = patches.iter().filter(|p| p.param["sops"] == true);
        let mut secrets: Vec<String> = self.sops.iter().map(|p| p.as_str().to_string()).collect();
        secrets.extend(encrypted.filter_map(|p| p.param["file"].as_str().map(str::to_string)));
        secrets.sort();
        secrets.dedup();
        secrets
    }

    /// The VM this node runs as, when a VM host has its name (case-insensitively).
    fn placement(&self, hostname: &str, origin: &Origin) -> Result<Option<Edge>, Error> {
        let Some(vm) = self.vms.iter().find(|v| v.eq_ignore_ascii_case(hostname)) else {
            return Ok(None);
        };
        Ok(Some(Edge {
            to: crate::address("vm", vm, None, origin)?,
            kind: EdgeKind::Placement,
            origin: Some(origin.clone()),
        }))
    }
}

/// The hostname, and the inventory host of that name with its tags when there is one.
fn labels(ctx: &Ctx, hostname: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::from([hostname.to_string()]);
    if let Some(host) = ctx
        .topology
        .hosts
        .keys()
        .find(|h| h.eq_ignore_ascii_case(hostname))
    {
        labels.extend(ctx.host_labels(host));
    }
    labels
}

fn hostname<'a>(
    ctx: &Ctx,
    path: &RepoPath,
    index: usize,
    entry: &'a Map<String, Value>,
) -> Result<&'a str, Error> {
    entry
        .get("hostname")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::repo(
                format!("node {} of {path} has no `hostname`", index + 1),
                Some(yaml::locate(ctx.files, path, None, "nodes:")),
                Some(
                    "give every entry of `nodes` a hostname: it names the node, talos:<hostname>"
                        .into(),
                ),
            )
        })
}

/// The line of the node's `hostname:` (YAML values carry no positions, so it is searched for).
fn locate_hostname(ctx: &Ctx, path: &RepoPath, hostname: &str) -> Origin {
    let exact = yaml::locate(
        ctx.files,
        path,
        Some("nodes:"),
        &format!("hostname: {hostname}"),
    );
    if exact.line > 0 {
        exact
    } else {
        yaml::locate(ctx.files, path, Some("nodes:"), hostname)
    }
}

/// `controlplane` or `worker`, from `controlPlane:` (absent is a worker, as in talhelper).
fn role(
    entry: &Map<String, Value>,
    hostname: &str,
    origin: &Origin,
) -> Result<&'static str, Error> {
    let controlplane = match entry.get("controlPlane") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(Error::repo(
                format!(
                "`controlPlane` of node {hostname} ({origin}) must be true or false, not {other}"
            ),
                Some(origin.clone()),
                Some(
                    "write `controlPlane: true` for a control-plane node, `false` for a worker"
                        .into(),
                ),
            ))
        }
    };
    Ok(if controlplane {
        "controlplane"
    } else {
        "worker"
    })
}

fn role_section(
    ctx: &Ctx,
    path: &RepoPath,
    section: Option<&Value>,
    name: &str,
) -> Result<RoleSection, Error> {
    match section {
        None | Some(Value::Null) => Ok(RoleSection::default()),
        Some(Value::Object(m)) => Ok(RoleSection {
            defaults: m
                .iter()
                .filter(|(k, _)| *k != "patches")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            patches: patch_refs(
                ctx,
                path,
                m.get("patches"),
                &format!("{name}.patches"),
                &format!("{name}:"),
            )?,
        }),
        Some(_) => Err(Error::repo(
            format!("`{name}` in {path} must be a mapping"),
            Some(yaml::locate(ctx.files, path, None, &format!("{name}:"))),
            Some(format!(
                "write `{name}:` with `patches:` (and node defaults) below it"
            )),
        )),
    }
}

/// Resolves a `patches:` list written after the line holding `anchor`.
fn patch_refs(
    ctx: &Ctx,
    path: &RepoPath,
    list: Option<&Value>,
    what: &str,
    anchor: &str,
) -> Result<Vec<PatchRef>, Error> {
    let items =
        match list {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(Error::repo(
                format!("{what} in {path} must be a list"),
                Some(yaml::locate(ctx.files, path, Some(anchor), "patches:")),
                Some(
                    "write `patches:` as a list of \"@./file.yaml\" references or inline patches"
                        .into(),
                ),
            )),
        };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if s.trim_start().starts_with('@') => out.push(file_ref(ctx, path, s.trim(), anchor)?),
            Value::String(s) => out.extend(inline_text(ctx, path, s, &format!("inline patch {} of {what}", i + 1), anchor)?),
            Value::Object(_) | Value::Array(_) => {
                let origin = yaml::locate(ctx.files, path, Some(anchor), "patches:");
                out.push(inline(item.clone(), &format!("inline patch {} of {what}", i + 1), &origin)?);
            }
            other => {
                return Err(Error::repo(
                    format!("patch {} of {what} in {path} is neither a \"@./file.yaml\" reference nor a patch: {other}", i + 1),
                    Some(yaml::locate(ctx.files, path, Some(anchor), "patches:")),
                    Some("a patch is a \"@./file.yaml\" reference, or a strategic merge or JSON patch written inline".into()),
                ))
            }
        }
    }
    Ok(out)
}

/// A `@./file.yaml` reference: relative to the talconfig's folder, inside the repo, present.
fn file_ref(ctx: &Ctx, path: &RepoPath, reference: &str, anchor: &str) -> Result<PatchRef, Error> {
    let origin = yaml::locate(ctx.files, path, Some(anchor), reference);
    let target = reference.strip_prefix('@').unwrap_or(reference);
    let file = path.parent().join(target).map_err(|e| {
        Error::repo(
            format!("patch {reference} ({origin}): {e}"),
            Some(origin.clone()),
            Some("patch files live in the repo: reference them relative to the talconfig folder, e.g. \"@./patches/x.yaml\"".into()),
        )
    })?;
    if !ctx.files.is_file(&file) {
        return Err(Error::repo(
            format!("patch file {file} does not exist (referenced at {origin})"),
            Some(origin),
            Some(
                "create the file, or fix the reference: it is relative to the talconfig folder"
                    .into(),
            ),
        ));
    }
    ctx.files
        .check_inside(&file)
        .map_err(|e| referenced_at(e, &origin))?;
    // Decided by name, not content, so discovery reads no patch file (a no-op plan hashes
    // nothing); realize checks that the content agrees.
    let param = if is_sops_name(file.file_name()) {
        json!({"file": file.as_str(), "sops": true})
    } else {
        json!({"file": file.as_str()})
    };
    Ok(PatchRef {
        param,
        file: Some(file),
    })
}

/// Whether a file is named as SOPS-encrypted (`x.sops.yaml`), the convention of `.sops.yaml`
/// creation rules.
fn is_sops_name(name: &str) -> bool {
    name.contains(".sops.")
}

/// Places an unlocated repo error at the reference that led to it.
fn referenced_at(e: Error, origin: &Origin) -> Error {
    e.placed(origin, true)
}

/// An inline patch written as a YAML string (talhelper's form): each document is one patch.
fn inline_text(
    ctx: &Ctx,
    path: &RepoPath,
    text: &str,
    what: &str,
    anchor: &str,
) -> Result<Vec<PatchRef>, Error> {
    let first_line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(anchor);
    let origin = yaml::locate(ctx.files, path, Some(anchor), first_line);
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let parsed = Yaml::deserialize(de).and_then(|mut y| y.apply_merge().map(|()| y));
        let y = parsed.map_err(|e| {
            Error::repo(
                format!("{what} ({origin}) is malformed YAML: {e} (counting from the patch's first line)"),
                Some(origin.clone()),
                Some("fix the YAML inside the patch string; `yamllint` on the patch alone shows the same".into()),
            )
        })?;
        if !y.is_null() {
            out.push(inline(yaml::to_json(y), what, &origin)?);
        }
    }
    Ok(out)
}

/// An inline patch, its shape checked where it is written.
fn inline(doc: Value, what: &str, origin: &Origin) -> Result<PatchRef, Error> {
    patch::check(&doc).map_err(|e| {
        Error::repo(
            format!("{what} ({origin}): {e}"),
            Some(origin.clone()),
            Some(
                "write a partial machine config (strategic merge) or a list of `{op, path, value}`"
                    .into(),
            ),
        )
    })?;
    Ok(PatchRef {
        param: json!({"inline": doc}),
        file: None,
    })
}

/// The cluster's secrets and env files: inputs of every node. A secrets file, or any file
/// named `.sops.`, that is not SOPS-encrypted is refused before anything is loaded.
fn cluster_inputs(ctx: &Ctx, dir: &RepoPath) -> Result<(Vec<RepoPath>, Vec<RepoPath>), Error> {
    let mut inputs = Vec::new();
    let mut sops = Vec::new();
    for name in SECRETS.iter().chain(&TALENV) {
        let file = join(dir, name)?;
        if !ctx.files.is_file(&file) {
            continue;
        }
        ctx.files.check_inside(&file)?;
        let docs = yaml::docs(ctx.files, &file)?;
        let encrypted = !docs.is_empty() && docs.iter().all(yaml::is_sops);
        if !encrypted && (SECRETS.contains(name) || is_sops_name(name)) {
            return Err(Error::secret(
                format!("plaintext Talos secrets in {file}; encrypt it with sops"),
                Some(Origin::file(file.clone())),
                Some(format!(
                    "run `sops --encrypt --in-place {file}` (recipients from .sops.yaml); talhelper reads talsecret.sops.yaml"
                )),
            ));
        }
        if encrypted {
            sops.push(file.clone());
        }
        inputs.push(file);
    }
    Ok((inputs, sops))
}

/// Hosts that are VMs: inventory hosts and host folders that hold a `machine.yaml`.
fn vm_hosts(ctx: &Ctx) -> Result<Vec<String>, Error> {
    let hosts = ctx.layout_path(&ctx.topology.layout.hosts, "hosts")?;
    let mut names: BTreeSet<String> = ctx.topology.hosts.keys().cloned().collect();
    for dir in ctx.list_dir(&hosts)? {
        if ctx.files.is_dir(&dir) {
            names.insert(dir.file_name().to_string());
        }
    }
    Ok(names
        .into_iter()
        .filter(|n| {
            hosts
                .join(&format!("{n}/machine.yaml"))
                .is_ok_and(|m| ctx.files.is_file(&m))
        })
        .collect())
}
