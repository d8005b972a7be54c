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
//! MessagePack (a third smaller and faster to read than JSON). Each unit's observations,
//! cutoffs and nodes are parts of their own at offsets after a header ([`Header`]): the plan
//! memo's check reads the observations alone, a cutoff is looked up entry by entry, discovery
//! decodes the parts in parallel (the nodes while the paths are statted), and a unit that did
//! not change is written back as the bytes it was read as.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{Cutoff, Error, Fact, Facts, FileSet, Node, Observations, RepoPath, Seen};
use hl_rules::{Discovered, Topology};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 8;

struct Unit {
    /// MessagePack of what the unit's loader saw: `Vec<(RepoPath, Seen)>`.
    seen: Vec<u8>,
    /// The cutoffs of what it saw, as a [`cutoff_table`]: read only when something moved, and
    /// then only the moved paths' entries.
    cutoffs: Vec<u8>,
    /// MessagePack of what it found: [`Body`] for a kind, `(Topology, RepoPath)` for the
    /// inventory.
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    nodes: Vec<Node>,
    notes: Vec<String>,
}

/// The load cache in memory, as discovery reads and writes it.
struct LoadCache {
    build: String,
    /// Which journal records belong to this file (see [`hl_engine::journal`]).
    generation: u64,
    inventory: Unit,
    kinds: BTreeMap<String, Unit>,
}

/// On disk, each unit's parts lie apart after a header, so that a look at what the loaders
/// saw reads what they saw alone (a third of the file on a large homelab) and a cutoff
/// lookup reads its entry alone: the format and the header's length (little-endian u32s),
/// the [`Header`] in MessagePack, then the parts.
#[derive(Serialize, Deserialize)]
struct Header {
    build: String,
    generation: u64,
    /// Each unit (the inventory is `""`, first) and where its seen, cutoffs and body parts
    /// lie, as (offset after the header, length).
    units: Vec<(String, [(u64, u64); 3])>,
}

impl LoadCache {
    fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let units: Vec<(&str, &Unit)> = std::iter::once(("", &self.inventory))
            .chain(self.kinds.iter().map(|(k, u)| (k.as_str(), u)))
            .collect();
        let mut at = 0u64;
        let mut place = |len: usize| {
            let r = (at, len as u64);
            at += len as u64;
            r
        };
        let header = Header {
            build: self.build.clone(),
            generation: self.generation,
            units: units
                .iter()
                .map(|(k, u)| {
                    let parts = [
                        place(u.seen.len()),
                        place(u.cutoffs.len()),
                        place(u.body.len()),
                    ];
                    (k.to_string(), parts)
                })
                .collect(),
        };
        let head = encode(&header)?;
        let mut out = Vec::with_capacity(8 + head.len() + at as usize);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        for (_, u) in units {
            out.extend_from_slice(&u.seen);
            out.extend_from_slice(&u.cutoffs);
            out.extend_from_slice(&u.body);
        }
        Ok(out)
    }
}

/// The load cache file, open: its header read, its parts read when asked.
struct Disk {
    file: std::fs::File,
    /// Where the parts start.
    start: u64,
    header: Header,
}

impl Disk {
    /// Opens the load cache at `path`; `None` when absent, unreadable or of another build.
    fn open(path: &Path) -> Option<Disk> {
        use std::io::Read;
        let mut file = std::fs::File::open(path).ok()?;
        let mut head = [0u8; 8];
        file.read_exact(&mut head).ok()?;
        if head[..4] != FORMAT.to_le_bytes() {
            return None;
        }
        let len = u32::from_le_bytes(head[4..].try_into().ok()?) as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes).ok()?;
        let header: Header = rmp_serde::from_slice(&bytes).ok()?;
        (header.build == build_id()).then_some(Disk {
            file,
            start: 8 + len as u64,
            header,
        })
    }

    /// `len` bytes at `at` in a part that starts at `part`.
    fn read(&self, part: u64, at: u64, len: usize) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut out = vec![0u8; len];
        self.file
            .read_exact_at(&mut out, self.start + part + at)
            .ok()?;
        Some(out)
    }

    /// A whole part.
    fn part(&self, (at, len): (u64, u64)) -> Option<Vec<u8>> {
        self.read(at, 0, usize::try_from(len).ok()?)
    }

    /// Everything, in memory.
    fn load(&self) -> Option<LoadCache> {
        let units = self
            .header
            .units
            .par_iter()
            .map(|(k, [seen, cutoffs, body])| {
                Some((
                    k.clone(),
                    Unit {
                        seen: self.part(*seen)?,
                        cutoffs: self.part(*cutoffs)?,
                        body: self.part(*body)?,
                    },
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        let mut kinds: BTreeMap<String, Unit> = units.into_iter().collect();
        Some(LoadCache {
            build: self.header.build.clone(),
            generation: self.header.generation,
            inventory: kinds.remove("")?,
            kinds,
        })
    }
}

/// Where a unit's cutoff table is: in memory, or in the load cache file.
enum Table<'a> {
    Mem(&'a [u8]),
    Disk(&'a Disk, (u64, u64)),
}

impl Table<'_> {
    fn get(&self, at: usize, len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self {
            Table::Mem(b) => b.get(at..at + len).map(std::borrow::Cow::Borrowed),
            Table::Disk(d, (part, size)) => {
                if (at + len) as u64 > *size {
                    return None;
                }
                d.read(*part, at as u64, len).map(std::borrow::Cow::Owned)
            }
        }
    }
}

/// What a loader saw: each path as it was.
type Saw = Vec<(RepoPath, Seen)>;

/// Whether what a unit's loader saw still holds.
enum Check {
    /// Every path is as it was (as the journal recorded it: then what it saw, updated).
    Same(Option<Vec<(RepoPath, Seen)>>),
    /// Some moved, but each by its cutoff gives the loader what it gave: what it saw, and the
    /// paths that moved as they are now (with their places in it).
    Held(Vec<(RepoPath, Seen)>, Vec<(usize, Seen)>),
    /// The loader runs again.
    Moved,
}

/// Checks a unit (what it saw, its cutoffs) against the files, after the journal's updates of
/// what it saw.
fn check(
    files: &FileSet,
    seen: &[u8],
    cutoffs: Table,
    journal: Option<&Vec<(RepoPath, Seen)>>,
) -> Check {
    let Ok(mut seen) = rmp_serde::from_slice::<Vec<(RepoPath, Seen)>>(seen) else {
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
    match files.cut_off(
        &seen,
        &moved,
        |p| cutoff_in(&cutoffs, p),
        &hl_rules::derivations(),
    ) {
        Some(now) => Check::Held(seen, now),
        None => Check::Moved,
    }
}

/// What a unit that held although it moved records: what it saw, as it is now, and the
/// paths that moved, for the journal.
fn held_now(mut seen: Vec<(RepoPath, Seen)>, now: Vec<(usize, Seen)>) -> (Saw, Saw) {
    let mut changed = Vec::with_capacity(now.len());
    for (i, s) in now {
        seen[i].1 = s;
        changed.push(seen[i].clone());
    }
    (seen, changed)
}

/// Cutoffs sorted by path, encoded so that one is found without decoding the rest (a unit
/// holds tens of thousands on a large homelab, and an edit needs one): the count, the offset
/// of each entry and of the end (little-endian u32s), then each entry in postcard.
fn cutoff_table(cutoffs: &[(RepoPath, Cutoff)]) -> Result<Vec<u8>, Error> {
    let entries: Vec<Vec<u8>> = cutoffs
        .iter()
        .map(postcard::to_allocvec)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Internal(format!("encoding the load cache: {e}")))?;
    let head = 4 * (entries.len() + 2);
    let mut out = Vec::with_capacity(head + entries.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut at = head;
    for e in entries.iter().map(Vec::len).chain([0]) {
        out.extend_from_slice(&(at as u32).to_le_bytes());
        at += e;
    }
    for e in &entries {
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The cutoff of `p` in a [`cutoff_table`].
fn cutoff_in(table: &Table, p: &RepoPath) -> Option<Cutoff> {
    let word = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(table.get(4 * i, 4)?.as_ref().try_into().ok()?) as usize)
    };
    let entry = |i: usize| -> Option<(RepoPath, Cutoff)> {
        let (start, end) = (word(i + 1)?, word(i + 2)?);
        postcard::from_bytes(&table.get(start, end.checked_sub(start)?)?).ok()
    };
    let (mut lo, mut hi) = (0, word(0)?);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (q, cut) = entry(mid)?;
        match q.cmp(p) {
            std::cmp::Ordering::Equal => return Some(cut),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    None
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

/// The unit of what a loader saw and found, its parts encoded side by side (the k8s loader's
/// are tens of MB, encoded at the end of its run while the other loaders are done).
fn unit<T: Serialize + Sync>(seen: &Observations, body: &T) -> Result<Unit, Error> {
    let ((seen_part, cutoffs), body) = rayon::join(
        || rayon::join(|| encode(&seen.seen), || cutoff_table(&seen.cutoffs)),
        || encode(body),
    );
    Ok(Unit {
        seen: seen_part?,
        cutoffs: cutoffs?,
        body: body?,
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
        return Facts::default();
    };
    match postcard::from_bytes::<(u32, String, Vec<(String, RepoPath, Fact)>)>(&bytes) {
        Ok((FORMAT, b, list)) if b == build => {
            list.into_iter().map(|(t, p, f)| ((t, p), f)).collect()
        }
        _ => Facts::default(),
    }
}

fn encode_facts(facts: Facts, build: &str) -> Option<Vec<u8>> {
    let mut list: Vec<(String, RepoPath, Fact)> =
        facts.into_iter().map(|((t, p), f)| (t, p, f)).collect();
    list.par_sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    postcard::to_allocvec(&(FORMAT, build, list)).ok()
}

/// The load cache as read from `.hl/` (with its journal), once per run: the plan memo's check
/// and discovery share it.
pub struct Previous {
    cache: Option<Disk>,
    journal: Journal,
    /// The journal ended in a torn record: write the cache whole.
    torn: bool,
}

/// Reads `.hl/loadcache` and its journal; nothing when absent, unreadable or of another build.
pub fn previous(hl_dir: &Path) -> Previous {
    crate::session::phase("loadcache-read", || {
        let cache = Disk::open(&hl_dir.join("loadcache"));
        let (journal, torn) =
            read_journal(hl_dir, cache.as_ref().map_or(0, |c| c.header.generation));
        Previous {
            cache,
            journal,
            torn,
        }
    })
}

/// When every unit of the load cache holds without its loader running (each path as it was,
/// or passing its cutoff): the cache's generation, and the journal record of what held
/// although it moved (for [`journal_path`], `None` when nothing did). `None` when a loader
/// must run, or when the cache is due to be written whole.
pub fn holds(files: &FileSet, previous: &Previous) -> Option<(u64, Option<Vec<u8>>)> {
    let c = previous.cache.as_ref()?;
    let journalled: usize = previous.journal.values().map(Vec::len).sum();
    if previous.torn || journalled > JOURNAL_BOUND {
        return None;
    }
    let check_unit = |(name, [seen, cutoffs, _]): &(String, [(u64, u64); 3])| {
        let seen = c.part(*seen)?;
        match check(
            files,
            &seen,
            Table::Disk(c, *cutoffs),
            previous.journal.get(name),
        ) {
            Check::Same(_) => Some(None),
            Check::Held(seen, now) => Some(Some((name.clone(), held_now(seen, now).1))),
            Check::Moved => None,
        }
    };
    let units: Vec<Option<Option<(String, Saw)>>> =
        c.header.units.par_iter().map(check_unit).collect();
    let mut held = Journal::new();
    for unit in units {
        held.extend(unit?);
    }
    let record = if held.is_empty() {
        None
    } else {
        Some(encode(&held).ok()?)
    };
    Some((c.header.generation, record))
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
    let old = old.and_then(|d| d.load());
    let generation = old.as_ref().map_or(0, |c| c.generation);
    let journalled: usize = journal.values().map(Vec::len).sum();
    // What held although it moved, by unit: the journal record of this run.
    let mut held = Journal::new();
    let mut whole = journalled > JOURNAL_BOUND || torn;
    // Every loader reads the inventory (the layout above all): when it moved, all reload.
    let inventory_held = old.and_then(|mut c| {
        let topology = rmp_serde::from_slice::<(Topology, RepoPath)>(&c.inventory.body).ok()?;
        match check(
            files,
            &c.inventory.seen,
            Table::Mem(&c.inventory.cutoffs),
            journal.get(""),
        ) {
            Check::Same(None) => {}
            Check::Same(Some(now)) => c.inventory.seen = encode(&now).ok()?,
            Check::Held(seen, now) => {
                let (now, changed) = held_now(seen, now);
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
                .map(|(k, u)| {
                    let check = check(files, &u.seen, Table::Mem(&u.cutoffs), journal.get(k));
                    (k.clone(), check)
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
    journal.clear();
    // Which units hold, and which loaders run again.
    let mut units: Vec<(&str, Option<(Unit, Body)>)> = Vec::new();
    for kind in hl_rules::KINDS {
        let old = old_kinds.remove(kind);
        let body = bodies.remove(kind);
        let held_unit = match (old, body, checks.remove(kind)) {
            (Some(u), Some(b), Some(Check::Same(None))) => Some((u, b)),
            (Some(mut u), Some(b), Some(Check::Same(Some(now)))) => {
                u.seen = encode(&now)?;
                Some((u, b))
            }
            (Some(mut u), Some(b), Some(Check::Held(seen, now))) => {
                let (now, changed) = held_now(seen, now);
                u.seen = encode(&now)?;
                held.insert(kind.to_string(), changed);
                Some((u, b))
            }
            _ => None,
        };
        units.push((kind, held_unit));
    }
    // The loaders that run, side by side, each on a view of the files of its own (what one
    // depends on is its unit's alone): one loader's sequential steps (a tree walked, a Flux
    // graph resolved) then overlap another's parallel parsing.
    let to_run: Vec<&str> = units
        .iter()
        .filter(|(_, u)| u.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !to_run.is_empty() {
        whole = true;
        crate::memory::churn_ahead();
    }
    // No stat cache yet (a first plan): the files the nodes read are hashed ahead, where a
    // thread is idle (see `FileSet::hash_ahead`); otherwise the stat cache spares most reads.
    let ahead = !hl_dir.join("statcache").exists();
    let mut ran: BTreeMap<&str, Result<Ran, Error>> = to_run
        .par_iter()
        .map(|kind| {
            let ran = load(
                files,
                hl_dir,
                &build,
                (&topology, &topology_path),
                kind,
                ahead,
            );
            (*kind, ran)
        })
        .collect();
    // Units in load order, not the map's: the nodes' order must not depend on the cache.
    let mut discovered = Discovered {
        topology: topology.clone(),
        topology_path: topology_path.clone(),
        nodes: Vec::new(),
        notes: Vec::new(),
    };
    let mut kinds = BTreeMap::new();
    for (kind, held_unit) in units {
        let (unit, body) = match held_unit {
            Some(u) => u,
            None => {
                let ran = ran.remove(kind).expect("every loader that runs is run")?;
                trusted &= ran.trusted;
                if let Some(bytes) = ran.facts {
                    learnt.facts.push((kind.to_string(), bytes));
                }
                (ran.unit, ran.body)
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
        learnt.loadcache = LoadCache {
            build,
            generation,
            inventory,
            kinds,
        }
        .to_bytes()
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

/// A loader run again: its unit, its nodes, its facts to keep (encoded), and whether what it
/// saw can be trusted for the next run.
struct Ran {
    unit: Unit,
    body: Body,
    facts: Option<Vec<u8>>,
    trusted: bool,
}

/// Runs the loader of `kind` on a view of `files` of its own, watched from the start; with
/// `ahead`, then hashes its nodes' files ahead of evaluation.
fn load(
    files: &FileSet,
    hl_dir: &Path,
    build: &str,
    (topology, topology_path): (&Topology, &RepoPath),
    kind: &str,
    ahead: bool,
) -> Result<Ran, Error> {
    let files = files.view();
    files.remember(old_facts(hl_dir, kind, build));
    files.watch();
    let started = std::time::Instant::now();
    let (nodes, notes) = hl_rules::discover_kind(&files, topology, topology_path, kind)?;
    tracing::info!(
        kind,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "loader ran"
    );
    let seen = files.observations();
    let trusted = seen.is_some();
    let facts = trusted.then(|| files.take_facts());
    let body = Body { nodes, notes };
    // What is left is independent work: the last loader to finish does it with the other
    // threads idle, so it is done side by side.
    let ((facts, unit), ()) = rayon::join(
        || {
            rayon::join(
                || facts.and_then(|f| encode_facts(f, build)),
                || unit(&seen.unwrap_or_default(), &body),
            )
        },
        || {
            if ahead {
                let mut inputs: Vec<RepoPath> =
                    body.nodes.iter().flat_map(|n| n.files.clone()).collect();
                inputs.par_sort_unstable();
                inputs.dedup();
                files.hash_ahead(&inputs);
            }
        },
    );
    let unit = unit?;
    Ok(Ran {
        unit,
        body,
        facts,
        trusted,
    })
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
        let cache = read(&hl);
        (dir, hl, cache)
    }

    fn read(hl: &Path) -> LoadCache {
        Disk::open(&hl.join("loadcache"))
            .and_then(|d| d.load())
            .expect("reads back")
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

    /// A cutoff table finds each entry, first and last included, and nothing else.
    #[test]
    fn a_cutoff_is_found_alone_in_its_table() {
        let cutoffs: Vec<(RepoPath, Cutoff)> = (0..50)
            .map(|i| {
                let p = RepoPath::new(&format!("d/{i:03}.yaml")).expect("a path");
                let cut = if i % 2 == 0 {
                    Cutoff::Listing([i as u8; 32])
                } else {
                    Cutoff::Derived(vec![("t".into(), [i as u8; 32])])
                };
                (p, cut)
            })
            .collect();
        let table = cutoff_table(&cutoffs).expect("encodes");
        for (p, cut) in &cutoffs {
            assert_eq!(cutoff_in(&Table::Mem(&table), p).as_ref(), Some(cut), "{p}");
        }
        for absent in ["a", "d/000", "d/049.yaml.bak", "e/000.yaml"] {
            let p = RepoPath::new(absent).expect("a path");
            assert_eq!(cutoff_in(&Table::Mem(&table), &p), None, "{absent}");
        }
        let empty = cutoff_table(&[]).expect("encodes");
        let p = RepoPath::new("a").expect("a path");
        assert_eq!(cutoff_in(&Table::Mem(&empty), &p), None);
        assert_eq!(
            cutoff_in(&Table::Mem(&table[..10]), &cutoffs[25].0),
            None,
            "a torn table"
        );
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
        std::fs::write(hl.join("loadcache"), &whole).expect("write");
        let next = read(&hl);
        assert_ne!(next.generation, cache.generation);
        assert_eq!(learnt.generation, Some(next.generation));
    }
}
