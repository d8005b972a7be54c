//! Early cutoff for loaders: a path whose metadata moved may still give a loader what it gave
//! last time, and then the loader need not run again (Shake and Salsa call it backdating).
//!
//! - A file the loader read only through derivations ([`FileSet::derive`]) holds when each of
//!   those derivations makes the same facts of its new bytes. Bumping an image tag or a
//!   replica count in one manifest of a tree of 25,000 changes none of the facts the k8s
//!   loader takes from it (is it a Flux Kustomization, is it SOPS-encrypted), so the loader
//!   does not run: the file is read and derived again, and the plan sees the edit through the
//!   file's digest, as it sees any input's.
//! - A folder holds when its entries (names and kinds) are what they were: editors, `sed -i`
//!   and `git checkout` replace a file by renaming a new one over it, which moves the folder's
//!   metadata without changing what a listing or a walk of it finds.
//!
//! Anything else that moved (a file read whole, a kind that changed) means the loader runs.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Depth, FileSet, Seen};
use crate::error::Error;
use crate::repopath::RepoPath;

/// What a loader makes of one file's bytes, under a tag naming it and its version (change the
/// tag when what it derives changes). It is given the bytes and the path (for messages) and
/// nothing else, so that its facts can be remembered across runs and made again from new bytes
/// without the loader.
pub struct Derivation<T> {
    /// Names the derivation and its version, e.g. `k8s.file.v1`.
    pub tag: &'static str,
    /// The derivation itself.
    pub derive: fn(&[u8], &RepoPath) -> Result<T, Error>,
    /// The facts' type.
    pub facts: PhantomData<fn() -> T>,
    /// The part of the facts made this run that is kept for the rest of it, for
    /// [`crate::FileSet::derived`] (realize reading what discovery made of the same bytes).
    pub kept: Option<fn(&T) -> T>,
}

impl<T> Derivation<T> {
    /// A derivation named `tag`.
    pub const fn new(tag: &'static str, derive: fn(&[u8], &RepoPath) -> Result<T, Error>) -> Self {
        Derivation {
            tag,
            derive,
            facts: PhantomData,
            kept: None,
        }
    }

    /// The same, with `part` of its facts kept for the rest of the run (see
    /// [`Derivation::kept`]).
    pub const fn kept(self, part: fn(&T) -> T) -> Self {
        Derivation {
            kept: Some(part),
            ..self
        }
    }
}

/// A derivation with its facts' type erased, so a cutoff can make them again by tag.
pub trait Rederive: Sync {
    /// Its tag.
    fn tag(&self) -> &'static str;
    /// The digest of the facts made of `bytes` as a remembered fact holds them, or `None` when
    /// the bytes do not derive (an error: the loader must run and report it).
    fn facts_digest(&self, bytes: &[u8], p: &RepoPath) -> Option<[u8; 32]>;
}

impl<T: Serialize + DeserializeOwned> Rederive for Derivation<T> {
    fn tag(&self) -> &'static str {
        self.tag
    }

    fn facts_digest(&self, bytes: &[u8], p: &RepoPath) -> Option<[u8; 32]> {
        let value = (self.derive)(bytes, p).ok()?;
        serde_json::to_vec(&value).ok().map(|j| facts_digest(&j))
    }
}

/// Whether each derivation, by tag, makes facts of `bytes` with the digest it made before; a
/// derivation not in `derivations` (renamed since) does not.
fn same_facts<'a>(
    mut tags: impl Iterator<Item = (&'a str, &'a [u8; 32])>,
    bytes: &[u8],
    p: &RepoPath,
    derivations: &[&dyn Rederive],
) -> bool {
    tags.all(|(tag, digest)| {
        derivations
            .iter()
            .find(|d| d.tag() == tag)
            .and_then(|d| d.facts_digest(bytes, p))
            .is_some_and(|d| d == *digest)
    })
}

/// The digest of a fact's JSON.
pub(super) fn facts_digest(json: &[u8]) -> [u8; 32] {
    *blake3::hash(json).as_bytes()
}

/// What lets a path that moved still hold for the loader that observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cutoff {
    /// A file read only through these derivations: (tag, digest of the facts).
    Derived(Vec<(String, [u8; 32])>),
    /// A folder with these entries: the digest of their names and kinds.
    Listing([u8; 32]),
}

/// What a loader depended on: every path as it was, and the cutoffs of those that may move
/// without changing what the loader found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observations {
    /// Every path, as it was.
    pub seen: Vec<(RepoPath, Seen)>,
    /// Cutoffs, by path (sorted).
    pub cutoffs: Vec<(RepoPath, Cutoff)>,
}

impl Observations {
    /// The cutoff of a path.
    pub fn cutoff(&self, p: &RepoPath) -> Option<Cutoff> {
        self.cutoffs
            .binary_search_by(|(q, _)| q.cmp(p))
            .ok()
            .map(|j| self.cutoffs[j].1.clone())
    }
}

impl FileSet {
    /// The positions in `seen` of the paths that are not as they were (statting every path,
    /// in parallel; the stats are kept for the rest of the run).
    pub fn moved(&self, seen: &[(RepoPath, Seen)]) -> Vec<usize> {
        self.stat_all(seen)
            .into_iter()
            .enumerate()
            .filter(|(_, same)| !same)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether what a loader observed still holds although the paths at `moved` (from
    /// [`FileSet::moved`]) moved, each by its cutoff (`cutoff` gives a path's); then those
    /// paths as they are now (by position in `seen`), to record in place of the old. `None`
    /// when any moved path has no cutoff that holds, or is racy (it may still be changing:
    /// see [`FileSet::observations`]).
    pub fn cut_off(
        &self,
        seen: &[(RepoPath, Seen)],
        moved: &[usize],
        cutoff: impl Fn(&RepoPath) -> Option<Cutoff>,
        derivations: &[&dyn Rederive],
    ) -> Option<Vec<(usize, Seen)>> {
        let mut now = Vec::with_capacity(moved.len());
        for &i in moved {
            let (p, _) = &seen[i];
            let cut = cutoff(p)?;
            let s = self.seen_now(p)?;
            if s.key.is_none_or(|k| k.changed_ns() >= self.run.started) {
                return None;
            }
            let holds = match cut {
                Cutoff::Derived(tags) if s.kind == 1 => {
                    let bytes = self.load(p).ok()?;
                    same_facts(
                        tags.iter().map(|(t, d)| (t.as_str(), d)),
                        &bytes,
                        p,
                        derivations,
                    )
                }
                Cutoff::Listing(digest) if s.kind == 2 => {
                    self.listing_digest(p).is_some_and(|d| d == digest)
                }
                _ => false,
            };
            if !holds {
                return None;
            }
            now.push((i, s));
        }
        Some(now)
    }

    /// The digest of a folder's entries, names and kinds.
    pub(super) fn listing_digest(&self, dir: &RepoPath) -> Option<[u8; 32]> {
        self.run.source.listing_digest(dir)
    }
}

/// The digest of a folder's entries (a listing, in its order), names and kinds.
pub(super) fn entries_digest(entries: &[super::Entry]) -> [u8; 32] {
    names_digest(entries.iter().map(|e| (e.path.file_name(), e.kind)))
}

/// [`entries_digest`] of (name, kind) pairs in name order.
pub(super) fn names_digest<'n>(entries: impl Iterator<Item = (&'n str, super::Kind)>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for (name, kind) in entries {
        h.update(name.as_bytes());
        h.update(&[0, kind as u8, b'\n']);
    }
    *h.finalize().as_bytes()
}

/// How a loader depended on one path, whatever the source: what tells whether the loader
/// would find the same in another revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependence {
    /// Its kind alone.
    Kind,
    /// What these derivations made of its bytes: (tag, digest of the facts).
    Derived(Vec<(&'static str, [u8; 32])>),
    /// Its content (a file read whole) or entries (a folder listed or walked).
    Content,
}

impl FileSet {
    /// Every path the loaders watched since [`FileSet::watch`] depended on, and how (whatever
    /// the source: a revision's files too).
    pub fn dependencies(&self) -> Option<Vec<(RepoPath, Dependence)>> {
        Some(
            self.watched_sorted()?
                .into_iter()
                .map(|(p, w)| {
                    let d = match w.depth {
                        Depth::Kind => Dependence::Kind,
                        Depth::Derived => Dependence::Derived(w.derived),
                        Depth::Content => Dependence::Content,
                    };
                    (p, d)
                })
                .collect(),
        )
    }

    /// Whether a loader that found something in these files, depending on them as `deps`
    /// says, would find the same in `other` (another revision): every path of the same kind
    /// in both, every file read whole the same, every file read through derivations giving
    /// the same facts, every folder it listed or walked with the same entries. `same(p)` says
    /// a file is known to have the same content in both (git says so) without reading it.
    pub fn holds_in(
        &self,
        other: &FileSet,
        deps: &[(RepoPath, Dependence)],
        same: impl Fn(&RepoPath) -> bool + Sync,
        derivations: &[&dyn Rederive],
    ) -> bool {
        use rayon::prelude::*;
        deps.par_iter().all(|(p, dep)| {
            // A file the same on both sides is the same kind on both: no stat needed.
            let other_kind = other.run.source.kind(p);
            if other_kind == Some(super::Kind::File) && same(p) {
                return true;
            }
            let kind = self.run.source.kind(p);
            if kind != other_kind
                || self.run.source.target_kind(p) != other.run.source.target_kind(p)
            {
                return false;
            }
            match (dep, self.run.source.target_kind(p)) {
                (Dependence::Kind, _) | (_, None) => true,
                (_, Some(super::Kind::Dir)) => {
                    self.listing_digest(p).is_some()
                        && self.listing_digest(p) == other.listing_digest(p)
                }
                // Git's word covers a regular file's bytes, not a symlink's target.
                (_, Some(_)) if kind == Some(super::Kind::File) && same(p) => true,
                (Dependence::Derived(tags), Some(_)) => other.load(p).is_ok_and(|bytes| {
                    same_facts(tags.iter().map(|(t, d)| (*t, d)), &bytes, p, derivations)
                }),
                (Dependence::Content, Some(_)) => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(b: &[u8], _: &RepoPath) -> Result<usize, Error> {
        Ok(b.split(|c| *c == b'\n').count())
    }

    static LINES: Derivation<usize> = Derivation::new("test.lines.v1", lines);

    /// Records what a "loader" that counts the lines of `a` and lists `d` saw.
    fn load(root: &std::path::Path) -> (FileSet, Observations) {
        let files = FileSet::new(root).unwrap();
        files.watch();
        files
            .derive(&LINES, &RepoPath::new("d/a").unwrap())
            .unwrap();
        files.list(&RepoPath::new("d").unwrap()).unwrap();
        let seen = files.observations().expect("nothing racy");
        (files, seen)
    }

    fn holds(root: &std::path::Path, o: &Observations) -> bool {
        let files = FileSet::new(root).unwrap();
        let moved = files.moved(&o.seen);
        moved.is_empty()
            || files
                .cut_off(&o.seen, &moved, |p| o.cutoff(p), &[&LINES])
                .is_some()
    }

    /// Lets the last edit become older than the next run's start (not racy), as an edit made
    /// before a plan is.
    fn aged(root: &std::path::Path) {
        crate::time::settle(&root.join("d/a"));
        crate::time::settle(&root.join("d"));
        crate::time::settle(&root.join("a"));
    }

    #[test]
    fn an_edit_that_derives_the_same_facts_holds_and_one_that_does_not_moves() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), "1\n2\n").unwrap();
        aged(root);
        let (_, o) = load(root);
        assert!(
            o.cutoffs.len() == 2,
            "the file and the folder: {:?}",
            o.cutoffs
        );

        std::fs::write(root.join("d/a"), "3\n4\n").unwrap();
        aged(root);
        assert!(
            holds(root, &o),
            "same number of lines: the loader need not run"
        );

        std::fs::write(root.join("d/a"), "3\n4\n5\n").unwrap();
        aged(root);
        assert!(!holds(root, &o), "one more line: it must");
    }

    #[test]
    fn a_file_replaced_by_a_rename_holds_and_a_new_entry_moves() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), "1\n").unwrap();
        aged(root);
        let (_, o) = load(root);

        // As an editor saves: a new file renamed over the old one (the folder's mtime moves).
        std::fs::write(root.join("d/.a.swp"), "9\n").unwrap();
        std::fs::rename(root.join("d/.a.swp"), root.join("d/a")).unwrap();
        aged(root);
        assert!(holds(root, &o), "same entries, same facts");

        std::fs::write(root.join("d/b"), "").unwrap();
        aged(root);
        assert!(!holds(root, &o), "a new entry in a listed folder");
    }

    #[test]
    fn a_file_read_whole_has_no_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "1\n").unwrap();
        aged(root);
        let files = FileSet::new(root).unwrap();
        files.watch();
        let a = RepoPath::new("a").unwrap();
        files.derive(&LINES, &a).unwrap();
        files.read(&a).unwrap();
        let o = files.observations().unwrap();
        assert!(o.cutoffs.is_empty(), "{:?}", o.cutoffs);
        std::fs::write(root.join("a"), "2\n").unwrap();
        aged(root);
        assert!(!holds(root, &o));
    }

    /// A file whose derivation failed (a broken YAML file no node reads) is depended on
    /// whole: whatever it becomes is seen.
    #[test]
    fn a_file_that_did_not_derive_has_no_cutoff() {
        static STRICT: Derivation<usize> = Derivation::new("test.strict.v1", |b, _| {
            if b.starts_with(b"bad") {
                Err(Error::repo("does not derive".to_string(), None, None))
            } else {
                Ok(b.len())
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), "bad").unwrap();
        crate::time::settle(&root.join("a"));
        let files = FileSet::new(root).unwrap();
        files.watch();
        assert!(files.derive(&STRICT, &RepoPath::new("a").unwrap()).is_err());
        let o = files.observations().unwrap();
        assert!(o.cutoffs.is_empty(), "{:?}", o.cutoffs);
        std::fs::write(root.join("a"), "bad!").unwrap();
        crate::time::settle(&root.join("a"));
        let files = FileSet::new(root).unwrap();
        let moved = files.moved(&o.seen);
        assert!(!moved.is_empty());
        assert!(files
            .cut_off(&o.seen, &moved, |p| o.cutoff(p), &[&STRICT])
            .is_none());
    }

    /// A folder asked only whether it is one, that also stands for a file absent below it:
    /// the file appearing is seen.
    #[test]
    fn a_file_appearing_in_a_folder_asked_only_its_kind_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("h")).unwrap();
        crate::time::settle(&root.join("h"));
        let files = FileSet::new(root).unwrap();
        files.watch();
        assert!(files.is_dir(&RepoPath::new("h").unwrap()));
        assert!(!files.is_file(&RepoPath::new("h/machine.yaml").unwrap()));
        let o = files.observations().unwrap();
        std::fs::write(root.join("h/machine.yaml"), "x").unwrap();
        crate::time::settle(&root.join("h"));
        assert!(!holds(root, &o), "{:?}", o.seen);
    }

    /// An entry added to a folder after the loader listed it, during the run: what the loader
    /// saw is not recorded as the folder's entries.
    #[test]
    fn a_folder_changed_during_the_run_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a"), "1").unwrap();
        crate::time::settle(&root.join("d"));
        let d = RepoPath::new("d").unwrap();
        let files = FileSet::new(root).unwrap();
        // Statted first (as the load cache's check does), then listed by the loader.
        let old = vec![(d.clone(), files.run.source.seen(&d).unwrap())];
        files.moved(&old);
        files.watch();
        assert_eq!(files.list(&d).unwrap().len(), 1);
        std::fs::write(root.join("d/b"), "2").unwrap();
        assert!(files.observations().is_none());
    }
}
