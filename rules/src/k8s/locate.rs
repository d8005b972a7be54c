//! Lines of keys in YAML text. Parsed values carry no positions, so origins (a Kustomization's
//! `name:`, a Secret's `kind:`, a `dependsOn` entry) are found by scanning the text of the
//! right document for a key path, block by block. Best effort: flow-style maps and documents
//! the scan cannot align fall back to the nearest key found, or to the whole file.

use std::ops::Range;

use hl_engine::{Origin, RepoPath};
use serde::{Deserialize, Serialize};

/// A place found by [`Spans`]: 1-based line and column, `(0, 0)` for the whole file. Kept
/// in facts in place of the text it was found in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct At(pub u32, pub u32);

impl At {
    /// The origin of this place in `file`.
    pub(super) fn origin(self, file: &RepoPath) -> Origin {
        Origin {
            path: file.clone(),
            line: self.0,
            col: self.1,
        }
    }
}

/// A YAML file's lines, split into the documents that [`crate::yaml::docs`] returns.
pub(super) struct Spans<'t> {
    lines: Vec<&'t str>,
    /// Line ranges of the non-empty documents; `None` when they do not line up with the parsed
    /// documents (a `~` document, say), and then every search covers the whole file.
    docs: Option<Vec<Range<usize>>>,
}

impl<'t> Spans<'t> {
    /// Splits `text` at `---` lines; `ndocs` is how many documents the parser found.
    pub(super) fn new(text: &'t str, ndocs: usize) -> Spans<'t> {
        let lines: Vec<&str> = text.lines().collect();
        let mut docs = Vec::new();
        let mut start = 0;
        for (i, line) in lines.iter().enumerate() {
            if is_separator(line) {
                docs.push(start..i);
                start = i + 1;
            }
        }
        docs.push(start..lines.len());
        docs.retain(|r| lines[r.clone()].iter().any(|l| is_content(l)));
        let docs = (docs.len() == ndocs).then_some(docs);
        Spans { lines, docs }
    }

    fn doc(&self, doc: usize) -> Range<usize> {
        match &self.docs {
            Some(d) => d.get(doc).cloned().unwrap_or(0..0),
            None => 0..self.lines.len(),
        }
    }

    /// The line (0-based) of a key path in document `doc`, e.g. `["metadata", "name"]`; when
    /// a deeper key is missing, the line of the deepest key found.
    pub(super) fn key(&self, doc: usize, path: &[&str]) -> Option<usize> {
        let mut range = self.doc(doc);
        let mut found = None;
        for key in path {
            let Some(i) = self.child(range.clone(), key) else {
                break;
            };
            found = Some(i);
            range = i + 1..self.block_end(i, range.end);
        }
        found
    }

    /// The line of the entry `key: value` inside the block of `path` (a `dependsOn` item by
    /// its name); the line of `path` itself when no entry matches.
    pub(super) fn entry(&self, doc: usize, path: &[&str], key: &str, value: &str) -> Option<usize> {
        let parent = self.key(doc, path)?;
        let block = parent + 1..self.block_end(parent, self.doc(doc).end);
        let hit = block.clone().find(|&i| {
            let line = self.lines[i];
            key_of(line) == Some(key) && value_of(line) == Some(value)
        });
        Some(hit.unwrap_or(parent))
    }

    /// An origin at line `line` (0-based) of `file`, at the key's column; the whole file
    /// when the line is unknown.
    pub(super) fn origin(&self, file: &RepoPath, line: Option<usize>) -> Origin {
        self.at(line).origin(file)
    }

    /// Where [`Spans::origin`] points.
    pub(super) fn at(&self, line: Option<usize>) -> At {
        match line.and_then(|i| self.lines.get(i).map(|l| (i, l))) {
            Some((i, l)) => At(i as u32 + 1, key_col(l) as u32),
            None => At::default(),
        }
    }

    /// The first line in `range` at the range's own indentation whose key is `key`.
    fn child(&self, range: Range<usize>, key: &str) -> Option<usize> {
        let base = range
            .clone()
            .find(|&i| is_content(self.lines[i]))
            .map(|i| indent(self.lines[i]))?;
        range.into_iter().find(|&i| {
            let l = self.lines[i];
            is_content(l) && indent(l) == base && key_of(l) == Some(key)
        })
    }

    /// Where the block under line `i` ends: the next content line indented no deeper, except
    /// the `- ` items of a list written at its key's own indentation.
    fn block_end(&self, i: usize, end: usize) -> usize {
        let own = indent(self.lines[i]);
        (i + 1..end)
            .find(|&j| {
                let l = self.lines[j];
                is_content(l)
                    && (indent(l) < own || (indent(l) == own && !l.trim_start().starts_with('-')))
            })
            .unwrap_or(end)
    }
}

fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether a line holds YAML content (not blank, a comment, a directive or a document end).
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with('#') || line.starts_with('%') || t == "...")
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The line with its list-item dashes removed: `  - name: a` -> `name: a`.
fn item(line: &str) -> &str {
    let mut t = line.trim_start();
    while let Some(rest) = t.strip_prefix("- ") {
        t = rest.trim_start();
    }
    t
}

fn key_col(line: &str) -> usize {
    line.len() - item(line).len() + 1
}

/// The key of a `key: value` or `key:` line, unquoted.
fn key_of(line: &str) -> Option<&str> {
    let t = item(line);
    let end = t.find(": ").or_else(|| t.strip_suffix(':').map(str::len))?;
    Some(t[..end].trim_matches(['"', '\'']))
}

/// The scalar value of a `key: value` line: comment, anchor and quotes removed.
fn value_of(line: &str) -> Option<&str> {
    let t = item(line);
    let v = t[t.find(": ")? + 2..].trim();
    let v = v.find(" #").map_or(v, |c| v[..c].trim_end());
    let v = match v.strip_prefix('&') {
        Some(anchored) => anchored
            .split_once(' ')
            .map_or("", |(_, rest)| rest.trim_start()),
        None => v,
    };
    Some(v.trim_matches(['"', '\'']))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n---\n# only a comment\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  labels:\n    app.kubernetes.io/name: decoy\n  name: &app second\nspec:\n  sourceRef:\n    name: decoy\n  dependsOn:\n  - name: a\n  - name: \"b\"   # quoted\n    namespace: x\n  path: ./k\n";

    fn line(text: &str, n: Option<usize>) -> Option<&str> {
        n.map(|i| text.lines().nth(i).unwrap_or_default().trim())
    }

    #[test]
    fn keys_are_found_in_the_right_document_and_block() {
        let spans = Spans::new(TEXT, 2);
        for (doc, path, want) in [
            (0, &["metadata", "name"][..], Some("name: first")),
            (1, &["metadata", "name"][..], Some("name: &app second")),
            (1, &["kind"][..], Some("kind: Kustomization")),
            (1, &["spec", "path"][..], Some("path: ./k")),
            (1, &["spec", "missing"][..], Some("spec:")),
            (1, &["absent"][..], None),
        ] {
            assert_eq!(line(TEXT, spans.key(doc, path)), want, "{doc} {path:?}");
        }
        let dep = spans.entry(1, &["spec", "dependsOn"], "name", "b");
        assert_eq!(line(TEXT, dep), Some("- name: \"b\"   # quoted"));
        let o = spans.origin(
            &RepoPath::new("k/ks.yaml").unwrap(),
            spans.key(1, &["metadata", "name"]),
        );
        assert_eq!((o.line, o.col), (15, 3));
    }

    #[test]
    fn misaligned_documents_search_the_whole_file() {
        let spans = Spans::new(TEXT, 5);
        assert_eq!(
            line(TEXT, spans.key(1, &["metadata", "name"])),
            Some("name: first")
        );
    }
}
