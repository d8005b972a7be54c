//! `compose:<svc>@<HOST>`: a docker-compose project placed on a host (L4).
//!
//! Placement comes from `hosts/<HOST>/services.yaml` (or, for compose-per-host repos, from the
//! `layout.stacks` pattern). The realized artifact is the release that goes to the host: the
//! compose file merged with the host's override in canonical form, the service contract, its
//! env template and healthcheck, and the content of every file the project bind-mounts from its
//! folder, which `docker compose` itself does not notice when it changes.

mod converge;
pub(crate) mod facts;
mod merge;
mod mounts;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hl_engine::{
    canonical_pretty, ApplyCtx, Artifact, Digest, Edge, EdgeKind, Error, JobError, Kind, Layer,
    Node, Observed, Origin, Output, RealizeCtx, RepoPath, Requirement, Rule,
};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use self::facts::{Contract, Facts};
use crate::{address, yaml, Ctx};

/// Compose file names, in the order docker compose looks for them.
pub const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
const OVERRIDE_FILES: [&str; 4] = [
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
    "compose.override.yaml",
    "compose.override.yml",
];
const EXPOSURES: [&str; 4] = ["internal", "lan", "tailnet", "public"];

/// The rule of `compose` nodes.
pub struct ComposeRule;

impl Rule for ComposeRule {
    fn kind(&self) -> &'static str {
        "compose"
    }
    fn version(&self) -> u32 {
        1
    }
    fn layer(&self) -> Layer {
        Layer::L4
    }
    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        let mut art = Artifact::default();
        for (name, piece) in release(node, ctx, false)? {
            let bytes = match piece {
                Piece::Made(bytes) => bytes,
                Piece::Copied(f) => ctx.files.read(&f)?.to_vec(),
                Piece::Hashed(_) => {
                    return Err(Error::Internal(format!(
                        "{}: a release to build holds a digest for {name}",
                        node.address
                    )))
                }
            };
            art.files.insert(name, bytes);
        }
        Ok(art)
    }

    /// The release's digest without copying its files: each copied file's digest is the one
    /// hashing made of its bytes (a service's config files are read once, not twice).
    fn output_digest(
        &self,
        node: &Node,
        ctx: &RealizeCtx<'_>,
    ) -> Option<Result<Digest<Output>, Error>> {
        let told = || -> Result<Digest<Output>, Error> {
            let mut hashes = BTreeMap::new();
            for (name, piece) in release(node, ctx, true)? {
                let hash = match piece {
                    Piece::Made(bytes) => *blake3::hash(&bytes).as_bytes(),
                    Piece::Hashed(hash) => hash,
                    Piece::Copied(f) => match ctx.files.content_hash(&f) {
                        Some(hash) => hash,
                        None => *blake3::hash(&ctx.files.read(&f)?).as_bytes(),
                    },
                };
                hashes.insert(name, hash);
            }
            Ok(Artifact::digest_of(&hashes))
        };
        Some(told())
    }
    fn requirements(&self, node: &Node) -> Vec<Requirement> {
        let host = node.address.host().unwrap_or_default().to_string();
        vec![
            Requirement::Reachable { host: host.clone() },
            Requirement::RemoteTool {
                name: "docker".into(),
                host,
            },
        ]
    }
    fn converge(&self, node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        converge::up(node, ctx)
    }
    fn verify(&self, node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        converge::healthcheck(node, ctx)
    }
    fn destroy(&self, node: &Node, ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        converge::down(node, ctx)
    }
    fn observe(&self, node: &Node, ctx: &ApplyCtx<'_>) -> Result<Observed, JobError> {
        converge::observe(node, ctx)
    }
    fn rollback(&self, node: &Node, ctx: &ApplyCtx<'_>) -> Result<String, JobError> {
        converge::rollback(node, ctx)
    }
}

/// What a compose node hashes besides its files.
#[derive(Debug, Deserialize)]
struct Params {
    project: String,
    host: String,
    dir: String,
    compose: String,
    #[serde(default, rename = "override")]
    override_file: Option<String>,
}

/// The merged, canonical compose project of a placement.
fn project(files: &hl_engine::FileSet, p: &Params) -> Result<Value, Error> {
    let compose = RepoPath::new(&p.compose).map_err(Error::Internal)?;
    let over = match &p.override_file {
        Some(o) => Some(yaml::one(
            files,
            &RepoPath::new(o).map_err(Error::Internal)?,
        )?),
        None => None,
    };
    Ok(merged(yaml::one(files, &compose)?, over.as_ref()))
}

/// The canonical project of a compose file and a host's override, both already parsed.
fn merged(mut project: Value, over: Option<&Value>) -> Value {
    if let Some(o) = over {
        merge::merge(&mut project, o, "");
    }
    merge::normalise(&mut project);
    // `version` is obsolete and only makes compose v2 warn; the project name is given with
    // `-p` on the host (docker-compose 1.29 rejects a top-level `name`).
    if let Value::Object(m) = &mut project {
        m.remove("version");
    }
    project
}

/// One service on one host, before it becomes a node.
struct Placement {
    svc: String,
    host: String,
    exposure: String,
    dir: RepoPath,
    origin: Origin,
}

/// Discovers every compose node.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    let facts = Facts::new(ctx.files);
    let mut placements = from_services_files(ctx, &facts)?;
    placements.extend(from_stacks(ctx)?);
    if placements.is_empty() {
        ctx.note(format!(
            "no compose services placed (no {}/<HOST>/services.yaml{}): no compose nodes",
            ctx.topology.layout.hosts,
            if ctx.topology.layout.stacks.is_some() {
                " and no stack matches layout.stacks"
            } else {
                ""
            }
        ));
    }
    let mut hosts_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &placements {
        hosts_of
            .entry(p.svc.clone())
            .or_default()
            .insert(p.host.clone());
    }
    placements
        .par_iter()
        .with_max_len(hl_engine::PAR_TASK / 4)
        .map(|p| node(ctx, &facts, p, &hosts_of))
        .collect()
}

/// A file of a release: made by realize, or an input copied byte for byte; for a plan, which
/// needs only the digest of each, a made file's digest where discovery kept it.
enum Piece {
    Made(Vec<u8>),
    Hashed([u8; 32]),
    Copied(RepoPath),
}

/// The release as it lands on the host, by path: the merged project as `compose.yaml` (JSON
/// is YAML), and every other input at its path relative to the service folder, so the
/// project's relative bind mounts resolve inside the release exactly as in the repo. With
/// `digests`, a made file may come as its digest alone.
fn release(
    node: &Node,
    ctx: &RealizeCtx<'_>,
    digests: bool,
) -> Result<BTreeMap<String, Piece>, Error> {
    let p: Params = serde_json::from_value(serde_json::Value::clone(&node.params))
        .map_err(|e| Error::Internal(format!("{}: bad params: {e}", node.address)))?;
    let mut out = BTreeMap::new();
    let dir = RepoPath::new(&p.dir).map_err(Error::Internal)?;
    let compose = RepoPath::new(&p.compose).map_err(Error::Internal)?;
    // Discovery kept the digest of a compose file's release as if alone in its folder.
    let alone = digests && p.override_file.is_none() && compose.parent() == dir;
    let kept = match alone {
        true => facts::released_project(ctx.files, &compose)?,
        false => None,
    };
    let piece = match kept {
        Some(hash) => Piece::Hashed(hash),
        None => {
            let mut project = project(ctx.files, &p)?;
            mounts::relocate(&mut project, &dir);
            Piece::Made(canonical_pretty(&project).into_bytes())
        }
    };
    out.insert("compose.yaml".into(), piece);
    for f in &node.files {
        if f.as_str() == p.compose || p.override_file.as_deref() == Some(f.as_str()) {
            continue;
        }
        let name = match f.as_str().strip_prefix(&format!("{}/", dir.as_str())) {
            Some(rel) => rel.to_string(),
            None => format!("_repo/{f}"),
        };
        if name == "service.yaml" {
            // Canonical, so a comment in the contract does not redeploy the service.
            let kept = match digests {
                true => facts::released_contract(ctx.files, f)?,
                false => None,
            };
            let piece = match kept {
                Some(hash) => Piece::Hashed(hash),
                None => Piece::Made(canonical_pretty(&yaml::one(ctx.files, f)?).into_bytes()),
            };
            out.insert("hl-service.json".into(), piece);
        } else {
            out.insert(name, Piece::Copied(f.clone()));
        }
    }
    Ok(out)
}

fn from_services_files(ctx: &Ctx, facts: &Facts) -> Result<Vec<Placement>, Error> {
    let layout = &ctx.topology.layout;
    let hosts_dir = ctx.layout_path(&layout.hosts, "hosts")?;
    let services_dir = ctx.layout_path(&layout.services, "services")?;
    let known_services = service_dirs(ctx, &services_dir)?;
    let known: HashSet<&str> = known_services.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for host_dir in ctx.list_dir(&hosts_dir)? {
        let file = host_dir.join("services.yaml").map_err(Error::Internal)?;
        if !ctx.files.is_file(&file) {
            continue;
        }
        let host = host_dir.file_name().to_string();
        if !ctx.topology.hosts.is_empty() && !ctx.topology.hosts.contains_key(&host) {
            return Err(ctx.unknown_host("the folder", &host, Origin::file(file)));
        }
        let mut seen = BTreeSet::new();
        for entry in facts.listing(&file)? {
            let facts::Listed {
                name: svc,
                exposure,
                origin,
            } = entry;
            if !seen.insert(svc.clone()) {
                // Point at the second listing: that is the one to delete.
                let origin = yaml::locate_nth(ctx.files, &file, None, &svc, 2);
                return Err(Error::repo(
                    format!("{svc} is placed twice on {host} ({origin})"),
                    Some(origin),
                    Some("list each service once per host".into()),
                ));
            }
            if !known.contains(svc.as_str()) {
                return Err(unknown_service(
                    &svc,
                    &known_services,
                    &services_dir,
                    origin,
                ));
            }
            let exposure = exposure.unwrap_or_else(|| "internal".into());
            if !EXPOSURES.contains(&exposure.as_str()) {
                return Err(Error::repo(
                    format!("unknown exposure `{exposure}` for {svc} on {host} ({origin})"),
                    Some(yaml::locate(ctx.files, &file, Some(&svc), &exposure)),
                    Some(format!("use one of: {}", EXPOSURES.join(", "))),
                ));
            }
            out.push(Placement {
                dir: services_dir.join(&svc).map_err(Error::Internal)?,
                svc,
                host: host.clone(),
                exposure,
                origin,
            });
        }
    }
    Ok(out)
}

/// The service folders' names, in order. A listing already says which entries are folders, so
/// only symlinks (and anything odd) are looked at again.
fn service_dirs(ctx: &Ctx, dir: &RepoPath) -> Result<Vec<String>, Error> {
    Ok(ctx
        .files
        .list(dir)?
        .into_iter()
        .filter(|e| !e.path.file_name().starts_with('.'))
        .filter(|e| e.kind == Kind::Dir || ctx.files.is_dir(&e.path))
        .map(|e| e.path.file_name().to_string())
        .collect())
}

fn unknown_service(svc: &str, known: &[String], dir: &RepoPath, origin: Origin) -> Error {
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(svc, k), k))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Error::repo(
        format!("unknown service `{svc}` ({origin}): there is no {dir}/{svc}/"),
        Some(origin),
        Some(match best {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => format!("create {dir}/{svc}/ with a docker-compose.yml"),
        }),
    )
}

/// Compose-per-host repos: `layout.stacks` such as `{host}/{stack}/compose.yaml`.
fn from_stacks(ctx: &Ctx) -> Result<Vec<Placement>, Error> {
    let Some(pattern) = &ctx.topology.layout.stacks else {
        return Ok(Vec::new());
    };
    let segments: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = Vec::new();
    walk_pattern(
        ctx,
        RepoPath::root(),
        &segments,
        BTreeMap::new(),
        &mut found,
    )?;
    let mut out = Vec::new();
    for (file, vars) in found {
        let (Some(host), Some(stack)) = (vars.get("host"), vars.get("stack")) else {
            return Err(Error::repo(
                format!("layout.stacks `{pattern}` must name both {{host}} and {{stack}}"),
                Some(Origin::file(ctx.topology_path.clone())),
                None,
            ));
        };
        if !ctx.topology.hosts.is_empty() && !ctx.topology.hosts.contains_key(host) {
            continue;
        }
        out.push(Placement {
            svc: stack.clone(),
            host: host.clone(),
            exposure: "internal".into(),
            dir: file.parent(),
            origin: Origin::file(file),
        });
    }
    Ok(out)
}

fn walk_pattern(
    ctx: &Ctx,
    at: RepoPath,
    segments: &[&str],
    vars: BTreeMap<String, String>,
    out: &mut Vec<(RepoPath, BTreeMap<String, String>)>,
) -> Result<(), Error> {
    let Some((seg, rest)) = segments.split_first() else {
        if ctx.files.is_file(&at) {
            out.push((at, vars));
        }
        return Ok(());
    };
    if let Some(var) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        for entry in ctx.list_dir(&at)? {
            if rest.is_empty() || ctx.files.is_dir(&entry) {
                let mut v = vars.clone();
                v.insert(var.to_string(), entry.file_name().to_string());
                walk_pattern(ctx, entry, rest, v, out)?;
            }
        }
        Ok(())
    } else {
        let next = at
            .join(seg)
            .map_err(|e| Error::repo(format!("layout.stacks: {e}"), None, None))?;
        walk_pattern(ctx, next, rest, vars, out)
    }
}

/// The first of `names` that is a file in `dir`, from one listing of the folder: every
/// service probes four names, and a stat of each (and, after the loader, of each again for
/// its observation) was a fifth of a first plan's compose loading. What the loader depends on
/// is the same: a name absent stood for the folder's entries already.
fn first_existing(ctx: &Ctx, dir: &RepoPath, names: &[&str]) -> Option<RepoPath> {
    let entries = ctx.files.list(dir).ok()?;
    names.iter().find_map(|n| {
        let e = entries.iter().find(|e| e.path.file_name() == *n)?;
        match e.kind {
            Kind::File => Some(e.path.clone()),
            // Where a link leads is asked of the link itself.
            Kind::Symlink => ctx.files.is_file(&e.path).then(|| e.path.clone()),
            Kind::Dir | Kind::Other => None,
        }
    })
}

fn node(
    ctx: &Ctx,
    facts: &Facts,
    p: &Placement,
    hosts_of: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Node, Error> {
    let addr = address("compose", &p.svc, Some(&p.host), &p.origin)?;
    let compose = first_existing(ctx, &p.dir, &COMPOSE_FILES).ok_or_else(|| {
        Error::repo(
            format!("{addr}: no compose file in {}/", p.dir),
            Some(p.origin.clone()),
            Some(format!("add {}/docker-compose.yml", p.dir)),
        )
    })?;
    let runtime = RepoPath::new(&ctx.topology.layout.hosts)
        .and_then(|h| h.join(&format!("{}/runtime/{}", p.host, p.svc)))
        .map_err(Error::Internal)?;
    let override_file = first_existing(ctx, &runtime, &OVERRIDE_FILES);

    let mut files = vec![compose.clone()];
    files.extend(override_file.clone());
    let params = Params {
        project: p.svc.clone(),
        host: p.host.clone(),
        dir: p.dir.as_str().to_string(),
        compose: compose.as_str().to_string(),
        override_file: override_file.as_ref().map(|o| o.as_str().to_string()),
    };
    // Each file is checked for secrets as written, then the parts naming repo files merged.
    let base = facts.project(&compose)?;
    let over = match &override_file {
        Some(o) => Some(facts.project(o)?),
        None => None,
    };
    let merged = merged(base, over.as_ref());
    files.extend(mounts::inputs(ctx, facts, &merged, &p.dir, &compose)?);

    let contract_path = p.dir.join("service.yaml").map_err(Error::Internal)?;
    let mut edges = Vec::new();
    if ctx.files.is_file(&contract_path) {
        let contract = facts.contract(&contract_path)?;
        files.push(contract_path.clone());
        edges.extend(dependency_edges(ctx, p, &contract, hosts_of)?);
        check_requires(ctx, facts, p, &contract, &contract_path)?;
    }
    for extra in ["env.example", "healthcheck.sh"] {
        let f = p.dir.join(extra).map_err(Error::Internal)?;
        if ctx.files.is_file(&f) {
            files.push(f);
        }
    }
    let machine = RepoPath::new(&ctx.topology.layout.hosts)
        .and_then(|h| h.join(&format!("{}/machine.yaml", p.host)))
        .map_err(Error::Internal)?;
    if facts.is_file(&machine) {
        edges.push(Edge {
            to: address("vm", &p.host, None, &p.origin)?,
            kind: EdgeKind::Placement,
            origin: Some(p.origin.clone()),
        });
    }
    let runtime_root = ctx
        .topology
        .hosts
        .get(&p.host)
        .map_or("/opt/homelab".to_string(), |h| h.runtime_root.clone());
    let mut params = serde_json::to_value(json!({
        "project": params.project,
        "host": params.host,
        "dir": params.dir,
        "compose": params.compose,
        "exposure": p.exposure,
        "runtime_root": runtime_root,
    }))
    .map_err(|e| Error::Internal(e.to_string()))?;
    if let (Some(o), Value::Object(m)) = (&override_file, &mut params) {
        m.insert("override".into(), Value::String(o.as_str().to_string()));
    }
    Ok(Node {
        address: addr,
        layer: Layer::L4,
        params: params.into(),
        files,
        edges,
        labels: ctx.host_labels(&p.host),
        origin: p.origin.clone(),
    })
}

fn dependency_edges(
    ctx: &Ctx,
    p: &Placement,
    contract: &Contract,
    hosts_of: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<Edge>, Error> {
    let mut edges = Vec::new();
    for (dep, origin) in &contract.dependencies {
        let targets: Vec<String> = match hosts_of.get(dep) {
            Some(hosts) if hosts.contains(&p.host) => vec![p.host.clone()],
            Some(hosts) => hosts.iter().cloned().collect(),
            None => {
                let dir = p.dir.parent().join(dep).map_err(Error::Internal)?;
                if ctx.files.is_dir(&dir) {
                    return Err(Error::repo(
                        format!("{} depends on {dep}, which no host runs ({origin})", p.svc),
                        Some(origin.clone()),
                        Some(format!("place {dep} in hosts/<HOST>/services.yaml")),
                    ));
                }
                // Unknown: the graph reports it with a did-you-mean over every address.
                vec![p.host.clone()]
            }
        };
        for host in targets {
            edges.push(Edge {
                to: address("compose", dep, Some(&host), origin)?,
                kind: EdgeKind::Order,
                origin: Some(origin.clone()),
            });
        }
    }
    Ok(edges)
}

/// Refuses a service placed on a host that lacks what its contract `requires` (a GPU, an arch).
fn check_requires(
    ctx: &Ctx,
    facts: &Facts,
    p: &Placement,
    contract: &Contract,
    path: &RepoPath,
) -> Result<(), Error> {
    let Some(req) = &contract.requires else {
        return Ok(());
    };
    let caps_path = RepoPath::new(&ctx.topology.layout.hosts)
        .and_then(|h| h.join(&format!("{}/capabilities.yaml", p.host)))
        .map_err(Error::Internal)?;
    let caps = if facts.is_file(&caps_path) {
        facts.capabilities(&caps_path)?
    } else {
        facts::Capabilities {
            gpu: false,
            arch: None,
        }
    };
    if req.gpu && !caps.gpu {
        return Err(Error::repo(
            format!(
                "{} requires a GPU but {} has none ({caps_path})",
                p.svc, p.host
            ),
            Some(yaml::locate(ctx.files, path, Some("requires"), "gpu")),
            Some("place it on a host whose capabilities.yaml lists a gpu".into()),
        ));
    }
    if let (Some(want), Some(have)) = (&req.arch, &caps.arch) {
        if want != have {
            return Err(Error::repo(
                format!(
                    "{} requires arch {want} but {} is {have} ({caps_path})",
                    p.svc, p.host
                ),
                Some(yaml::locate(ctx.files, path, Some("requires"), "arch")),
                None,
            ));
        }
    }
    Ok(())
}
