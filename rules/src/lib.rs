//! hl-rules: the homelab. Loading the repo (inventory, hosts, services, cluster) into nodes, and
//! one module per node kind implementing [`hl_engine::Rule`]:
//!
//! | kind | layer | module | nodes |
//! | --- | --- | --- | --- |
//! | `check` | L0 | [`check`] | one per requirement of the other nodes (tools, env, credentials, hosts) |
//! | `image` | L1 | [`image`] | one per recipe in `inventory/images/` |
//! | `vm` | L2 | [`vm`] | one per `hosts/<NODE>/machine.yaml` |
//! | `talos` | L3 | [`talos`] | one per node of `talconfig.yaml` |
//! | `k8s` | L4 | [`k8s`] | one per Flux Kustomization, or per app folder |
//! | `compose` | L4 | [`compose`] | one per service placed on a host |
//!
//! ```no_run
//! let files = hl_engine::FileSet::new(std::path::Path::new(".")).unwrap();
//! let lab = hl_rules::load(&files, &[]).unwrap();
//! println!("{} nodes", lab.nodes.len());
//! ```

pub mod check;
pub mod compose;
pub mod hosts;
pub mod image;
pub mod inventory;
pub mod k8s;
pub mod secrets;
pub mod talos;
pub mod vm;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hl_engine::{Address, Error, FileSet, Node, Origin, Registry, RepoPath};

pub use inventory::{Host, Layout, Topology};

/// The files that mark a repo root, in the order they are looked for.
pub const ROOT_MARKERS: [&str; 2] = ["inventory/topology.yaml", "hl.yaml"];

/// Finds the homelab root: `start` or its nearest ancestor holding a root marker.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| ROOT_MARKERS.iter().any(|m| d.join(m).is_file()))
        .map(Path::to_path_buf)
}

/// Every rule, by kind.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.add(Box::new(check::CheckRule));
    r.add(Box::new(image::ImageRule));
    r.add(Box::new(vm::VmRule));
    r.add(Box::new(talos::TalosRule));
    r.add(Box::new(k8s::K8sRule));
    r.add(Box::new(compose::ComposeRule));
    r
}

/// What loaders share while discovering nodes.
pub struct Ctx<'a> {
    /// The repo's files.
    pub files: &'a FileSet,
    /// The inventory.
    pub topology: &'a Topology,
    /// Where the inventory was read from.
    pub topology_path: RepoPath,
    notes: Mutex<Vec<String>>,
}

impl<'a> Ctx<'a> {
    /// A context over a parsed inventory (tests build one directly).
    pub fn new(files: &'a FileSet, topology: &'a Topology, topology_path: RepoPath) -> Ctx<'a> {
        Ctx {
            files,
            topology,
            topology_path,
            notes: Mutex::default(),
        }
    }

    /// Records something the user should know that is not an error (a missing layer).
    pub fn note(&self, msg: impl Into<String>) {
        self.notes
            .lock()
            .expect("no panics hold this lock")
            .push(msg.into());
    }

    /// A layout path as a checked repo path.
    pub fn layout_path(&self, configured: &str, key: &str) -> Result<RepoPath, Error> {
        RepoPath::new(configured).map_err(|e| {
            Error::repo(
                format!("layout.{key} in {}: {e}", self.topology_path),
                Some(yaml::locate(
                    self.files,
                    &self.topology_path,
                    Some("layout"),
                    configured,
                )),
                Some("layout paths are relative to the repo root".into()),
            )
        })
    }

    /// Selection labels of a node placed on `host`: the host's name and `@tag` per tag.
    pub fn host_labels(&self, host: &str) -> BTreeSet<String> {
        let mut labels = BTreeSet::from([host.to_string()]);
        if let Some(h) = self.topology.hosts.get(host) {
            labels.extend(h.tags.iter().map(|t| format!("@{t}")));
        }
        labels
    }

    /// An unknown-host error for a reference written at `origin`, with a did-you-mean.
    pub fn unknown_host(&self, what: &str, name: &str, origin: Origin) -> Error {
        let best = self
            .topology
            .hosts
            .keys()
            .map(|h| (strsim::jaro_winkler(name, h), h))
            .filter(|(s, _)| *s > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Error::repo(
            format!("{what} names unknown host `{name}` ({origin})"),
            Some(origin),
            Some(match best {
                Some((_, h)) => format!(
                    "did you mean `{h}`? hosts are listed in {}",
                    self.topology_path
                ),
                None => format!("add it to the nodes of {}", self.topology_path),
            }),
        )
    }

    /// Lists the visible entries of a folder, sorted, as repo paths; an absent folder is empty.
    pub fn list_dir(&self, dir: &RepoPath) -> Result<Vec<RepoPath>, Error> {
        Ok(self
            .files
            .list(dir)?
            .into_iter()
            .filter(|e| !e.path.file_name().starts_with('.'))
            .map(|e| e.path)
            .collect())
    }
}

/// A loaded homelab: its inventory, every node, and notes on what is absent.
pub struct Homelab {
    /// The inventory.
    pub topology: Topology,
    /// Where it was read from.
    pub topology_path: RepoPath,
    /// Every node of every layer, checks included.
    pub nodes: Vec<Node>,
    /// Things the user should know (a layer that is absent, hosts without inventory entries).
    pub notes: Vec<String>,
    /// For each removed node, the checks deleting it needs.
    pub removed_needs: BTreeMap<Address, Vec<Address>>,
}

/// Loads the homelab at the root of `files`: the inventory, then every kind's nodes, then the
/// L0 checks their changes would need. `removed` are nodes recorded in the state but gone from
/// the repo: deleting them needs a runway too (the host reachable, docker on it), so their
/// checks are derived as well and returned in [`Homelab::removed_needs`].
pub fn load(files: &FileSet, removed: &[Node]) -> Result<Homelab, Error> {
    finish(files, discover(files)?, removed)
}

/// What the loaders found: the expensive part of loading, which reads the repo's config files
/// and walks its trees. A function of the files alone, so it can be cached against what
/// [`FileSet::observations`] says the loaders saw.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Discovered {
    /// The inventory.
    pub topology: Topology,
    /// Where it was read from.
    pub topology_path: RepoPath,
    /// The nodes of every kind but checks.
    pub nodes: Vec<Node>,
    /// Notes on what is absent.
    pub notes: Vec<String>,
}

/// Reads the inventory and runs every kind's loader.
pub fn discover(files: &FileSet) -> Result<Discovered, Error> {
    let (topology, topology_path) = inventory(files)?;
    let mut nodes = Vec::new();
    let mut notes = Vec::new();
    for kind in KINDS {
        let (n, t) = discover_kind(files, &topology, &topology_path, kind)?;
        nodes.extend(n);
        notes.extend(t);
    }
    Ok(Discovered {
        topology,
        topology_path,
        nodes,
        notes,
    })
}

/// The kinds whose nodes loaders discover, in the order they are loaded (checks are derived).
pub const KINDS: [&str; 5] = ["image", "vm", "talos", "k8s", "compose"];

/// Every derivation the loaders read files through, so that a loader's cutoffs can be checked
/// without running it (see [`hl_engine::Rederive`]).
pub fn derivations() -> Vec<&'static dyn hl_engine::Rederive> {
    k8s::facts::DERIVATIONS
        .iter()
        .chain(compose::facts::DERIVATIONS.iter())
        .copied()
        .collect()
}

/// Finds and reads the inventory.
pub fn inventory(files: &FileSet) -> Result<(Topology, RepoPath), Error> {
    hl_engine::Stats::bump(&files.stats.loaders_run);
    let topology_path = ROOT_MARKERS
        .iter()
        .map(|m| RepoPath::new(m).expect("markers are valid paths"))
        .find(|p| files.is_file(p))
        .ok_or_else(|| {
            Error::repo(
                format!("{} is not a homelab repo: no inventory/topology.yaml or hl.yaml", files.root().display()),
                None,
                Some("run hl inside a homelab repo, or pass -C DIR (docs/layout.md says what goes where)".into()),
            )
        })?;
    let raw = yaml::one(files, &topology_path)?;
    let topology = Topology::from_raw(raw).map_err(|e| {
        Error::repo(
            format!("invalid {topology_path}: {e}"),
            Some(Origin::file(topology_path.clone())),
            Some("see docs/layout.md for the inventory's keys".into()),
        )
    })?;
    Ok((topology, topology_path))
}

/// Runs one kind's loader: its nodes and its notes. Each kind reads only through `files`, so
/// what it depended on can be watched, and its result cached, on its own.
pub fn discover_kind(
    files: &FileSet,
    topology: &Topology,
    topology_path: &RepoPath,
    kind: &str,
) -> Result<(Vec<Node>, Vec<String>), Error> {
    hl_engine::Stats::bump(&files.stats.loaders_run);
    let ctx = Ctx::new(files, topology, topology_path.clone());
    let nodes = match kind {
        "image" => image::discover(&ctx)?,
        "vm" => vm::discover(&ctx)?,
        "talos" => talos::discover(&ctx)?,
        "k8s" => k8s::discover(&ctx)?,
        "compose" => compose::discover(&ctx)?,
        other => return Err(Error::Internal(format!("no loader for kind `{other}`"))),
    };
    Ok((
        nodes,
        ctx.notes.into_inner().expect("no panics hold this lock"),
    ))
}

/// Adds the L0 checks the nodes (and the deletions of `removed`, nodes recorded but gone from
/// the repo) need. Cheap: it reads no file.
pub fn finish(files: &FileSet, d: Discovered, removed: &[Node]) -> Result<Homelab, Error> {
    let Discovered {
        topology,
        topology_path,
        mut nodes,
        notes,
    } = d;
    let ctx = Ctx::new(files, &topology, topology_path.clone());
    let registry = registry();
    let mut checks = check::derive(&ctx, &registry, &mut nodes)?;
    let mut ghosts: Vec<Node> = removed
        .iter()
        .filter(|n| registry.rule(n.address.kind()).is_ok())
        .cloned()
        .collect();
    let known: BTreeSet<Address> = checks.iter().map(|c| c.address.clone()).collect();
    checks.extend(
        check::derive(&ctx, &registry, &mut ghosts)?
            .into_iter()
            .filter(|c| !known.contains(&c.address)),
    );
    let removed_needs = ghosts
        .into_iter()
        .map(|g| (g.address, g.edges.into_iter().map(|e| e.to).collect()))
        .collect();
    nodes.extend(checks);
    Ok(Homelab {
        topology,
        topology_path,
        nodes,
        notes,
        removed_needs,
    })
}

/// The address of a node kind and name, for loaders (names come from files, so they are checked).
pub fn address(
    kind: &str,
    name: &str,
    host: Option<&str>,
    origin: &Origin,
) -> Result<Address, Error> {
    Address::new(kind, name, host)
        .map_err(|e| Error::repo(format!("{e} ({origin})"), Some(origin.clone()), None))
}
