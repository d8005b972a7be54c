//! The stat cache, like git's index: path -> (size, mtime, ctime, inode, content digest), so a
//! no-op plan stats files and hashes none.
//!
//! Racy entries: a file modified in the same clock tick as the run that recorded it could change
//! again without its mtime moving. As git does, an entry whose mtime is not older than the start
//! of the run that wrote it is not trusted, and the file is hashed again.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::path::Path;

use crate::digest::{Content, Digest};
use crate::error::Error;
use crate::files::RepoPath;

const MAGIC: &[u8; 8] = b"HLSTAT02";

/// What the stat cache compares: a file is unchanged when all of these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatKey {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl StatKey {
    /// Modification time, ns since the epoch.
    pub fn mtime_ns(&self) -> i128 {
        self.mtime_ns
    }

    /// When the file last changed by any account, content or metadata (the later of mtime and
    /// ctime), ns since the epoch: what racy checks compare with a run's start. A rewrite that
    /// restores an old mtime (`cp -p`, `rsync -t`, `tar`) still moves the ctime.
    pub fn changed_ns(&self) -> i128 {
        self.mtime_ns.max(self.ctime_ns)
    }

    /// The key of a file's metadata as `stat(2)` gives it (the same as [`StatKey::of`] of the
    /// same file's).
    #[cfg(target_os = "linux")]
    pub fn of_stat(st: &rustix::fs::Stat) -> StatKey {
        StatKey {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
            ctime_ns: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
            ino: st.st_ino,
        }
    }

    /// The key of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> StatKey {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            StatKey {
                size: meta.size(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let t = |r: std::io::Result<SystemTime>| {
                r.ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128)
            };
            StatKey {
                size: meta.len(),
                mtime_ns: t(meta.modified()),
                ctime_ns: t(meta.created()),
                ino: 0,
            }
        }
    }
}

/// The stat cache of one run: what it loaded, and when this run started.
#[derive(Debug, Default)]
pub struct StatCache {
    /// When this run started: what a file's mtime must be older than for what this run
    /// records of it to be trusted next time.
    started_at: i128,
    /// Path -> (metadata, digest, whether the entry is trusted: its mtime is older than the
    /// start of the run that recorded it).
    entries: FxHashMap<RepoPath, (StatKey, Digest<Content>, bool)>,
    /// The generation of the file loaded (0: none), whose journal this run may append to.
    generation: u64,
    /// Entries in that journal.
    logged: usize,
    /// Whether the journal ended in a torn record (then the cache is written whole next).
    torn: bool,
}

/// What a run learnt for the stat cache: files hashed (new, edited, or racy last time), and
/// entries no input uses any more.
#[derive(Debug, Default)]
pub struct StatUpdate {
    /// Files hashed this run, with their metadata.
    pub changed: Vec<(RepoPath, StatKey, Digest<Content>)>,
    /// Entries of the loaded cache for paths that are no longer inputs.
    pub unused: Vec<RepoPath>,
}

impl StatUpdate {
    /// Whether the cache stays as it was.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.unused.is_empty()
    }
}

fn now_ns() -> i128 {
    crate::time::fs_now_ns()
}

/// The journal beside the cache file.
fn journal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".log");
    path.with_file_name(name)
}

impl StatCache {
    /// Loads the cache at `path` and its journal; a missing or unreadable cache is an empty
    /// one (it is only a cache: the worst case is hashing everything again).
    pub fn load(path: &Path) -> StatCache {
        let started_at = now_ns();
        let mut cache = std::fs::read(path)
            .ok()
            .and_then(|b| {
                let (body, sum) = b.split_at(b.len().checked_sub(32)?);
                (blake3::hash(body).as_bytes() == sum).then(|| Self::decode(body))?
            })
            .unwrap_or_default();
        if cache.generation != 0 {
            let records = crate::journal::read(&journal_path(path), cache.generation);
            cache.torn = records.torn;
            for rec in records.payloads {
                if cache.apply_record(&rec).is_none() {
                    cache.torn = true;
                    break;
                }
            }
        }
        cache.started_at = started_at;
        cache
    }

    /// The digest recorded for `path` if its metadata is unchanged and the entry is not racy.
    pub fn lookup(&self, path: &RepoPath, key: &StatKey) -> Option<Digest<Content>> {
        let (k, d, trusted) = self.entries.get(path)?;
        (*trusted && k == key).then_some(*d)
    }

    /// Whether the cache has an entry for `path`.
    pub fn contains(&self, path: &RepoPath) -> bool {
        self.entries.contains_key(path)
    }

    /// The paths it has entries for.
    pub fn paths(&self) -> impl Iterator<Item = &RepoPath> {
        self.entries.keys()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Which cache this is: (generation, entries journalled), a pair no other cache on disk
    /// has had since. (0, 0) for none.
    pub fn identity(&self) -> (u64, usize) {
        (self.generation, self.logged)
    }

    /// Saves what this run learnt: appended to the journal while it stays small next to the
    /// cache (one edit costs a record of a few hundred bytes), else the whole cache written
    /// anew (atomically) and the journal dropped. Nothing when nothing was learnt. Returns the
    /// [`StatCache::identity`] of the cache on disk after.
    pub fn save(&self, path: &Path, update: &StatUpdate) -> Result<(u64, usize), Error> {
        if update.is_empty() {
            return Ok(self.identity());
        }
        let pending = self.logged + update.changed.len() + update.unused.len();
        if self.generation != 0 && !self.torn && pending <= (self.entries.len() / 8).max(1024) {
            let mut rec = Vec::with_capacity(32 + update.changed.len() * 140);
            rec.extend_from_slice(&self.started_at.to_le_bytes());
            rec.extend_from_slice(&(update.changed.len() as u64).to_le_bytes());
            for (p, k, d) in &update.changed {
                put_entry(&mut rec, p, k, d);
            }
            rec.extend_from_slice(&(update.unused.len() as u64).to_le_bytes());
            for p in &update.unused {
                put_path(&mut rec, p);
            }
            crate::journal::append(&journal_path(path), self.generation, &rec)?;
            return Ok((self.generation, pending));
        }
        // Sorted by path (a first plan's tens of thousands of entries sorted and encoded in
        // parallel: this is the last file written). The old entries first, then this run's
        // hashes: the sort is stable, and of one path the last is kept.
        let unused: rustc_hash::FxHashSet<&RepoPath> = update.unused.iter().collect();
        let mut list: Vec<(&RepoPath, &StatKey, &Digest<Content>)> = self
            .entries
            .iter()
            .filter(|(p, _)| !unused.contains(p))
            .map(|(p, (k, d, _))| (p, k, d))
            .collect();
        list.extend(update.changed.iter().map(|(p, k, d)| (p, k, d)));
        list.par_sort_by(|a, b| a.0.cmp(b.0));
        list.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                *kept = *later;
            }
            same
        });
        let encoded: Vec<Vec<u8>> = list
            .par_chunks(crate::PAR_TASK * 16)
            .map(|chunk| {
                let mut out = Vec::with_capacity(chunk.len() * 140);
                for (p, k, d) in chunk {
                    put_entry(&mut out, p, k, d);
                }
                out
            })
            .collect();
        let mut bytes = Vec::with_capacity(64 + encoded.iter().map(Vec::len).sum::<usize>());
        bytes.extend_from_slice(MAGIC);
        // Every entry kept was trusted at load (or hashed again), so this run's start is the
        // bound for all of them.
        bytes.extend_from_slice(&self.started_at.to_le_bytes());
        let generation = crate::journal::generation();
        bytes.extend_from_slice(&generation.to_le_bytes());
        bytes.extend_from_slice(&(list.len() as u64).to_le_bytes());
        for chunk in &encoded {
            bytes.extend_from_slice(chunk);
        }
        // A checksum, so a file torn by a power cut (written without fsync) is not trusted.
        let sum = *blake3::hash(&bytes).as_bytes();
        bytes.extend_from_slice(&sum);
        hl_cache::write_cached(path, &bytes)?;
        crate::journal::clear(&journal_path(path));
        Ok((generation, 0))
    }

    fn decode(b: &[u8]) -> Option<StatCache> {
        let mut r = Reader(b);
        if r.take(8)? != MAGIC {
            return None;
        }
        let written_at = r.i128()?;
        let generation = r.u64()?;
        let n = r.u64()? as usize;
        let mut entries = FxHashMap::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for _ in 0..n {
            let (path, key, d) = r.entry()?;
            let trusted = key.changed_ns() < written_at;
            entries.insert(path, (key, d, trusted));
        }
        Some(StatCache {
            started_at: 0,
            entries,
            generation,
            logged: 0,
            torn: false,
        })
    }

    /// Applies one journal record; `None` when it does not decode.
    fn apply_record(&mut self, rec: &[u8]) -> Option<()> {
        let mut r = Reader(rec);
        let written_at = r.i128()?;
        let changed = r.u64()? as usize;
        for _ in 0..changed {
            let (path, key, d) = r.entry()?;
            let trusted = key.changed_ns() < written_at;
            self.entries.insert(path, (key, d, trusted));
        }
        let unused = r.u64()? as usize;
        for _ in 0..unused {
            self.entries.remove(&r.path()?);
        }
        self.logged += changed + unused;
        Some(())
    }
}

fn put_path(out: &mut Vec<u8>, p: &RepoPath) {
    let s = p.as_str().as_bytes();
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

fn put_entry(out: &mut Vec<u8>, p: &RepoPath, k: &StatKey, d: &Digest<Content>) {
    put_path(out, p);
    out.extend_from_slice(&k.size.to_le_bytes());
    out.extend_from_slice(&k.mtime_ns.to_le_bytes());
    out.extend_from_slice(&k.ctime_ns.to_le_bytes());
    out.extend_from_slice(&k.ino.to_le_bytes());
    out.extend_from_slice(d.bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
    fn path(&mut self) -> Option<RepoPath> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        RepoPath::new(std::str::from_utf8(self.take(len)?).ok()?).ok()
    }
    fn entry(&mut self) -> Option<(RepoPath, StatKey, Digest<Content>)> {
        let path = self.path()?;
        let key = StatKey {
            size: self.u64()?,
            mtime_ns: self.i128()?,
            ctime_ns: self.i128()?,
            ino: self.u64()?,
        };
        let d = Digest::from_bytes(self.take(32)?.try_into().ok()?);
        Some((path, key, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> (RepoPath, StatKey, Digest<Content>) {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        let key = StatKey::of(&std::fs::metadata(&f).unwrap());
        (
            RepoPath::new(name).unwrap(),
            key,
            Digest::of(text.as_bytes()),
        )
    }

    fn update(changed: &[&(RepoPath, StatKey, Digest<Content>)]) -> StatUpdate {
        StatUpdate {
            changed: changed.iter().map(|e| (*e).clone()).collect(),
            unused: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_distrusts_racy_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (p, key, d) = file(dir.path(), "a.yaml", "a: 1\n");
        let path = dir.path().join("stat");

        // Recorded by a run that started before the file's mtime: racy, not trusted.
        let racy = StatCache {
            started_at: key.changed_ns(),
            ..StatCache::default()
        };
        racy.save(&path, &update(&[&(p.clone(), key, d)])).unwrap();
        assert_eq!(StatCache::load(&path).lookup(&p, &key), None);

        // Recorded by a run that started after: trusted, and only for the same metadata.
        let later = StatCache {
            started_at: key.changed_ns() + 1,
            ..StatCache::default()
        };
        later.save(&path, &update(&[&(p.clone(), key, d)])).unwrap();
        let loaded = StatCache::load(&path);
        assert_eq!(loaded.lookup(&p, &key), Some(d));
        let moved = StatKey { size: 99, ..key };
        assert_eq!(loaded.lookup(&p, &moved), None);
    }

    /// One edit appends a record instead of rewriting the cache; what the journal says wins
    /// over the file, racy entries in it are not trusted, and a whole rewrite drops it.
    #[test]
    fn an_edit_is_journalled_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let a = file(dir.path(), "a", "1");
        let b = file(dir.path(), "b", "2");
        // Started after both were written (by their own stamps: they can be ahead of the
        // coarse clock).
        let first = StatCache {
            started_at: a.1.changed_ns().max(b.1.changed_ns()) + 1,
            ..StatCache::default()
        };
        first.save(&path, &update(&[&a, &b])).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();

        let mut loaded = StatCache::load(&path);
        assert_eq!(loaded.lookup(&a.0, &a.1), Some(a.2));
        let a2 = file(dir.path(), "a", "one");
        loaded.started_at = a2.1.changed_ns() + 1;
        let gone = StatUpdate {
            changed: vec![a2.clone()],
            unused: vec![b.0.clone()],
        };
        loaded.save(&path, &gone).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            size,
            "not rewritten"
        );
        assert!(journal_path(&path).exists());

        let again = StatCache::load(&path);
        assert_eq!(again.lookup(&a2.0, &a2.1), Some(a2.2));
        assert_eq!(again.lookup(&a.0, &a.1), None, "the old metadata is gone");
        assert!(!again.contains(&b.0));
        assert_eq!(again.len(), 1);

        // Racy in the journal: recorded by a run that started before the edit's mtime.
        let a3 = file(dir.path(), "a", "uno");
        let mut racy = StatCache::load(&path);
        racy.started_at = a3.1.changed_ns();
        racy.save(&path, &update(&[&a3])).unwrap();
        assert_eq!(StatCache::load(&path).lookup(&a3.0, &a3.1), None);

        // Past the journal's bound, the cache is written whole and the journal dropped.
        let mut big = StatCache::load(&path);
        big.logged = 5000;
        big.started_at = a3.1.changed_ns() + 1;
        big.save(&path, &update(&[&a3])).unwrap();
        assert!(!journal_path(&path).exists());
        let whole = StatCache::load(&path);
        assert_eq!(whole.lookup(&a3.0, &a3.1), Some(a3.2));
        assert_eq!(whole.len(), 1);
    }

    /// A journal torn by a crash: records appended after the tear would never be read, so
    /// the next save writes the cache whole and drops the journal.
    #[test]
    fn a_torn_journal_is_folded_into_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let a = file(dir.path(), "a", "1");
        let first = StatCache {
            started_at: a.1.changed_ns() + 1,
            ..StatCache::default()
        };
        first.save(&path, &update(&[&a])).unwrap();
        let mut loaded = StatCache::load(&path);
        let b = file(dir.path(), "b", "2");
        loaded.started_at = b.1.changed_ns() + 1;
        loaded.save(&path, &update(&[&b])).unwrap();
        let mut bytes = std::fs::read(journal_path(&path)).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(journal_path(&path), &bytes).unwrap();

        let mut torn = StatCache::load(&path);
        assert!(!torn.contains(&b.0), "the torn record is not read");
        torn.started_at = b.1.changed_ns() + 1;
        torn.save(&path, &update(&[&b])).unwrap();
        assert!(!journal_path(&path).exists(), "written whole");
        assert_eq!(StatCache::load(&path).lookup(&b.0, &b.1), Some(b.2));
    }

    /// A file rewritten during the run with its old mtime put back (`cp -p`, `rsync -t`):
    /// its ctime still moved, so it is racy, not trusted.
    #[test]
    fn a_rewrite_that_restores_the_mtime_is_racy() {
        let dir = tempfile::tempdir().unwrap();
        let started = now_ns();
        let f = dir.path().join("a");
        std::fs::write(&f, "new").unwrap();
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        let key = StatKey::of(&std::fs::metadata(&f).unwrap());
        assert!(key.mtime_ns() < started, "the mtime says: before the run");
        let p = RepoPath::new("a").unwrap();
        let run = StatCache {
            started_at: started,
            ..StatCache::default()
        };
        let path = dir.path().join("stat");
        run.save(&path, &update(&[&(p.clone(), key, Digest::of(b"new"))]))
            .unwrap();
        assert_eq!(StatCache::load(&path).lookup(&p, &key), None);
    }
}
