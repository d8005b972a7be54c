//! The changed lines of a file cause: old content from the store (recorded by adopt and apply)
//! or from the base revision, new content from the work tree or the head revision.

use hl_cache::{Fetched, Store};
use hl_engine::{Content, Digest, FileSet, RepoPath};

/// Where the old and new contents of a changed file come from.
pub enum Diffs<'a> {
    /// Old from the store, by the digest the state recorded; new from the files planned.
    Recorded {
        /// The content-addressed store.
        store: &'a Store,
        /// The files planned.
        files: &'a FileSet,
    },
    /// Old from the base revision, new from the head.
    Between {
        /// The base side.
        base: &'a FileSet,
        /// The head side.
        head: &'a FileSet,
    },
}

impl<'a> Diffs<'a> {
    /// Old content from the store.
    pub fn recorded(store: &'a Store, files: &'a FileSet) -> Diffs<'a> {
        Diffs::Recorded { store, files }
    }

    /// Old content from a base revision.
    pub fn between(base: &'a FileSet, head: &'a FileSet) -> Diffs<'a> {
        Diffs::Between { base, head }
    }

    /// A unified diff of the file (one line saying so for binary content), or `None` when
    /// the old content is not known.
    pub fn unified(
        &self,
        path: &RepoPath,
        old: Option<Digest<Content>>,
        new: Option<Digest<Content>>,
    ) -> Option<String> {
        let (old_bytes, new_bytes): (Vec<u8>, Vec<u8>) = match self {
            Diffs::Recorded { store, files } => {
                let old_bytes = match old {
                    None => Vec::new(),
                    Some(d) => match store.get(d.bytes()).ok()? {
                        Fetched::Hit(b) => b,
                        _ => return None,
                    },
                };
                let new_bytes = if new.is_some() {
                    files.read(path).map(|b| b.to_vec()).unwrap_or_default()
                } else {
                    Vec::new()
                };
                (old_bytes, new_bytes)
            }
            Diffs::Between { base, head } => {
                let old_bytes = if old.is_some() {
                    base.read(path).ok()?.to_vec()
                } else {
                    Vec::new()
                };
                let new_bytes = if new.is_some() {
                    head.read(path).ok()?.to_vec()
                } else {
                    Vec::new()
                };
                (old_bytes, new_bytes)
            }
        };
        let (a, b) = (format!("a/{path}"), format!("b/{path}"));
        // NUL marks binary content, as it does for git: its "lines" would only be noise.
        if old_bytes.contains(&0) || new_bytes.contains(&0) {
            return Some(format!(
                "Binary files {a} and {b} differ ({} -> {} bytes)\n",
                old_bytes.len(),
                new_bytes.len()
            ));
        }
        let (old_text, new_text) = (
            String::from_utf8_lossy(&old_bytes),
            String::from_utf8_lossy(&new_bytes),
        );
        let d = similar::TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
        Some(
            d.unified_diff()
                .context_radius(1)
                .header(&a, &b)
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn between(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
        let tmp = tempfile::tempdir().expect("temp dir");
        for (side, bytes) in [("base", old), ("head", new)] {
            std::fs::create_dir_all(tmp.path().join(side)).expect("mkdir");
            std::fs::write(tmp.path().join(side).join(path), bytes).expect("write");
        }
        let base = FileSet::new(&tmp.path().join("base")).expect("base");
        let head = FileSet::new(&tmp.path().join("head")).expect("head");
        let p = RepoPath::new(path).expect("a repo path");
        Diffs::between(&base, &head).unified(&p, Some(Digest::of(old)), Some(Digest::of(new)))
    }

    #[test]
    fn text_is_diffed_with_one_line_of_context() {
        let got = between("a.conf", b"one\ntwo\nthree\nfour\n", b"one\ntwo\n3\nfour\n");
        assert_eq!(
            got.as_deref(),
            Some("--- a/a.conf\n+++ b/a.conf\n@@ -2,3 +2,3 @@\n two\n-three\n+3\n four\n")
        );
    }

    #[test]
    fn binary_content_is_one_line() {
        let got = between("disk.img", b"\0\x01\x02", b"\0\x01\x02\x03");
        assert_eq!(
            got.as_deref(),
            Some("Binary files a/disk.img and b/disk.img differ (3 -> 4 bytes)\n")
        );
    }
}
