//! The stat cache, like git's index: path -> (size, mtime, ctime, inode, content digest), so a
//! no-op plan stats files and hashes none.
//!
//! Racy entries: a file modified in the same clock tick as the run that recorded it could change
//! again without its mtime moving. As git does, an entry whose mtime is not older than the start
//! of the run that wrote it is not trusted, and the file is hashed again.

use rustc_hash::FxHashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::{Content, Digest};
use crate::error::Error;
use crate::files::RepoPath;

const MAGIC: &[u8; 8] = b"HLSTAT01";

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

/// The stat cache of one run: what it loaded, and what it will save.
#[derive(Debug, Default)]
pub struct StatCache {
    /// When the run that wrote the loaded entries started (ns since the epoch).
    written_at: i128,
    /// When this run started: saved as the next run's `written_at`.
    started_at: i128,
    entries: FxHashMap<RepoPath, (StatKey, Digest<Content>)>,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

impl StatCache {
    /// Loads the cache at `path`; a missing or unreadable cache is an empty one (it is only a
    /// cache: the worst case is hashing everything again).
    pub fn load(path: &Path) -> StatCache {
        let started_at = now_ns();
        let mut cache = std::fs::read(path)
            .ok()
            .and_then(|b| {
                let (body, sum) = b.split_at(b.len().checked_sub(32)?);
                (blake3::hash(body).as_bytes() == sum).then(|| Self::decode(body))?
            })
            .unwrap_or_default();
        cache.started_at = started_at;
        cache
    }

    /// An empty cache for the same run, to be filled with what this run saw.
    pub fn fresh_like(other: &StatCache) -> StatCache {
        StatCache {
            written_at: other.written_at,
            started_at: other.started_at,
            entries: FxHashMap::default(),
        }
    }

    /// The digest recorded for `path` if its metadata is unchanged and the entry is not racy.
    pub fn lookup(&self, path: &RepoPath, key: &StatKey) -> Option<Digest<Content>> {
        let (k, d) = self.entries.get(path)?;
        (k == key && k.mtime_ns < self.written_at).then_some(*d)
    }

    /// Records a file.
    pub fn insert(&mut self, path: RepoPath, key: StatKey, digest: Digest<Content>) {
        self.entries.insert(path, (key, digest));
    }

    /// Whether two caches hold the same entries (then there is nothing new to save).
    pub fn same_entries(&self, other: &StatCache) -> bool {
        self.entries == other.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cache atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut bytes = self.encode();
        // A checksum, so a file torn by a power cut (written without fsync) is not trusted.
        let sum = *blake3::hash(&bytes).as_bytes();
        bytes.extend_from_slice(&sum);
        hl_cache::write_cached(path, &bytes)?;
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 100);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.started_at.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        let mut paths: Vec<&RepoPath> = self.entries.keys().collect();
        paths.sort();
        for p in paths {
            let (k, d) = &self.entries[p];
            let s = p.as_str().as_bytes();
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s);
            out.extend_from_slice(&k.size.to_le_bytes());
            out.extend_from_slice(&k.mtime_ns.to_le_bytes());
            out.extend_from_slice(&k.ctime_ns.to_le_bytes());
            out.extend_from_slice(&k.ino.to_le_bytes());
            out.extend_from_slice(d.bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Option<StatCache> {
        struct R<'a>(&'a [u8]);
        impl R<'_> {
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
        }
        let mut r = R(b);
        if r.take(8)? != MAGIC {
            return None;
        }
        let written_at = r.i128()?;
        let n = r.u64()? as usize;
        let mut entries = FxHashMap::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for _ in 0..n {
            let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?) as usize;
            let path = RepoPath::new(std::str::from_utf8(r.take(len)?).ok()?).ok()?;
            let key = StatKey {
                size: r.u64()?,
                mtime_ns: r.i128()?,
                ctime_ns: r.i128()?,
                ino: r.u64()?,
            };
            let d = Digest::from_bytes(r.take(32)?.try_into().ok()?);
            entries.insert(path, (key, d));
        }
        Some(StatCache {
            written_at,
            started_at: 0,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_distrusts_racy_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let key = StatKey::of(&std::fs::metadata(&file).unwrap());
        let p = RepoPath::new("a.yaml").unwrap();
        let d = Digest::of(b"a: 1\n");

        // Written by a run that started before the file's mtime: racy, not trusted.
        let mut racy = StatCache {
            written_at: 0,
            started_at: key.mtime_ns,
            entries: FxHashMap::default(),
        };
        racy.insert(p.clone(), key, d);
        let path = dir.path().join("stat");
        racy.save(&path).unwrap();
        assert_eq!(StatCache::load(&path).lookup(&p, &key), None);

        // Written by a run that started after: trusted, and only for the same metadata.
        racy.started_at = key.mtime_ns + 1;
        racy.save(&path).unwrap();
        let loaded = StatCache::load(&path);
        assert_eq!(loaded.lookup(&p, &key), Some(d));
        let moved = StatKey { size: 99, ..key };
        assert_eq!(loaded.lookup(&p, &moved), None);
    }
}
