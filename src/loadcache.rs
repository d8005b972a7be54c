//! The load cache: `.hl/loadcache`, what the loaders found last time and every path whose
//! state they depended on (files read, paths probed, folders listed or walked, the .gitignore
//! files that shaped the walks), kept per unit: the inventory, then each kind's loader. A unit
//! whose paths are all as they were is not loaded again, so a no-op plan of a large homelab
//! stats files and parses none (as ninja does with its manifest), and an edited Talos patch
//! re-runs the Talos loader alone. The cache is tied to the hl binary that wrote it, since the
//! loaders are code.
//!
//! MessagePack (a third smaller and faster to read than JSON). Each unit's observations and
//! nodes are blobs of their own: they are decoded in parallel, the nodes while the paths are
//! statted, and a unit that did not change is written back as the bytes it was read as.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{Error, Fact, Facts, FileSet, Node, RepoPath, Seen};
use hl_rules::{Discovered, Topology};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 4;

#[derive(Serialize, Deserialize)]
struct Unit {
    /// MessagePack of what the unit's loader saw: `Vec<(RepoPath, Seen)>`.
    #[serde(with = "serde_bytes")]
    seen: Vec<u8>,
    /// MessagePack of [`Body`].
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    nodes: Vec<Node>,
    notes: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct LoadCache {
    format: u32,
    build: String,
    inventory: Vec<(RepoPath, Seen)>,
    topology: Topology,
    topology_path: RepoPath,
    kinds: BTreeMap<String, Unit>,
}

/// This binary's identity: its version and the size and mtime of its executable.
fn build_id() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok());
    let stamp = exe
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            format!("{}:{}", m.len(), t.map_or(0, |d| d.as_nanos()))
        })
        .unwrap_or_default();
    format!("{}:{stamp}", env!("CARGO_PKG_VERSION"))
}

/// What a run learnt that the next one can reuse: files to write under `.hl/`.
#[derive(Default)]
pub struct Learnt {
    /// The new load cache, when any unit was loaded again.
    pub loadcache: Option<Vec<u8>>,
    /// The facts of each kind whose loader ran (`.hl/facts/<kind>`).
    pub facts: Vec<(String, Vec<u8>)>,
}

/// The facts file of a kind.
pub fn facts_path(hl_dir: &Path, kind: &str) -> std::path::PathBuf {
    hl_dir.join("facts").join(kind)
}

/// The facts a kind's loader derived last time; none when absent or from another build.
fn old_facts(hl_dir: &Path, kind: &str, build: &str) -> Facts {
    let Ok(bytes) = std::fs::read(facts_path(hl_dir, kind)) else {
        return Facts::new();
    };
    match postcard::from_bytes::<(u32, String, Vec<(String, RepoPath, Fact)>)>(&bytes) {
        Ok((FORMAT, b, list)) if b == build => {
            list.into_iter().map(|(t, p, f)| ((t, p), f)).collect()
        }
        _ => Facts::new(),
    }
}

fn encode_facts(facts: Facts, build: &str) -> Option<Vec<u8>> {
    let mut list: Vec<(String, RepoPath, Fact)> =
        facts.into_iter().map(|((t, p), f)| (t, p, f)).collect();
    list.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    postcard::to_allocvec(&(FORMAT, build, list)).ok()
}

/// What the loaders find, each unit from the cache when nothing it depended on moved. A unit
/// loaded again reuses the facts its loader derived from each unchanged file last time (see
/// [`FileSet::derive`]), so only changed files are read and parsed.
pub fn discover(files: &FileSet, hl_dir: &Path) -> Result<(Discovered, Learnt), Error> {
    let path = hl_dir.join("loadcache");
    let mut learnt = Learnt::default();
    let build = build_id();
    let old = crate::session::phase("loadcache-read", || {
        std::fs::read(path)
            .ok()
            .and_then(|b| rmp_serde::from_slice::<LoadCache>(&b).ok())
            .filter(|c| c.format == FORMAT && c.build == build)
    });
    let mut fresh = false;
    // Every loader reads the inventory (the layout above all): when it moved, all reload.
    let (mut old_kinds, inventory, topology, topology_path) = match old {
        Some(c) if files.still(&c.inventory) => {
            (c.kinds, Some(c.inventory), c.topology, c.topology_path)
        }
        _ => {
            fresh = true;
            files.watch();
            let (topology, topology_path) = hl_rules::inventory(files)?;
            (
                BTreeMap::new(),
                files.observations(),
                topology,
                topology_path,
            )
        }
    };
    // Which units still hold, and their nodes decoded, side by side.
    let (still, mut bodies): (BTreeMap<String, bool>, BTreeMap<String, Body>) = rayon::join(
        || {
            old_kinds
                .par_iter()
                .map(|(k, u)| {
                    let seen: Option<Vec<(RepoPath, Seen)>> = rmp_serde::from_slice(&u.seen).ok();
                    (k.clone(), seen.is_some_and(|s| files.still(&s)))
                })
                .collect()
        },
        || {
            old_kinds
                .par_iter()
                .filter_map(|(k, u)| Some((k.clone(), rmp_serde::from_slice(&u.body).ok()?)))
                .collect()
        },
    );
    let mut kinds = BTreeMap::new();
    let mut trusted = inventory.is_some();
    let mut discovered = Discovered {
        topology: topology.clone(),
        topology_path: topology_path.clone(),
        nodes: Vec::new(),
        notes: Vec::new(),
    };
    // Units in load order, not the map's: the nodes' order must not depend on the cache.
    for kind in hl_rules::KINDS {
        let old = old_kinds.remove(kind);
        let body = bodies.remove(kind);
        let (unit, body) = match (old, body) {
            (Some(u), Some(b)) if still.get(kind) == Some(&true) => (u, b),
            _ => {
                fresh = true;
                files.remember(old_facts(hl_dir, kind, &build));
                files.watch();
                let (nodes, notes) =
                    hl_rules::discover_kind(files, &topology, &topology_path, kind)?;
                let seen = files.observations();
                trusted &= seen.is_some();
                if let Some(bytes) = seen
                    .as_ref()
                    .and_then(|_| encode_facts(files.take_facts(), &build))
                {
                    learnt.facts.push((kind.to_string(), bytes));
                }
                let body = Body { nodes, notes };
                let unit = Unit {
                    seen: rmp_serde::to_vec(&seen.unwrap_or_default())
                        .map_err(|e| Error::Internal(format!("encoding the load cache: {e}")))?,
                    body: rmp_serde::to_vec_named(&body)
                        .map_err(|e| Error::Internal(format!("encoding the load cache: {e}")))?,
                };
                (unit, body)
            }
        };
        discovered.nodes.extend(body.nodes);
        discovered.notes.extend(body.notes);
        kinds.insert(kind.to_string(), unit);
    }
    learnt.loadcache = (fresh && trusted)
        .then(|| {
            rmp_serde::to_vec_named(&LoadCache {
                format: FORMAT,
                build,
                inventory: inventory.unwrap_or_default(),
                topology,
                topology_path,
                kinds,
            })
            .ok()
        })
        .flatten();
    if learnt.loadcache.is_none() {
        learnt.facts.clear();
    }
    Ok((discovered, learnt))
}
