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

    /// A unified diff of the file, or `None` when the old content is not known.
    pub fn unified(
        &self,
        path: &RepoPath,
        old: Option<Digest<Content>>,
        new: Option<Digest<Content>>,
    ) -> Option<String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (old_text, new_text) = match self {
            Diffs::Recorded { store, files } => {
                let old_text = match old {
                    None => String::new(),
                    Some(d) => match store.get(d.bytes()).ok()? {
                        Fetched::Hit(b) => text(&b),
                        _ => return None,
                    },
                };
                let new_text = if new.is_some() {
                    files.read(path).map(|b| text(&b)).unwrap_or_default()
                } else {
                    String::new()
                };
                (old_text, new_text)
            }
            Diffs::Between { base, head } => {
                let old_text = if old.is_some() {
                    base.read(path).map(|b| text(&b)).ok()?
                } else {
                    String::new()
                };
                let new_text = if new.is_some() {
                    head.read(path).map(|b| text(&b)).ok()?
                } else {
                    String::new()
                };
                (old_text, new_text)
            }
        };
        let d = similar::TextDiff::from_lines(&old_text, &new_text);
        let (a, b) = (format!("a/{path}"), format!("b/{path}"));
        Some(
            d.unified_diff()
                .context_radius(1)
                .header(&a, &b)
                .to_string(),
        )
    }
}
