//! L3: Talos machine configs from talhelper's `talconfig.yaml`, one `talos:<hostname>` node per
//! Talos node.
//!
//! | param | from | why it is its own key |
//! | --- | --- | --- |
//! | `cluster` | every top-level talconfig key but `nodes`, `patches`, `controlPlane`, `worker` | a cluster change re-plans every node |
//! | `node` | the node entry over its role section's defaults, without `patches`, `installDisk`, `controlPlane` | the node's own fields: an update |
//! | `role` | `controlPlane: true/false` | a role change replaces the node |
//! | `installDisk` | the node's `installDisk` | a new install disk replaces the node |
//! | `patches` | global, then role, then node patches: `{"file": path}` (`"sops": true` for a `*.sops.yaml`) or `{"inline": patch}` | order matters |
//! | `secrets` | the SOPS files among the inputs: cluster secrets, encrypted patches | converge needs `sops` and an age key |
//!
//! Files: the patch files the node uses and the cluster's secrets and `talenv` files, never the
//! talconfig itself, so editing one node's patch re-plans that node only. Realize merges the
//! patches with Talos's rules (`patch`) over a base document (`machine`) and writes canonical
//! JSON: `machineconfig.json`, `documents/NN-<Kind>[-name].json` for typed documents, and
//! `sops-patches.json` naming encrypted patches by ciphertext digest (converge decrypts and
//! applies them last). A comment or key order in a patch never changes the artifact.
//!
//! ```no_run
//! # let files = hl_engine::FileSet::new(std::path::Path::new(".")).unwrap();
//! # let topology = hl_rules::Topology::default();
//! let ctx = hl_rules::Ctx::new(&files, &topology, hl_engine::RepoPath::new("inventory/topology.yaml").unwrap());
//! for node in hl_rules::talos::discover(&ctx).unwrap() {
//!     println!("{} ({})", node.address, node.params["role"]);
//! }
//! ```

mod machine;
mod patch;
mod talconfig;

use hl_engine::{Artifact, Error, Layer, Node, RealizeCtx, Requirement, Rule};

use crate::Ctx;

/// The rule of `talos` nodes.
pub struct TalosRule;

impl Rule for TalosRule {
    fn kind(&self) -> &'static str {
        "talos"
    }

    fn version(&self) -> u32 {
        1
    }

    fn layer(&self) -> Layer {
        Layer::L3
    }

    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error> {
        let rendered = machine::render(&node.params, ctx.files, &node.origin)?;
        Ok(machine::artifact(&rendered))
    }

    /// A new install disk or a role change means reinstalling the node, not re-applying.
    fn replace_keys(&self) -> &'static [&'static str] {
        &["installDisk", "role"]
    }

    /// talosctl and its talosconfig; sops and an age key when a SOPS file is an input.
    fn requirements(&self, node: &Node) -> Vec<Requirement> {
        let tool = |name: &str| Requirement::Tool { name: name.into() };
        let credential = |name: &str, env: &str, default: &str| Requirement::Credential {
            name: name.into(),
            env: Some(env.into()),
            default: default.into(),
        };
        let mut needs = vec![
            tool("talosctl"),
            credential("talosconfig", "TALOSCONFIG", "~/.talos/config"),
        ];
        if node.params["secrets"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            needs.push(tool("sops"));
            needs.push(credential(
                "age-key",
                "SOPS_AGE_KEY_FILE",
                "~/.config/sops/age/keys.txt",
            ));
        }
        needs
    }
}

/// Discovers the Talos nodes of `<layout.talos>/talconfig.yaml`; an absent file is a note.
pub fn discover(ctx: &Ctx) -> Result<Vec<Node>, Error> {
    talconfig::discover(ctx)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use hl_engine::{Address, EdgeKind, FileSet, RepoPath};
    use serde_json::{json, Value};

    use super::*;
    use crate::{Host, Topology};

    const TALCONFIG: &str = r#"# the test cluster
clusterName: lab
talosVersion: v1.8.3
kubernetesVersion: v1.31.2
endpoint: https://10.0.0.10:6443
extraKey: { keep: [me] }
patches:
  - "@./patches/all.yaml"
  - |-
    machine:
      env:
        GLOBAL: "1"
controlPlane:
  patches:
    - "@./patches/cp.yaml"
worker:
  patches:
    - "@./patches/worker.yaml"
nodes:
  - hostname: cp-1
    ipAddress: 10.0.0.11
    controlPlane: true
    installDisk: /dev/sda
  - hostname: w-1
    ipAddress: 10.0.0.21
    controlPlane: false
    installDisk: /dev/vda
    patches:
      - "@./patches/w-1.yaml"
  - hostname: w-2
    ipAddress: 10.0.0.22
    installDisk: /dev/vda
"#;

    /// The patches of [`TALCONFIG`]; `w-1.yaml` holds a strategic merge and a JSON patch.
    const PATCHES: [(&str, &str); 4] = [
        ("cluster/talos/patches/all.yaml", "machine:\n  certSANs: [a]\n  time:\n    servers: [ntp]\n"),
        ("cluster/talos/patches/cp.yaml", "cluster:\n  allowSchedulingOnControlPlanes: false\n"),
        ("cluster/talos/patches/worker.yaml", "machine:\n  nodeLabels:\n    role: worker\n"),
        (
            "cluster/talos/patches/w-1.yaml",
            "machine:\n  certSANs: [w1]\n---\n- op: add\n  path: /machine/nodeLabels/media\n  value: \"true\"\n",
        ),
    ];

    struct Fixture {
        dir: tempfile::TempDir,
        topology: Topology,
    }

    impl Fixture {
        fn new(extra: &[(&str, &str)]) -> Fixture {
            let fx = Fixture {
                dir: tempfile::tempdir().unwrap(),
                topology: Topology::default(),
            };
            fx.write("cluster/talos/talconfig.yaml", TALCONFIG);
            for (path, text) in PATCHES.iter().chain(extra) {
                fx.write(path, text);
            }
            fx
        }

        fn write(&self, path: &str, text: &str) {
            let abs = self.dir.path().join(path);
            std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
            std::fs::write(abs, text).unwrap();
        }

        /// Discovers on a fresh `FileSet` (it caches bytes for a run), with the notes taken.
        fn discover(&self) -> (Result<Vec<Node>, Error>, Vec<String>, FileSet) {
            let files = FileSet::new(self.dir.path()).unwrap();
            let ctx = Ctx::new(
                &files,
                &self.topology,
                RepoPath::new("inventory/topology.yaml").unwrap(),
            );
            let nodes = discover(&ctx);
            let notes = ctx.notes.into_inner().unwrap();
            (nodes, notes, files)
        }

        fn nodes(&self) -> (Vec<Node>, FileSet) {
            let (nodes, _, files) = self.discover();
            (
                nodes.unwrap_or_else(|e| panic!("{e} ({:?})", e.origin())),
                files,
            )
        }

        fn error(&self) -> Error {
            self.discover().0.expect_err("discovery should fail")
        }

        /// Every node's artifact, by hostname.
        fn realized(&self) -> BTreeMap<String, Artifact> {
            let (nodes, files) = self.nodes();
            nodes
                .iter()
                .map(|n| (n.address.name().to_string(), realize(n, &files)))
                .collect()
        }
    }

    fn realize(node: &Node, files: &FileSet) -> Artifact {
        let inputs = BTreeMap::new();
        TalosRule
            .realize(
                node,
                &RealizeCtx {
                    files,
                    inputs: &inputs,
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", node.address))
    }

    fn config(artifact: &Artifact) -> Value {
        serde_json::from_slice(&artifact.files["machineconfig.json"]).unwrap()
    }

    #[test]
    fn discovers_nodes_with_roles_and_patch_order() {
        let inline = json!({"inline": {"machine": {"env": {"GLOBAL": "1"}}}});
        let file = |name: &str| json!({"file": format!("cluster/talos/patches/{name}")});
        let (nodes, _) = Fixture::new(&[]).nodes();
        let cases = [
            (
                "cp-1",
                "controlplane",
                "/dev/sda",
                20,
                vec![file("all.yaml"), inline.clone(), file("cp.yaml")],
            ),
            (
                "w-1",
                "worker",
                "/dev/vda",
                24,
                vec![
                    file("all.yaml"),
                    inline.clone(),
                    file("worker.yaml"),
                    file("w-1.yaml"),
                ],
            ),
            (
                "w-2",
                "worker",
                "/dev/vda",
                30,
                vec![file("all.yaml"), inline.clone(), file("worker.yaml")],
            ),
        ];
        assert_eq!(nodes.len(), cases.len());
        for ((hostname, role, disk, line, patches), node) in cases.into_iter().zip(&nodes) {
            assert_eq!(
                node.address,
                format!("talos:{hostname}").parse::<Address>().unwrap()
            );
            assert_eq!(node.layer, Layer::L3);
            assert_eq!(
                (node.origin.path.as_str(), node.origin.line),
                ("cluster/talos/talconfig.yaml", line),
                "{hostname}"
            );
            assert_eq!(node.params["role"], role, "{hostname}");
            assert_eq!(node.params["installDisk"], disk, "{hostname}");
            assert_eq!(
                node.params["patches"],
                Value::Array(patches.clone()),
                "{hostname}"
            );
            let want_files: Vec<String> = patches
                .iter()
                .filter_map(|p| p["file"].as_str().map(str::to_string))
                .collect();
            let mut want_files = want_files;
            want_files.sort();
            let got: Vec<&str> = node.files.iter().map(RepoPath::as_str).collect();
            assert_eq!(
                got, want_files,
                "{hostname}: the talconfig itself is never a file input"
            );
            assert_eq!(node.params["node"]["hostname"], hostname);
            for key in ["patches", "installDisk", "controlPlane"] {
                assert!(
                    node.params["node"].get(key).is_none(),
                    "{hostname}: node.{key}"
                );
            }
        }
        let cluster = &nodes[0].params["cluster"];
        assert_eq!(cluster["clusterName"], "lab");
        assert_eq!(
            cluster["extraKey"],
            json!({"keep": ["me"]}),
            "unknown keys are kept"
        );
        for key in ["nodes", "patches", "controlPlane", "worker"] {
            assert!(cluster.get(key).is_none(), "cluster.{key}");
        }
        assert!(nodes.iter().all(|n| n.edges.is_empty()), "no VM hosts here");
        let needs = TalosRule.requirements(&nodes[0]);
        assert_eq!(
            needs[0],
            Requirement::Tool {
                name: "talosctl".into()
            }
        );
        assert!(
            matches!(&needs[1], Requirement::Credential { name, .. } if name == "talosconfig"),
            "{needs:?}"
        );
        assert_eq!(needs.len(), 2, "no sops without a SOPS input: {needs:?}");
    }

    #[test]
    fn realize_applies_global_role_and_node_patches_in_order() {
        let out = Fixture::new(&[]).realized();
        let cp = config(&out["cp-1"]);
        assert_eq!(cp["machine"]["type"], "controlplane");
        assert_eq!(cp["machine"]["install"]["disk"], "/dev/sda");
        assert_eq!(cp["machine"]["network"]["hostname"], "cp-1");
        assert_eq!(cp["machine"]["certSANs"], json!(["a"]));
        assert_eq!(cp["machine"]["env"], json!({"GLOBAL": "1"}));
        assert_eq!(cp["cluster"]["allowSchedulingOnControlPlanes"], false);
        assert_eq!(cp["cluster"]["clusterName"], "lab");
        assert!(
            cp["machine"].get("nodeLabels").is_none(),
            "worker patch on a control plane: {cp}"
        );
        let w1 = config(&out["w-1"]);
        assert_eq!(w1["machine"]["type"], "worker");
        assert_eq!(
            w1["machine"]["certSANs"],
            json!(["a", "w1"]),
            "lists append, global first"
        );
        assert_eq!(
            w1["machine"]["nodeLabels"],
            json!({"role": "worker", "media": "true"})
        );
        assert!(w1["cluster"]
            .get("allowSchedulingOnControlPlanes")
            .is_none());
        let w2 = config(&out["w-2"]);
        assert_eq!(w2["machine"]["nodeLabels"], json!({"role": "worker"}));
        assert_eq!(
            out["w-1"].files.keys().collect::<Vec<_>>(),
            ["machineconfig.json"]
        );
    }

    #[test]
    fn a_patch_edit_changes_only_the_nodes_using_it() {
        let fx = Fixture::new(&[]);
        let before = fx.realized();
        for (patch, changed) in [
            ("cluster/talos/patches/worker.yaml", vec!["w-1", "w-2"]),
            ("cluster/talos/patches/w-1.yaml", vec!["w-1"]),
            ("cluster/talos/patches/cp.yaml", vec!["cp-1"]),
            ("cluster/talos/patches/all.yaml", vec!["cp-1", "w-1", "w-2"]),
        ] {
            let original = PATCHES.iter().find(|(p, _)| *p == patch).unwrap().1;
            let edited = format!("machine:\n  sysctls:\n    vm.x: \"1\"\n---\n{original}");
            let fx = Fixture::new(&[(patch, &edited)]);
            let (nodes, _) = fx.nodes();
            let after = fx.realized();
            for node in &nodes {
                let host = node.address.name();
                let uses = node.files.iter().any(|f| f.as_str() == patch);
                let moved = before[host].digest() != after[host].digest();
                assert_eq!(uses, changed.contains(&host), "{patch}: files of {host}");
                assert_eq!(moved, changed.contains(&host), "{patch}: output of {host}");
            }
        }
    }

    #[test]
    fn comment_and_key_order_changes_keep_the_artifact_digest() {
        let before = Fixture::new(&[]).realized();
        let after = Fixture::new(&[(
            "cluster/talos/patches/all.yaml",
            "# NTP and SANs for every node\nmachine:\n  time:   # the VLAN gateway\n    servers:\n      - ntp\n  certSANs:\n    - a   # the VIP\n",
        )])
        .realized();
        for (host, artifact) in &before {
            assert_eq!(artifact.digest(), after[host].digest(), "{host}");
        }
    }

    #[test]
    fn an_absent_talconfig_is_a_note_not_an_error() {
        let fx = Fixture::new(&[]);
        std::fs::remove_file(fx.dir.path().join("cluster/talos/talconfig.yaml")).unwrap();
        let (nodes, notes, _) = fx.discover();
        assert!(nodes.unwrap().is_empty());
        assert_eq!(
            notes,
            ["no Talos config at cluster/talos/talconfig.yaml: L3 has no nodes"]
        );
        std::fs::remove_dir_all(fx.dir.path().join("cluster")).unwrap();
        let (nodes, notes, _) = fx.discover();
        assert!(nodes.unwrap().is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn talconfig_yml_is_read_too() {
        let fx = Fixture::new(&[]);
        let dir = fx.dir.path().join("cluster/talos");
        std::fs::rename(dir.join("talconfig.yaml"), dir.join("talconfig.yml")).unwrap();
        let (nodes, _) = fx.nodes();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].origin.path.as_str(), "cluster/talos/talconfig.yml");
    }

    #[test]
    fn bad_patch_references_are_refused_where_written() {
        for (reference, want) in [
            ("@../../../outside.yaml", "escapes the repo"),
            ("@/etc/hosts", "absolute path"),
            (
                "@./patches/missing.yaml",
                "patch file cluster/talos/patches/missing.yaml does not exist",
            ),
        ] {
            let fx = Fixture::new(&[]);
            fx.write(
                "cluster/talos/talconfig.yaml",
                &TALCONFIG.replace("@./patches/w-1.yaml", reference),
            );
            let err = fx.error();
            assert!(err.to_string().contains(want), "{reference}: {err}");
            let origin = err.origin().expect("located");
            assert_eq!(
                (origin.path.as_str(), origin.line),
                ("cluster/talos/talconfig.yaml", 29),
                "{reference}"
            );
            assert!(err.help().is_some(), "{reference}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_patch_symlinked_out_of_the_repo_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("evil.yaml"), "machine: {}\n").unwrap();
        let fx = Fixture::new(&[]);
        let link = fx.dir.path().join("cluster/talos/patches/w-1.yaml");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.yaml"), &link).unwrap();
        let err = fx.error();
        assert!(err.to_string().contains("outside the repo"), "{err}");
        assert_eq!(err.origin().map(|o| o.line), Some(29));
    }

    #[test]
    fn plaintext_talos_secrets_are_refused() {
        const ENCRYPTED: &str = "cluster:\n  secret: ENC[AES256_GCM,data:abc,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:x]\n  version: 3.9.1\n";
        for (name, text, refused) in [
            ("talsecret.yaml", "cluster:\n  secret: hunter2\n", true),
            ("secrets.yaml", "cluster:\n  secret: hunter2\n", true),
            ("talsecret.sops.yaml", "cluster:\n  secret: hunter2\n", true),
            ("talenv.sops.yaml", "VIP: 10.0.0.10\n", true),
            ("talenv.yaml", "VIP: 10.0.0.10\n", false),
            ("talsecret.sops.yaml", ENCRYPTED, false),
        ] {
            let fx = Fixture::new(&[(&format!("cluster/talos/{name}"), text)]);
            let (nodes, _, _) = fx.discover();
            match nodes {
                Err(e) if refused => {
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "plaintext Talos secrets in cluster/talos/{name}; encrypt it with sops"
                        )
                    );
                    assert!(
                        !format!("{e:?}").contains("hunter2"),
                        "{name}: the error leaks the secret"
                    );
                }
                Ok(nodes) if !refused => {
                    let path = format!("cluster/talos/{name}");
                    assert!(
                        nodes
                            .iter()
                            .all(|n| n.files.iter().any(|f| f.as_str() == path)),
                        "{name} is an input"
                    );
                    let sops = name.contains(".sops.");
                    assert_eq!(
                        nodes[0].params["secrets"],
                        if sops { json!([path]) } else { json!([]) }
                    );
                    let tools: Vec<Requirement> = TalosRule.requirements(&nodes[0]);
                    assert_eq!(
                        tools.contains(&Requirement::Tool {
                            name: "sops".into()
                        }),
                        sops,
                        "{name}"
                    );
                }
                other => panic!("{name}: {:?}", other.map(|n| n.len())),
            }
        }
    }

    /// A SOPS-encrypted patch is named in the artifact by its ciphertext digest, never merged.
    #[test]
    fn sops_patches_are_sealed_not_merged() {
        const ENCRYPTED: &str = "machine:\n  registries: ENC[AES256_GCM,data:abc,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:x]\n  version: 3.9.1\n";
        const PLAIN: &str = "machine:\n  registries:\n    config: {auth: hunter2}\n";
        for (name, text, want) in [
            ("registry.sops.yaml", ENCRYPTED, Ok(())),
            ("registry.sops.yaml", PLAIN, Err("plaintext Talos patch in cluster/talos/patches/registry.sops.yaml; encrypt it with sops")),
            ("registry.yaml", ENCRYPTED, Err("patch cluster/talos/patches/registry.yaml is SOPS-encrypted but not named so")),
        ] {
            let fx = Fixture::new(&[(&format!("cluster/talos/patches/{name}"), text)]);
            let talconfig = TALCONFIG.replace(
                "    ipAddress: 10.0.0.22\n",
                &format!("    ipAddress: 10.0.0.22\n    patches:\n      - \"@./patches/{name}\"\n"),
            );
            fx.write("cluster/talos/talconfig.yaml", &talconfig);
            let (nodes, files) = fx.nodes();
            let inputs = BTreeMap::new();
            let got = TalosRule.realize(&nodes[2], &RealizeCtx { files: &files, inputs: &inputs });
            match (got, want) {
                (Ok(artifact), Ok(())) => {
                    let path = format!("cluster/talos/patches/{name}");
                    let sealed: Value = serde_json::from_slice(&artifact.files["sops-patches.json"]).unwrap();
                    let digest = hl_engine::Digest::<hl_engine::Content>::of(text.as_bytes()).hex();
                    assert_eq!(sealed, json!([{"file": path, "ciphertext": digest}]));
                    let doc = config(&artifact);
                    assert!(doc.get("sops").is_none() && doc["machine"].get("registries").is_none(), "{doc}");
                    assert_eq!(nodes[2].params["secrets"], json!([path]));
                    let needs = TalosRule.requirements(&nodes[2]);
                    assert!(needs.contains(&Requirement::Tool { name: "sops".into() }), "{needs:?}");
                    assert!(nodes[1].params["secrets"] == json!([]), "only the node using it");
                }
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), want);
                    assert!(!format!("{e:?}").contains("hunter2"));
                }
                (got, want) => panic!("{name}: got {:?}, want {want:?}", got.map(|_| ())),
            }
        }
    }

    #[test]
    fn nodes_named_like_vm_hosts_are_placed_on_them() {
        let mut fx = Fixture::new(&[
            ("hosts/W-1/machine.yaml", "hypervisor: PROXIMA\n"),
            ("hosts/Cp-1/capabilities.yaml", "arch: amd64\n"),
            ("hosts/W-2/machine.yaml", "hypervisor: PROXIMA\n"),
        ]);
        let tagged = |tags: &[&str]| Host {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Host::default()
        };
        fx.topology
            .hosts
            .insert("W-1".into(), tagged(&["talos", "worker"]));
        fx.topology.hosts.insert("CP-1".into(), tagged(&["talos"]));
        let (nodes, _) = fx.nodes();
        let placed: Vec<(String, Vec<String>)> = nodes
            .iter()
            .map(|n| {
                assert!(
                    n.edges
                        .iter()
                        .all(|e| e.kind == EdgeKind::Placement
                            && e.origin.as_ref() == Some(&n.origin))
                );
                (
                    n.address.name().to_string(),
                    n.edges.iter().map(|e| e.to.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            placed,
            [
                ("cp-1".to_string(), vec![]),
                ("w-1".to_string(), vec!["vm:W-1".to_string()]),
                ("w-2".to_string(), vec!["vm:W-2".to_string()]),
            ]
        );
        let labels = |i: usize| nodes[i].labels.iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            labels(0),
            ["@talos", "CP-1", "cp-1"],
            "an inventory host without a VM still labels"
        );
        assert_eq!(labels(1), ["@talos", "@worker", "W-1", "w-1"]);
        assert_eq!(
            labels(2),
            ["w-2"],
            "a VM folder without an inventory entry places but adds no tags"
        );
    }

    #[test]
    fn malformed_talconfig_entries_are_refused_where_written() {
        for (from, to, want, line) in [
            ("controlPlane: false", "controlPlane: maybe", "`controlPlane` of node w-1", 24),
            ("hostname: w-2", "hostnam: w-2", "node 3 of cluster/talos/talconfig.yaml has no `hostname`", 19),
            ("  - |-\n    machine:", "  - |-\n    machine: [", "inline patch 2 of the global patches", 10),
            (
                "    machine:\n      env:\n        GLOBAL: \"1\"",
                "    - just: a list",
                "inline patch 2 of the global patches (cluster/talos/talconfig.yaml:10:5): a patch that is a list must hold JSON patch operations",
                10,
            ),
            ("\"@./patches/cp.yaml\"", "42", "patch 1 of controlPlane.patches", 14),
        ] {
            let fx = Fixture::new(&[]);
            assert!(TALCONFIG.contains(from), "{from}");
            fx.write("cluster/talos/talconfig.yaml", &TALCONFIG.replace(from, to));
            let err = fx.error();
            assert!(err.to_string().contains(want), "{to}: {err}");
            assert_eq!(err.origin().map(|o| o.line), Some(line), "{to}: {err}");
        }
    }

    #[test]
    fn a_failing_json_patch_names_its_file() {
        let fx = Fixture::new(&[(
            "cluster/talos/patches/w-1.yaml",
            "- op: replace\n  path: /machine/nope\n  value: 1\n",
        )]);
        let (nodes, files) = fx.nodes();
        let inputs = BTreeMap::new();
        let err = TalosRule
            .realize(
                &nodes[1],
                &RealizeCtx {
                    files: &files,
                    inputs: &inputs,
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot apply patch cluster/talos/patches/w-1.yaml (document 1): JSON patch operation 1: `/machine/nope` does not exist in the config"
        );
        assert_eq!(
            err.origin().map(|o| o.path.as_str()),
            Some("cluster/talos/patches/w-1.yaml")
        );
    }

    /// The sample homelab of this repo: every Talos node discovers and renders, and nodes
    /// named like a VM host are placed on it.
    #[test]
    fn the_sample_cluster_renders() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let files = FileSet::new(root).unwrap();
        let topology_path = RepoPath::new("inventory/topology.yaml").unwrap();
        let topology =
            Topology::from_raw(crate::yaml::one(&files, &topology_path).unwrap()).unwrap();
        let ctx = Ctx::new(&files, &topology, topology_path);
        for node in discover(&ctx).unwrap_or_else(|e| panic!("{e} ({:?})", e.origin())) {
            let doc = config(&realize(&node, &files));
            assert_eq!(doc["machine"]["network"]["hostname"], node.address.name());
            let vm = root
                .join("hosts")
                .join(node.address.name().to_uppercase())
                .join("machine.yaml");
            assert_eq!(
                node.edges.len(),
                usize::from(vm.is_file()),
                "{}",
                node.address
            );
        }
    }
}
