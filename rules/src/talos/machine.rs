//! A node's machine config: a base v1alpha1 document built from the talhelper cluster and node
//! fields (what `talhelper genconfig` puts in before patches), then every patch in order.
//!
//! The artifact holds no secrets: certificates and tokens come from the SOPS file at converge
//! time, so the rendered config can be hashed, cached and shown in a plan.

use hl_engine::{canonical_pretty, Artifact, Content, Digest, Error, FileSet, Origin, RepoPath};
use serde_json::{json, Map, Value};

use super::patch::MachineConfig;
use crate::yaml;

/// The installer image when neither the node nor the cluster names one.
const DEFAULT_INSTALLER: &str = "ghcr.io/siderolabs/installer";

/// Which roles a cluster field applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Roles {
    All,
    ControlPlane,
}

/// talhelper cluster field -> machine config path, and which roles get it.
const CLUSTER_FIELDS: [(&str, &str, Roles); 10] = [
    ("clusterName", "cluster/clusterName", Roles::All),
    ("endpoint", "cluster/controlPlane/endpoint", Roles::All),
    ("domain", "cluster/network/dnsDomain", Roles::All),
    ("clusterPodNets", "cluster/network/podSubnets", Roles::All),
    (
        "clusterSvcNets",
        "cluster/network/serviceSubnets",
        Roles::All,
    ),
    ("cniConfig", "cluster/network/cni", Roles::All),
    ("additionalMachineCertSans", "machine/certSANs", Roles::All),
    (
        "additionalApiServerCertSans",
        "cluster/apiServer/certSANs",
        Roles::ControlPlane,
    ),
    (
        "allowSchedulingOnMasters",
        "cluster/allowSchedulingOnControlPlanes",
        Roles::ControlPlane,
    ),
    (
        "allowSchedulingOnControlPlanes",
        "cluster/allowSchedulingOnControlPlanes",
        Roles::ControlPlane,
    ),
];

/// talhelper node field -> machine config path.
const NODE_FIELDS: [(&str, &str); 11] = [
    ("hostname", "machine/network/hostname"),
    ("installDiskSelector", "machine/install/diskSelector"),
    ("networkInterfaces", "machine/network/interfaces"),
    ("nameservers", "machine/network/nameservers"),
    ("disableSearchDomain", "machine/network/disableSearchDomain"),
    ("nodeLabels", "machine/nodeLabels"),
    ("nodeTaints", "machine/nodeTaints"),
    ("nodeAnnotations", "machine/nodeAnnotations"),
    ("kernelModules", "machine/kernel/modules"),
    ("machineDisks", "machine/disks"),
    ("machineFiles", "machine/files"),
];

/// Kubernetes component images, set from `kubernetesVersion`, and which roles run them.
const K8S_IMAGES: [(&str, &str, Roles); 5] = [
    (
        "machine/kubelet/image",
        "ghcr.io/siderolabs/kubelet",
        Roles::All,
    ),
    (
        "cluster/proxy/image",
        "registry.k8s.io/kube-proxy",
        Roles::All,
    ),
    (
        "cluster/apiServer/image",
        "registry.k8s.io/kube-apiserver",
        Roles::ControlPlane,
    ),
    (
        "cluster/controllerManager/image",
        "registry.k8s.io/kube-controller-manager",
        Roles::ControlPlane,
    ),
    (
        "cluster/scheduler/image",
        "registry.k8s.io/kube-scheduler",
        Roles::ControlPlane,
    ),
];

/// Sets `value` at a `/`-separated path, creating maps on the way (a non-map is replaced).
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    for key in path.split('/') {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(m) = at else { return };
        at = m.entry(key.to_string()).or_insert(Value::Null);
    }
    *at = value;
}

/// The base v1alpha1 document of a node, from its canonical params (see `discover`).
pub fn base(params: &Value) -> Value {
    let cluster = &params["cluster"];
    let node = &params["node"];
    let controlplane = params["role"] == "controlplane";
    let applies = |r: Roles| r == Roles::All || controlplane;
    let mut doc = json!({
        "version": "v1alpha1",
        "debug": false,
        "persist": true,
        "machine": {"type": params["role"].clone(), "install": {"wipe": false}},
    });
    if !params["installDisk"].is_null() {
        set(
            &mut doc,
            "machine/install/disk",
            params["installDisk"].clone(),
        );
    }
    for (field, path, roles) in CLUSTER_FIELDS {
        if let Some(v) = cluster
            .get(field)
            .filter(|v| !v.is_null() && applies(roles))
        {
            set(&mut doc, path, v.clone());
        }
    }
    for (field, path) in NODE_FIELDS {
        if let Some(v) = node.get(field).filter(|v| !v.is_null()) {
            set(&mut doc, path, v.clone());
        }
    }
    if let Some(version) = cluster.get("kubernetesVersion").and_then(Value::as_str) {
        for (path, image, roles) in K8S_IMAGES {
            if applies(roles) {
                set(&mut doc, path, json!(format!("{image}:{version}")));
            }
        }
    }
    set(
        &mut doc,
        "machine/install/image",
        json!(installer(cluster, node)),
    );
    doc
}

/// The installer image: the node's `talosImageURL`, else the cluster's, tagged `talosVersion`.
fn installer(cluster: &Value, node: &Value) -> String {
    let url = [node, cluster]
        .iter()
        .find_map(|v| v.get("talosImageURL").and_then(Value::as_str))
        .unwrap_or(DEFAULT_INSTALLER);
    match cluster.get("talosVersion").and_then(Value::as_str) {
        Some(version) if !url.contains('@') => format!("{url}:{version}"),
        _ => url.to_string(),
    }
}

/// A node's rendered config, and the SOPS-encrypted patches that converge decrypts and applies
/// last (named here by their ciphertext digest: a decrypted value never enters an artifact).
#[derive(Debug)]
pub struct Rendered {
    /// The config with every plaintext patch applied.
    pub config: MachineConfig,
    /// `{"file", "ciphertext"}` per encrypted patch, in order.
    pub sealed: Vec<Value>,
}

/// Renders the node's machine config: base document, then each patch in order. Patch files are
/// read through `files`, so each is read once per run however many nodes use it.
pub fn render(params: &Value, files: &FileSet, origin: &Origin) -> Result<Rendered, Error> {
    let mut out = Rendered {
        config: MachineConfig::new(base(params)),
        sealed: Vec::new(),
    };
    let patches = params["patches"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, patch) in patches.iter().enumerate() {
        if let Some(file) = patch.get("file").and_then(Value::as_str) {
            let path = RepoPath::new(file).map_err(|e| {
                Error::Internal(format!(
                    "talos patch path `{file}` was accepted at discovery: {e}"
                ))
            })?;
            if patch["sops"] == true {
                out.sealed.push(seal(files, &path)?);
            } else {
                apply_file(&mut out.config, files, &path)?;
            }
        } else if let Some(doc) = patch.get("inline") {
            out.config.apply(doc).map_err(|e| {
                refuse(
                    format!("cannot apply inline patch {} of {origin}: {e}", i + 1),
                    origin.clone(),
                )
            })?;
        }
    }
    Ok(out)
}

/// Applies every document of a plaintext patch file.
fn apply_file(config: &mut MachineConfig, files: &FileSet, path: &RepoPath) -> Result<(), Error> {
    for (n, doc) in yaml::docs(files, path)?.iter().enumerate() {
        if yaml::is_sops(doc) {
            return Err(Error::repo(
                format!("patch {path} is SOPS-encrypted but not named so"),
                Some(Origin::file(path.clone())),
                Some("rename it to *.sops.yaml (and the reference with it) so hl leaves it to sops at apply time".into()),
            ));
        }
        config.apply(doc).map_err(|e| {
            refuse(
                format!("cannot apply patch {path} (document {}): {e}", n + 1),
                Origin::file(path.clone()),
            )
        })?;
    }
    Ok(())
}

/// An encrypted patch as the artifact names it; one named `.sops.` that is not encrypted is
/// refused, since it would be applied as plaintext nobody meant to commit.
fn seal(files: &FileSet, path: &RepoPath) -> Result<Value, Error> {
    let docs = yaml::docs(files, path)?;
    if docs.is_empty() || !docs.iter().all(yaml::is_sops) {
        return Err(Error::secret(
            format!("plaintext Talos patch in {path}; encrypt it with sops"),
            Some(Origin::file(path.clone())),
            Some(format!("run `sops --encrypt --in-place {path}`, or drop `.sops.` from its name if it holds no secret")),
        ));
    }
    let ciphertext = Digest::<Content>::of(&files.read(path)?);
    Ok(json!({"file": path.as_str(), "ciphertext": ciphertext.hex()}))
}

fn refuse(message: String, origin: Origin) -> Error {
    Error::repo(
        message,
        Some(origin),
        Some("a JSON patch must name paths that exist at that point (use `add` for new keys); `talosctl machineconfig patch` shows the same".into()),
    )
}

/// The artifact: `machineconfig.json` (the v1alpha1 document), one file per typed document
/// under `documents/`, and `sops-patches.json` when there are encrypted patches; each canonical
/// JSON, so comments and key order never change the digest.
pub fn artifact(rendered: &Rendered) -> Artifact {
    let config = &rendered.config;
    let mut artifact = Artifact::single("machineconfig.json", canonical_pretty(&config.main));
    for (i, doc) in config.extra.iter().enumerate() {
        let name = format!("documents/{:02}-{}.json", i + 1, document_name(doc));
        artifact
            .files
            .insert(name, canonical_pretty(doc).into_bytes());
    }
    if !rendered.sealed.is_empty() {
        let sealed = canonical_pretty(&Value::Array(rendered.sealed.clone()));
        artifact
            .files
            .insert("sops-patches.json".into(), sealed.into_bytes());
    }
    artifact
}

/// `Kind[-name]` of a typed document, safe as a file name.
fn document_name(doc: &Value) -> String {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let name = match text("name") {
        n if n.is_empty() => text("kind"),
        n => format!("{}-{n}", text("kind")),
    };
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_document_carries_cluster_and_node_fields_by_role() {
        let params = |role: &str| {
            json!({
                "cluster": {"clusterName": "home", "endpoint": "https://10.0.0.10:6443", "talosVersion": "v1.8.3",
                            "kubernetesVersion": "v1.31.2", "additionalApiServerCertSans": ["k8s.lan"], "unknownKey": 1},
                "node": {"hostname": "n1", "ipAddress": "10.0.0.11", "nameservers": ["1.1.1.1"]},
                "role": role,
                "installDisk": "/dev/sda",
                "patches": [],
            })
        };
        let cp = base(&params("controlplane"));
        assert_eq!(cp["machine"]["type"], "controlplane");
        assert_eq!(cp["machine"]["install"]["disk"], "/dev/sda");
        assert_eq!(
            cp["machine"]["install"]["image"],
            "ghcr.io/siderolabs/installer:v1.8.3"
        );
        assert_eq!(cp["machine"]["network"]["hostname"], "n1");
        assert_eq!(cp["machine"]["network"]["nameservers"], json!(["1.1.1.1"]));
        assert_eq!(
            cp["machine"]["kubelet"]["image"],
            "ghcr.io/siderolabs/kubelet:v1.31.2"
        );
        assert_eq!(cp["cluster"]["clusterName"], "home");
        assert_eq!(
            cp["cluster"]["controlPlane"]["endpoint"],
            "https://10.0.0.10:6443"
        );
        assert_eq!(
            cp["cluster"]["apiServer"]["image"],
            "registry.k8s.io/kube-apiserver:v1.31.2"
        );
        assert_eq!(cp["cluster"]["apiServer"]["certSANs"], json!(["k8s.lan"]));
        let worker = base(&params("worker"));
        assert_eq!(worker["machine"]["type"], "worker");
        assert!(worker["cluster"].get("apiServer").is_none(), "{worker}");
        assert_eq!(
            worker["cluster"]["controlPlane"]["endpoint"],
            "https://10.0.0.10:6443"
        );
    }
}
