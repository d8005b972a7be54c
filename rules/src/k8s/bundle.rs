//! Realize: the manifest bundle of a node. Every document of every manifest input is parsed
//! and re-emitted canonically (sorted keys, one number form; comments, anchors and key order
//! vanish) and the documents are sorted by what identifies them, so neither an edit kustomize
//! would not see nor moving a document between files changes the output digest.
//!
//! | artifact file | holds |
//! | --- | --- |
//! | `manifests.json` | every manifest document, canonical, sorted by (apiVersion, kind, namespace, name, canonical text) |
//! | `values/<repo path>.json` | a Helm values file of `helmCharts`, canonical (Helm reads it as data, not text) |
//! | `files/<repo path>` | a generator input (`configMapGenerator` files), byte for byte: its text is the data |
//!
//! Pure: reads only the node's input files, through the run's [`FileSet`].

use std::collections::{HashMap, HashSet};

use hl_engine::{canonical_json, canonical_pretty, Artifact, Error, FileSet, RepoPath};
use serde_json::Value;

use super::kustomize::{roles, KUSTOMIZATION_FILES};
use crate::yaml;

/// Renders the bundle of a node whose input files are `inputs`. Each input is parsed once:
/// the kustomization files first (they say which inputs are generator data or Helm values),
/// and their documents are kept for the bundle.
pub(super) fn render(files: &FileSet, inputs: &[RepoPath]) -> Result<Artifact, Error> {
    let mut kustomizations: HashMap<&RepoPath, Vec<Value>> = HashMap::new();
    for kfile in inputs
        .iter()
        .filter(|p| KUSTOMIZATION_FILES.contains(&p.file_name()))
    {
        kustomizations.insert(kfile, yaml::docs(files, kfile)?);
    }
    let (data, values) = split_roles(&kustomizations, inputs);
    let mut art = Artifact::default();
    let mut docs: Vec<(Identity, Value)> = Vec::new();
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
        docs.extend(parsed.into_iter().map(|mut d| {
            if kustomization {
                drop_local_paths(&mut d);
            }
            (Identity::of(&d), d)
        }));
    }
    sort(&mut docs);
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
/// among them (parsed) name them.
fn split_roles(
    kustomizations: &HashMap<&RepoPath, Vec<Value>>,
    inputs: &[RepoPath],
) -> (HashSet<RepoPath>, HashSet<RepoPath>) {
    let set: HashSet<&RepoPath> = inputs.iter().collect();
    let (mut data, mut values) = (HashSet::new(), HashSet::new());
    for (kfile, docs) in kustomizations {
        for doc in docs.iter().filter(|d| d.is_object()) {
            roles(kfile, doc, &set, &mut data, &mut values);
        }
    }
    (data, values)
}

/// Orders documents by their identity, then by their canonical text, so equal identities
/// (patches, values without `kind`) still sort the same way every time. The text is made
/// only for documents whose identity another one shares: most have one of their own, and
/// writing every document out only to sort it cost as much as a tenth of a cold plan.
fn sort(docs: &mut [(Identity, Value)]) {
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut start = 0;
    while start < docs.len() {
        let end = start
            + docs[start..]
                .iter()
                .take_while(|(id, _)| *id == docs[start].0)
                .count();
        if end - start > 1 {
            let run = &mut docs[start..end];
            let mut keyed: Vec<(String, usize)> = run
                .iter()
                .enumerate()
                .map(|(i, (_, d))| (canonical_json(d), i))
                .collect();
            // Stable, as a sort by (identity, text) is: equal texts keep their order.
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            let mut taken: Vec<Option<(Identity, Value)>> = run
                .iter_mut()
                .map(|slot| Some(std::mem::take(slot)))
                .collect();
            for (slot, (_, i)) in run.iter_mut().zip(keyed) {
                *slot = taken[i].take().expect("each document is placed once");
            }
        }
        start = end;
    }
}

/// What identifies a document in a cluster.
#[derive(Default, PartialEq, Eq, PartialOrd, Ord)]
struct Identity {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl Identity {
    fn of(doc: &Value) -> Identity {
        let s = |ptr: &str| {
            doc.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Identity {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}
