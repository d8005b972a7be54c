//! What discovery needs of each file, derived from its bytes alone so that it is remembered
//! across runs ([`FileSet::derive`]): when one manifest of a large tree changes, that file is
//! the only one read and parsed again. The facts are small on purpose, since every file's are
//! read back whenever the k8s loader runs; whole documents are kept only where discovery
//! reads them, in Flux Kustomizations (their spec is a node's params) and kustomization files
//! (their references). A kustomization file's document is part of its file facts, not a
//! derivation of its own: every kustomization file is scanned for the other facts anyway, and
//! a second derivation parsed it a second time.
//!
//! A file that does not parse has no facts: its error is never remembered, so a broken file is
//! parsed again on every run, and reported as it was.

use hl_engine::{Derivation, Error, FileSet, Rederive, RepoPath};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bundle;
use super::kustomize::{Named, KUSTOMIZATION_FILES};
use super::locate::{At, Spans};
use crate::yaml;

/// The derivations of this module, for cutoffs.
pub(crate) static DERIVATIONS: [&dyn Rederive; 2] = [&FILE, &DATA_SOPS];

/// The derivations, each under a tag with a version: a new version whenever what one derives
/// changes.
/// v2: a kustomization file's document joined the facts (it was `k8s.kustomization.v1`).
/// The documents' digests, and what a kustomization file names, are kept for the run: the
/// plan takes a bundle's digest from there.
static FILE: Derivation<FileFacts> = Derivation::new("k8s.file.v2", |bytes, p| {
    let text = utf8(bytes, p)?;
    let docs = yaml::docs_of(text, p)?;
    let kustomization = KUSTOMIZATION_FILES.contains(&p.file_name());
    Ok(FileFacts::of(text, docs, kustomization))
})
.kept(|f| FileFacts {
    docs: f.docs.clone(),
    named: f.named.clone(),
    ..FileFacts::default()
});
static DATA_SOPS: Derivation<bool> = Derivation::new("k8s.data-sops.v1", |bytes, p| {
    Ok(std::str::from_utf8(bytes).is_ok_and(|text| {
        yaml::text_is_sops(text)
            || yaml::docs_of(text, p).is_ok_and(|docs| docs.iter().any(yaml::is_sops))
    }))
});

/// What discovery needs of a YAML file in the tree (or read as a manifest).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct FileFacts {
    /// Whether any document carries SOPS metadata.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sops: bool,
    /// Whether a document is (or a `List` holds) a Secret with plaintext values. Only the
    /// answer is kept: the error names the Secret and its line, which a run that fails works
    /// out again from the text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub plaintext_secret: bool,
    /// The Flux Kustomizations it holds, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flux: Vec<FluxFacts>,
    /// In a kustomization file (by name): the document kustomize reads, its first map
    /// (`null` when it has none). `None` in any other file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomization: Option<Value>,
    /// Each document as the manifest bundle holds it: its identity and the digest of its
    /// canonical text. Made with the facts for realize in the same run, never remembered: they
    /// change with any value of a manifest, and a loader's facts must not (an edit of a
    /// value runs no loader).
    #[serde(skip)]
    pub docs: Vec<bundle::Document>,
    /// In a kustomization file: what its documents name as generator inputs and Helm values
    /// (a bundle's digest needs that, besides the documents' digests). Made and kept as
    /// `docs` are.
    #[serde(skip)]
    pub named: Option<Box<Named>>,
}

/// One Flux Kustomization document and the positions its origins and errors point at, found
/// in the text when it was parsed, so the text itself is not needed again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct FluxFacts {
    /// The document.
    pub doc: Value,
    /// Its `metadata.name` line.
    pub name: At,
    /// Its `kind` line.
    pub kind: At,
    /// Its `spec.path` line (or `spec:`).
    pub path: At,
    /// Its `spec.dependsOn` line.
    pub depends_on: At,
    /// The `name:` line of each `spec.dependsOn` entry, by position in the list.
    pub deps: Vec<At>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The facts of a YAML file; a file that is not UTF-8 or not YAML is an error (located).
pub(super) fn file(files: &FileSet, p: &RepoPath) -> Result<FileFacts, Error> {
    let mut facts = files.derive(&FILE, p)?;
    // Discovery has no use for them, and holds the facts of every file of the tree.
    facts.docs = Vec::new();
    facts.named = None;
    Ok(facts)
}

/// The facts of a file as discovery made them this run (with its documents' digests), or
/// made now when the file is not the one discovery read.
pub(super) fn documents(files: &FileSet, p: &RepoPath) -> Result<Vec<bundle::Document>, Error> {
    Ok(files.derived(&FILE, p)?.docs)
}

/// What the kustomization file `p` names (see [`FileFacts::named`]), as discovery made it this
/// run, or made now.
pub(super) fn named(files: &FileSet, p: &RepoPath) -> Result<Named, Error> {
    Ok(files
        .derived(&FILE, p)?
        .named
        .map(|n| *n)
        .unwrap_or_default())
}

/// Whether a non-manifest input (a generator's env file, a values file) is SOPS-encrypted:
/// dotenv and INI carry SOPS markers in their text, YAML and JSON a `sops` map.
pub(super) fn data_is_sops(files: &FileSet, p: &RepoPath) -> Result<bool, Error> {
    files.derive(&DATA_SOPS, p)
}

/// The text of a file, refused as [`FileSet::read_str`] refuses it.
fn utf8<'b>(bytes: &'b [u8], p: &RepoPath) -> Result<&'b str, Error> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::repo(format!("{p} is not UTF-8 text"), None, None))
}

impl FileFacts {
    fn of(text: &str, docs: Vec<Value>, kustomization: bool) -> FileFacts {
        let flux = if docs.iter().any(is_flux_kustomization) {
            let spans = Spans::new(text, docs.len());
            docs.iter()
                .enumerate()
                .filter(|(_, d)| is_flux_kustomization(d))
                .map(|(i, d)| FluxFacts::of(&spans, i, d))
                .collect()
        } else {
            Vec::new()
        };
        FileFacts {
            docs: docs
                .iter()
                .map(|d| bundle::Document::of(d, kustomization))
                .collect(),
            named: kustomization.then(|| Box::new(Named::of(&docs))),
            sops: docs.iter().any(yaml::is_sops),
            plaintext_secret: docs.iter().any(|d| plaintext_secret(d).is_some()),
            flux,
            kustomization: kustomization.then(|| {
                docs.into_iter()
                    .find(Value::is_object)
                    .unwrap_or(Value::Null)
            }),
        }
    }
}

impl FluxFacts {
    fn of(spans: &Spans, i: usize, doc: &Value) -> FluxFacts {
        const DEPENDS_ON: [&str; 2] = ["spec", "dependsOn"];
        let depends_on = spans.at(spans.key(i, &DEPENDS_ON));
        let deps = doc
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| match e.get("name").and_then(Value::as_str) {
                Some(dep) => spans.at(spans.entry(i, &DEPENDS_ON, "name", dep)),
                None => depends_on,
            })
            .collect();
        FluxFacts {
            doc: doc.clone(),
            name: spans.at(spans.key(i, &["metadata", "name"])),
            kind: spans.at(spans.key(i, &["kind"])),
            path: spans.at(spans.key(i, &["spec", "path"])),
            depends_on,
            deps,
        }
    }
}

/// Whether a document is a Flux Kustomization (any API version).
pub(super) fn is_flux_kustomization(doc: &Value) -> bool {
    doc.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("kustomize.toolkit.fluxcd.io/"))
        && doc.get("kind").and_then(Value::as_str) == Some("Kustomization")
}

/// The Secret in `doc` (itself, or an item of a `List`) that holds plaintext values, if any.
pub(super) fn plaintext_secret(doc: &Value) -> Option<&Value> {
    let is_plain = |d: &Value| {
        d.get("kind").and_then(Value::as_str) == Some("Secret")
            && !yaml::is_sops(d)
            && has_plaintext(d)
    };
    if is_plain(doc) {
        return Some(doc);
    }
    if doc.get("kind").and_then(Value::as_str) == Some("List") && !yaml::is_sops(doc) {
        return doc.get("items")?.as_array()?.iter().find(|d| is_plain(d));
    }
    None
}

/// Whether a Secret's `data` or `stringData` holds a value that is not empty and not a
/// `${VAR}` substitution.
fn has_plaintext(secret: &Value) -> bool {
    ["data", "stringData"]
        .iter()
        .filter_map(|k| secret.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.values())
        .any(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty() && !s.contains("${"),
            _ => true,
        })
}
