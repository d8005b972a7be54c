//! Facts: what a loader derived from one file's bytes, remembered across runs next to the
//! file's metadata. When one file of a large tree changes, the loader that read the tree runs
//! again, but only the changed file is read and parsed: every other file's facts come back
//! from the last run, as long as its metadata is what it was then. That is what makes the cost
//! of a plan follow the change instead of the size of the tree.
//!
//! A derivation must depend on the file's bytes alone (it is given nothing else), and its facts
//! should be small: the facts of a whole tree are read back whenever its loader runs again.

use rustc_hash::FxHashMap;
use std::any::Any;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cutoff::{facts_digest, Derivation};
use super::{walk_dependencies, Depth, Entry, FileSet, Kind, Seen};
use crate::digest::{Content, Digest};
use crate::error::Error;
use crate::repopath::RepoPath;

/// One remembered derivation: the file's metadata when it was derived, and the facts (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fact {
    seen: Seen,
    value: Vec<u8>,
}

/// Facts by (derivation tag, file).
pub type Facts = FxHashMap<(String, RepoPath), Fact>;

/// The facts a run may reuse, and the ones it used or derived.
#[derive(Default)]
pub(super) struct Memory {
    known: Facts,
    used: Facts,
}

/// Facts of kept derivations made this run, whole (fields a fact does not remember included),
/// with the digest of the bytes they were made of, by derivation and path.
pub(super) type Kept = FxHashMap<(&'static str, RepoPath), (Digest<Content>, KeptValue)>;

/// A kept derivation's facts.
type KeptValue = Arc<dyn Any + Send + Sync>;

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("known", &self.known.len())
            .field("used", &self.used.len())
            .finish()
    }
}

impl FileSet {
    /// Offers facts from an earlier run; [`FileSet::derive`] reuses those whose file is as it
    /// was then.
    pub fn remember(&self, facts: Facts) {
        self.facts.lock().expect("no panics hold this lock").known = facts;
    }

    /// Takes the facts used or derived since [`FileSet::remember`] (or the start): the ones to
    /// keep for the next run.
    pub fn take_facts(&self) -> Facts {
        let mut m = self.facts.lock().expect("no panics hold this lock");
        m.known.clear();
        std::mem::take(&mut m.used)
    }

    /// What `d` makes of the bytes of `p`, from an earlier run when `p` is as it was then
    /// (the file is then neither read nor parsed). Only while [`FileSet::watch`]ing: facts
    /// belong with a load recorded for the load cache. A file read through derivations alone
    /// is recorded with the digest of each one's facts, so that an edit that changes none of
    /// them does not make its loader run again (see [`super::cutoff`]). An error is never
    /// remembered.
    pub fn derive<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
        &self,
        d: &Derivation<T>,
        p: &RepoPath,
    ) -> Result<T, Error> {
        // Facts are kept only for a load being recorded for the load cache; any other load
        // (a revision compared with `--against`) has no use for the file's metadata.
        if !self.remembering() {
            let (bytes, digest) = self.load_digested(p)?;
            // A file that does not derive depends on its whole content: whatever it becomes
            // may derive, and the loader must see that.
            let value = (d.derive)(&bytes, p).inspect_err(|_| self.note(p))?;
            self.keep(d, p, digest, &value);
            if self.watching() {
                match serde_json::to_vec(&value) {
                    Ok(json) => self.record_derived(p, d.tag, facts_digest(&json)),
                    Err(_) => self.note(p),
                }
            }
            return Ok(value);
        }
        self.record(p, Depth::Derived);
        let key = (d.tag.to_string(), p.clone());
        // A stat first only when an earlier run's facts may spare the read; otherwise the
        // read's own (made on the open file, before its bytes) is the one kept below.
        let known = self
            .facts
            .lock()
            .expect("no panics hold this lock")
            .known
            .contains_key(&key);
        let seen = if known { self.seen_now(p) } else { None };
        if let Some(seen) = &seen {
            let hit = {
                let m = self.facts.lock().expect("no panics hold this lock");
                m.known
                    .get(&key)
                    .filter(|f| f.seen == *seen)
                    .and_then(|f| Some((serde_json::from_slice::<T>(&f.value).ok()?, f.clone())))
            };
            if let Some((value, fact)) = hit {
                self.record_derived(p, d.tag, facts_digest(&fact.value));
                self.facts
                    .lock()
                    .expect("no panics hold this lock")
                    .used
                    .insert(key, fact);
                return Ok(value);
            }
        }
        let (bytes, digest) = self.load_digested(p)?;
        let seen = seen.or_else(|| self.seen_now(p));
        let value = (d.derive)(&bytes, p).inspect_err(|_| self.note(p))?;
        self.keep(d, p, digest, &value);
        let Ok(json) = serde_json::to_vec(&value) else {
            // Facts that cannot be written down cannot be compared either.
            self.note(p);
            return Ok(value);
        };
        self.record_derived(p, d.tag, facts_digest(&json));
        // Only a file that cannot still be changing within this clock tick is remembered (as
        // with racy git index entries), and only where the source can tell it changed.
        if let Some(seen) =
            seen.filter(|s| s.kind == 1 && s.key.is_some_and(|k| k.changed_ns() < self.run.started))
        {
            self.facts
                .lock()
                .expect("no panics hold this lock")
                .used
                .insert(key, Fact { seen, value: json });
        }
        Ok(value)
    }
}

impl FileSet {
    /// Keeps the kept part of a derivation's facts for the rest of the run.
    fn keep<T: Send + Sync + 'static>(
        &self,
        d: &Derivation<T>,
        p: &RepoPath,
        digest: Option<Digest<Content>>,
        value: &T,
    ) {
        if let (Some(part), Some(digest)) = (d.kept, digest) {
            self.run
                .kept
                .lock()
                .expect("no panics hold this lock")
                .insert((d.tag, p.clone()), (digest, Arc::new(part(value))));
        }
    }

    /// What a kept derivation made of `p` earlier this run, when those bytes are the ones
    /// hashed since; otherwise `d` of its bytes now, read through [`FileSet::read`] (so a file
    /// changed since it was hashed is an error, as any read). For realize: discovery parsed
    /// every manifest already, and parsing them all again was a sixth of a first plan.
    pub fn derived<T: Clone + Send + Sync + 'static>(
        &self,
        d: &Derivation<T>,
        p: &RepoPath,
    ) -> Result<T, Error> {
        if let Some(hashed) = self.digest(p) {
            let memory = self.run.kept.lock().expect("no panics hold this lock");
            let kept = memory
                .get(&(d.tag, p.clone()))
                .filter(|(digest, _)| *digest == hashed)
                .and_then(|(_, value)| value.downcast_ref::<T>())
                .cloned();
            drop(memory);
            if let Some(value) = kept {
                self.note(p);
                return Ok(value);
            }
        }
        let bytes = self.read(p)?;
        (d.derive)(&bytes, p)
    }
}

/// A walk remembered: the entries, and what each path it depended on was then.
#[derive(Serialize, Deserialize)]
struct Walked {
    deps: Vec<(RepoPath, Seen)>,
    /// (path, 0 file, 1 folder, 2 symlink, 3 other).
    entries: Vec<(RepoPath, u8)>,
}

fn walk_tag(hidden: bool) -> String {
    format!("walk.v1.{}", if hidden { "hidden" } else { "visible" })
}

impl FileSet {
    /// The entries of a walk from an earlier run, when every folder it went through and every
    /// .gitignore that shaped it are as they were (their stats are this run's, mostly made
    /// already by the load cache's check): a loader that runs again after one edit does not
    /// walk its whole tree again.
    pub(super) fn walk_remembered(&self, dir: &RepoPath, hidden: bool) -> Option<Vec<Entry>> {
        let key = (walk_tag(hidden), dir.clone());
        let fact = self
            .facts
            .lock()
            .expect("no panics hold this lock")
            .known
            .get(&key)?
            .clone();
        if self.seen_now(dir).as_ref() != Some(&fact.seen) {
            return None;
        }
        let walked: Walked = serde_json::from_slice(&fact.value).ok()?;
        if !walked
            .deps
            .iter()
            .all(|(p, s)| self.seen_now(p).as_ref() == Some(s))
        {
            return None;
        }
        let entries = walked
            .entries
            .into_iter()
            .map(|(path, k)| Entry {
                path,
                kind: match k {
                    0 => Kind::File,
                    1 => Kind::Dir,
                    2 => Kind::Symlink,
                    _ => Kind::Other,
                },
            })
            .collect();
        self.facts
            .lock()
            .expect("no panics hold this lock")
            .used
            .insert(key, fact);
        Some(entries)
    }

    /// Keeps a walk for the next run, unless something it depended on is racy.
    pub(super) fn remember_walk(&self, dir: &RepoPath, hidden: bool, entries: &[Entry]) {
        let Some(seen) = self.seen_now(dir) else {
            return;
        };
        let mut deps = Vec::new();
        for p in walk_dependencies(dir, entries) {
            let Some(s) = self.seen_now(&p) else {
                return;
            };
            if s.key.is_some_and(|k| k.changed_ns() >= self.run.started) {
                return;
            }
            deps.push((p, s));
        }
        let walked = Walked {
            deps,
            entries: entries
                .iter()
                .map(|e| {
                    let k = match e.kind {
                        Kind::File => 0,
                        Kind::Dir => 1,
                        Kind::Symlink => 2,
                        Kind::Other => 3,
                    };
                    (e.path.clone(), k)
                })
                .collect(),
        };
        if let Ok(value) = serde_json::to_vec(&walked) {
            self.facts
                .lock()
                .expect("no panics hold this lock")
                .used
                .insert((walk_tag(hidden), dir.clone()), Fact { seen, value });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(files: &FileSet) -> u64 {
        files.stats.snapshot().files_read
    }

    static LINES: Derivation<usize> =
        Derivation::new("test.lines.v1", |b, _| Ok(b.split(|c| *c == b'\n').count()));
    static LEN: Derivation<usize> = Derivation::new("test.len.v1", |b, _| Ok(b.len()));

    fn lines(files: &FileSet, p: &RepoPath) -> usize {
        files.derive(&LINES, p).unwrap()
    }

    /// A first load reads each file once, and that read (its open file's stat) is the stat
    /// the observations and hashing use: no stat of the path on top of it.
    #[test]
    fn a_first_derivation_stats_nothing_beyond_its_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1\n2\n").unwrap();
        crate::time::settle(&dir.path().join("a"));
        let a = RepoPath::new("a").unwrap();
        let files = FileSet::new(dir.path()).unwrap();
        files.watch();
        assert_eq!(lines(&files, &a), 3);
        let seen = files.observations().expect("trusted").seen;
        assert_eq!(seen.len(), 1);
        let update = files
            .hash_all(std::slice::from_ref(&a), &Default::default())
            .unwrap();
        let stats = files.stats.snapshot();
        assert_eq!(
            (stats.files_read, stats.files_statted, stats.files_hashed),
            (1, 0, 1)
        );
        assert_eq!(update.changed[0].1, seen[0].1.key.expect("a file's key"));
        // The facts are remembered with that stat: an unchanged file is not read again.
        let facts = files.take_facts();
        let next = FileSet::new(dir.path()).unwrap();
        next.remember(facts);
        next.watch();
        assert_eq!(lines(&next, &a), 3);
        assert_eq!(next.stats.snapshot().files_read, 0);
    }

    /// Two loaders on views of one run's files, side by side: each view's observations and
    /// facts are its own (a loader's unit depends on what it read, not on what the other did),
    /// while a file is read once for both, and counted once.
    #[test]
    fn views_watch_alone_and_share_the_work() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("a", "1\n"), ("b", "1\n2\n"), ("shared", "1\n2\n3\n")] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        crate::time::settle(&dir.path().join("shared"));
        let p = |s| RepoPath::new(s).unwrap();
        let files = FileSet::new(dir.path()).unwrap();
        let (one, two) = (files.view(), files.view());
        one.watch();
        two.watch();
        let ((a, s1), (b, s2)) = rayon::join(
            || (lines(&one, &p("a")), lines(&one, &p("shared"))),
            || (lines(&two, &p("b")), lines(&two, &p("shared"))),
        );
        assert_eq!((a, b, s1, s2), (2, 3, 4, 4));
        let seen = |v: &FileSet| -> Vec<String> {
            let obs = v.observations().expect("trusted");
            obs.seen.iter().map(|(p, _)| p.to_string()).collect()
        };
        assert_eq!(seen(&one), ["a", "shared"]);
        assert_eq!(seen(&two), ["b", "shared"]);
        let keys = |facts: Facts| -> Vec<String> {
            let mut keys: Vec<String> = facts.keys().map(|(_, p)| p.to_string()).collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(one.take_facts()), ["a", "shared"]);
        assert_eq!(keys(two.take_facts()), ["b", "shared"]);
        // The set they were made of watched nothing, and counts the reads of both.
        assert!(files.observations().is_none());
        assert_eq!(count(&files), 3);
        assert_eq!(count(&one), 3);
    }

    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static COUNTED: Derivation<usize> = Derivation::new("test.counted.v1", |b, _| {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(b.len())
    })
    .kept(|n| *n);

    /// Realize asking for what discovery derived gets it back while the file is the one
    /// hashed, without deriving again; a file discovery never derived is derived then.
    #[test]
    fn kept_facts_serve_the_rest_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "four").unwrap();
        std::fs::write(dir.path().join("b"), "sixsix").unwrap();
        crate::time::settle(&dir.path().join("b"));
        let (a, b) = (RepoPath::new("a").unwrap(), RepoPath::new("b").unwrap());
        let files = FileSet::new(dir.path()).unwrap();
        files.watch();
        assert_eq!(files.derive(&COUNTED, &a).unwrap(), 4);
        let calls = || CALLS.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(calls(), 1);
        files
            .hash_all(&[a.clone(), b.clone()], &Default::default())
            .unwrap();
        assert_eq!(files.derived(&COUNTED, &a).unwrap(), 4);
        assert_eq!(calls(), 1, "kept, not derived again");
        assert_eq!(files.derived(&COUNTED, &b).unwrap(), 6);
        assert_eq!(calls(), 2, "never derived: derived now");
        // Facts not kept (a derivation that does not ask) are made again.
        assert_eq!(files.derived(&LEN, &a).unwrap(), 4);
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_and_an_edited_one_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1\n2\n").unwrap();
        std::fs::write(dir.path().join("b"), "1\n").unwrap();
        crate::time::settle(&dir.path().join("b"));
        let (a, b) = (RepoPath::new("a").unwrap(), RepoPath::new("b").unwrap());

        let first = FileSet::new(dir.path()).unwrap();
        first.watch();
        assert_eq!((lines(&first, &a), lines(&first, &b)), (3, 2));
        assert_eq!(count(&first), 2);
        let facts = first.take_facts();
        assert_eq!(facts.len(), 2);

        let second = FileSet::new(dir.path()).unwrap();
        second.watch();
        second.remember(facts);
        assert_eq!((lines(&second, &a), lines(&second, &b)), (3, 2));
        assert_eq!(count(&second), 0, "both came back from the first run");
        let facts = second.take_facts();

        std::fs::write(dir.path().join("b"), "1\n2\n3\n").unwrap();
        crate::time::settle(&dir.path().join("b"));
        let third = FileSet::new(dir.path()).unwrap();
        third.watch();
        third.remember(facts);
        assert_eq!((lines(&third, &a), lines(&third, &b)), (3, 4));
        assert_eq!(count(&third), 1, "only the edited file was read");
    }

    #[test]
    fn another_derivation_of_the_same_file_is_not_confused_with_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "abc").unwrap();
        let a = RepoPath::new("a").unwrap();
        let first = FileSet::new(dir.path()).unwrap();
        first.watch();
        lines(&first, &a);
        let second = FileSet::new(dir.path()).unwrap();
        second.watch();
        second.remember(first.take_facts());
        let len: usize = second.derive(&LEN, &a).unwrap();
        assert_eq!(len, 3);
    }

    fn walked(dir: &std::path::Path, facts: Facts) -> (Vec<String>, Facts) {
        let files = FileSet::new(dir).unwrap();
        files.remember(facts);
        files.watch();
        let entries = files.walk(&RepoPath::new("k").unwrap(), false).unwrap();
        let names = entries
            .iter()
            .map(|e| e.path.as_str().to_string())
            .collect();
        (names, files.take_facts())
    }

    /// A remembered walk is the walk: a file appearing two folders down, a `.gitignore`
    /// appearing, a folder going away, each shows on the next walk.
    #[test]
    fn a_remembered_walk_sees_what_changed_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("k/a/b")).unwrap();
        std::fs::write(root.join("k/a/b/one.yaml"), "x").unwrap();
        std::fs::create_dir_all(root.join("k/c")).unwrap();
        // Old enough not to be racy.
        crate::time::settle(&root.join("k/c"));
        let (first, facts) = walked(root, Facts::default());
        assert_eq!(first, ["k/a", "k/a/b", "k/a/b/one.yaml", "k/c"]);
        assert!(
            facts.keys().any(|(t, _)| t.starts_with("walk.")),
            "the walk is kept"
        );
        let (again, facts) = walked(root, facts);
        assert_eq!(again, first);

        std::fs::write(root.join("k/a/b/two.yaml"), "y").unwrap();
        let (grown, facts) = walked(root, facts);
        assert_eq!(
            grown,
            ["k/a", "k/a/b", "k/a/b/one.yaml", "k/a/b/two.yaml", "k/c"]
        );

        std::fs::write(root.join("k/a/.gitignore"), "one.yaml\n").unwrap();
        let (ignored, facts) = walked(root, facts);
        assert_eq!(ignored, ["k/a", "k/a/b", "k/a/b/two.yaml", "k/c"]);

        std::fs::remove_dir(root.join("k/c")).unwrap();
        let (shrunk, _) = walked(root, facts);
        assert_eq!(shrunk, ["k/a", "k/a/b", "k/a/b/two.yaml"]);
    }
}
