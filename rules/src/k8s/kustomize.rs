//! What a kustomization file references, by the role each file plays: read as manifests,
//! read as bytes by a generator, or read as Helm values ([`refs`]). Pure functions of the
//! parsed document, shared by discovery ([`super::resolve`]) and realize ([`roles`], which has
//! no walk and must find the generator inputs among a node's files by itself).

use std::collections::HashSet;

use hl_engine::RepoPath;
use serde_json::Value;

/// The names kustomize recognises, in its order of preference.
pub(super) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The references of one kustomization file, as written, by the role their file plays.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Refs {
    /// Read as manifests: resources, bases, components, crds, patch and replacement files.
    pub manifests: Vec<String>,
    /// Read as bytes by a generator (`configMapGenerator`/`secretGenerator` `files`, `envs`).
    pub data: Vec<String>,
    /// The generator inputs that end up in a Secret, so must be SOPS-encrypted.
    pub secret_data: Vec<String>,
    /// Keys of `secretGenerator` literals whose value is written out in the file.
    pub secret_literals: Vec<String>,
    /// Helm values files of `helmCharts`.
    pub values: Vec<String>,
}

/// The references of a kustomization document. Anything of an unexpected shape is skipped,
/// never a panic: kustomize itself reports malformed kustomizations.
pub(super) fn refs(doc: &Value) -> Refs {
    let mut r = Refs::default();
    let strings = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| !inline(s))
            .map(str::to_string)
            .collect()
    };
    for key in [
        "resources",
        "bases",
        "components",
        "crds",
        "configurations",
        "patchesStrategicMerge",
        "transformers",
        "generators",
        "validators",
    ] {
        r.manifests.extend(strings(key));
    }
    for key in ["patches", "patchesJson6902", "replacements"] {
        for entry in doc.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = entry.get("path").and_then(Value::as_str) {
                r.manifests.push(p.to_string());
            }
        }
    }
    if let Some(p) = doc.pointer("/openapi/path").and_then(Value::as_str) {
        r.manifests.push(p.to_string());
    }
    for (key, secret) in [("configMapGenerator", false), ("secretGenerator", true)] {
        for generator in doc.get(key).and_then(Value::as_array).into_iter().flatten() {
            generator_refs(generator, secret, &mut r);
        }
    }
    for chart in doc
        .get("helmCharts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let extra = chart
            .get("additionalValuesFiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let files = chart
            .get("valuesFile")
            .into_iter()
            .chain(extra)
            .filter_map(Value::as_str);
        r.values.extend(files.map(str::to_string));
    }
    r
}

/// A generator's file inputs (`files: [key=path]`, `envs`, `env`) and plaintext literals.
fn generator_refs(generator: &Value, secret: bool, r: &mut Refs) {
    let list = |key: &str| {
        generator
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    };
    let files = list("files").map(|f| f.split_once('=').map_or(f, |(_, path)| path));
    let envs = list("envs").chain(generator.get("env").and_then(Value::as_str));
    for f in files.chain(envs) {
        r.data.push(f.to_string());
        if secret {
            r.secret_data.push(f.to_string());
        }
    }
    if secret {
        for literal in list("literals") {
            let (key, value) = literal.split_once('=').unwrap_or((literal, ""));
            if !value.is_empty() && !value.contains("${") {
                r.secret_literals.push(key.to_string());
            }
        }
    }
}

/// Whether a list entry is inline YAML (a patch written in place) rather than a path.
fn inline(s: &str) -> bool {
    s.contains('\n') || s.trim_start().starts_with(['{', '[']) || s.contains(": ")
}

/// Whether a reference is certainly remote: a URL or a git address.
pub(super) fn remote(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("git::") || s.contains("?ref=")
}

/// Whether a reference that names no local file looks like kustomize's `host/org/repo//path`.
pub(super) fn host_like(s: &str) -> bool {
    let first = s.split('/').next().unwrap_or("");
    first.contains('.') && !first.starts_with('.') && s.matches('/').count() >= 2
}

/// What the documents of a kustomization file name as generator inputs and as Helm values
/// files, as written: what a bundle needs of the file besides its documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Named {
    /// Read as bytes by a generator.
    pub data: Vec<String>,
    /// Helm values files.
    pub values: Vec<String>,
}

impl Named {
    /// What the file's documents (mappings only) name.
    pub fn of(docs: &[Value]) -> Named {
        let mut named = Named::default();
        for doc in docs.iter().filter(|d| d.is_object()) {
            let r = refs(doc);
            named.data.extend(r.data);
            named.values.extend(r.values);
        }
        named
    }

    /// The files read as bytes (generator inputs) and as Helm values by the kustomization file
    /// `kfile` that names these, among `inputs`, for realize, which has no walk: every
    /// kustomization file a node reads is among its inputs, and so are the files it references.
    pub fn roles(
        &self,
        kfile: &RepoPath,
        inputs: &HashSet<&RepoPath>,
        data: &mut HashSet<RepoPath>,
        values: &mut HashSet<RepoPath>,
    ) {
        let dir = kfile.parent();
        let known = |s: &String| dir.join(s).ok().filter(|p| inputs.contains(p));
        data.extend(self.data.iter().filter_map(known));
        values.extend(self.values.iter().filter_map(known));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_sorted_by_role() {
        let doc = json!({
            "resources": ["./a.yaml", "../base", "https://github.com/x/y//deploy?ref=v1"],
            "components": ["../../components/volsync"],
            "patches": [{"path": "patch.yaml", "target": {"kind": "Deployment"}}, {"patch": "- op: remove\n  path: /x"}],
            "patchesStrategicMerge": ["psm.yaml", "apiVersion: v1\nkind: ConfigMap\n"],
            "configMapGenerator": [{"name": "cfg", "files": ["conf.ini", "key=other.txt"], "envs": ["cfg.env"]}],
            "secretGenerator": [{"name": "s", "envs": ["s.sops.env"], "literals": ["user=${USER}", "password=hunter2"]}],
            "helmCharts": [{"name": "c", "valuesFile": "values.yaml", "additionalValuesFiles": ["more.yaml"]}],
        });
        let r = refs(&doc);
        assert_eq!(
            r.manifests,
            vec![
                "./a.yaml",
                "../base",
                "https://github.com/x/y//deploy?ref=v1",
                "../../components/volsync",
                "psm.yaml",
                "patch.yaml"
            ]
        );
        assert_eq!(
            r.data,
            vec!["conf.ini", "other.txt", "cfg.env", "s.sops.env"]
        );
        assert_eq!(r.secret_data, vec!["s.sops.env"]);
        assert_eq!(r.secret_literals, vec!["password"]);
        assert_eq!(r.values, vec!["values.yaml", "more.yaml"]);
    }

    #[test]
    fn remote_references_are_told_from_paths() {
        for (s, sure, host) in [
            (
                "https://github.com/fluxcd/flux2/manifests/install?ref=v2.3.0",
                true,
                false,
            ),
            ("git@github.com:org/repo.git//deploy", true, true),
            (
                "github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v1.0.6",
                true,
                true,
            ),
            ("github.com/org/repo/deploy", false, true),
            ("./app/ks.yaml", false, false),
            ("../base", false, false),
            ("config.d/x.yaml", false, false),
        ] {
            assert_eq!((remote(s), host_like(s)), (sure, host), "{s}");
        }
    }
}
