//! The repo's files for one run, from a [`Source`]: the work tree, or a git revision read from
//! git's objects. Each file is hashed at most once per run, and what is read after it was
//! hashed is checked against its digest; loaders, the hasher and realize all go through here,
//! so a plan of a revision never touches the work tree.

mod cutoff;
mod facts;
mod git;
mod walk;
mod worktree;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::digest::{Content, Digest};
use crate::error::Error;
pub use crate::repopath::RepoPath;
use crate::statcache::{StatCache, StatKey, StatUpdate};

pub use cutoff::{Cutoff, Dependence, Derivation, Observations, Rederive};
pub use facts::{Fact, Facts};
pub use git::{GitRepo, GitTree};
pub use worktree::Worktree;

/// What a path is, without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (a socket, a git submodule).
    Other,
}

/// One entry of a listing or a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its repo path.
    pub path: RepoPath,
    /// What it is (a symlink is reported as such, not followed).
    pub kind: Kind,
}

/// What [`Source::walk_listing`] calls with each folder it read and all the folder's entries
/// (names and kinds, sorted by name).
pub type OnListed<'a> = &'a mut dyn FnMut(&RepoPath, &[(String, Kind)]);

/// Where a run's files come from.
pub trait Source: Send + Sync + fmt::Debug {
    /// What to call this source in messages ("the work tree", "origin/main").
    fn label(&self) -> String;
    /// The folder it stands for on disk (for messages; a revision has none of its own).
    fn root(&self) -> &Path;
    /// What `p` is, without following a final symlink; `None` when absent.
    fn kind(&self, p: &RepoPath) -> Option<Kind>;
    /// What `p` leads to through symlinks; `None` when absent or dangling.
    fn target_kind(&self, p: &RepoPath) -> Option<Kind>;
    /// Refuses a path that resolves, through symlinks, to somewhere outside the repo.
    fn check_inside(&self, p: &RepoPath) -> Result<(), Error>;
    /// The entries of a folder, sorted by name (hidden ones included).
    fn list(&self, dir: &RepoPath) -> Result<Vec<Entry>, Error>;
    /// The digest of a folder's entries, names and kinds, as [`Source::list`] gives them
    /// (`None` where it fails); a source may make it without the entries' paths.
    fn listing_digest(&self, dir: &RepoPath) -> Option<[u8; 32]> {
        Some(cutoff::entries_digest(&self.list(dir).ok()?))
    }
    /// Every entry below `dir`, sorted, not following symlinks, skipping what `.gitignore`
    /// ignores, and skipping hidden names unless `hidden`.
    fn walk(&self, dir: &RepoPath, hidden: bool) -> Result<Vec<Entry>, Error>;
    /// [`Source::walk`], calling `before` with each folder right before it is listed and
    /// `listed` with the folder and all its entries right after (hidden and ignored ones too,
    /// sorted by name), so that a caller can keep each folder's listing without listing it
    /// again. A source with no listing of its own to give (a git revision) only walks.
    fn walk_listing(
        &self,
        dir: &RepoPath,
        hidden: bool,
        _before: &mut dyn FnMut(&RepoPath),
        _listed: OnListed<'_>,
    ) -> Result<Vec<Entry>, Error> {
        self.walk(dir, hidden)
    }
    /// The bytes of a file, following symlinks inside the repo, and whether they were read
    /// from git's objects (counted as blob reads).
    fn read(&self, p: &RepoPath) -> Result<(Vec<u8>, bool), Error>;
    /// The bytes of `p` and the stat key of the file they were read from (taken before the
    /// read), when `p` is not a symlink; `Ok(None)` when it is one, or when this source has
    /// no such read (then [`Source::kind`] and [`Source::read`] are asked instead). One open
    /// file answers what a stat of the path and a read would: on a first plan of a large
    /// homelab that is a stat fewer for each of tens of thousands of files.
    fn read_plain(&self, _p: &RepoPath) -> Result<Option<(Vec<u8>, StatKey)>, Error> {
        Ok(None)
    }
    /// The stat-cache key of a file, for sources that can change between runs (the work tree);
    /// `None` where there is no such thing (a git revision never changes).
    fn stat_key(&self, p: &RepoPath) -> Result<Option<StatKey>, Error>;

    /// What `p` is now, for telling later whether a loader's view of it still holds; `None`
    /// for sources whose loads are not cached.
    fn seen(&self, _p: &RepoPath) -> Option<Seen> {
        None
    }
}

/// What a loader saw of a path: its kind (not following a symlink) and its metadata (following
/// it). A file edited, a folder whose entries changed (its mtime moves), a path that appeared
/// or vanished: each shows as a different `Seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// 0 absent, 1 file, 2 folder, 3 symlink, 4 other.
    pub kind: u8,
    /// Metadata, through symlinks; none for a file or folder whose kind alone was asked about.
    pub key: Option<StatKey>,
}

impl Seen {
    /// The kind, not following a symlink; `None` when absent.
    pub fn kind(&self) -> Option<Kind> {
        match self.kind {
            0 => None,
            1 => Some(Kind::File),
            2 => Some(Kind::Dir),
            3 => Some(Kind::Symlink),
            _ => Some(Kind::Other),
        }
    }
}

/// What a walk of `dir` depends on: every folder it went through (their mtimes move when
/// entries come and go) and the .gitignore files that shaped it, in those folders and above.
fn walk_dependencies(dir: &RepoPath, entries: &[Entry]) -> Vec<RepoPath> {
    let mut out = Vec::new();
    let dirs = entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.path.clone())
        .chain(std::iter::once(dir.clone()));
    for d in dirs {
        if let Ok(g) = d.join(".gitignore") {
            out.push(g);
        }
        out.push(d);
    }
    // Above the walk only the .gitignore files matter, not what else the folders hold.
    let mut up = dir.clone();
    while !up.as_str().is_empty() {
        up = up.parent();
        if let Ok(g) = up.join(".gitignore") {
            out.push(g);
        }
    }
    out
}

/// How much of a path a loader depended on (ordered: deeper is greater).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Depth {
    /// Its kind: file, folder, symlink, absent.
    Kind,
    /// What derivations made of its bytes (see [`cutoff`]).
    Derived,
    /// Its content or entries too.
    Content,
}

/// One watched path: how deeply it was depended on, and the facts derived from it.
#[derive(Debug, Clone)]
struct Watch {
    depth: Depth,
    /// (derivation tag, digest of its facts), while only derivations read the file.
    derived: Vec<(&'static str, [u8; 32])>,
}

/// Counts of the work a run did, for `--stats` and for tests that assert a no-op does nothing.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files whose metadata was read.
    pub files_statted: AtomicU64,
    /// Files whose content was hashed.
    pub files_hashed: AtomicU64,
    /// Files whose content was read from the work tree or from git (by loaders, hashing or
    /// realize).
    pub files_read: AtomicU64,
    /// Git blobs read (a subset of `files_read`).
    pub blobs_read: AtomicU64,
    /// Nodes realized (action-cache misses).
    pub nodes_realized: AtomicU64,
    /// Loaders run (units of the load cache that did not hold).
    pub loaders_run: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot as plain numbers.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            files_statted: self.files_statted.load(Ordering::Relaxed),
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            files_read: self.files_read.load(Ordering::Relaxed),
            blobs_read: self.blobs_read.load(Ordering::Relaxed),
            nodes_realized: self.nodes_realized.load(Ordering::Relaxed),
            loaders_run: self.loaders_run.load(Ordering::Relaxed),
        }
    }
}

/// [`Stats`] as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Files whose metadata was read.
    pub files_statted: u64,
    /// Files whose content was hashed.
    pub files_hashed: u64,
    /// Files whose content was read.
    pub files_read: u64,
    /// Git blobs read.
    pub blobs_read: u64,
    /// Nodes realized.
    pub nodes_realized: u64,
    /// Loaders run: the inventory and each kind whose load cache did not hold.
    pub loaders_run: u64,
}

/// The repo's files for one run: each read at most once, each hashed at most once.
///
/// A [`FileSet::view`] shares all of that with the set it was made from, but records its own
/// dependencies and facts, so that loaders can run side by side, each watched alone.
#[derive(Debug)]
pub struct FileSet {
    run: Arc<Run>,
    /// While loaders run: every path whose state they depended on, and how deeply.
    watched: Mutex<Option<FxHashMap<RepoPath, Watch>>>,
    /// Facts derived from single files, from earlier runs and this one.
    facts: Mutex<facts::Memory>,
    /// Whether the watch is for the load cache (facts and walks remembered), not only for
    /// [`FileSet::dependencies`].
    remembering: std::sync::atomic::AtomicBool,
    /// What this run did (every view of it counted together).
    pub stats: Arc<Stats>,
}

impl Run {
    /// Makes room for `n` more paths in the maps a read or stat adds to: a walk announces the
    /// files its caller is about to read, and maps grown path by path were rehashed again and
    /// again under their locks while other threads waited.
    fn expect(&self, n: usize) {
        let lock = "no panics hold this lock";
        self.statted.lock().expect(lock).reserve(n);
        self.loaded.lock().expect(lock).reserve(n);
        self.counted.lock().expect(lock).reserve(n);
    }
}

/// What every view of a run's files shares.
#[derive(Debug)]
struct Run {
    source: Box<dyn Source>,
    /// Paths read from the source at least once (for the `files_read` count).
    counted: Mutex<rustc_hash::FxHashSet<RepoPath>>,
    /// Filled once by [`FileSet::hash_all`], then read by every node's evaluation in parallel.
    digests: std::sync::RwLock<FxHashMap<RepoPath, Digest<Content>>>,
    /// Paths whose content is known to be the git blob with this id: their digest is derived
    /// from the id, without reading or hashing the file.
    identities: HashMap<RepoPath, String>,
    /// When this run started (ns since the epoch, by the file systems' clock: see
    /// [`crate::time::fs_now_ns`]), to tell racy observations.
    started: i128,
    /// Paths already statted this run (by [`FileSet::still`], derivations and observations), so
    /// a path is statted once whether the load cache holds, a loader runs again, or hashing
    /// them again.
    statted: Mutex<FxHashMap<RepoPath, Seen>>,
    /// Folders listed while a loader's view was kept: the stat made before each listing, and
    /// the listing's digest.
    listed: Mutex<FxHashMap<RepoPath, (Seen, [u8; 32])>>,
    /// Facts of kept derivations made this run (see [`FileSet::derived`]).
    kept: Mutex<facts::Kept>,
    /// The content digest of each file read from the work tree this run, made while its bytes
    /// were at hand, with its stat key from before the read: hashing a file the loaders read
    /// (most of them, on a first plan) then does not read it again, as long as its stat key is
    /// still that one.
    loaded: Mutex<FxHashMap<RepoPath, (StatKey, Digest<Content>)>>,
}

impl FileSet {
    /// The files of the work tree at `root`.
    pub fn new(root: &Path) -> Result<FileSet, Error> {
        Ok(FileSet::from_source(Box::new(Worktree::new(root)?)))
    }

    /// The files of any source.
    pub fn from_source(source: Box<dyn Source>) -> FileSet {
        FileSet {
            run: Arc::new(Run {
                source,
                counted: Mutex::default(),
                digests: Default::default(),
                loaded: Mutex::default(),
                identities: HashMap::new(),
                statted: Mutex::default(),
                listed: Mutex::default(),
                kept: Mutex::default(),
                started: crate::time::fs_now_ns(),
            }),
            watched: Mutex::new(None),
            facts: Mutex::default(),
            remembering: Default::default(),
            stats: Arc::default(),
        }
    }

    /// Another view of the same run's files: what was read, statted, listed and hashed is
    /// shared, and counted together, but the view watches (and remembers facts) alone. Each
    /// loader of a run gets one, so that loaders can run side by side.
    pub fn view(&self) -> FileSet {
        FileSet {
            run: self.run.clone(),
            watched: Mutex::new(None),
            facts: Mutex::default(),
            remembering: Default::default(),
            stats: self.stats.clone(),
        }
    }

    /// Starts recording every path that reads, probes, listings and walks depend on.
    pub fn watch(&self) {
        *self.watched.lock().expect("no panics hold this lock") = Some(Default::default());
        self.remembering.store(true, Ordering::Relaxed);
    }

    /// Starts recording every path loads depend on, as [`FileSet::watch`], but for
    /// [`FileSet::dependencies`] alone: no stats, no facts kept for a next run (a revision
    /// compared with another).
    pub fn watch_dependencies(&self) {
        *self.watched.lock().expect("no panics hold this lock") = Some(Default::default());
        self.remembering.store(false, Ordering::Relaxed);
    }

    /// Whether facts and walks are remembered for the next run (while watching).
    fn remembering(&self) -> bool {
        self.remembering.load(Ordering::Relaxed) && self.watching()
    }

    fn note(&self, p: &RepoPath) {
        self.record(p, Depth::Content);
    }

    /// Notes a path whose kind alone a loader asked about (is it a file, a folder, there at
    /// all): editing that file, or adding entries to that folder, does not change what the
    /// loader found, so only its kind is recorded.
    fn note_kind(&self, p: &RepoPath) {
        self.record(p, Depth::Kind);
    }

    /// Records a dependency on `p` while watching; the deeper of two records of a path wins.
    fn record(&self, p: &RepoPath, depth: Depth) {
        self.record_with(p, depth, |_| {});
    }

    /// Records that a derivation made facts with this digest of `p`.
    fn record_derived(&self, p: &RepoPath, tag: &'static str, digest: [u8; 32]) {
        self.record_with(p, Depth::Derived, |w| {
            if !w.derived.iter().any(|(t, _)| *t == tag) {
                w.derived.push((tag, digest));
            }
        });
    }

    fn record_with(&self, p: &RepoPath, depth: Depth, f: impl FnOnce(&mut Watch)) {
        if let Some(w) = self
            .watched
            .lock()
            .expect("no panics hold this lock")
            .as_mut()
        {
            let w = w.entry(p.clone()).or_insert(Watch {
                depth,
                derived: Vec::new(),
            });
            w.depth = w.depth.max(depth);
            f(w);
        }
    }

    /// The paths recorded, in order; `None` when not watching.
    fn watched_sorted(&self) -> Option<Vec<(RepoPath, Watch)>> {
        let mut paths: Vec<(RepoPath, Watch)> = self
            .watched
            .lock()
            .expect("no panics hold this lock")
            .as_ref()?
            .iter()
            .map(|(p, w)| (p.clone(), w.clone()))
            .collect();
        paths.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(paths)
    }

    /// Whether paths are being recorded.
    fn watching(&self) -> bool {
        self.watched
            .lock()
            .expect("no panics hold this lock")
            .is_some()
    }

    /// What the watched paths are now, with their cutoffs, or `None` when they cannot be
    /// trusted: a source that is not the work tree, or a path changed during this run (in the
    /// same clock tick as a read, so a later edit could go unseen, as with racy git index
    /// entries).
    pub fn observations(&self) -> Option<Observations> {
        let paths = self.watched_sorted()?;
        let seen: Vec<Option<(RepoPath, Seen)>> = paths
            .par_iter()
            .with_max_len(crate::PAR_TASK)
            .map(|(p, w)| {
                let mut s = self.seen_now(p)?;
                // A regular file or a folder asked about for its kind: its kind is enough.
                // (A symlink keeps its target's metadata: its target's kind can change.)
                if w.depth == Depth::Kind && matches!(s.kind, 1 | 2) {
                    s.key = None;
                }
                Some((p.clone(), s))
            })
            .collect();
        let seen: Option<Vec<(RepoPath, Seen)>> = seen.into_iter().collect();
        let seen = self.absent_as_parents(seen?);
        let racy = seen
            .iter()
            .any(|(_, s)| s.key.is_some_and(|k| k.changed_ns() >= self.run.started));
        if racy {
            return None;
        }
        // Files read through derivations alone, and folders whose entries were depended on.
        let derived: FxHashMap<&RepoPath, &Watch> = paths
            .iter()
            .filter(|(_, w)| w.depth == Depth::Derived)
            .map(|(p, w)| (p, w))
            .collect();
        let cutoffs: Vec<Option<Option<(RepoPath, Cutoff)>>> = seen
            .par_iter()
            .with_max_len(crate::PAR_TASK)
            .map(|(p, s)| match (s.kind, s.key) {
                (1, Some(_)) => Some(derived.get(p).filter(|w| !w.derived.is_empty()).map(|w| {
                    let tags = w.derived.iter().map(|(t, d)| (t.to_string(), *d));
                    (p.clone(), Cutoff::Derived(tags.collect()))
                })),
                (2, Some(_)) => {
                    // Listed by the loader after the stat `s`: that listing's digest.
                    let listed = self
                        .run
                        .listed
                        .lock()
                        .expect("no panics hold this lock")
                        .get(p)
                        .filter(|(seen, _)| seen == s)
                        .map(|(_, digest)| *digest);
                    let digest = match listed {
                        Some(digest) => digest,
                        None => self.listing_digest(p)?,
                    };
                    // The entries must be the ones the loader saw: the folder as recorded
                    // (stat made before it was listed, maybe at the start of the run) and as
                    // it is now, after the digest, must be one and the same.
                    (self.run.source.seen(p).as_ref() == Some(s))
                        .then(|| Some((p.clone(), Cutoff::Listing(digest))))
                }
                _ => Some(None),
            })
            .collect();
        // A folder that moved while the loaders ran: what they saw cannot be trusted.
        let cutoffs: Option<Vec<Option<(RepoPath, Cutoff)>>> = cutoffs.into_iter().collect();
        Some(Observations {
            seen,
            cutoffs: cutoffs?.into_iter().flatten().collect(),
        })
    }

    /// Stands for each absent path by its nearest present ancestor folder below the root: a
    /// path cannot appear without that folder's entries, and so its metadata, changing. Loaders probe many
    /// alternative names that are not there (`compose.yaml` or `docker-compose.yml`, an
    /// override per host); recorded as themselves they would be most of a no-op's stats.
    fn absent_as_parents(&self, seen: Vec<(RepoPath, Seen)>) -> Vec<(RepoPath, Seen)> {
        let mut out: std::collections::BTreeMap<RepoPath, Seen> = std::collections::BTreeMap::new();
        let mut absent = Vec::new();
        for (p, s) in seen {
            if s.kind == 0 {
                absent.push(p);
            } else {
                out.insert(p, s);
            }
        }
        for p in absent {
            let mut dir = p.clone();
            loop {
                dir = dir.parent();
                // The root's entries churn (`.hl/` itself appears on a first plan; editors,
                // direnv, build outputs) while paths probed right below it are few: those
                // stay recorded as absent.
                if dir.as_str().is_empty() {
                    out.insert(p, Seen { kind: 0, key: None });
                    break;
                }
                if let Some(known) = out.get_mut(&dir) {
                    // Asked only for its kind: an entry appearing in it would not show. It
                    // stands for an absent path now, so its entries count.
                    if known.key.is_none() && known.kind == 2 {
                        match self.seen_now(&dir) {
                            Some(s) => *known = s,
                            None => {
                                out.insert(p, Seen { kind: 0, key: None });
                            }
                        }
                    }
                    break;
                }
                match self.seen_now(&dir) {
                    Some(s) if s.kind != 0 => {
                        out.insert(dir, s);
                        break;
                    }
                    Some(_) => {}
                    None => {
                        out.insert(p, Seen { kind: 0, key: None });
                        break;
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Whether everything a loader saw is still so (checked in parallel).
    pub fn still(&self, seen: &[(RepoPath, Seen)]) -> bool {
        self.stat_all(seen).into_iter().all(|same| same)
    }

    /// Whether each path is as it was, statting every path even after a difference: a loader
    /// that runs again, and hashing, use these stats instead of making their own.
    fn stat_all(&self, seen: &[(RepoPath, Seen)]) -> Vec<bool> {
        // Stats made earlier this run (another unit's check) are not made again.
        let known: Vec<Option<Seen>> = {
            let memo = self.run.statted.lock().expect("no panics hold this lock");
            if memo.is_empty() {
                Vec::new()
            } else {
                seen.iter().map(|(p, _)| memo.get(p).cloned()).collect()
            }
        };
        let now: Vec<(RepoPath, Option<Seen>)> = seen
            .par_iter()
            .enumerate()
            .map(|(i, (p, _))| {
                if let Some(Some(s)) = known.get(i) {
                    return (p.clone(), Some(s.clone()));
                }
                Stats::bump(&self.stats.files_statted);
                (p.clone(), self.run.source.seen(p))
            })
            .collect();
        let same = seen
            .iter()
            .zip(&now)
            .map(|((_, s), (_, n))| match n {
                // Recorded for its kind alone (see `note_kind`).
                Some(n) if s.key.is_none() && matches!(s.kind, 1 | 2) => n.kind == s.kind,
                n => n.as_ref() == Some(s),
            })
            .collect();
        let mut memo = self.run.statted.lock().expect("no panics hold this lock");
        memo.reserve(now.len());
        memo.extend(now.into_iter().filter_map(|(p, n)| Some((p, n?))));
        same
    }

    /// What `p` is now: this run's stat of it if it has one, else a new one (remembered).
    fn seen_now(&self, p: &RepoPath) -> Option<Seen> {
        if let Some(s) = self
            .run
            .statted
            .lock()
            .expect("no panics hold this lock")
            .get(p)
        {
            return Some(s.clone());
        }
        let s = self.run.source.seen(p)?;
        Stats::bump(&self.stats.files_statted);
        self.run
            .statted
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone(), s.clone());
        Some(s)
    }

    /// Declares paths whose content is a known git blob: their digest is derived from the blob
    /// id. Used when two revisions are compared, so a file that is the same on both sides is
    /// neither read nor hashed.
    pub fn with_identities(mut self, ids: HashMap<RepoPath, String>) -> FileSet {
        Arc::get_mut(&mut self.run)
            .expect("identities are declared before any view is made")
            .identities = ids;
        self
    }

    /// What to call the source in messages.
    pub fn label(&self) -> String {
        self.run.source.label()
    }

    /// The repo root on disk.
    pub fn root(&self) -> &Path {
        self.run.source.root()
    }

    /// The on-disk path of a repo path (for messages).
    pub fn abs(&self, p: &RepoPath) -> PathBuf {
        if p.as_str().is_empty() {
            self.root().to_path_buf()
        } else {
            self.root().join(p.as_str())
        }
    }

    /// What `p` is, without following a final symlink.
    pub fn kind(&self, p: &RepoPath) -> Option<Kind> {
        self.note_kind(p);
        match self.seen_for_kind(p) {
            Some(s) => s.kind(),
            None => self.run.source.kind(p),
        }
    }

    /// What `p` is, through symlinks.
    fn target_kind(&self, p: &RepoPath) -> Option<Kind> {
        self.note_kind(p);
        match self.seen_for_kind(p) {
            Some(s) if s.kind != 3 => s.kind(),
            _ => self.run.source.target_kind(p),
        }
    }

    /// This run's stat of `p`, for a question about its kind. Loaders ask the same questions
    /// of the same paths (a service placed on a hundred hosts, the folder of every app), and
    /// while their view is kept each path they ask about is statted for its observation
    /// anyway: then the stat is made once, now, and serves both. Otherwise a stat made earlier
    /// is used when there is one, and `None` leaves the question to the source, uncounted.
    fn seen_for_kind(&self, p: &RepoPath) -> Option<Seen> {
        if self.remembering() {
            return self.seen_now(p);
        }
        self.run
            .statted
            .lock()
            .expect("no panics hold this lock")
            .get(p)
            .cloned()
    }

    /// Whether `p` is a file (through symlinks inside the repo).
    pub fn is_file(&self, p: &RepoPath) -> bool {
        self.target_kind(p) == Some(Kind::File)
    }

    /// Whether `p` is a folder (through symlinks inside the repo).
    pub fn is_dir(&self, p: &RepoPath) -> bool {
        self.target_kind(p) == Some(Kind::Dir)
    }

    /// Whether `p` exists (a dangling symlink does not).
    pub fn exists(&self, p: &RepoPath) -> bool {
        self.target_kind(p).is_some()
    }

    /// Refuses a path that resolves, through symlinks, to somewhere outside the repo.
    pub fn check_inside(&self, p: &RepoPath) -> Result<(), Error> {
        self.run.source.check_inside(p)
    }

    /// The entries of a folder, sorted (an absent folder is empty).
    pub fn list(&self, dir: &RepoPath) -> Result<Vec<Entry>, Error> {
        self.note(dir);
        // While a loader's view is kept for the next run: the folder's stat for the run is
        // made before it is listed, and the listing's digest kept with it, so that its
        // observation need not list it again (see `observations`).
        let before = if self.remembering() {
            self.seen_now(dir)
        } else {
            None
        };
        let entries = self.run.source.list(dir)?;
        if let Some(seen) = before.filter(|s| s.kind == 2 && s.key.is_some()) {
            self.run
                .listed
                .lock()
                .expect("no panics hold this lock")
                .insert(dir.clone(), (seen, cutoff::entries_digest(&entries)));
        }
        Ok(entries)
    }

    /// Every entry below `dir`, sorted; see [`Source::walk`].
    pub fn walk(&self, dir: &RepoPath, hidden: bool) -> Result<Vec<Entry>, Error> {
        let remembering = self.remembering();
        let entries = match remembering
            .then(|| self.walk_remembered(dir, hidden))
            .flatten()
        {
            Some(entries) => entries,
            None if remembering => {
                let entries = self.walk_listed(dir, hidden)?;
                self.remember_walk(dir, hidden, &entries);
                entries
            }
            None => self.run.source.walk(dir, hidden)?,
        };
        if self.watching() {
            for p in walk_dependencies(dir, &entries) {
                self.note(&p);
            }
        }
        self.run.expect(entries.len());
        Ok(entries)
    }

    /// A walk whose folders' listings are kept as [`FileSet::list`] keeps them (each statted
    /// right before it is read, then the digest of its entries), so that their observations
    /// need not list them again. A folder's listing also shows whether it holds a `.gitignore`:
    /// an absent one is known absent for the run without a stat of its own.
    fn walk_listed(&self, dir: &RepoPath, hidden: bool) -> Result<Vec<Entry>, Error> {
        // The stat made right before a folder is read, for its listing right after (a folder's
        // listing follows its `before` at once, before the walk goes deeper).
        let last = std::cell::RefCell::new(None);
        let mut before = |folder: &RepoPath| {
            *last.borrow_mut() = self.seen_now(folder);
        };
        let mut listed = |folder: &RepoPath, names: &[(String, Kind)]| {
            let Some(seen) = last
                .borrow_mut()
                .take()
                .filter(|s| s.kind == 2 && s.key.is_some())
            else {
                return;
            };
            let digest = cutoff::names_digest(names.iter().map(|(n, k)| (n.as_str(), *k)));
            if !names.iter().any(|(n, _)| n == ".gitignore") {
                if let Ok(g) = folder.join(".gitignore") {
                    self.run
                        .statted
                        .lock()
                        .expect("no panics hold this lock")
                        .entry(g)
                        .or_insert(Seen { kind: 0, key: None });
                }
            }
            self.run
                .listed
                .lock()
                .expect("no panics hold this lock")
                .insert(folder.clone(), (seen, digest));
        };
        self.run
            .source
            .walk_listing(dir, hidden, &mut before, &mut listed)
    }

    /// The bytes of `p`; refuses a symlink out of the repo. Nothing keeps them once the caller
    /// is done: derivations and hashing read every file of a large homelab, and holding them
    /// all (120 MB on the large benchmark tree) to the end of the run was most of a cold
    /// plan's peak memory; a file read again comes from the page cache. Bytes read after `p`
    /// was hashed must be what was hashed: a file changed during the run is an error, never an
    /// action recorded for content it did not have. Counted as read once per path.
    pub fn read(&self, p: &RepoPath) -> Result<Arc<Vec<u8>>, Error> {
        self.note(p);
        let (data, digest) = self.load_digested(p)?;
        let hashed = self
            .run
            .digests
            .read()
            .expect("no panics hold this lock")
            .get(p)
            .copied();
        if let Some(d) = hashed.filter(|_| !self.run.identities.contains_key(p)) {
            if digest.unwrap_or_else(|| Digest::of(&data)) != d {
                return Err(Error::repo(
                    format!("{p} changed while hl was reading the repo"),
                    None,
                    Some(
                        "run the command again once the edit is done; if this repeats, remove \
                         .hl/statcache"
                            .into(),
                    ),
                ));
            }
        }
        Ok(data)
    }

    /// [`FileSet::read`] without recording a dependency or checking against the digest (for
    /// derivations, which record their own, and hashing, which makes the digest).
    fn load(&self, p: &RepoPath) -> Result<Arc<Vec<u8>>, Error> {
        Ok(self.load_digested(p)?.0)
    }

    /// [`FileSet::load`], with the digest of the bytes when they come from the work tree.
    fn load_digested(&self, p: &RepoPath) -> Result<Loaded, Error> {
        // Statted before the read, or not at all: a digest is never paired with a stat key
        // newer than the bytes it was made of.
        let (data, blob, before) = match self.run.source.read_plain(p)? {
            Some((data, key)) => {
                // The path's stat for the run, where it has none yet: what the loaders'
                // observations and hashing use instead of a stat of their own.
                if self.watching() {
                    self.statted_by_read(p, key);
                }
                (data, false, Some(key))
            }
            None => {
                if self.run.source.kind(p) == Some(Kind::Symlink) {
                    self.run.source.check_inside(p)?;
                }
                let before = self.statted_file_key(p);
                let (data, blob) = self.run.source.read(p)?;
                (data, blob, before)
            }
        };
        let digest = (!blob).then(|| Digest::of(&data));
        if let (Some(key), Some(d)) = (before, digest) {
            self.loaded_as(p, key, d);
        }
        self.count_read(p, blob);
        Ok((Arc::new(data), digest))
    }

    /// Reads and hashes `paths` ahead of [`FileSet::hash_all`], which then takes each digest
    /// made here (paired with the stat of the open file, as a loader's read is) instead of
    /// reading the file again. On a first plan, the files a loader's nodes copy (a compose
    /// service's config) are hashed while another loader's last, sequential steps leave a
    /// thread idle. Work-tree files not read yet this run only; an error is left for hashing
    /// to report.
    pub fn hash_ahead(&self, paths: &[RepoPath]) {
        paths
            .par_iter()
            .with_max_len(crate::PAR_TASK)
            .for_each(|p| {
                let known = self
                    .run
                    .loaded
                    .lock()
                    .expect("no panics hold this lock")
                    .contains_key(p);
                if known {
                    return;
                }
                let Ok(Some((data, key))) = self.run.source.read_plain(p) else {
                    return;
                };
                self.statted_by_read(p, key);
                self.loaded_as(p, key, Digest::of(&data));
                self.count_read(p, false);
            });
    }

    /// Keeps the digest of the bytes of `p` read this run, with the stat key from before the
    /// read, for hashing.
    fn loaded_as(&self, p: &RepoPath, key: StatKey, digest: Digest<Content>) {
        self.run
            .loaded
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone(), (key, digest));
    }

    /// Keeps the stat of a file made on its open file as the path's stat for the run, unless
    /// it has one.
    fn statted_by_read(&self, p: &RepoPath, key: StatKey) {
        let mut memo = self.run.statted.lock().expect("no panics hold this lock");
        memo.entry(p.clone()).or_insert(Seen {
            kind: 1,
            key: Some(key),
        });
    }

    /// Counts a read of `p`, once per path.
    fn count_read(&self, p: &RepoPath, blob: bool) {
        let first = self
            .run
            .counted
            .lock()
            .expect("no panics hold this lock")
            .insert(p.clone());
        if first {
            Stats::bump(&self.stats.files_read);
            if blob {
                Stats::bump(&self.stats.blobs_read);
            }
        }
    }

    /// The content of `p` as UTF-8 text.
    pub fn read_str(&self, p: &RepoPath) -> Result<String, Error> {
        let b = self.read(p)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::repo(format!("{p} is not UTF-8 text"), None, None))
    }

    /// Hashes every path (in parallel), trusting the stat cache where a file's size, times and
    /// inode are unchanged, so a no-op run reads and hashes nothing. Returns what the stat
    /// cache learnt: the files hashed, and its entries for paths no longer hashed.
    pub fn hash_all(&self, paths: &[RepoPath], cache: &StatCache) -> Result<StatUpdate, Error> {
        type Hashed = (RepoPath, Option<StatKey>, Digest<Content>, bool);
        let memo = std::mem::take(&mut *self.run.statted.lock().expect("no panics hold this lock"));
        let results: Vec<Result<Hashed, Error>> = paths
            .par_iter()
            .with_max_len(crate::PAR_TASK)
            .map(|p| {
                if let Some(oid) = self.run.identities.get(p) {
                    return Ok((p.clone(), None, git_identity(oid), true));
                }
                let known = memo.get(p).filter(|s| s.kind == 1).and_then(|s| s.key);
                let key = self.stat_unless_known(p, known)?;
                if let Some(d) = key.as_ref().and_then(|k| cache.lookup(p, k)) {
                    return Ok((p.clone(), key, d, true));
                }
                let d = match key.and_then(|k| self.loaded_digest(p, &k)) {
                    Some(d) => d,
                    None => Digest::of(&self.load(p)?),
                };
                Stats::bump(&self.stats.files_hashed);
                Ok((p.clone(), key, d, false))
            })
            .collect();
        let results: Vec<Hashed> = results.into_iter().collect::<Result<_, _>>()?;
        let mut update = StatUpdate::default();
        let mut found = 0;
        let mut digests = self.run.digests.write().expect("no panics hold this lock");
        digests.reserve(results.len());
        for (p, key, d, hit) in results {
            found += usize::from(cache.contains(&p));
            if let (Some(key), false) = (key, hit) {
                update.changed.push((p.clone(), key, d));
            }
            digests.insert(p, d);
        }
        // Entries of paths no longer hashed, looked for only when there are some.
        if found < cache.len() {
            let used: rustc_hash::FxHashSet<&RepoPath> = paths.iter().collect();
            update.unused = cache
                .paths()
                .filter(|p| !used.contains(p))
                .cloned()
                .collect();
        }
        Ok(update)
    }

    /// The stat cache's entries whose file is not as it recorded (or whose entry is not
    /// trusted): what [`FileSet::hash_all`] would hash. Stats made this run are reused.
    pub fn stat_misses(&self, cache: &StatCache) -> Vec<RepoPath> {
        let memo = self.run.statted.lock().expect("no panics hold this lock");
        let paths: Vec<(&RepoPath, Option<StatKey>)> = cache
            .paths()
            .map(|p| (p, memo.get(p).filter(|s| s.kind == 1).and_then(|s| s.key)))
            .collect();
        drop(memo);
        paths
            .par_iter()
            .filter(|(p, known)| {
                let key = match known {
                    Some(k) => Some(*k),
                    None => {
                        Stats::bump(&self.stats.files_statted);
                        self.run.source.stat_key(p).ok().flatten()
                    }
                };
                key.is_none_or(|k| cache.lookup(p, &k).is_none())
            })
            .map(|(p, _)| (*p).clone())
            .collect()
    }

    /// Hashes a few paths as [`FileSet::hash_all`] does, one by one, without looking for stat
    /// cache entries no longer used (the caller knows the input files are the ones the cache
    /// was saved with); a path hashed already this run is not hashed again.
    pub fn hash_some(&self, paths: &[RepoPath], cache: &StatCache) -> Result<StatUpdate, Error> {
        let mut update = StatUpdate::default();
        for p in paths {
            if self.digest(p).is_some() {
                continue;
            }
            let d = if let Some(oid) = self.run.identities.get(p) {
                git_identity(oid)
            } else {
                let key = self.stat_unless_known(p, self.statted_file_key(p))?;
                match key.as_ref().and_then(|k| cache.lookup(p, k)) {
                    Some(d) => d,
                    None => {
                        let d = match key.and_then(|k| self.loaded_digest(p, &k)) {
                            Some(d) => d,
                            None => Digest::of(&self.load(p)?),
                        };
                        Stats::bump(&self.stats.files_hashed);
                        if let Some(key) = key {
                            update.changed.push((p.clone(), key, d));
                        }
                        d
                    }
                }
            };
            self.run
                .digests
                .write()
                .expect("no panics hold this lock")
                .insert(p.clone(), d);
        }
        Ok(update)
    }

    /// The digest of what was read of `p` this run, if it was read while its stat key was
    /// `key`.
    fn loaded_digest(&self, p: &RepoPath, key: &StatKey) -> Option<Digest<Content>> {
        self.run
            .loaded
            .lock()
            .expect("no panics hold this lock")
            .get(p)
            .filter(|(k, _)| k == key)
            .map(|(_, d)| *d)
    }

    /// The stat key of `p` when it was statted as a file this run.
    fn statted_file_key(&self, p: &RepoPath) -> Option<StatKey> {
        self.run
            .statted
            .lock()
            .expect("no panics hold this lock")
            .get(p)
            .filter(|s| s.kind == 1)
            .and_then(|s| s.key)
    }

    /// A file's stat key: `known` (statted this run already), or statted now and counted.
    fn stat_unless_known(
        &self,
        p: &RepoPath,
        known: Option<StatKey>,
    ) -> Result<Option<StatKey>, Error> {
        if known.is_some() {
            return Ok(known);
        }
        let key = self.run.source.stat_key(p)?;
        if key.is_some() {
            Stats::bump(&self.stats.files_statted);
        }
        Ok(key)
    }

    /// The blake3 digest of the bytes of `p`, as hashed this run: its content digest, when that
    /// was made of the bytes (not a stand-in made of a git blob id). A rule telling its output
    /// digest uses it for files its artifact holds byte for byte, without reading them again.
    pub fn content_hash(&self, p: &RepoPath) -> Option<[u8; 32]> {
        if self.run.identities.contains_key(p) {
            return None;
        }
        self.digest(p).map(|d| *d.bytes())
    }

    /// The content digest of a path hashed by [`FileSet::hash_all`].
    pub fn digest(&self, p: &RepoPath) -> Option<Digest<Content>> {
        self.run
            .digests
            .read()
            .expect("no panics hold this lock")
            .get(p)
            .copied()
    }
}

/// Bytes read from a source, with their digest when they come from the work tree.
type Loaded = (Arc<Vec<u8>>, Option<Digest<Content>>);

/// The stand-in content digest of a file known only by its git blob id. Only ever compared
/// with digests made the same way for the same path in the same run.
fn git_identity(oid: &str) -> Digest<Content> {
    Digest::of(format!("git-blob:{oid}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashing does not keep every file's bytes; what realize reads after is checked against
    /// what was hashed, so a file edited in between is an error instead of an output recorded
    /// for content it never had. Each file counts as read once.
    #[test]
    fn a_file_changed_between_hashing_and_reading_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "one").unwrap();
        std::fs::write(dir.path().join("b"), "two").unwrap();
        let (a, b) = (RepoPath::new("a").unwrap(), RepoPath::new("b").unwrap());
        let files = FileSet::new(dir.path()).unwrap();
        files
            .hash_all(&[a.clone(), b.clone()], &StatCache::default())
            .unwrap();
        assert_eq!(files.read(&a).unwrap().as_slice(), b"one");
        std::fs::write(dir.path().join("b"), "deux").unwrap();
        let err = files.read(&b).unwrap_err().to_string();
        assert!(err.contains("b changed while hl was reading"), "{err}");
        assert_eq!(files.stats.snapshot().files_read, 2);
    }

    /// A file read by a loader after it was statted is hashed from what was read, without
    /// reading it again: the plan then sees one content for it, and a later read of other
    /// bytes is an error. A file read before any stat is read again to be hashed, so a digest
    /// is never paired with a stat newer than its bytes.
    #[test]
    fn a_folders_listing_digest_is_the_digest_of_its_listing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", ".hidden", "A", "a-10", "a-2"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("b.yaml", dir.path().join("link")).unwrap();
        let tree = Worktree::new(dir.path()).unwrap();
        for p in ["", "sub", "absent"] {
            let p = RepoPath::new(p).unwrap_or_else(|_| RepoPath::root());
            let listed = cutoff::entries_digest(&tree.list(&p).unwrap());
            assert_eq!(tree.listing_digest(&p), Some(listed), "{p}");
        }
    }

    #[test]
    fn a_file_read_by_a_loader_is_hashed_as_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("a", "one"), ("b", "two"), ("c", "three")] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let [a, b, c] = ["a", "b", "c"].map(|n| RepoPath::new(n).unwrap());
        let files = FileSet::new(dir.path()).unwrap();
        for p in [&a, &b] {
            files.seen_now(p).expect("statted");
            files.read(p).unwrap();
        }
        files.read(&c).unwrap();
        std::fs::write(dir.path().join("b"), "deux").unwrap();
        std::fs::write(dir.path().join("c"), "trois").unwrap();
        let update = files
            .hash_all(&[a.clone(), b.clone(), c.clone()], &StatCache::default())
            .unwrap();
        assert_eq!(files.digest(&a), Some(Digest::of(b"one")));
        assert_eq!(
            files.digest(&b),
            Some(Digest::of(b"two")),
            "as the loader read it"
        );
        assert_eq!(files.digest(&c), Some(Digest::of(b"trois")), "read again");
        assert_eq!(update.changed.len(), 3);
        let err = files.read(&b).unwrap_err().to_string();
        assert!(err.contains("b changed while hl was reading"), "{err}");
    }
}
