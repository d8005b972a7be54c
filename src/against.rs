//! `hl plan --against BASE [--head REV]`: the desired state of two revisions compared, for CI.
//! Files of a revision are read from git's objects; nothing under `.hl/` is read or written and
//! no host is reached. The plan is the ordinary plan data, computed against the base as if it
//! were the recorded state.

use std::collections::HashSet;
use std::sync::Arc;

use hl_engine::compare::{self, Side};
use hl_engine::files::{GitRepo, GitTree};
use hl_engine::{plan, Caches, Dependence, Error, FileSet, Graph, Plan, StatsSnapshot};
use hl_rules::Homelab;

use crate::session::{cache_dir, Options};

/// A comparison of two revisions.
pub struct Comparison {
    /// The plan: what merging HEAD into BASE changes.
    pub plan: Plan,
    /// The head side's homelab.
    pub head_lab: Homelab,
    /// The head side's graph.
    pub head_graph: Graph,
    /// The head side's files.
    pub head_files: Arc<FileSet>,
    /// The base side's files.
    pub base_files: FileSet,
    /// The base revision: as named, and its commit.
    pub base: (String, String),
    /// The head revision: as named (`work tree` when none), and its commit when it is one.
    pub head: (String, Option<String>),
    /// Whether the work tree, used as HEAD, has uncommitted changes.
    pub dirty: bool,
    /// The work done on both sides.
    pub stats: StatsSnapshot,
}

/// Loads both revisions and plans the difference.
pub fn compare(
    opts: &Options,
    base_rev: &str,
    head_rev: Option<&str>,
) -> Result<Comparison, Error> {
    let root = crate::session::find(opts)?;
    crate::session::set_root(&root);
    let repo = GitRepo::discover(&root)?;
    let base_sha = repo.resolve(base_rev)?;
    let head_sha = head_rev.map(|r| repo.resolve(r)).transpose()?;
    let dirty = head_sha.is_none() && repo.dirty()?;
    let changed = repo.changed(&base_sha, head_sha.as_deref())?;

    let base_tree = GitTree::load(&repo, &base_sha, base_rev, &root)?;
    let head_files = match (&head_sha, head_rev) {
        (Some(sha), Some(label)) => {
            FileSet::from_source(Box::new(GitTree::load(&repo, sha, label, &root)?))
        }
        _ => FileSet::new(&root)?,
    };
    let ids = base_tree.unchanged_blobs(&changed)?;
    let changed_here = base_tree.below_root(&changed)?;
    let head_files = Arc::new(head_files.with_identities(ids.clone()));
    let base_files = FileSet::from_source(Box::new(base_tree.over(head_files.clone(), &changed)?))
        .with_identities(ids);
    let base_label = base_files.label();
    let head_label = head_files.label();

    let head_units = load_units(&head_files).map_err(|e| e.on_side(&head_label))?;
    let base_found = base_units(&head_units, &head_files, &base_files, &changed_here)
        .map_err(|e| e.on_side(&base_label))?;
    let mut head_lab = hl_rules::finish(&head_files, discovered(head_units), &[])
        .map_err(|e| e.on_side(&head_label))?;
    let mut base_lab =
        hl_rules::finish(&base_files, base_found, &[]).map_err(|e| e.on_side(&base_label))?;
    let head_graph =
        Graph::build(std::mem::take(&mut head_lab.nodes)).map_err(|e| e.on_side(&head_label))?;
    let base_graph =
        Graph::build(std::mem::take(&mut base_lab.nodes)).map_err(|e| e.on_side(&base_label))?;
    let registry = hl_rules::registry();
    let caches = Caches::open(&cache_dir(opts))?;
    let (head_eval, base_eval) = compare::evaluate_pair(
        &Side {
            graph: &head_graph,
            files: &head_files,
        },
        &Side {
            graph: &base_graph,
            files: &base_files,
        },
        &registry,
        &caches,
    )?;
    let state = compare::state_of(&base_graph, &base_eval, &registry)?;
    drop(base_eval);
    let mut removed_needs = std::mem::take(&mut base_lab.removed_needs);
    // Checks a deleted node would need are those it needed on the base side.
    for n in base_graph.nodes() {
        if !head_graph.contains(&n.address) {
            let checks = base_graph
                .deps(&n.address)
                .into_iter()
                .filter(|(a, _)| a.kind() == "check")
                .map(|(a, _)| a.clone())
                .collect();
            removed_needs.insert(n.address.clone(), checks);
        }
    }
    // The base side is the state now: what it was made of goes before the plan is made.
    drop((base_graph, base_lab));
    let plan = plan::compute(&head_graph, &registry, &head_eval, &state, &removed_needs)?;
    let (h, b) = (head_files.stats.snapshot(), base_files.stats.snapshot());
    let stats = StatsSnapshot {
        files_statted: h.files_statted + b.files_statted,
        files_hashed: h.files_hashed + b.files_hashed,
        files_read: h.files_read + b.files_read,
        blobs_read: h.blobs_read + b.blobs_read,
        nodes_realized: h.nodes_realized + b.nodes_realized,
        loaders_run: h.loaders_run + b.loaders_run,
    };
    Ok(Comparison {
        plan,
        head_lab,
        head_graph,
        head_files,
        base_files,
        base: (base_rev.to_string(), base_sha),
        head: (head_rev.unwrap_or("work tree").to_string(), head_sha),
        dirty,
        stats,
    })
}

/// What one loader found, and what it depended on (`None`: its view was not recorded).
struct Unit {
    nodes: Vec<hl_engine::Node>,
    notes: Vec<String>,
    deps: Option<Vec<(hl_engine::RepoPath, Dependence)>>,
}

/// What the loaders found in one revision, unit by unit: the inventory, then each kind.
struct Units {
    topology: hl_rules::Topology,
    topology_path: hl_engine::RepoPath,
    inventory: Option<Vec<(hl_engine::RepoPath, Dependence)>>,
    kinds: Vec<(&'static str, Unit)>,
}

/// Runs every loader on `files`, recording what each depended on.
fn load_units(files: &FileSet) -> Result<Units, Error> {
    files.watch_dependencies();
    let (topology, topology_path) = hl_rules::inventory(files)?;
    let inventory = files.dependencies();
    let mut kinds = Vec::new();
    for kind in hl_rules::KINDS {
        files.watch_dependencies();
        let (nodes, notes) = hl_rules::discover_kind(files, &topology, &topology_path, kind)?;
        let deps = files.dependencies();
        kinds.push((kind, Unit { nodes, notes, deps }));
    }
    Ok(Units {
        topology,
        topology_path,
        inventory,
        kinds,
    })
}

fn discovered(units: Units) -> hl_rules::Discovered {
    let mut d = hl_rules::Discovered {
        topology: units.topology,
        topology_path: units.topology_path,
        nodes: Vec::new(),
        notes: Vec::new(),
    };
    for (_, u) in units.kinds {
        d.nodes.extend(u.nodes);
        d.notes.extend(u.notes);
    }
    d
}

/// What the loaders find in the base revision: each head unit whose view holds in the base
/// too (what the diff touched gives the loader the same: see [`FileSet::holds_in`]) is taken
/// as it is, and only the others are loaded from the base. A pull request that edits one
/// manifest loads one side of a large homelab, not two.
fn base_units(
    head: &Units,
    head_files: &FileSet,
    base_files: &FileSet,
    changed: &HashSet<String>,
) -> Result<hl_rules::Discovered, Error> {
    let derivations = hl_rules::derivations();
    let same = |p: &hl_engine::RepoPath| !changed.contains(p.as_str());
    let holds = |deps: &Option<Vec<(hl_engine::RepoPath, Dependence)>>| {
        deps.as_ref()
            .is_some_and(|d| head_files.holds_in(base_files, d, same, &derivations))
    };
    let inventory_held = holds(&head.inventory);
    let (topology, topology_path) = if inventory_held {
        (head.topology.clone(), head.topology_path.clone())
    } else {
        hl_rules::inventory(base_files)?
    };
    let mut d = hl_rules::Discovered {
        topology,
        topology_path,
        nodes: Vec::new(),
        notes: Vec::new(),
    };
    for (kind, u) in &head.kinds {
        let (nodes, notes) = if inventory_held && holds(&u.deps) {
            (u.nodes.clone(), u.notes.clone())
        } else {
            hl_rules::discover_kind(base_files, &d.topology, &d.topology_path, kind)?
        };
        d.nodes.extend(nodes);
        d.notes.extend(notes);
    }
    Ok(d)
}
