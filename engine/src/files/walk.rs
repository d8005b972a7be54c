//! The work tree's walk, by hand: each folder read once, for the walk and for its listing
//! (what a loader's observation of the folder needs: see [`super::Source::walk_listing`]).
//!
//! It keeps the `ignore` crate's rules, as its `WalkBuilder` applied them for hl (only
//! `.gitignore` files, `require_git(false)`, no symlinks followed, names sorted): the nearest
//! `.gitignore` with a verdict on a path decides, an ignored folder is not entered, a hidden
//! name is skipped unless asked for or re-included by a `.gitignore`, a folder holding `.git`
//! is no boundary, a pattern that does not parse is passed over in a walked folder (and an
//! error above the walk's start), and a walk that starts at a link into the repo takes the
//! rules above where the link leads. It differs in one way: `.gitignore` files above the repo
//! root are not read (git does not read them; the crate read them up to `/`, so a file outside
//! the repo could change a walk without the load cache, which records only the repo's,
//! noticing). What it saves: a first plan of a large homelab walked 6,000 folders with the
//! crate, then listed each again for its observation, and probed each for a `.gitignore` that
//! its listing already showed absent.

use std::path::Path;
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::{Entry, Kind, OnListed, RepoPath};
use crate::error::Error;

/// One folder's say in the walk: its `.gitignore`, if it has one.
pub(super) type Level = Option<Arc<Gitignore>>;

/// The level of folder `abs`, from whether it holds a `.gitignore`. With `strict`, a pattern
/// that does not parse is an error (as the crate reported one above a walk's start); without,
/// the lines that parse apply and the others are passed over (as the crate did in the folders
/// it walked). A line that is not UTF-8 is passed over either way, and an unreadable file is
/// none, as with the crate.
pub(super) fn level(abs: &Path, has_ignore: bool, strict: bool) -> Result<Level, Error> {
    if !has_ignore {
        return Ok(None);
    }
    let path = abs.join(".gitignore");
    let mut builder = GitignoreBuilder::new(abs);
    builder
        .case_insensitive(false)
        .expect("case sensitivity is always accepted");
    let fail =
        |e: ignore::Error| Error::io("cannot walk", &path, std::io::Error::other(e.to_string()));
    if let Some(e) = builder.add(&path) {
        if strict && !e.is_io() {
            return Err(fail(e));
        }
    }
    let gi = match builder.build() {
        Ok(gi) => gi,
        Err(e) if strict => return Err(fail(e)),
        Err(_) => return Ok(None),
    };
    Ok((!gi.is_empty()).then(|| Arc::new(gi)))
}

/// What the levels say of `path`, innermost first: the first `.gitignore` with a verdict
/// decides.
fn verdict(levels: &[Level], path: &Path, is_dir: bool) -> Match<()> {
    for gi in levels.iter().rev().flatten() {
        match gi.matched(path, is_dir) {
            Match::Ignore(_) => return Match::Ignore(()),
            Match::Whitelist(_) => return Match::Whitelist(()),
            Match::None => {}
        }
    }
    Match::None
}

/// A walk under way.
pub(super) struct Walk<'a> {
    pub hidden: bool,
    /// The folders above the one being read, outermost first.
    pub levels: Vec<Level>,
    pub out: Vec<Entry>,
    pub before: &'a mut dyn FnMut(&RepoPath),
    pub listed: OnListed<'a>,
}

impl Walk<'_> {
    /// Reads folder `dir` (at `abs`) and walks on into its folders, depth first, in name order.
    pub fn folder(&mut self, dir: &RepoPath, abs: &Path) -> Result<(), Error> {
        (self.before)(dir);
        let names = std::fs::read_dir(abs)
            .and_then(super::worktree::names)
            .map_err(|e| Error::io("cannot walk", abs, e))?;
        (self.listed)(dir, &names);
        let has_ignore = names
            .iter()
            .any(|(n, k)| n == ".gitignore" && *k != Kind::Dir);
        self.levels.push(level(abs, has_ignore, false)?);
        for (name, kind) in &names {
            let child = abs.join(name);
            // A hidden name is skipped only where no `.gitignore` has a verdict on it: one
            // that re-includes it (`!.sops.yaml`) keeps it, as with the crate.
            let skip = match verdict(&self.levels, &child, *kind == Kind::Dir) {
                Match::Ignore(()) => true,
                Match::Whitelist(()) => false,
                Match::None => !self.hidden && name.starts_with('.'),
            };
            if skip {
                continue;
            }
            let Ok(path) = dir.join(name) else {
                continue;
            };
            self.out.push(Entry {
                path: path.clone(),
                kind: *kind,
            });
            if *kind == Kind::Dir {
                self.folder(&path, &child)?;
            }
        }
        self.levels.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::worktree::Worktree;
    use super::super::Source;
    use super::*;
    use std::fs;

    /// The walk as the `ignore` crate made it (hl's walk before this module), the oracle.
    fn crate_walk(root: &Path, dir: &str, hidden: bool) -> Vec<(String, Kind)> {
        crate_walk_or_error(root, dir, hidden).expect("the crate walks")
    }

    /// The crate's walk; `None` where it gave an error (a `.gitignore` above the start with a
    /// pattern that does not parse).
    fn crate_walk_or_error(root: &Path, dir: &str, hidden: bool) -> Option<Vec<(String, Kind)>> {
        let abs = root.join(dir);
        let walker = ignore::WalkBuilder::new(&abs)
            .standard_filters(false)
            .hidden(!hidden)
            .parents(true)
            .git_ignore(true)
            .require_git(false)
            .follow_links(false)
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        let mut out = Vec::new();
        for e in walker {
            let e = e.ok()?;
            if e.depth() == 0 {
                continue;
            }
            let rel = e.path().strip_prefix(root).expect("below the root");
            let t = e.file_type().expect("a type");
            out.push((
                rel.to_str().expect("utf-8").to_string(),
                super::super::worktree::kind_of(t),
            ));
        }
        Some(out)
    }

    fn put(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().expect("a parent")).expect("folders");
        fs::write(p, text).expect("a file");
    }

    /// A tree with every rule the walk keeps: nested `.gitignore` files that ignore and
    /// re-include, folder-only and anchored patterns, `**`, hidden names (one re-included),
    /// an ignored folder holding a re-included file, symlinks to a folder and a file, a nested
    /// repository (no boundary to the outer `.gitignore`, as with the crate), a pattern that
    /// does not parse and a line that is not UTF-8 (the other lines still apply), and a link
    /// to a folder whose parent's `.gitignore` applies when a walk starts at the link.
    fn tricky() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = dir.path();
        fs::create_dir_all(r.join(".git")).expect(".git");
        put(
            r,
            ".gitignore",
            "*.log\nbuild/\n/top.txt\n**/deep/*.tmp\nsecret*\n!secret.keep\n*.md\n!.keep-me\n",
        );
        for f in [
            "top.txt",
            "a/top.txt",
            "a/x.log",
            "a/keep.log",
            "a/b/c.yaml",
            "a/b/deep/z.tmp",
            "a/b/deep/z.yaml",
            "build/out.yaml",
            "a/build/out.yaml",
            "a/build.yaml",
            "secret1",
            "a/secret.keep",
            "a/secret2",
            ".hidden/h.yaml",
            "a/.env",
            "notes.md",
            "a/README.md",
            "nested/inner.md",
            "nested/x.log",
            "nested/sub/y.yaml",
            "z.yaml",
            ".keep-me",
            "a/secret.env",
            "a/b/deep/bad.tmp2",
            "a/b/deep/fine.yaml",
            "apps/x/svc/a.bak",
            "apps/x/svc/b.yaml",
        ] {
            put(r, f, "x\n");
        }
        fs::write(
            r.join("a/.gitignore"),
            b"!keep.log\n/c.yaml\nb/c.yaml\n# caf\xe9: not UTF-8\nsecret.env\n",
        )
        .expect("a/.gitignore");
        put(r, "a/b/deep/.gitignore", "[z-a]\n*.tmp2\n");
        put(r, "apps/x/.gitignore", "*.bak\n");
        std::os::unix::fs::symlink("apps/x/svc", r.join("svc")).expect("a link");
        put(r, "a/b/.gitignore", "!*.tmp\n");
        put(r, "build/.gitignore", "!out.yaml\n");
        fs::create_dir_all(r.join("nested/.git")).expect("nested .git");
        put(r, "nested/.gitignore", "*.yaml\n!sub/\n");
        std::os::unix::fs::symlink("a", r.join("link-to-a")).expect("a link");
        std::os::unix::fs::symlink("z.yaml", r.join("link-to-z")).expect("a link");
        dir
    }

    /// The hand-made walk gives what the crate's walk gave, entry for entry and in its
    /// order, from the root and from folders below it, with and without hidden names.
    #[test]
    fn the_walk_is_the_crates_walk() {
        let dir = tricky();
        let root = dir.path();
        let tree = Worktree::new(root).expect("a work tree");
        for start in [
            "",
            "a",
            "a/b",
            "nested",
            "nested/sub",
            ".hidden",
            "build",
            "svc",
        ] {
            for hidden in [false, true] {
                let p = RepoPath::new(start).expect("a path");
                let ours: Vec<(String, Kind)> = tree
                    .walk(&p, hidden)
                    .expect("walks")
                    .into_iter()
                    .map(|e| (e.path.as_str().to_string(), e.kind))
                    .collect();
                assert_eq!(
                    ours,
                    crate_walk(root, start, hidden),
                    "walk of `{start}`, hidden {hidden}"
                );
            }
        }
        // And not a walk that finds nothing: the rules above did keep and drop files.
        let all = tree
            .walk(&RepoPath::new("").expect("root"), false)
            .expect("walks");
        let names: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        for kept in [
            "a/keep.log",
            "a/secret.keep",
            "a/b/deep/z.tmp",
            "nested/sub",
            ".keep-me",
            "a/b/deep/fine.yaml",
        ] {
            assert!(names.contains(&kept), "{kept} in {names:?}");
        }
        for dropped in [
            "top.txt",
            "a/x.log",
            "build/out.yaml",
            "a/b/c.yaml",
            "secret1",
            "notes.md",
            "nested/inner.md",
            "nested/sub/y.yaml",
            "a/secret.env",
            "a/b/deep/bad.tmp2",
        ] {
            assert!(!names.contains(&dropped), "{dropped} in {names:?}");
        }
        let svc = tree
            .walk(&RepoPath::new("svc").expect("a path"), false)
            .expect("walks");
        let svc: Vec<&str> = svc.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            svc,
            ["svc/b.yaml"],
            "apps/x/.gitignore applies through the link"
        );
    }

    /// Each folder read is told with every entry it holds, hidden and ignored ones included,
    /// right after the folder itself was told to be read next.
    #[test]
    fn each_folder_read_is_told_with_all_its_entries() {
        let dir = tricky();
        let tree = Worktree::new(dir.path()).expect("a work tree");
        let mut order = Vec::new();
        let mut lists = Vec::new();
        let before = std::cell::RefCell::new(Vec::new());
        tree.walk_listing(
            &RepoPath::new("a").expect("a path"),
            false,
            &mut |d| before.borrow_mut().push(d.as_str().to_string()),
            &mut |d, names| {
                order.push(d.as_str().to_string());
                lists.push(names.to_vec());
            },
        )
        .expect("walks");
        assert_eq!(
            order,
            ["a", "a/b", "a/b/deep"],
            "ignored `a/build` is not read"
        );
        assert_eq!(*before.borrow(), order);
        let names: Vec<&str> = lists[0].iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ".env",
                ".gitignore",
                "README.md",
                "b",
                "build",
                "build.yaml",
                "keep.log",
                "secret.env",
                "secret.keep",
                "secret2",
                "top.txt",
                "x.log"
            ]
        );
        let listing = tree.listing_digest(&RepoPath::new("a").expect("a path"));
        let told =
            super::super::cutoff::names_digest(lists[0].iter().map(|(n, k)| (n.as_str(), *k)));
        assert_eq!(listing, Some(told), "the digest its observation would make");
    }

    /// Random trees with random `.gitignore` files (patterns that ignore, re-include, anchor,
    /// match folders only, use `**`, touch hidden names, and some that do not parse), walked
    /// from random folders with and without hidden names: the hand-made walk gives what the
    /// crate's walk gave, or fails where it failed. `HL_WALK_ROUNDS` runs more trees.
    #[test]
    fn random_trees_walk_as_the_crate_walks() {
        const NAMES: [&str; 8] = ["a", "b", "deep", "build", ".h", "sub", "x", "keep"];
        const EXTS: [&str; 6] = [".yaml", ".log", ".tmp", ".md", "", ".bak"];
        const PATTERNS: [&str; 24] = [
            "*.log",
            "!keep.log",
            "build/",
            "/top.yaml",
            "**/deep/*.tmp",
            "!*.tmp",
            "a/",
            "!.h",
            ".h*",
            "*.md",
            "!b.md",
            "d*/",
            "sub/x.yaml",
            "# a comment",
            "",
            "\\#x",
            "x.yaml  ",
            "/a/b/",
            "!build/",
            "*.bak",
            "!x*",
            "keep*",
            "[z-a]",
            "b/**",
        ];
        let rounds: u64 = std::env::var("HL_WALK_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(60);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut compared = 0;
        for round in 0..rounds {
            let dir = tempfile::tempdir().expect("temp dir");
            let root = dir.path();
            fs::create_dir_all(root.join(".git")).expect(".git");
            let mut folders = vec![String::new()];
            for _ in 0..12 {
                let parent = folders[next(folders.len())].clone();
                if parent.matches('/').count() >= 3 {
                    continue;
                }
                let name = NAMES[next(NAMES.len())];
                let f = if parent.is_empty() {
                    name.to_string()
                } else {
                    format!("{parent}/{name}")
                };
                fs::create_dir_all(root.join(&f)).expect("a folder");
                folders.push(f);
            }
            for folder in &folders {
                for _ in 0..next(5) {
                    let name = format!("{}{}", NAMES[next(NAMES.len())], EXTS[next(EXTS.len())]);
                    let p = root.join(folder).join(&name);
                    if !p.is_dir() {
                        fs::write(p, "x\n").expect("a file");
                    }
                }
                if next(3) == 0 {
                    let lines: Vec<&str> = (0..1 + next(4))
                        .map(|_| PATTERNS[next(PATTERNS.len())])
                        .collect();
                    let p = root.join(folder).join(".gitignore");
                    if !p.is_dir() {
                        fs::write(p, lines.join("\n")).expect("a .gitignore");
                    }
                }
            }
            let tree = Worktree::new(root).expect("a work tree");
            for _ in 0..3 {
                let start = folders[next(folders.len())].clone();
                let hidden = next(2) == 0;
                let p = RepoPath::new(&start).expect("a path");
                let ours = tree.walk(&p, hidden).ok().map(|entries| {
                    entries
                        .into_iter()
                        .map(|e| (e.path.as_str().to_string(), e.kind))
                        .collect::<Vec<_>>()
                });
                assert_eq!(
                    ours,
                    crate_walk_or_error(root, &start, hidden),
                    "round {round}: walk of `{start}`, hidden {hidden}, in {}",
                    dir.keep().display()
                );
                compared += 1;
            }
        }
        assert_eq!(compared, rounds * 3);
    }
}
