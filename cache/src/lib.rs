//! hl-cache: the local content-addressed store and the action cache.
//!
//! The store keeps blobs by the blake3 hash of their bytes; the action cache maps an input hash
//! (what went into a build) to an output hash (what came out). Both are plain files under one
//! root, written atomically (temp file, rename) so a crash never leaves a half-written
//! entry under a valid name, and every read is verified against its key, so a corrupted entry is
//! evicted and reported as such, never used. A run that records many actions writes them as
//! one pack file (`packs`) instead of one file each.
//!
//! ```no_run
//! let store = hl_cache::Store::open("/tmp/hl-cache").unwrap();
//! let key = store.put(b"hello").unwrap();
//! assert!(matches!(store.get(&key).unwrap(), hl_cache::Fetched::Hit(_)));
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

mod packs;

/// A blake3 hash as the cache knows it: 32 raw bytes.
pub type Hash = [u8; 32];

/// What can go wrong with the cache; every variant names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem call on the cache failed.
    #[error("cache i/o on {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// The result of a verified read.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched<T> {
    /// The entry was present and matched its key.
    Hit(T),
    /// No entry under that key.
    Miss,
    /// An entry was present but did not match its key; it has been removed.
    Evicted,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hex of a hash, lowercase.
pub fn hex(hash: &Hash) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// Writes `bytes` to `path` atomically and durably: a sibling temp file, fsync, rename. For
/// files that are the truth (the state), not a cache.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_via_temp(path, bytes, true)
}

/// Writes `bytes` to `path` atomically but without waiting for the disk. For cache entries:
/// each is verified when read, so the worst a power cut can leave is an entry that fails
/// verification and is evicted and rebuilt. Skipping the fsync is what makes a cold plan of a
/// large homelab cost seconds instead of tens of seconds.
pub fn write_cached(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write_via_temp(path, bytes, false)
}

fn write_via_temp(path: &Path, bytes: &[u8], durable: bool) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Unique per process and per write: two threads storing the same blob at once must not
    // share a temp file (the loser's rename would find it gone).
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp{}.{seq}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut f = match fs::File::create(&tmp) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            fs::File::create(&tmp).map_err(io_err(&tmp))?
        }
        Err(e) => return Err(io_err(&tmp)(e)),
    };
    f.write_all(bytes).map_err(io_err(&tmp))?;
    if durable {
        f.sync_all().map_err(io_err(&tmp))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn shard(root: &Path, ns: &str, key: &Hash) -> PathBuf {
    let h = hex(key);
    root.join(ns).join(&h[..2]).join(&h[2..])
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The content-addressed store: blobs by the blake3 hash of their bytes.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (without creating) the store rooted at `root`; folders appear on first write.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, CacheError> {
        Ok(Store { root: root.into() })
    }

    /// The folder this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` and returns their key; storing what is already there writes nothing.
    pub fn put(&self, bytes: &[u8]) -> Result<Hash, CacheError> {
        let key = *blake3::hash(bytes).as_bytes();
        let path = shard(&self.root, "cas", &key);
        if !path.exists() {
            write_cached(&path, bytes)?;
        }
        Ok(key)
    }

    /// Reads the blob under `key`, verified; a blob that does not hash to its key is evicted.
    pub fn get(&self, key: &Hash) -> Result<Fetched<Vec<u8>>, CacheError> {
        let path = shard(&self.root, "cas", key);
        match read_opt(&path)? {
            None => Ok(Fetched::Miss),
            Some(bytes) if blake3::hash(&bytes).as_bytes() == key => Ok(Fetched::Hit(bytes)),
            Some(_) => {
                fs::remove_file(&path).map_err(io_err(&path))?;
                Ok(Fetched::Evicted)
            }
        }
    }

    /// Every blob, with its size in bytes.
    pub fn list(&self) -> Result<Vec<(Hash, u64)>, CacheError> {
        list(&self.root, "cas")
    }

    /// Removes a blob (for `hl gc`).
    pub fn remove(&self, key: &Hash) -> Result<(), CacheError> {
        remove(&self.root, "cas", key)
    }

    /// Whether a blob is present under `key` (unverified: use [`Store::get`] to read it).
    pub fn contains(&self, key: &Hash) -> bool {
        shard(&self.root, "cas", key).exists()
    }
}

/// Every entry under `root/ns`, with its size; temp files and foreign names are skipped.
fn list(root: &Path, ns: &str) -> Result<Vec<(Hash, u64)>, CacheError> {
    let base = root.join(ns);
    let mut out = Vec::new();
    let shards = match fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(&base)(e)),
    };
    for shard in shards {
        let shard = shard.map_err(io_err(&base))?;
        let prefix = shard.file_name().to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir(shard.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(h) = blake3::Hash::from_hex(format!("{prefix}{name}")) else {
                continue;
            };
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((*h.as_bytes(), size));
        }
    }
    Ok(out)
}

fn remove(root: &Path, ns: &str, key: &Hash) -> Result<(), CacheError> {
    let path = shard(root, ns, key);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => Ok(()),
    }
}

/// The action cache: input hash -> output hash, for builds that already ran.
///
/// An entry is 64 bytes: the output hash, then blake3 of (input, output), so a torn or
/// tampered entry is detected and evicted rather than trusted. Entries recorded with
/// [`ActionCache::defer`] are kept in memory and written together, as one pack, by
/// [`ActionCache::flush`] (see `packs`); clones share them.
#[derive(Debug, Clone)]
pub struct ActionCache {
    root: PathBuf,
    /// Deferred entries.
    pending: Arc<Mutex<Deferred>>,
    /// The packed entries, read at the first lookup that needs them.
    packed: Arc<OnceLock<HashMap<Hash, Hash>>>,
}

/// The entries [`ActionCache::defer`] recorded, input -> output.
#[derive(Debug, Default)]
struct Deferred {
    /// Not written yet.
    unwritten: HashMap<Hash, Hash>,
    /// Written by [`ActionCache::flush`], and kept for lookups: the packs may have been read
    /// before they were written.
    flushed: HashMap<Hash, Hash>,
}

impl ActionCache {
    /// Opens (without creating) the action cache rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ActionCache, CacheError> {
        Ok(ActionCache {
            root: root.into(),
            pending: Arc::default(),
            packed: Arc::default(),
        })
    }

    fn seal(input: &Hash, output: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"hl-ac-v1");
        h.update(input);
        h.update(output);
        *h.finalize().as_bytes()
    }

    /// The output recorded for `input`, verified: a loose entry, else one deferred by this
    /// run, else a packed one.
    pub fn get(&self, input: &Hash) -> Result<Fetched<Hash>, CacheError> {
        let path = shard(&self.root, "ac", input);
        match read_opt(&path)? {
            None => {}
            Some(bytes) => {
                if bytes.len() == 64 {
                    let mut out = [0u8; 32];
                    out.copy_from_slice(&bytes[..32]);
                    if bytes[32..] == Self::seal(input, &out) {
                        return Ok(Fetched::Hit(out));
                    }
                }
                fs::remove_file(&path).map_err(io_err(&path))?;
                return Ok(Fetched::Evicted);
            }
        }
        let pending = self.pending.lock().expect("no panics hold this lock");
        if let Some(out) = pending
            .unwritten
            .get(input)
            .or_else(|| pending.flushed.get(input))
        {
            return Ok(Fetched::Hit(*out));
        }
        drop(pending);
        Ok(match self.packed()?.get(input) {
            Some(out) => Fetched::Hit(*out),
            None => Fetched::Miss,
        })
    }

    /// The packed entries, read once (racing readers read the same files).
    fn packed(&self) -> Result<&HashMap<Hash, Hash>, CacheError> {
        if let Some(p) = self.packed.get() {
            return Ok(p);
        }
        let read = packs::read_all(&self.root)?;
        Ok(self.packed.get_or_init(|| read))
    }

    /// Every recorded input hash, loose or packed.
    pub fn list(&self) -> Result<Vec<Hash>, CacheError> {
        let mut out: Vec<Hash> = list(&self.root, "ac")?
            .into_iter()
            .map(|(h, _)| h)
            .chain(packs::read_all(&self.root)?.into_keys())
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Forgets every input that `keep` refuses, loose or packed (for `hl gc`); returns how
    /// many it forgot, or would forget when `dry_run`.
    pub fn retain(&self, keep: impl Fn(&Hash) -> bool, dry_run: bool) -> Result<usize, CacheError> {
        let mut dropped: Vec<Hash> = packs::retain(&self.root, &keep, dry_run)?;
        for (input, _) in list(&self.root, "ac")? {
            if !keep(&input) {
                if !dry_run {
                    remove(&self.root, "ac", &input)?;
                }
                dropped.push(input);
            }
        }
        dropped.sort_unstable();
        dropped.dedup();
        Ok(dropped.len())
    }

    /// Records that `input` built to `output`, in memory until [`ActionCache::flush`]: for a
    /// run that records many (a plan realizing every node of a large homelab).
    pub fn defer(&self, input: &Hash, output: &Hash) {
        self.pending
            .lock()
            .expect("no panics hold this lock")
            .unwritten
            .insert(*input, *output);
    }

    /// Writes the deferred entries: as one pack when there are many, else as loose entries
    /// (a run that realized a few nodes adds no pack, so packs stay few: every lookup that
    /// misses reads them all).
    pub fn flush(&self) -> Result<(), CacheError> {
        /// Fewer deferred entries than this are written loose.
        const PACK_FROM: usize = 32;
        let mut pending = self.pending.lock().expect("no panics hold this lock");
        let entries: Vec<(Hash, Hash)> = pending.unwritten.drain().collect();
        if entries.len() < PACK_FROM {
            for (input, output) in &entries {
                self.put(input, output)?;
            }
        } else {
            packs::write(&self.root, entries.clone())?;
        }
        pending.flushed.extend(entries);
        Ok(())
    }

    /// Records that `input` built to `output`. Only successful builds are ever recorded.
    pub fn put(&self, input: &Hash, output: &Hash) -> Result<(), CacheError> {
        let path = shard(&self.root, "ac", input);
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(output);
        bytes.extend_from_slice(&Self::seal(input, output));
        write_cached(&path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trip_and_corruption_is_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = store.put(b"mosquitto.conf").unwrap();
        assert_eq!(
            store.get(&key).unwrap(),
            Fetched::Hit(b"mosquitto.conf".to_vec())
        );
        fs::write(shard(dir.path(), "cas", &key), b"tampered").unwrap();
        assert_eq!(store.get(&key).unwrap(), Fetched::Evicted);
        assert_eq!(store.get(&key).unwrap(), Fetched::Miss);
    }

    #[test]
    fn concurrent_writers_of_one_blob_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        write_atomic(&shard(dir.path(), "cas", &[7u8; 32]), b"same").unwrap();
                    }
                });
            }
        });
        assert_eq!(
            fs::read(shard(dir.path(), "cas", &[7u8; 32])).unwrap(),
            b"same"
        );
        let _ = store;
    }

    #[test]
    fn action_cache_detects_torn_entries() {
        let dir = tempfile::tempdir().unwrap();
        let ac = ActionCache::open(dir.path()).unwrap();
        let (i, o) = ([1u8; 32], [2u8; 32]);
        assert_eq!(ac.get(&i).unwrap(), Fetched::Miss);
        ac.put(&i, &o).unwrap();
        assert_eq!(ac.get(&i).unwrap(), Fetched::Hit(o));
        fs::write(shard(dir.path(), "ac", &i), [2u8; 40]).unwrap();
        assert_eq!(ac.get(&i).unwrap(), Fetched::Evicted);
    }

    /// Many deferred entries become one pack that a later process reads back; a pack that
    /// does not hash to its name is evicted, never trusted; gc's retain rewrites it.
    #[test]
    fn deferred_entries_are_packed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let ac = ActionCache::open(dir.path()).unwrap();
        let entries: Vec<(Hash, Hash)> = (0..100u8).map(|i| ([i; 32], [i ^ 0xff; 32])).collect();
        for (i, o) in &entries {
            ac.defer(i, o);
        }
        assert_eq!(ac.get(&[5; 32]).unwrap(), Fetched::Hit([5 ^ 0xff; 32]));
        ac.flush().unwrap();
        let packs: Vec<_> = fs::read_dir(dir.path().join("ac-packs")).unwrap().collect();
        assert_eq!(packs.len(), 1, "one file for 100 entries");
        assert!(!dir.path().join("ac").exists(), "no loose entry");

        let fresh = ActionCache::open(dir.path()).unwrap();
        assert_eq!(fresh.get(&[7; 32]).unwrap(), Fetched::Hit([7 ^ 0xff; 32]));
        assert_eq!(fresh.get(&[200; 32]).unwrap(), Fetched::Miss);
        assert_eq!(fresh.list().unwrap().len(), 100);

        assert_eq!(fresh.retain(|i| i[0] < 10, true).unwrap(), 90);
        assert_eq!(
            fresh.list().unwrap().len(),
            100,
            "a dry run removes nothing"
        );
        assert_eq!(fresh.retain(|i| i[0] < 10, false).unwrap(), 90);
        assert_eq!(
            ActionCache::open(dir.path()).unwrap().list().unwrap().len(),
            10
        );

        let pack = fs::read_dir(dir.path().join("ac-packs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        fs::write(pack.path(), [0u8; 64]).unwrap();
        let after = ActionCache::open(dir.path()).unwrap();
        assert_eq!(after.get(&[1; 32]).unwrap(), Fetched::Miss);
        assert!(!pack.path().exists(), "the corrupted pack is evicted");
    }

    /// A run that realized a few nodes writes loose entries, as before: packs stay few.
    #[test]
    fn a_few_deferred_entries_are_written_loose() {
        let dir = tempfile::tempdir().unwrap();
        let ac = ActionCache::open(dir.path()).unwrap();
        ac.defer(&[1; 32], &[2; 32]);
        ac.flush().unwrap();
        assert!(!dir.path().join("ac-packs").exists());
        assert!(shard(dir.path(), "ac", &[1; 32]).exists());
        assert_eq!(ac.get(&[1; 32]).unwrap(), Fetched::Hit([2; 32]));
    }
}
