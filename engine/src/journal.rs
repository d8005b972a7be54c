//! Journals: small records appended next to a large file instead of rewriting it, so that what
//! one edit teaches a run (one file's new digest, one observation that still holds) costs a
//! few hundred bytes written, not the megabytes of the whole cache.
//!
//! A journal belongs to one generation of its base file: the base records a generation number
//! when it is written whole, and records of any other generation are ignored (a base rewritten
//! since, or by another run). Each record carries a checksum, so a record torn by a crash ends
//! the journal instead of corrupting what it stands for; these are caches, so losing a record
//! costs only work.

use std::io::Write;
use std::path::Path;

use crate::error::Error;

/// A new generation number for a base file written whole.
pub fn generation() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = blake3::Hasher::new();
    h.update(&now.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let b = h.finalize();
    // Never 0: that stands for "no base".
    u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
}

/// Appends one record of generation `generation` to the journal at `path` (created when
/// absent), in one write.
pub fn append(path: &Path, generation: u64, payload: &[u8]) -> Result<(), Error> {
    let mut rec = Vec::with_capacity(payload.len() + 48);
    rec.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    rec.extend_from_slice(&generation.to_le_bytes());
    rec.extend_from_slice(payload);
    let sum = blake3::hash(&rec);
    rec.extend_from_slice(sum.as_bytes());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    f.write_all(&rec)
        .map_err(|e| Error::io("cannot append to", path, e))
}

/// What a journal holds for one generation.
#[derive(Debug, Default)]
pub struct Records {
    /// The payloads of its records, in order.
    pub payloads: Vec<Vec<u8>>,
    /// Whether reading stopped at a torn or corrupted record: records appended after it would
    /// never be read, so the base must be written whole (and the journal dropped) next.
    pub torn: bool,
}

/// The records of generation `generation`, in order, up to the first torn or corrupted one;
/// none when the journal is absent.
pub fn read(path: &Path, generation: u64) -> Records {
    let mut out = Records::default();
    let Ok(bytes) = std::fs::read(path) else {
        return out;
    };
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let record = (rest.len() >= 48)
            .then(|| u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize)
            .and_then(|len| len.checked_add(16))
            .filter(|end| end + 32 <= rest.len())
            .filter(|&end| blake3::hash(&rest[..end]).as_bytes() == &rest[end..end + 32]);
        let Some(end) = record else {
            out.torn = true;
            break;
        };
        if u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")) == generation {
            out.payloads.push(rest[16..end].to_vec());
        }
        rest = &rest[end + 32..];
    }
    out
}

/// Removes the journal (after its base was written whole).
pub fn clear(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_the_generation_come_back_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        assert!(read(&p, 7).payloads.is_empty() && !read(&p, 7).torn);
        append(&p, 7, b"one").unwrap();
        append(&p, 8, b"other base").unwrap();
        append(&p, 7, b"two").unwrap();
        assert_eq!(read(&p, 7).payloads, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(read(&p, 8).payloads, [b"other base".to_vec()]);
        assert!(!read(&p, 7).torn);

        // A crash in the middle of the last append: the rest is read, and said to be torn.
        append(&p, 7, b"three").unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&p, &bytes).unwrap();
        let torn = read(&p, 7);
        assert_eq!(torn.payloads, [b"one".to_vec(), b"two".to_vec()]);
        assert!(torn.torn);

        // A flipped byte ends the journal there.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(read(&p, 7).payloads.is_empty() && read(&p, 7).torn);
        clear(&p);
        assert!(!p.exists());
    }
}
