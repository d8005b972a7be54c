//! The work tree as a [`Source`]: plain files on disk, walked with the `ignore` crate so that
//! what `.gitignore` ignores (runtime data, secrets kept out of git) is never an input.

use std::path::{Path, PathBuf};

use super::walk::{self, Level, Walk};
use super::{Entry, Kind, OnListed, RepoPath, Source};
use crate::error::Error;
use crate::statcache::StatKey;

/// The files on disk under a root.
#[derive(Debug)]
pub struct Worktree {
    root: PathBuf,
    /// The root, open: files are opened and statted relative to it, so the kernel walks each
    /// path from the repo down, not from `/` (a fifth of a path's lookup in a repo a few
    /// folders deep, and most of the system time of a first plan is lookups).
    #[cfg(target_os = "linux")]
    dir: std::os::fd::OwnedFd,
    canon_root: PathBuf,
    /// Folders already resolved: whether each lies inside the repo. Resolving a path costs a
    /// readlink per component; the files of one folder share it.
    folders: std::sync::Mutex<std::collections::HashMap<RepoPath, bool>>,
    /// The `.gitignore` of each folder above a walk's start, looked up once: every walk below
    /// a folder shares it.
    levels: std::sync::Mutex<std::collections::HashMap<RepoPath, Level>>,
}

impl Worktree {
    /// The work tree at `root`.
    pub fn new(root: &Path) -> Result<Worktree, Error> {
        let canon_root = root
            .canonicalize()
            .map_err(|e| Error::io("cannot open repo", root, e))?;
        #[cfg(target_os = "linux")]
        let dir = {
            use rustix::fs::{Mode, OFlags};
            rustix::fs::open(
                root,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("cannot open repo", root, e.into()))?
        };
        Ok(Worktree {
            root: root.to_path_buf(),
            #[cfg(target_os = "linux")]
            dir,
            canon_root,
            folders: std::sync::Mutex::default(),
            levels: std::sync::Mutex::default(),
        })
    }

    fn abs(&self, p: &RepoPath) -> PathBuf {
        if p.as_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(p.as_str())
        }
    }

    /// `p` relative to [`Worktree::dir`].
    #[cfg(target_os = "linux")]
    fn rel<'a>(&self, p: &'a RepoPath) -> &'a str {
        match p.as_str() {
            "" => ".",
            rel => rel,
        }
    }

    /// The levels of the folders above `dir` inside the repo, the root first.
    fn levels_above(&self, dir: &RepoPath) -> Result<Vec<Level>, Error> {
        let mut folders = Vec::new();
        let mut up = dir.clone();
        while !up.as_str().is_empty() {
            up = up.parent();
            folders.push(up.clone());
        }
        folders.reverse();
        let mut out = Vec::with_capacity(folders.len());
        for folder in folders {
            let known = self
                .levels
                .lock()
                .expect("no panics hold this lock")
                .get(&folder)
                .cloned();
            let level = match known {
                Some(level) => level,
                None => {
                    // A folder above a walk is not listed: its `.gitignore` is probed.
                    let abs = self.abs(&folder);
                    let has_ignore =
                        std::fs::metadata(abs.join(".gitignore")).is_ok_and(|m| !m.is_dir());
                    let level = walk::level(&abs, has_ignore, true)?;
                    self.levels
                        .lock()
                        .expect("no panics hold this lock")
                        .insert(folder, level.clone());
                    level
                }
            };
            out.push(level);
        }
        Ok(out)
    }
}

/// A folder's entries; `None` where there is no such folder (an absent one lists empty).
fn read_dir(abs: &Path) -> std::io::Result<Option<std::fs::ReadDir>> {
    match std::fs::read_dir(abs) {
        Ok(rd) => Ok(Some(rd)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A folder's entries as (name, kind), sorted by name; names that are not UTF-8 are left out.
pub(super) fn names(rd: std::fs::ReadDir) -> std::io::Result<Vec<(String, Kind)>> {
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry?;
        let (Ok(name), Ok(t)) = (entry.file_name().into_string(), entry.file_type()) else {
            continue;
        };
        names.push((name, kind_of(t)));
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

pub(super) fn kind_of(t: std::fs::FileType) -> Kind {
    if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

/// [`kind_of`] a mode as `stat(2)` gives it.
#[cfg(target_os = "linux")]
fn kind_of_mode(mode: u32) -> Kind {
    use rustix::fs::FileType;
    match FileType::from_raw_mode(mode) {
        FileType::Symlink => Kind::Symlink,
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        _ => Kind::Other,
    }
}

impl Source for Worktree {
    fn label(&self) -> String {
        "the work tree".into()
    }

    fn root(&self) -> &Path {
        &self.root
    }

    #[cfg(target_os = "linux")]
    fn kind(&self, p: &RepoPath) -> Option<Kind> {
        let st = rustix::fs::statat(
            &self.dir,
            self.rel(p),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
        st.ok().map(|st| kind_of_mode(st.st_mode))
    }

    #[cfg(not(target_os = "linux"))]
    fn kind(&self, p: &RepoPath) -> Option<Kind> {
        std::fs::symlink_metadata(self.abs(p))
            .ok()
            .map(|m| kind_of(m.file_type()))
    }

    // Follows links wherever they lead, as the filesystem does; reading one that leaves the
    // repo is refused by `check_inside`, with a message that says so.
    #[cfg(target_os = "linux")]
    fn target_kind(&self, p: &RepoPath) -> Option<Kind> {
        let st = rustix::fs::statat(&self.dir, self.rel(p), rustix::fs::AtFlags::empty());
        st.ok().map(|st| kind_of_mode(st.st_mode))
    }

    #[cfg(not(target_os = "linux"))]
    fn target_kind(&self, p: &RepoPath) -> Option<Kind> {
        std::fs::metadata(self.abs(p))
            .ok()
            .map(|m| kind_of(m.file_type()))
    }

    fn check_inside(&self, p: &RepoPath) -> Result<(), Error> {
        let abs = self.abs(p);
        // A path that is not itself a symlink is inside when its folder is: resolve the folder
        // once for all its files.
        let own_link = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink());
        if !own_link && !p.as_str().is_empty() {
            let dir = p.parent();
            let known = self
                .folders
                .lock()
                .expect("no panics hold this lock")
                .get(&dir)
                .copied();
            let inside = match known {
                Some(v) => v,
                None => {
                    let v = self
                        .abs(&dir)
                        .canonicalize()
                        .is_ok_and(|r| r.starts_with(&self.canon_root));
                    self.folders
                        .lock()
                        .expect("no panics hold this lock")
                        .insert(dir, v);
                    v
                }
            };
            if inside {
                return Ok(());
            }
        }
        match abs.canonicalize() {
            Ok(real) if real.starts_with(&self.canon_root) => Ok(()),
            Ok(real) => Err(Error::repo(
                format!("{p} is a symlink to {}, outside the repo", real.display()),
                None,
                Some(
                    "keep every input inside the repo; copy the file in instead of linking it"
                        .into(),
                ),
            )),
            Err(e) => Err(Error::io("cannot resolve", abs, e)),
        }
    }

    fn list(&self, dir: &RepoPath) -> Result<Vec<Entry>, Error> {
        let abs = self.abs(dir);
        let Some(rd) = read_dir(&abs).map_err(|e| Error::io("cannot list", &abs, e))? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("cannot list", &abs, e))?;
            let (Some(name), Ok(t)) = (
                entry.file_name().to_str().map(str::to_string),
                entry.file_type(),
            ) else {
                continue;
            };
            if let Ok(path) = dir.join(&name) {
                out.push(Entry {
                    path,
                    kind: kind_of(t),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// As `list` would give it, without a repo path made for each entry: observations take
    /// the digest of every folder a loader depended on (thousands on a large homelab).
    fn listing_digest(&self, dir: &RepoPath) -> Option<[u8; 32]> {
        let Some(rd) = read_dir(&self.abs(dir)).ok()? else {
            return Some(super::cutoff::names_digest(std::iter::empty()));
        };
        let names = names(rd).ok()?;
        Some(super::cutoff::names_digest(
            names.iter().map(|(n, k)| (n.as_str(), *k)),
        ))
    }

    fn walk(&self, dir: &RepoPath, hidden: bool) -> Result<Vec<Entry>, Error> {
        self.walk_listing(dir, hidden, &mut |_| {}, &mut |_, _| {})
    }

    fn walk_listing(
        &self,
        dir: &RepoPath,
        hidden: bool,
        before: &mut dyn FnMut(&RepoPath),
        listed: OnListed<'_>,
    ) -> Result<Vec<Entry>, Error> {
        let mut abs = self.abs(dir);
        if !abs.is_dir() {
            return Ok(Vec::new());
        }
        // A start that is a link into the repo is walked where it leads, under the rules of
        // the folders above that place (as the crate did); the entries keep the link's path.
        let mut above = dir.clone();
        if self.kind(dir) == Some(Kind::Symlink) {
            if let Some(real) = abs
                .canonicalize()
                .ok()
                .filter(|r| r.starts_with(&self.canon_root))
            {
                let rel = real
                    .strip_prefix(&self.canon_root)
                    .ok()
                    .and_then(|r| r.to_str());
                if let Some(p) = rel.and_then(|r| RepoPath::new(r).ok()) {
                    above = p;
                    abs = real;
                }
            }
        }
        let mut walk = Walk {
            hidden,
            levels: self.levels_above(&above)?,
            out: Vec::new(),
            before,
            listed,
        };
        walk.folder(dir, &abs)?;
        Ok(walk.out)
    }

    fn read(&self, p: &RepoPath) -> Result<(Vec<u8>, bool), Error> {
        let abs = self.abs(p);
        std::fs::read(&abs)
            .map(|b| (b, false))
            .map_err(|e| Error::io("cannot read", abs, e))
    }

    #[cfg(target_os = "linux")]
    fn read_plain(&self, p: &RepoPath) -> Result<Option<(Vec<u8>, StatKey)>, Error> {
        use rustix::fs::{Mode, OFlags};
        use std::io::Read;
        // Not following a final symlink: a link is answered by the caller, who checks where it
        // leads first.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut file = match rustix::fs::openat(&self.dir, self.rel(p), flags, Mode::empty()) {
            Ok(fd) => std::fs::File::from(fd),
            Err(rustix::io::Errno::LOOP) => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", self.abs(p), e.into())),
        };
        let abs = || self.abs(p);
        let meta = file
            .metadata()
            .map_err(|e| Error::io("cannot read", abs(), e))?;
        if !meta.is_file() {
            return Ok(None);
        }
        // Read up to one byte past the size the stat gave: `File::read_to_end` would stat the
        // open file and seek in it again to size its buffer. A file that grew since is read on
        // to its end.
        let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
        let read = (&mut file)
            .take(meta.len() + 1)
            .read_to_end(&mut bytes)
            .and_then(|n| match n as u64 > meta.len() {
                true => file.read_to_end(&mut bytes),
                false => Ok(n),
            });
        read.map_err(|e| Error::io("cannot read", abs(), e))?;
        Ok(Some((bytes, StatKey::of(&meta))))
    }

    #[cfg(target_os = "linux")]
    fn seen(&self, p: &RepoPath) -> Option<super::Seen> {
        use rustix::fs::AtFlags;
        let Ok(st) = rustix::fs::statat(&self.dir, self.rel(p), AtFlags::SYMLINK_NOFOLLOW) else {
            return Some(super::Seen { kind: 0, key: None });
        };
        let kind = match kind_of_mode(st.st_mode) {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Other => 4,
        };
        // One syscall for everything but a symlink, whose target is what matters.
        let key = if kind == 3 {
            rustix::fs::statat(&self.dir, self.rel(p), AtFlags::empty())
                .ok()
                .map(|t| StatKey::of_stat(&t))
        } else {
            Some(StatKey::of_stat(&st))
        };
        Some(super::Seen { kind, key })
    }

    #[cfg(not(target_os = "linux"))]
    fn seen(&self, p: &RepoPath) -> Option<super::Seen> {
        let abs = self.abs(p);
        let Ok(meta) = std::fs::symlink_metadata(&abs) else {
            return Some(super::Seen { kind: 0, key: None });
        };
        let kind = match kind_of(meta.file_type()) {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Other => 4,
        };
        // One syscall for everything but a symlink, whose target is what matters.
        let key = if kind == 3 {
            std::fs::metadata(&abs).ok().map(|m| StatKey::of(&m))
        } else {
            Some(StatKey::of(&meta))
        };
        Some(super::Seen { kind, key })
    }

    fn stat_key(&self, p: &RepoPath) -> Result<Option<StatKey>, Error> {
        let abs = self.abs(p);
        let meta =
            std::fs::symlink_metadata(&abs).map_err(|e| Error::io("cannot stat", &abs, e))?;
        let meta = if meta.file_type().is_symlink() {
            self.check_inside(p)?;
            std::fs::metadata(&abs).map_err(|e| Error::io("cannot stat", &abs, e))?
        } else {
            meta
        };
        Ok(Some(StatKey::of(&meta)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a look at a path says (made relative to the open root) is what the path's own
    /// metadata says: the stat cache compares keys made both ways.
    #[test]
    fn a_look_agrees_with_the_paths_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("d/l")).unwrap();
        let tree = Worktree::new(dir.path()).unwrap();
        let p = |s: &str| RepoPath::new(s).unwrap();
        let key = |s: &str| StatKey::of(&std::fs::metadata(dir.path().join(s)).unwrap());
        let seen = |s: &str| tree.seen(&p(s)).unwrap();
        assert_eq!((seen("d/f").kind, seen("d/f").key), (1, Some(key("d/f"))));
        assert_eq!((seen("d").kind, seen("d").key), (2, Some(key("d"))));
        // A link: its target's key.
        assert_eq!((seen("d/l").kind, seen("d/l").key), (3, Some(key("d/f"))));
        assert_eq!((seen("d/none").kind, seen("d/none").key), (0, None));
        assert_eq!(seen("").kind, 2);
        let kinds = |s: &str| (tree.kind(&p(s)), tree.target_kind(&p(s)));
        assert_eq!(kinds("d/f"), (Some(Kind::File), Some(Kind::File)));
        assert_eq!(kinds("d"), (Some(Kind::Dir), Some(Kind::Dir)));
        assert_eq!(kinds("d/l"), (Some(Kind::Symlink), Some(Kind::File)));
        assert_eq!(kinds("d/none"), (None, None));
        let (bytes, read_key) = tree.read_plain(&p("d/f")).unwrap().unwrap();
        assert_eq!((bytes, read_key), (b"x".to_vec(), key("d/f")));
        assert!(
            tree.read_plain(&p("d/l")).unwrap().is_none(),
            "a link is not read"
        );
    }
}
