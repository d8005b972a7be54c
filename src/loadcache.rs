//! The load cache: `.hl/loadcache`, what the loaders found last time and every path whose
//! state they depended on (files read, paths probed, folders listed or walked, the .gitignore
//! files that shaped the walks), kept per unit: the inventory, then each kind's loader. A unit
//! whose paths are all as they were is not loaded again, so a no-op plan of a large homelab
//! stats files and parses none (as ninja does with its manifest), and an edited Talos patch
//! re-runs the Talos loader alone. The cache is tied to the hl binary that wrote it, since the
//! loaders are code.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{Error, FileSet, Node, RepoPath, Seen};
use hl_rules::{Discovered, Topology};
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Unit {
    seen: Vec<(RepoPath, Seen)>,
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

/// What the loaders find, each unit from the cache when nothing it depended on moved. Returns
/// the bytes of a new cache to save when any unit was loaded again.
pub fn discover(files: &FileSet, path: &Path) -> Result<(Discovered, Option<Vec<u8>>), Error> {
    let build = build_id();
    let old = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LoadCache>(&b).ok())
        .filter(|c| c.format == FORMAT && c.build == build);
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
    let mut kinds = BTreeMap::new();
    let mut trusted = inventory.is_some();
    for kind in hl_rules::KINDS {
        let unit = match old_kinds.remove(kind) {
            Some(u) if files.still(&u.seen) => u,
            _ => {
                fresh = true;
                files.watch();
                let (nodes, notes) =
                    hl_rules::discover_kind(files, &topology, &topology_path, kind)?;
                let seen = files.observations();
                trusted &= seen.is_some();
                Unit {
                    seen: seen.unwrap_or_default(),
                    nodes,
                    notes,
                }
            }
        };
        kinds.insert(kind.to_string(), unit);
    }
    // Units in load order, not the map's: the nodes' order must not depend on the cache.
    let discovered = Discovered {
        topology: topology.clone(),
        topology_path: topology_path.clone(),
        nodes: hl_rules::KINDS
            .iter()
            .flat_map(|k| kinds[*k].nodes.iter().cloned())
            .collect(),
        notes: hl_rules::KINDS
            .iter()
            .flat_map(|k| kinds[*k].notes.iter().cloned())
            .collect(),
    };
    let bytes = (fresh && trusted)
        .then(|| {
            serde_json::to_vec(&LoadCache {
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
    Ok((discovered, bytes))
}
