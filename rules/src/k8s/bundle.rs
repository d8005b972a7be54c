//! Realize: the manifest bundle of a node. Every document of every manifest input is parsed
//! and re-emitted canonically (sorted keys, one number form; comments, anchors and key order
//! vanish) and the documents are sorted by what identifies them, so neither an edit kustomize
//! would not see nor moving a document between files changes the output digest.
//!
//! | artifact file | holds |
//! | --- | --- |
//! | `manifests.json` | every manifest document, canonical, sorted by (apiVersion, kind, namespace, name, text) |
//! | `values/<repo path>.json` | a Helm values file of `helmCharts`, canonical (Helm reads it as data, not text) |
//! | `files/<repo path>` | a generator input (`configMapGenerator` files), byte for byte: its text is the data |
//!
//! Pure: reads only the node's input files, through the run's [`FileSet`].

use std::collections::HashSet;

use hl_engine::{canonical_json, canonical_pretty, Artifact, Error, FileSet, RepoPath};
use serde_json::Value;

use super::kustomize::{roles, KUSTOMIZATION_FILES};
use crate::yaml;

/// Renders the bundle of a node whose input files are `inputs`.
pub(super) fn render(files: &FileSet, inputs: &[RepoPath]) -> Result<Artifact, Error> {
    let (data, values) = split_roles(files, inputs)?;
    let mut art = Artifact::default();
    let mut docs: Vec<(SortKey, Value)> = Vec::new();
    for p in inputs {
        if data.contains(p) {
            art.files
                .insert(format!("files/{p}"), files.read(p)?.to_vec());
            continue;
        }
        let parsed = yaml::docs(files, p)?;
        if values.contains(p) {
            let canonical = canonical_pretty(&Value::Array(parsed));
            art.files
                .insert(format!("values/{p}.json"), canonical.into_bytes());
            continue;
        }
        let kustomization = KUSTOMIZATION_FILES.contains(&p.file_name());
        docs.extend(parsed.into_iter().map(|mut d| {
            if kustomization {
                drop_local_paths(&mut d);
            }
            (SortKey::of(&d), d)
        }));
    }
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    let all = Value::Array(docs.into_iter().map(|(_, d)| d).collect());
    art.files
        .insert("manifests.json".into(), canonical_pretty(&all).into_bytes());
    Ok(art)
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
/// among them name them.
fn split_roles(
    files: &FileSet,
    inputs: &[RepoPath],
) -> Result<(HashSet<RepoPath>, HashSet<RepoPath>), Error> {
    let set: HashSet<&RepoPath> = inputs.iter().collect();
    let (mut data, mut values) = (HashSet::new(), HashSet::new());
    for kfile in inputs
        .iter()
        .filter(|p| KUSTOMIZATION_FILES.contains(&p.file_name()))
    {
        for doc in yaml::docs(files, kfile)?.iter().filter(|d| d.is_object()) {
            roles(kfile, doc, &set, &mut data, &mut values);
        }
    }
    Ok((data, values))
}

/// What orders documents: their identity, then their canonical text, so equal identities
/// (patches, values without `kind`) still sort the same way every time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    text: String,
}

impl SortKey {
    fn of(doc: &Value) -> SortKey {
        let s = |ptr: &str| {
            doc.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        SortKey {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            text: canonical_json(doc),
        }
    }
}
