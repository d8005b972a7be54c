//! Packs of action-cache entries: the entries one run recorded, in one file.
//!
//! A cold plan of a large homelab records thousands of actions (one per node realized). One
//! file per entry made that many inodes, and creating them was a third of the plan's CPU, in
//! the kernel. A run now records its entries in memory and writes them as one pack at its end.
//!
//! A pack is `ac-packs/<blake3 of its bytes>`: records of 64 bytes, the input hash then the
//! output hash, sorted by input. Reading verifies the whole file against its name, and a pack
//! that fails is evicted, as a loose entry that fails its seal is: a cache miss, never a wrong
//! output. Packs are written atomically (temp file, rename) without waiting for the disk.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{hex, io_err, write_cached, CacheError, Hash};

/// One entry: input hash, output hash.
type Entry = (Hash, Hash);

/// The bytes of one record: input hash, output hash.
const RECORD: usize = 64;

fn dir(root: &Path) -> PathBuf {
    root.join("ac-packs")
}

/// The pack files under `root`, by name (temp files and foreign names skipped).
fn files(root: &Path) -> Result<Vec<(Hash, PathBuf)>, CacheError> {
    let base = dir(root);
    let entries = match fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&base)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_err(&base))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(h) = blake3::Hash::from_hex(&name) {
            out.push((*h.as_bytes(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes `entries` as one pack (nothing when there are none); returns its name.
pub(crate) fn write(root: &Path, mut entries: Vec<Entry>) -> Result<Option<Hash>, CacheError> {
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_unstable();
    entries.dedup();
    let mut bytes = Vec::with_capacity(entries.len() * RECORD);
    for (input, output) in &entries {
        bytes.extend_from_slice(input);
        bytes.extend_from_slice(output);
    }
    let name = *blake3::hash(&bytes).as_bytes();
    write_cached(&dir(root).join(hex(&name)), &bytes)?;
    Ok(Some(name))
}

/// Every packed entry, verified; a pack that does not hash to its name is removed.
pub(crate) fn read_all(root: &Path) -> Result<HashMap<Hash, Hash>, CacheError> {
    let mut out = HashMap::new();
    for (name, path) in files(root)? {
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if blake3::hash(&bytes).as_bytes() != &name || bytes.len() % RECORD != 0 {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
                _ => continue,
            }
        }
        for r in bytes.chunks_exact(RECORD) {
            let (mut input, mut output) = ([0u8; 32], [0u8; 32]);
            input.copy_from_slice(&r[..32]);
            output.copy_from_slice(&r[32..]);
            out.insert(input, output);
        }
    }
    Ok(out)
}

/// Rewrites the packs to hold only the entries `keep` accepts; returns the inputs dropped.
pub(crate) fn retain(
    root: &Path,
    keep: &dyn Fn(&Hash) -> bool,
    dry_run: bool,
) -> Result<Vec<Hash>, CacheError> {
    let all = read_all(root)?;
    let (kept, dropped): (Vec<Entry>, Vec<Entry>) = all.into_iter().partition(|(i, _)| keep(i));
    if dry_run || dropped.is_empty() {
        return Ok(dropped.into_iter().map(|(i, _)| i).collect());
    }
    let old = files(root)?;
    // The new pack first: a crash in between leaves entries twice, never none.
    let new = write(root, kept)?;
    for (name, path) in old {
        if Some(name) == new {
            continue;
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
            _ => {}
        }
    }
    Ok(dropped.into_iter().map(|(i, _)| i).collect())
}
