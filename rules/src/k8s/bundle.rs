//! Realize: the manifest bundle of a node. Every document of every manifest input is parsed
//! and re-emitted canonically (sorted keys, one number form; comments, anchors and key order
//! vanish) and the documents are sorted by what identifies them, so neither an edit kustomize
//! would not see nor moving a document between files changes the output digest.
//!
//! | artifact file | holds |
//! | --- | --- |
//! | `manifests/<n>.json` | the `n`th manifest document (from 00000), canonical, in the order of (apiVersion, kind, namespace, name, digest of its text) |
//! | `values/<repo path>.json` | a Helm values file of `helmCharts`, canonical (Helm reads it as data, not text) |
//! | `files/<repo path>` | a generator input (`configMapGenerator` files), byte for byte: its text is the data |
//!
//! One file per document, so the output digest (over each file's digest, see
//! [`Artifact::digest`]) is made from each document's digest alone: [`digest`] takes those
//! from the facts discovery derived of each file in the same run and parses nothing again,
//! where [`render`] makes the documents themselves (`hl build`, `hl apply`). Both sort and
//! name the documents in one way, and the tests hold them to the same digest.
//!
//! Pure: reads only the node's input files, through the run's [`FileSet`].

use std::collections::{BTreeMap, HashMap, HashSet};

use hl_engine::{
    canonical_pretty, canonical_pretty_digest, Artifact, Digest, Error, FileSet, Output, RepoPath,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::facts;
use super::kustomize::{Named, KUSTOMIZATION_FILES};
use crate::yaml;

/// One document of the bundle: what identifies it in a cluster, and the digest of its
/// canonical text (the content of its `manifests/<n>.json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Document {
    id: Identity,
    digest: [u8; 32],
}

impl Document {
    /// A parsed document of a file (`kustomization`: a kustomization file, whose local paths
    /// the bundle drops).
    pub(super) fn of(doc: &Value, kustomization: bool) -> Document {
        if kustomization {
            return Document::with_text(doc, kustomization).0;
        }
        Document {
            id: Identity::of(doc),
            digest: canonical_pretty_digest(doc),
        }
    }

    fn with_text(doc: &Value, kustomization: bool) -> (Document, String) {
        let text = if kustomization {
            let mut d = doc.clone();
            drop_local_paths(&mut d);
            canonical_pretty(&d)
        } else {
            canonical_pretty(doc)
        };
        let id = Identity::of(doc);
        let digest = *blake3::hash(text.as_bytes()).as_bytes();
        (Document { id, digest }, text)
    }
}

/// The name of the `n`th document of the bundle.
fn manifest_name(n: usize) -> String {
    format!("manifests/{n:05}.json")
}

/// The inputs that are kustomization files, parsed (they say which inputs are generator data
/// or Helm values), and those two sets.
struct Roles<'a> {
    kustomizations: HashMap<&'a RepoPath, Vec<Value>>,
    data: HashSet<RepoPath>,
    values: HashSet<RepoPath>,
}

fn roles_of<'a>(files: &FileSet, inputs: &'a [RepoPath]) -> Result<Roles<'a>, Error> {
    let mut kustomizations: HashMap<&RepoPath, Vec<Value>> = HashMap::new();
    for kfile in inputs
        .iter()
        .filter(|p| KUSTOMIZATION_FILES.contains(&p.file_name()))
    {
        kustomizations.insert(kfile, yaml::docs(files, kfile)?);
    }
    let (data, values) = split_roles(&kustomizations, inputs);
    Ok(Roles {
        kustomizations,
        data,
        values,
    })
}

/// Renders the bundle of a node whose input files are `inputs`. Each input is parsed once:
/// the kustomization files first, and their documents are kept for the bundle.
pub(super) fn render(files: &FileSet, inputs: &[RepoPath]) -> Result<Artifact, Error> {
    let Roles {
        mut kustomizations,
        data,
        values,
    } = roles_of(files, inputs)?;
    let mut art = Artifact::default();
    let mut docs: Vec<(Document, String)> = Vec::new();
    for p in inputs {
        if data.contains(p) {
            art.files
                .insert(format!("files/{p}"), files.read(p)?.to_vec());
            continue;
        }
        let parsed = match kustomizations.remove(p) {
            Some(parsed) => parsed,
            None => yaml::docs(files, p)?,
        };
        if values.contains(p) {
            let canonical = canonical_pretty(&Value::Array(parsed));
            art.files
                .insert(format!("values/{p}.json"), canonical.into_bytes());
            continue;
        }
        let kustomization = KUSTOMIZATION_FILES.contains(&p.file_name());
        docs.extend(parsed.iter().map(|d| Document::with_text(d, kustomization)));
    }
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    for (n, (_, text)) in docs.into_iter().enumerate() {
        art.files.insert(manifest_name(n), text.into_bytes());
    }
    Ok(art)
}

/// The digest of the artifact [`render`] makes, from the documents' digests discovery
/// derived this run: only generator data and Helm values files are read (few, small).
pub(super) fn digest(files: &FileSet, inputs: &[RepoPath]) -> Result<Digest<Output>, Error> {
    // What each kustomization file names, as discovery kept it: not parsed again.
    let set: HashSet<&RepoPath> = inputs.iter().collect();
    let (mut data, mut values) = (HashSet::new(), HashSet::new());
    for kfile in inputs
        .iter()
        .filter(|p| KUSTOMIZATION_FILES.contains(&p.file_name()))
    {
        facts::named(files, kfile)?.roles(kfile, &set, &mut data, &mut values);
    }
    let mut entries: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    let mut docs: Vec<Document> = Vec::new();
    for p in inputs {
        if data.contains(p) {
            let bytes = files.read(p)?;
            entries.insert(format!("files/{p}"), *blake3::hash(&bytes).as_bytes());
            continue;
        }
        if values.contains(p) {
            let canonical = canonical_pretty(&Value::Array(yaml::docs(files, p)?));
            entries.insert(
                format!("values/{p}.json"),
                *blake3::hash(canonical.as_bytes()).as_bytes(),
            );
            continue;
        }
        docs.extend(facts::documents(files, p)?);
    }
    docs.sort();
    for (n, d) in docs.into_iter().enumerate() {
        entries.insert(manifest_name(n), d.digest);
    }
    Ok(Artifact::digest_of(&entries))
}

/// Drops the local file and folder names a kustomization lists under `resources` and
/// `components`: their contents are in the bundle already, and their names do not reach the
/// cluster, so renaming a manifest (and its reference) renders the same. Remote references,
/// which are not inputs, stay.
fn drop_local_paths(doc: &mut Value) {
    for key in ["resources", "components"] {
        if let Some(Value::Array(items)) = doc.get_mut(key) {
            items.retain(|i| {
                i.as_str()
                    .is_some_and(|s| s.contains("://") || s.starts_with("github.com/"))
            });
        }
    }
}

/// The generator inputs and Helm values files among `inputs`, as the kustomization files
/// among them (parsed) name them.
fn split_roles(
    kustomizations: &HashMap<&RepoPath, Vec<Value>>,
    inputs: &[RepoPath],
) -> (HashSet<RepoPath>, HashSet<RepoPath>) {
    let set: HashSet<&RepoPath> = inputs.iter().collect();
    let (mut data, mut values) = (HashSet::new(), HashSet::new());
    for (kfile, docs) in kustomizations {
        Named::of(docs).roles(kfile, &set, &mut data, &mut values);
    }
    (data, values)
}

/// What identifies a document in a cluster: apiVersion, kind, namespace and name, one string
/// with a NUL after each (ordered as the four in turn, in one allocation: realize keeps one
/// for every document of a large tree).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Identity(Box<str>);

impl Identity {
    fn of(doc: &Value) -> Identity {
        let mut id = String::new();
        for ptr in [
            "/apiVersion",
            "/kind",
            "/metadata/namespace",
            "/metadata/name",
        ] {
            id.push_str(doc.pointer(ptr).and_then(Value::as_str).unwrap_or_default());
            id.push('\0');
        }
        Identity(id.into_boxed_str())
    }
}
