//! The load cache: `.hl/loadcache`, what the loaders found last time and every path whose
//! state they depended on (files read, paths probed, folders listed or walked, the .gitignore
//! files that shaped the walks), kept per unit: the inventory, then each kind's loader. A unit
//! whose paths are all as they were is not loaded again, so a no-op plan of a large homelab
//! stats files and parses none (as ninja does with its manifest), and an edited Talos patch
//! re-runs the Talos loader alone. A unit whose moved paths all pass their cutoffs (a manifest
//! edit that changes none of the facts the k8s loader derives from it, a file renamed over
//! another in a folder whose entries stay the same) is not loaded again either: see
//! [`hl_engine::Cutoff`]. The cache is tied to the hl binary that wrote it, since the loaders
//! are code.
//!
//! MessagePack (a third smaller and faster to read than JSON). Each unit's observations and
//! nodes are blobs of their own: they are decoded in parallel, the nodes while the paths are
//! statted, and a unit that did not change is written back as the bytes it was read as.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{Cutoff, Error, Fact, Facts, FileSet, Node, Observations, RepoPath, Seen};
use hl_rules::{Discovered, Topology};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 6;

#[derive(Serialize, Deserialize)]
struct Unit {
    /// MessagePack of what the unit's loader saw: `Vec<(RepoPath, Seen)>`.
    #[serde(with = "serde_bytes")]
    seen: Vec<u8>,
    /// MessagePack of the cutoffs of what it saw: `Vec<(RepoPath, Cutoff)>`, read only when
    /// something moved.
    #[serde(with = "serde_bytes")]
    cutoffs: Vec<u8>,
    /// MessagePack of what it found: [`Body`] for a kind, `(Topology, RepoPath)` for the
    /// inventory.
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
    /// Which journal records belong to this file (see [`hl_engine::journal`]).
    generation: u64,
    inventory: Unit,
    kinds: BTreeMap<String, Unit>,
}

/// Whether what a unit's loader saw still holds.
enum Check {
    /// Every path is as it was (as the journal recorded it: then what it saw, updated).
    Same(Option<Vec<(RepoPath, Seen)>>),
    /// Some moved, but each by its cutoff gives the loader what it gave: what it saw, as it is
    /// now, and the paths that moved.
    Held(Vec<(RepoPath, Seen)>, Vec<(RepoPath, Seen)>),
    /// The loader runs again.
    Moved,
}

/// Checks a unit against the files, after the journal's updates of what it saw.
fn check(files: &FileSet, u: &Unit, journal: Option<&Vec<(RepoPath, Seen)>>) -> Check {
    let Ok(mut seen) = rmp_serde::from_slice::<Vec<(RepoPath, Seen)>>(&u.seen) else {
        return Check::Moved;
    };
    let patched = journal.is_some_and(|j| !j.is_empty());
    for (p, s) in journal.into_iter().flatten() {
        match seen.binary_search_by(|(q, _)| q.cmp(p)) {
            Ok(i) => seen[i].1 = s.clone(),
            Err(_) => return Check::Moved,
        }
    }
    let moved = files.moved(&seen);
    if moved.is_empty() {
        return Check::Same(patched.then_some(seen));
    }
    let Ok(cutoffs) = rmp_serde::from_slice::<Vec<(RepoPath, Cutoff)>>(&u.cutoffs) else {
        return Check::Moved;
    };
    match files.cut_off(&seen, &moved, &cutoffs, &hl_rules::derivations()) {
        Some(now) => {
            let changed = moved.iter().map(|&i| now[i].clone()).collect();
            Check::Held(now, changed)
        }
        None => Check::Moved,
    }
}

/// The journal's updates of what units saw, by unit (the inventory is `""`), in order.
type Journal = BTreeMap<String, Vec<(RepoPath, Seen)>>;

fn read_journal(hl_dir: &Path, generation: u64) -> (Journal, bool) {
    let mut out = Journal::new();
    if generation == 0 {
        return (out, false);
    }
    let records = hl_engine::journal::read(&journal_path(hl_dir), generation);
    let mut torn = records.torn;
    for rec in records.payloads {
        let Ok(units) = rmp_serde::from_slice::<Journal>(&rec) else {
            torn = true;
            break;
        };
        for (unit, seen) in units {
            out.entry(unit).or_default().extend(seen);
        }
    }
    (out, torn)
}

/// The load cache's journal.
pub fn journal_path(hl_dir: &Path) -> std::path::PathBuf {
    hl_dir.join("loadcache.log")
}

/// Journal entries past which the load cache is written whole again.
const JOURNAL_BOUND: usize = 4096;

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(value)
        .map_err(|e| Error::Internal(format!("encoding the load cache: {e}")))
}

/// The unit of what a loader saw and found.
fn unit<T: Serialize>(seen: &Observations, body: &T) -> Result<Unit, Error> {
    Ok(Unit {
        seen: encode(&seen.seen)?,
        cutoffs: encode(&seen.cutoffs)?,
        body: encode(body)?,
    })
}

/// This binary's identity: its version and the size and mtime of its executable.
pub fn build_id() -> String {
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
    /// Else, a record for its journal (generation, payload): what still held although it
    /// moved.
    pub journal: Option<(u64, Vec<u8>)>,
    /// The generation of the load cache holding this run's nodes once saved; `None` when
    /// none will (what the loaders saw could not be trusted).
    pub generation: Option<u64>,
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

/// The load cache as read from `.hl/` (with its journal), once per run: the plan memo's check
/// and discovery share it.
pub struct Previous {
    cache: Option<LoadCache>,
    journal: Journal,
    /// The journal ended in a torn record: write the cache whole.
    torn: bool,
}

/// Reads `.hl/loadcache` and its journal; nothing when absent, unreadable or of another build.
pub fn previous(hl_dir: &Path) -> Previous {
    crate::session::phase("loadcache-read", || {
        let cache = std::fs::read(hl_dir.join("loadcache"))
            .ok()
            .and_then(|b| rmp_serde::from_slice::<LoadCache>(&b).ok())
            .filter(|c| c.format == FORMAT && c.build == build_id());
        let (journal, torn) = read_journal(hl_dir, cache.as_ref().map_or(0, |c| c.generation));
        Previous {
            cache,
            journal,
            torn,
        }
    })
}

/// The generation of the load cache when every unit of it holds as it is, none moved: the
/// nodes it holds are the ones the loaders would find. Reads and checks nothing else.
pub fn unchanged(files: &FileSet, previous: &Previous) -> Option<u64> {
    let c = previous.cache.as_ref()?;
    let journal = &previous.journal;
    let same = |name: &str, u: &Unit| matches!(check(files, u, journal.get(name)), Check::Same(_));
    (same("", &c.inventory) && c.kinds.par_iter().all(|(k, u)| same(k, u))).then_some(c.generation)
}

/// What the loaders find, each unit from the cache when nothing it depended on moved (or what
/// moved passes its cutoff: see [`hl_engine::Cutoff`]). A unit loaded again reuses the facts its
/// loader derived from each unchanged file last time (see [`FileSet::derive`]), so only changed
/// files are read and parsed. `previous` is the load cache when already read this run.
pub fn discover(
    files: &FileSet,
    hl_dir: &Path,
    previous: Option<Previous>,
) -> Result<(Discovered, Learnt), Error> {
    let mut learnt = Learnt::default();
    let build = build_id();
    let Previous {
        cache: old,
        mut journal,
        torn,
    } = previous.unwrap_or_else(|| self::previous(hl_dir));
    let generation = old.as_ref().map_or(0, |c| c.generation);
    let journalled: usize = journal.values().map(Vec::len).sum();
    // What held although it moved, by unit: the journal record of this run.
    let mut held = Journal::new();
    let mut whole = journalled > JOURNAL_BOUND || torn;
    // Every loader reads the inventory (the layout above all): when it moved, all reload.
    let inventory_held = old.and_then(|mut c| {
        let topology = rmp_serde::from_slice::<(Topology, RepoPath)>(&c.inventory.body).ok()?;
        match check(files, &c.inventory, journal.get("")) {
            Check::Same(None) => {}
            Check::Same(Some(now)) => c.inventory.seen = encode(&now).ok()?,
            Check::Held(now, changed) => {
                c.inventory.seen = encode(&now).ok()?;
                held.insert(String::new(), changed);
            }
            Check::Moved => return None,
        }
        Some((c, topology))
    });
    let (mut old_kinds, inventory, (topology, topology_path), mut trusted) = match inventory_held {
        Some((c, topology)) => (c.kinds, c.inventory, topology, true),
        None => {
            whole = true;
            files.watch();
            let topology = hl_rules::inventory(files)?;
            let seen = files.observations();
            let inventory = unit(&seen.clone().unwrap_or_default(), &topology)?;
            (BTreeMap::new(), inventory, topology, seen.is_some())
        }
    };
    // Which units still hold, and their nodes decoded, side by side.
    let (mut checks, mut bodies): (BTreeMap<String, Check>, BTreeMap<String, Body>) = rayon::join(
        || {
            old_kinds
                .par_iter()
                .map(|(k, u)| (k.clone(), check(files, u, journal.get(k))))
                .collect()
        },
        || {
            old_kinds
                .par_iter()
                .filter_map(|(k, u)| Some((k.clone(), rmp_serde::from_slice(&u.body).ok()?)))
                .collect()
        },
    );
    journal.clear();
    let mut kinds = BTreeMap::new();
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
        let (unit, body) = match (old, body, checks.remove(kind)) {
            (Some(u), Some(b), Some(Check::Same(None))) => (u, b),
            (Some(mut u), Some(b), Some(Check::Same(Some(now)))) => {
                u.seen = encode(&now)?;
                (u, b)
            }
            (Some(mut u), Some(b), Some(Check::Held(now, changed))) => {
                u.seen = encode(&now)?;
                held.insert(kind.to_string(), changed);
                (u, b)
            }
            _ => {
                whole = true;
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
                let unit = unit(&seen.unwrap_or_default(), &body)?;
                (unit, body)
            }
        };
        discovered.nodes.extend(body.nodes);
        discovered.notes.extend(body.notes);
        kinds.insert(kind.to_string(), unit);
    }
    if !trusted {
        learnt.facts.clear();
        return Ok((discovered, learnt));
    }
    if whole {
        let generation = hl_engine::journal::generation();
        learnt.loadcache = encode(&LoadCache {
            format: FORMAT,
            build,
            generation,
            inventory,
            kinds,
        })
        .ok();
        learnt.generation = learnt.loadcache.is_some().then_some(generation);
    } else {
        if !held.is_empty() {
            learnt.journal = Some((generation, encode(&held)?));
        }
        learnt.generation = Some(generation);
    }
    if learnt.loadcache.is_none() {
        learnt.facts.clear();
    }
    Ok((discovered, learnt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repo of an `hl.yaml` alone, loaded once: its `.hl/` and the load cache written.
    fn loaded() -> (tempfile::TempDir, std::path::PathBuf, LoadCache) {
        let dir = tempfile::tempdir().expect("temp dir");
        let hl = dir.path().join(".hl");
        std::fs::create_dir_all(&hl).expect(".hl");
        std::fs::write(dir.path().join("hl.yaml"), "environment: test\n").expect("hl.yaml");
        hl_engine::time::settle(&dir.path().join("hl.yaml"));
        let files = FileSet::new(dir.path()).expect("files");
        let (_, learnt) = discover(&files, &hl, None).expect("loads");
        let bytes = learnt.loadcache.expect("a first load is written whole");
        std::fs::write(hl.join("loadcache"), &bytes).expect("write");
        let cache = rmp_serde::from_slice(&bytes).expect("decodes");
        (dir, hl, cache)
    }

    /// Appends a journal record repeating the inventory's first observation `n` times.
    fn journal(hl: &Path, cache: &LoadCache, n: usize) {
        let seen: Vec<(RepoPath, Seen)> =
            rmp_serde::from_slice(&cache.inventory.seen).expect("seen");
        let mut record = Journal::new();
        record.insert(String::new(), vec![seen[0].clone(); n]);
        hl_engine::journal::append(
            &journal_path(hl),
            cache.generation,
            &encode(&record).expect("encodes"),
        )
        .expect("appends");
    }

    /// Below its bound the journal is read and left as it is; past it, the load cache is
    /// written whole again (and the journal then dropped on save).
    #[test]
    fn a_long_journal_is_folded_into_the_cache() {
        let (dir, hl, cache) = loaded();
        journal(&hl, &cache, 10);
        let (_, learnt) =
            discover(&FileSet::new(dir.path()).expect("files"), &hl, None).expect("loads");
        assert!(learnt.loadcache.is_none() && learnt.journal.is_none());
        assert_eq!(learnt.generation, Some(cache.generation));

        journal(&hl, &cache, JOURNAL_BOUND);
        let (_, learnt) =
            discover(&FileSet::new(dir.path()).expect("files"), &hl, None).expect("loads");
        let whole = learnt.loadcache.expect("written whole past the bound");
        let next: LoadCache = rmp_serde::from_slice(&whole).expect("decodes");
        assert_ne!(next.generation, cache.generation);
        assert_eq!(learnt.generation, Some(next.generation));
    }
}
