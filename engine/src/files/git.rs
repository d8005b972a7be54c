//! A git revision as a [`Source`]: files are read from git's objects (`git ls-tree`,
//! `git cat-file --batch`), never by checking out, stashing or touching the work tree. Every
//! git call is an argv vector.
//!
//! When two revisions are compared, the base can be laid over the head: a path that
//! `git diff` does not list has the same content on both sides, so its bytes come from the head
//! (already read) and its digest from its blob id; only the changed files are read from git.
//! git's own diff skips every unchanged subtree by its tree id, so the cost follows the diff.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{Entry, FileSet, Kind, RepoPath, Source};
use crate::error::Error;
use crate::statcache::StatKey;

/// A git repository, driven through the `git` command.
#[derive(Debug, Clone)]
pub struct GitRepo {
    top: PathBuf,
}

fn git_error(message: String, help: Option<String>) -> Error {
    Error::Environment { message, help }
}

impl GitRepo {
    /// The repository holding `dir`.
    pub fn discover(dir: &Path) -> Result<GitRepo, Error> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(|e| git_error(format!("cannot run git: {e}"), Some("install git".into())))?;
        if !out.status.success() {
            return Err(git_error(
                format!("{} is not in a git repository", dir.display()),
                Some(
                    "--against compares git revisions: run it in a clone of the homelab repo"
                        .into(),
                ),
            ));
        }
        let top = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(GitRepo {
            top: PathBuf::from(top),
        })
    }

    /// The top of the work tree.
    pub fn top(&self) -> &Path {
        &self.top
    }

    /// Runs `git ARGS` in the repository and returns its stdout.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>, Error> {
        // --no-optional-locks: a read-only look must not rewrite .git/index (or fight the
        // user's own git over index.lock).
        let out = Command::new("git")
            .arg("--no-optional-locks")
            .arg("-C")
            .arg(&self.top)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| git_error(format!("cannot run git: {e}"), None))?;
        if !out.status.success() {
            return Err(git_error(
                format!(
                    "git {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                None,
            ));
        }
        Ok(out.stdout)
    }

    fn try_run(&self, args: &[&str]) -> Option<String> {
        self.run(args)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
    }

    /// The branch and tag names, for did-you-mean.
    pub fn refs(&self) -> Vec<String> {
        self.try_run(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads",
            "refs/remotes",
            "refs/tags",
        ])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
    }

    /// Resolves a revision to a commit id: a branch, tag, sha, `origin/main`, or `A...B` for
    /// the merge base of A and B. An unknown revision is an error with the closest ref name and,
    /// in a shallow clone, how to fetch what is missing.
    pub fn resolve(&self, rev: &str) -> Result<String, Error> {
        if let Some((a, b)) = rev.split_once("...") {
            let (a, b) = (
                self.resolve(if a.is_empty() { "HEAD" } else { a })?,
                self.resolve(if b.is_empty() { "HEAD" } else { b })?,
            );
            return self.try_run(&["merge-base", &a, &b]).ok_or_else(|| {
                git_error(
                    format!("`{rev}` has no merge base"),
                    Some("fetch the full history (`fetch-depth: 0`), or compare two revisions directly".into()),
                )
            });
        }
        if rev.starts_with('-') {
            return Err(git_error(format!("`{rev}` is not a revision"), None));
        }
        if let Some(sha) = self.try_run(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ]) {
            if !sha.is_empty() {
                return Ok(sha);
            }
        }
        let shallow = self
            .try_run(&["rev-parse", "--is-shallow-repository"])
            .as_deref()
            == Some("true");
        // `origin/main~3` whose `origin/main` exists is missing history, not a typo.
        let stem = rev.split(['~', '^']).next().unwrap_or(rev);
        let stem_known = stem != rev
            && self
                .try_run(&[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    &format!("{stem}^{{commit}}"),
                ])
                .is_some_and(|s| !s.is_empty());
        let best = if stem_known {
            None
        } else {
            self.refs()
                .into_iter()
                .map(|r| {
                    (
                        strsim::jaro_winkler(rev, &r),
                        strsim::normalized_levenshtein(rev, &r),
                        r,
                    )
                })
                .filter(|(jw, lev, _)| *jw > 0.9 && *lev > 0.6)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, _, r)| r)
        };
        let mut help = Vec::new();
        if let Some(b) = &best {
            help.push(format!("did you mean `{b}`?"));
        }
        if let Some((remote, branch)) = stem
            .split_once('/')
            .filter(|_| !stem_known && best.is_none())
        {
            help.push(format!(
                "if it is a remote branch, fetch it: `git fetch {remote} {branch}`"
            ));
        }
        if shallow {
            help.push(
                "this clone is shallow and may lack it: fetch the history with `git fetch --unshallow` (or clone with `fetch-depth: 0`)"
                    .to_string(),
            );
        }
        Err(git_error(
            format!("unknown revision `{rev}`"),
            Some(if help.is_empty() {
                "`git branch -a` lists the branches".into()
            } else {
                help.join("; ")
            }),
        ))
    }

    /// The paths (relative to the top) that differ between `base` and `head` (a commit, or
    /// the work tree with its untracked files when `None`).
    pub fn changed(&self, base: &str, head: Option<&str>) -> Result<HashSet<String>, Error> {
        // Plumbing, not `git diff`: porcelain diff refreshes and rewrites .git/index. Without
        // the refresh a touched-but-identical file may be listed; it is then read from both
        // sides and found identical, which costs a read, never a wrong plan.
        let args = match head {
            Some(h) => vec![
                "diff-tree",
                "-r",
                "--name-only",
                "-z",
                "--no-renames",
                base,
                h,
                "--",
            ],
            None => vec![
                "diff-index",
                "--name-only",
                "-z",
                "--no-renames",
                base,
                "--",
            ],
        };
        let mut out: HashSet<String> = split_z(&self.run(&args)?);
        if head.is_none() {
            out.extend(split_z(&self.run(&[
                "ls-files",
                "--others",
                "--exclude-standard",
                "-z",
            ])?));
        }
        Ok(out)
    }

    /// Whether the work tree differs from HEAD (tracked changes or untracked files).
    pub fn dirty(&self) -> Result<bool, Error> {
        Ok(!self.run(&["status", "--porcelain", "-z"])?.is_empty())
    }
}

fn split_z(bytes: &[u8]) -> HashSet<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[derive(Debug, Clone)]
struct Blob {
    kind: Kind,
    oid: String,
}

#[derive(Debug)]
struct CatFile {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The files of one revision, under the homelab's folder inside the repository.
#[derive(Debug)]
pub struct GitTree {
    repo: GitRepo,
    label: String,
    rev: String,
    root: PathBuf,
    entries: BTreeMap<String, Blob>,
    cat: Mutex<Option<CatFile>>,
    /// The head this tree is laid over, and the paths that differ from it.
    over: Option<(Arc<FileSet>, HashSet<String>)>,
}

impl GitTree {
    /// The tree of commit `rev` (already resolved), for the homelab at `root` (a folder of the
    /// repository's work tree); `label` is what the user called it.
    pub fn load(repo: &GitRepo, rev: &str, label: &str, root: &Path) -> Result<GitTree, Error> {
        let prefix = prefix_of(repo, root)?;
        let listing = repo.run(&["ls-tree", "-r", "-t", "-z", "--full-tree", rev])?;
        let mut entries = BTreeMap::new();
        for rec in listing.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = String::from_utf8_lossy(rec);
            let Some((meta, path)) = rec.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let (Some(mode), Some(_type), Some(oid)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = match prefix.as_str() {
                "" => path.to_string(),
                p => match path.strip_prefix(p).and_then(|r| r.strip_prefix('/')) {
                    Some(r) => r.to_string(),
                    None => continue,
                },
            };
            let kind = match mode {
                "040000" => Kind::Dir,
                "120000" => Kind::Symlink,
                "160000" => Kind::Other,
                _ => Kind::File,
            };
            entries.insert(
                rel,
                Blob {
                    kind,
                    oid: oid.to_string(),
                },
            );
        }
        Ok(GitTree {
            repo: repo.clone(),
            label: label.to_string(),
            rev: rev.to_string(),
            root: root.to_path_buf(),
            entries,
            cat: Mutex::new(None),
            over: None,
        })
    }

    /// Lays this tree over `head`: paths in `changed` (relative to the repository top) are read
    /// from git; every other path has the head's content.
    pub fn over(mut self, head: Arc<FileSet>, changed: &HashSet<String>) -> Result<GitTree, Error> {
        let rel = self.below_root(changed)?;
        self.over = Some((head, rel));
        Ok(self)
    }

    /// Of paths relative to the repository top, the ones below the homelab root, relative to
    /// it.
    pub fn below_root(&self, changed: &HashSet<String>) -> Result<HashSet<String>, Error> {
        let prefix = prefix_of(&self.repo, &self.root)?;
        Ok(changed
            .iter()
            .filter_map(|p| match prefix.as_str() {
                "" => Some(p.clone()),
                pre => p
                    .strip_prefix(pre)
                    .and_then(|r| r.strip_prefix('/'))
                    .map(str::to_string),
            })
            .collect())
    }

    /// The blob id of every file outside `changed` (paths relative to the repository top):
    /// files both sides share, whose digests derive from the id without reading.
    pub fn unchanged_blobs(
        &self,
        changed: &HashSet<String>,
    ) -> Result<HashMap<RepoPath, String>, Error> {
        let prefix = prefix_of(&self.repo, &self.root)?;
        let top_path = |p: &str| {
            if prefix.is_empty() {
                p.to_string()
            } else {
                format!("{prefix}/{p}")
            }
        };
        Ok(self
            .entries
            .iter()
            .filter(|(p, b)| b.kind == Kind::File && !changed.contains(&top_path(p)))
            .filter_map(|(p, b)| RepoPath::new(p).ok().map(|rp| (rp, b.oid.clone())))
            .collect())
    }

    /// The commit this tree is.
    pub fn rev(&self) -> &str {
        &self.rev
    }

    fn blob(&self, oid: &str) -> Result<Vec<u8>, Error> {
        let mut guard = self.cat.lock().expect("no panics hold this lock");
        if guard.is_none() {
            let mut child = Command::new("git")
                .arg("-C")
                .arg(self.repo.top())
                .args(["cat-file", "--batch"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| git_error(format!("cannot run git cat-file: {e}"), None))?;
            let stdin = child.stdin.take().expect("piped");
            let stdout = BufReader::new(child.stdout.take().expect("piped"));
            *guard = Some(CatFile {
                child,
                stdin,
                stdout,
            });
        }
        let cat = guard.as_mut().expect("just set");
        let fail = |e: std::io::Error| git_error(format!("git cat-file: {e}"), None);
        writeln!(cat.stdin, "{oid}").map_err(fail)?;
        cat.stdin.flush().map_err(fail)?;
        let mut header = String::new();
        cat.stdout.read_line(&mut header).map_err(fail)?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                git_error(
                    format!(
                        "git cat-file: unexpected answer `{}` for {oid}",
                        header.trim()
                    ),
                    None,
                )
            })?;
        let mut data = vec![0; size + 1];
        cat.stdout.read_exact(&mut data).map_err(fail)?;
        data.pop();
        Ok(data)
    }

    /// Follows symlinks inside the tree; `None` when a link dangles or leaves the repo.
    fn resolve(&self, p: &str, depth: usize) -> Option<(String, Blob)> {
        let b = self.entries.get(p).cloned().or_else(|| {
            (p.is_empty()).then(|| Blob {
                kind: Kind::Dir,
                oid: String::new(),
            })
        })?;
        if b.kind != Kind::Symlink {
            return Some((p.to_string(), b));
        }
        if depth > 16 {
            return None;
        }
        let target = String::from_utf8(self.blob(&b.oid).ok()?).ok()?;
        let parent = RepoPath::new(p).ok()?.parent();
        let next = parent.join(&target).ok()?;
        self.resolve(next.as_str(), depth + 1)
    }

    /// The entries below `dir`, in path order, whose path relative to it passes `keep`.
    fn below(&self, dir: &RepoPath, keep: impl Fn(&str) -> bool) -> Vec<Entry> {
        let prefix = match dir.as_str() {
            "" => String::new(),
            d => format!("{d}/"),
        };
        self.entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| keep(&p[prefix.len()..]))
            .filter_map(|(p, b)| {
                RepoPath::new(p)
                    .ok()
                    .map(|path| Entry { path, kind: b.kind })
            })
            .collect()
    }

    fn changed_here(&self, p: &str) -> bool {
        self.over.as_ref().is_none_or(|(_, c)| c.contains(p))
    }
}

impl Drop for GitTree {
    fn drop(&mut self) {
        if let Ok(mut g) = self.cat.lock() {
            if let Some(mut cat) = g.take() {
                drop(cat.stdin);
                let _ = cat.child.wait();
            }
        }
    }
}

fn prefix_of(repo: &GitRepo, root: &Path) -> Result<String, Error> {
    let canon = root
        .canonicalize()
        .map_err(|e| Error::io("cannot resolve", root, e))?;
    let top = repo
        .top()
        .canonicalize()
        .map_err(|e| Error::io("cannot resolve", repo.top(), e))?;
    let rel = canon.strip_prefix(&top).map_err(|_| {
        git_error(
            format!(
                "{} is not inside the repository at {}",
                root.display(),
                top.display()
            ),
            None,
        )
    })?;
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

impl Source for GitTree {
    fn label(&self) -> String {
        format!("{} ({})", self.label, &self.rev[..self.rev.len().min(12)])
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn kind(&self, p: &RepoPath) -> Option<Kind> {
        if p.as_str().is_empty() {
            return Some(Kind::Dir);
        }
        self.entries.get(p.as_str()).map(|b| b.kind)
    }

    fn target_kind(&self, p: &RepoPath) -> Option<Kind> {
        self.resolve(p.as_str(), 0).map(|(_, b)| b.kind)
    }

    fn check_inside(&self, p: &RepoPath) -> Result<(), Error> {
        match self.resolve(p.as_str(), 0) {
            Some(_) => Ok(()),
            None if self
                .entries
                .get(p.as_str())
                .is_some_and(|b| b.kind == Kind::Symlink) =>
            {
                Err(Error::repo(
                    format!(
                        "{p} is a symlink that leads outside the repo (or nowhere) in {}",
                        self.label
                    ),
                    None,
                    Some(
                        "keep every input inside the repo; copy the file in instead of linking it"
                            .into(),
                    ),
                ))
            }
            None => Err(Error::repo(
                format!("{p} does not exist in {}", self.label),
                None,
                None,
            )),
        }
    }

    fn list(&self, dir: &RepoPath) -> Result<Vec<Entry>, Error> {
        Ok(self.below(dir, |rel| !rel.contains('/')))
    }

    fn walk(&self, dir: &RepoPath, hidden: bool) -> Result<Vec<Entry>, Error> {
        Ok(self.below(dir, |rel| {
            hidden || !rel.split('/').any(|c| c.starts_with('.'))
        }))
    }

    fn read(&self, p: &RepoPath) -> Result<(Vec<u8>, bool), Error> {
        let (real, blob) = self.resolve(p.as_str(), 0).ok_or_else(|| {
            Error::repo(format!("{p} does not exist in {}", self.label), None, None)
        })?;
        if blob.kind != Kind::File {
            return Err(Error::repo(
                format!("{p} is not a file in {}", self.label),
                None,
                None,
            ));
        }
        if let Some((head, _)) = &self.over {
            if !self.changed_here(&real) {
                if let Ok(rp) = RepoPath::new(&real) {
                    return Ok((head.read(&rp)?.to_vec(), false));
                }
            }
        }
        Ok((self.blob(&blob.oid)?, true))
    }

    fn stat_key(&self, _p: &RepoPath) -> Result<Option<StatKey>, Error> {
        Ok(None)
    }
}
