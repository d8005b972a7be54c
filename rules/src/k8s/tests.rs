//! Discovery and realize on temp-dir fixtures, plus the sample tree of this repo.

use std::collections::BTreeMap;
use std::path::Path;

use hl_engine::{
    Artifact, EdgeKind, Error, Facts, FileSet, Node, RealizeCtx, RepoPath, Requirement, Rule,
};
use serde_json::{json, Value};

use super::{discover, K8sRule};
use crate::inventory::{KubernetesMode, Topology};
use crate::Ctx;

const SOPS_META: &str = "sops:\n    age:\n        - recipient: age1xyz\n    lastmodified: \"2024-11-18T21:22:09Z\"\n    mac: ENC[AES256_GCM,data:abc,type:str]\n    version: 3.9.1\n";

/// A repo in a temp dir whose Kubernetes tree is `kubernetes/`.
struct Fixture {
    dir: tempfile::TempDir,
}

/// What one discovery run gave.
struct Run {
    nodes: Result<Vec<Node>, Error>,
    notes: Vec<String>,
    /// The artifact of each node, realized in the same run (same [`FileSet`]).
    artifacts: BTreeMap<String, Artifact>,
    files_read: u64,
}

impl Run {
    fn nodes(&self) -> &[Node] {
        self.nodes
            .as_ref()
            .unwrap_or_else(|e| panic!("discovery failed: {e}"))
    }

    fn node(&self, address: &str) -> &Node {
        let nodes = self.nodes();
        nodes
            .iter()
            .find(|n| n.address.to_string() == address)
            .unwrap_or_else(|| {
                panic!(
                    "no {address} in {:?}",
                    nodes
                        .iter()
                        .map(|n| n.address.to_string())
                        .collect::<Vec<_>>()
                )
            })
    }

    fn addresses(&self) -> Vec<String> {
        self.nodes().iter().map(|n| n.address.to_string()).collect()
    }

    fn err(&self) -> &Error {
        match &self.nodes {
            Ok(n) => panic!("expected an error, got {} nodes", n.len()),
            Err(e) => e,
        }
    }

    /// The bundle's documents, in its order.
    fn manifests(&self, address: &str) -> Value {
        self.nodes();
        let docs = self.artifacts[address]
            .files
            .iter()
            .filter(|(name, _)| name.starts_with("manifests/"))
            .map(|(name, bytes)| {
                serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
            })
            .collect();
        Value::Array(docs)
    }
}

fn files_of(node: &Node) -> Vec<&str> {
    node.files.iter().map(RepoPath::as_str).collect()
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for (path, text) in files {
            f.write(path, text);
        }
        f
    }

    fn write(&self, path: &str, text: &str) {
        let abs = self.dir.path().join(path);
        std::fs::create_dir_all(abs.parent().expect("fixture paths have a folder")).expect("mkdir");
        std::fs::write(&abs, text).expect("write fixture file");
        // As an edit made before a run, not racy to it.
        hl_engine::time::settle(&abs);
    }

    fn run(&self, mode: KubernetesMode) -> Run {
        run_at(self.dir.path(), "kubernetes", mode)
    }
}

/// Discovers (and realizes every node) with a fresh [`FileSet`], as one `hl plan` would.
fn run_at(root: &Path, tree: &str, mode: KubernetesMode) -> Run {
    let files = FileSet::new(root).expect("file set");
    let mut topology = Topology::default();
    topology.layout.kubernetes = tree.into();
    topology.layout.kubernetes_mode = mode;
    let ctx = Ctx::new(
        &files,
        &topology,
        RepoPath::new("inventory/topology.yaml").expect("path"),
    );
    let nodes = discover(&ctx);
    let mut artifacts = BTreeMap::new();
    for node in nodes.iter().flatten() {
        let inputs = BTreeMap::new();
        let art = K8sRule
            .realize(
                node,
                &RealizeCtx {
                    files: &files,
                    inputs: &inputs,
                },
            )
            .unwrap_or_else(|e| panic!("realize {}: {e}", node.address));
        // What a plan takes instead of realizing: it must be the artifact's digest, from the
        // facts discovery kept (or made again) without the documents.
        let told = K8sRule
            .output_digest(
                node,
                &RealizeCtx {
                    files: &files,
                    inputs: &inputs,
                },
            )
            .expect("k8s nodes tell their digest")
            .unwrap_or_else(|e| panic!("digest of {}: {e}", node.address));
        assert_eq!(told, art.digest(), "{}", node.address);
        artifacts.insert(node.address.to_string(), art);
    }
    let notes = ctx.notes.into_inner().expect("notes");
    let files_read = files.stats.snapshot().files_read;
    Run {
        nodes,
        notes,
        artifacts,
        files_read,
    }
}

fn flux_ks(name: &str, namespace: Option<&str>, extra: &str) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n{ns}spec:\n  interval: 30m\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n{extra}"
    )
}

/// A home-ops shaped Flux tree: a root Kustomization over `apps/` (no kustomization file
/// there), per-namespace kustomizations that set `namespace:`, one app built from a folder
/// without a kustomization file and one from a kustomization that uses most of kustomize.
fn flux_fixture() -> Fixture {
    Fixture::new(&[
        (
            "kubernetes/flux/cluster/ks.yaml",
            &format!(
                "---\n{}",
                flux_ks(
                    "cluster-apps",
                    Some("flux-system"),
                    "  path: ./kubernetes/apps\n  postBuild:\n    substitute:\n      DOMAIN: example.org\n"
                )
            ),
        ),
        (
            "kubernetes/apps/database/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: database\nresources:\n  - ./namespace.yaml\n  - ./postgres/ks.yaml\n",
        ),
        ("kubernetes/apps/database/namespace.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: database\n"),
        (
            "kubernetes/apps/database/postgres/ks.yaml",
            &flux_ks("postgres", None, "  path: ./kubernetes/apps/database/postgres/app\n"),
        ),
        (
            "kubernetes/apps/database/postgres/app/helmrelease.yaml",
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: postgres\nspec:\n  values:\n    host: db.${DOMAIN}\n",
        ),
        (
            "kubernetes/apps/database/postgres/app/config/extra.yml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
        ),
        ("kubernetes/apps/database/postgres/app/notes.yaml.j2", "{{ not: [yaml\n"),
        ("kubernetes/apps/database/postgres/app/.hidden/x.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
        (
            "kubernetes/apps/default/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: default\nresources:\n  - ./web/ks.yaml\n",
        ),
        (
            "kubernetes/apps/default/web/ks.yaml",
            &flux_ks(
                "web",
                None,
                "  path: ./kubernetes/apps/default/web/app\n  components:\n    - ../../../../components/common\n  dependsOn:\n    - name: postgres\n      namespace: database\n    - name: cluster-apps\n      namespace: flux-system\n",
            ),
        ),
        (
            "kubernetes/apps/default/web/app/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - ../../../../base/web\n  - https://github.com/example/repo//deploy?ref=v1.0.0\npatches:\n  - path: patch.yaml\n    target: {kind: Deployment}\n  - patch: |-\n      - op: remove\n        path: /spec/replicas\nconfigMapGenerator:\n  - name: web\n    files:\n      - nginx.conf\n      - index=index.html\nhelmCharts:\n  - name: extra\n    valuesFile: values.yaml\n",
        ),
        (
            "kubernetes/apps/default/web/app/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n",
        ),
        ("kubernetes/apps/default/web/app/patch.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"),
        ("kubernetes/apps/default/web/app/nginx.conf", "server { listen 80; }\n"),
        ("kubernetes/apps/default/web/app/index.html", "<h1>hi</h1>\n"),
        ("kubernetes/apps/default/web/app/values.yaml", "# values\nreplicas: 1\n"),
        (
            "kubernetes/base/web/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [service.yaml]\n",
        ),
        ("kubernetes/base/web/service.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"),
        (
            "kubernetes/components/common/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n  - pdb.yaml\n",
        ),
        ("kubernetes/components/common/pdb.yaml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n"),
    ])
}

#[test]
fn flux_discovery_builds_dependency_edges_and_file_sets() {
    let run = flux_fixture().run(KubernetesMode::Auto);
    assert_eq!(
        run.addresses(),
        [
            "k8s:database/postgres",
            "k8s:default/web",
            "k8s:flux-system/cluster-apps"
        ]
    );

    // No kustomization file at spec.path: every YAML file below, a folder with its own
    // kustomization file followed instead of walked.
    let root = run.node("k8s:flux-system/cluster-apps");
    assert_eq!(
        files_of(root),
        [
            "kubernetes/apps/database/kustomization.yaml",
            "kubernetes/apps/database/namespace.yaml",
            "kubernetes/apps/database/postgres/ks.yaml",
            "kubernetes/apps/default/kustomization.yaml",
            "kubernetes/apps/default/web/ks.yaml",
        ]
    );
    assert_eq!(
        root.params["spec"]["postBuild"]["substitute"]["DOMAIN"],
        "example.org"
    );
    assert_eq!(root.params["mode"], "flux");
    assert_eq!(
        (root.origin.path.as_str(), root.origin.line),
        ("kubernetes/flux/cluster/ks.yaml", 5)
    );

    // All YAML below, recursively; templates and hidden folders never read.
    let db = run.node("k8s:database/postgres");
    assert_eq!(
        files_of(db),
        [
            "kubernetes/apps/database/postgres/app/config/extra.yml",
            "kubernetes/apps/database/postgres/app/helmrelease.yaml"
        ]
    );

    let web = run.node("k8s:default/web");
    assert_eq!(
        files_of(web),
        [
            "kubernetes/apps/default/web/app/deployment.yaml",
            "kubernetes/apps/default/web/app/index.html",
            "kubernetes/apps/default/web/app/kustomization.yaml",
            "kubernetes/apps/default/web/app/nginx.conf",
            "kubernetes/apps/default/web/app/patch.yaml",
            "kubernetes/apps/default/web/app/values.yaml",
            "kubernetes/base/web/kustomization.yaml",
            "kubernetes/base/web/service.yaml",
            "kubernetes/components/common/kustomization.yaml",
            "kubernetes/components/common/pdb.yaml",
        ]
    );
    assert_eq!(
        web.params["remote_resources"],
        json!(["https://github.com/example/repo//deploy?ref=v1.0.0"])
    );
    let edges: Vec<(String, EdgeKind, u32)> = web
        .edges
        .iter()
        .map(|e| {
            (
                e.to.to_string(),
                e.kind,
                e.origin.as_ref().map_or(0, |o| o.line),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("k8s:database/postgres".to_string(), EdgeKind::Order, 14),
            (
                "k8s:flux-system/cluster-apps".to_string(),
                EdgeKind::Order,
                16
            ),
        ]
    );
    assert!(run.notes.is_empty(), "{:?}", run.notes);
}

#[test]
fn the_bundle_keeps_generator_files_as_bytes_and_values_canonical() {
    let run = flux_fixture().run(KubernetesMode::Flux);
    let art = &run.artifacts["k8s:default/web"];
    let names: Vec<&str> = art.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "files/kubernetes/apps/default/web/app/index.html",
            "files/kubernetes/apps/default/web/app/nginx.conf",
            "manifests/00000.json",
            "manifests/00001.json",
            "manifests/00002.json",
            "manifests/00003.json",
            "manifests/00004.json",
            "manifests/00005.json",
            "manifests/00006.json",
            "values/kubernetes/apps/default/web/app/values.yaml.json",
        ]
    );
    assert_eq!(
        art.files["files/kubernetes/apps/default/web/app/nginx.conf"],
        b"server { listen 80; }\n"
    );
    let kinds: Vec<String> = run
        .manifests("k8s:default/web")
        .as_array()
        .expect("an array")
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["apiVersion"].as_str().unwrap_or(""),
                d["kind"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "apps/v1 Deployment",
            "apps/v1 Deployment",
            "kustomize.config.k8s.io/v1alpha1 Component",
            "kustomize.config.k8s.io/v1beta1 Kustomization",
            "kustomize.config.k8s.io/v1beta1 Kustomization",
            "policy/v1 PodDisruptionBudget",
            "v1 Service",
        ]
    );
}

#[test]
fn every_file_is_read_once_per_run() {
    let fixture = flux_fixture();
    let run = fixture.run(KubernetesMode::Auto);
    run.nodes();
    // Every fixture file but the template and the hidden one, each read once, across
    // discovery and the realize of every node.
    let total = walk_count(fixture.dir.path());
    assert_eq!(run.files_read, total - 2);
}

/// What one discovery gave, and the facts it derived or reused (`.hl/facts/k8s`).
struct Load {
    nodes: Value,
    notes: Vec<String>,
    files_read: u64,
    facts: Facts,
}

/// Discovers alone, with a fresh [`FileSet`] offered `facts` from an earlier run, as `hl plan`
/// does when the k8s loader runs again.
fn load(root: &Path, facts: Facts) -> Load {
    let files = FileSet::new(root).expect("file set");
    files.remember(facts);
    files.watch();
    let mut topology = Topology::default();
    topology.layout.kubernetes = "kubernetes".into();
    let ctx = Ctx::new(
        &files,
        &topology,
        RepoPath::new("inventory/topology.yaml").expect("path"),
    );
    let nodes = discover(&ctx).unwrap_or_else(|e| panic!("discovery failed: {e}"));
    Load {
        nodes: serde_json::to_value(nodes).expect("nodes are JSON"),
        notes: ctx.notes.into_inner().expect("notes"),
        files_read: files.stats.snapshot().files_read,
        facts: files.take_facts(),
    }
}

/// When the loader runs again after an edit, the edited file is the one file it reads: every
/// other file's facts come from the run before. What it finds is what a fresh run finds,
/// whichever role the edited file plays: a manifest, a kustomization file, a file holding a
/// Flux Kustomization.
#[test]
fn a_second_load_reads_only_the_edited_file() {
    let fixture = flux_fixture();
    let root = fixture.dir.path();
    let mut last = load(root, Facts::default());
    assert!(last.files_read > 10, "the first load reads the tree");
    let again = load(root, last.facts);
    assert_eq!(again.files_read, 0, "nothing changed, nothing read");
    assert_eq!(again.nodes, last.nodes);
    last = again;
    // The manifest's edit changes no node (only its content, which realize reads); the
    // others change the web node's files and its edges.
    for (file, from, to, changes_nodes) in [
        (
            "kubernetes/apps/default/web/app/deployment.yaml",
            "replicas: 2\n",
            "replicas: 30\n",
            false,
        ),
        (
            "kubernetes/base/web/kustomization.yaml",
            "resources: [service.yaml]\n",
            "resources: []\n",
            true,
        ),
        (
            "kubernetes/apps/default/web/ks.yaml",
            "    - name: postgres\n",
            "    - name: postgres-db\n",
            true,
        ),
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).expect("read fixture file");
        assert!(text.contains(from), "{file}");
        fixture.write(file, &text.replacen(from, to, 1));
        let again = load(root, last.facts);
        assert_eq!(again.files_read, 1, "{file} alone is read");
        let fresh = load(root, Facts::default());
        assert_eq!(again.nodes, fresh.nodes, "{file}");
        assert_eq!(again.notes, fresh.notes, "{file}");
        assert_eq!(again.nodes != last.nodes, changes_nodes, "{file}");
        last = again;
    }
}

fn walk_count(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn plain_mode_makes_one_node_per_app_folder() {
    let fixture = Fixture::new(&[
        ("kubernetes/apps/kustomization.yaml", "resources: [jellyfin]\n"),
        ("kubernetes/apps/README.md", "# apps\n"),
        (
            "kubernetes/apps/jellyfin/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n",
        ),
        ("kubernetes/apps/jellyfin/deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: jellyfin\n"),
        ("kubernetes/apps/jellyfin/unlisted.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
        ("kubernetes/apps/whoami/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: whoami\n"),
        ("kubernetes/apps/whoami/sub/svc.yml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: whoami\n"),
        ("kubernetes/apps/whoami/ingress.yaml.j2", "host: {{ host }}\n"),
        ("kubernetes/platform/ingress/helmrelease.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"),
    ]);
    let run = fixture.run(KubernetesMode::Auto);
    assert_eq!(
        run.addresses(),
        [
            "k8s:apps/jellyfin",
            "k8s:apps/whoami",
            "k8s:platform/ingress"
        ]
    );
    let jellyfin = run.node("k8s:apps/jellyfin");
    assert_eq!(
        files_of(jellyfin),
        [
            "kubernetes/apps/jellyfin/deployment.yaml",
            "kubernetes/apps/jellyfin/kustomization.yaml"
        ]
    );
    assert_eq!(
        *jellyfin.params,
        json!({"mode": "plain", "group": "apps", "app": "jellyfin"})
    );
    assert_eq!(
        jellyfin.origin.path.as_str(),
        "kubernetes/apps/jellyfin/kustomization.yaml"
    );
    let whoami = run.node("k8s:apps/whoami");
    assert_eq!(
        files_of(whoami),
        [
            "kubernetes/apps/whoami/deploy.yaml",
            "kubernetes/apps/whoami/sub/svc.yml"
        ]
    );
    assert_eq!(whoami.origin.path.as_str(), "kubernetes/apps/whoami");
    assert!(whoami.edges.is_empty());
    assert_eq!(
        K8sRule.requirements(whoami),
        [Requirement::Tool {
            name: "kubectl".into()
        }]
    );
}

const APP: &str = "kubernetes/apps/web/deploy.yaml";
const BASE: &str = "# the web app\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: &common\n    app: web\nspec:\n  replicas: 2\n  host: web.${DOMAIN}\n  selector:\n    matchLabels: *common\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n";

#[test]
fn edits_kustomize_would_not_see_keep_the_output_digest() {
    let digest = |text: &str| {
        let fixture = Fixture::new(&[(APP, text)]);
        let run = fixture.run(KubernetesMode::Plain);
        run.nodes();
        run.artifacts["k8s:apps/web"].digest()
    };
    let base = digest(BASE);
    for (edit, text, same) in [
        (
            "comment only",
            BASE.replace("# the web app\n", "# the web app, edited\n# and more\n"),
            true,
        ),
        (
            "key reorder",
            BASE.replace(
                "  replicas: 2\n  host: web.${DOMAIN}\n",
                "  host: web.${DOMAIN}\n  replicas: 2\n",
            ),
            true,
        ),
        (
            "anchor expanded",
            BASE.replace(
                "    matchLabels: *common\n",
                "    matchLabels:\n      app: web\n",
            ),
            true,
        ),
        (
            "quoting",
            BASE.replace("replicas: 2", "\"replicas\": 2"),
            true,
        ),
        (
            "documents reordered",
            BASE.replace(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n",
                "",
            ) + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
            true,
        ),
        (
            "value edit",
            BASE.replace("replicas: 2", "replicas: 3"),
            false,
        ),
        (
            "substitution edit",
            BASE.replace("${DOMAIN}", "${OTHER}"),
            false,
        ),
    ] {
        assert_eq!(digest(&text) == base, same, "{edit}");
    }
}

#[test]
fn multi_document_files_give_every_document_sorted_with_substitutions_kept() {
    let fixture = Fixture::new(&[(APP, BASE)]);
    let run = fixture.run(KubernetesMode::Plain);
    let docs = run.manifests("k8s:apps/web");
    let kinds: Vec<&str> = docs
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("-"))
        .collect();
    // Empty documents skipped; sorted by apiVersion, then kind.
    assert_eq!(kinds, ["Deployment", "ConfigMap", "Service"]);
    assert_eq!(docs[0]["spec"]["host"], "web.${DOMAIN}");
    assert_eq!(
        docs[0]["spec"]["selector"]["matchLabels"],
        json!({"app": "web"})
    );
}

#[test]
fn plaintext_secrets_are_refused_and_encrypted_ones_pass() {
    let secret = |body: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\n{body}")
    };
    let kust = |extra: &str| {
        format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [secret.yaml]\n{extra}")
    };
    let cases: Vec<(&str, String, String, Option<&str>)> = vec![
        ("stringData", secret("stringData:\n  password: hunter2\n"), kust(""), Some("plaintext Secret apps/db in kubernetes/apps/web/secret.yaml:2")),
        ("data", secret("data:\n  password: aHVudGVyMg==\n"), kust(""), Some("plaintext Secret apps/db")),
        (
            "after a ConfigMap",
            format!("apiVersion: v1\nkind: ConfigMap\n---\n{}", secret("data:\n  k: dg==\n")),
            kust(""),
            Some("secret.yaml:5"),
        ),
        (
            "in a List",
            format!("apiVersion: v1\nkind: List\nitems:\n  - {}", secret("stringData: {k: v}\n").replace('\n', "\n    ")),
            kust(""),
            Some("plaintext Secret apps/db"),
        ),
        ("sops", secret(&format!("stringData:\n  password: ENC[AES256_GCM,data:x,type:str]\n{SOPS_META}")), kust(""), None),
        ("substituted", secret("stringData:\n  password: ${DB_PASSWORD}\n  url: postgres://u:${DB_PASSWORD}@db\n"), kust(""), None),
        ("no data", secret("type: kubernetes.io/service-account-token\n"), kust(""), None),
        (
            "secretGenerator plaintext env",
            secret(""),
            kust("secretGenerator:\n  - name: s\n    envs: [plain.env]\n"),
            Some("plaintext secretGenerator input kubernetes/apps/web/plain.env in kubernetes/apps/web/kustomization.yaml:6"),
        ),
        ("secretGenerator sops env", secret(""), kust("secretGenerator:\n  - name: s\n    envs: [secret.sops.env]\n"), None),
        (
            "secretGenerator literal",
            secret(""),
            kust("secretGenerator:\n  - name: s\n    literals:\n      - user=${USER}\n      - password=hunter2\n"),
            Some("plaintext secretGenerator literal `password`"),
        ),
    ];
    for (case, secret_yaml, kustomization, refused) in cases {
        let fixture = Fixture::new(&[
            ("kubernetes/apps/web/secret.yaml", &secret_yaml),
            ("kubernetes/apps/web/kustomization.yaml", &kustomization),
            ("kubernetes/apps/web/plain.env", "PASSWORD=hunter2\n"),
            ("kubernetes/apps/web/secret.sops.env", "PASSWORD=ENC[AES256_GCM,data:x,type:str]\nsops_version=3.9.1\nsops_mac=ENC[AES256_GCM,data:y,type:str]\n"),
        ]);
        let run = fixture.run(KubernetesMode::Plain);
        match refused {
            Some(msg) => {
                let e = run.err();
                assert!(e.to_string().contains(msg), "{case}: {e}");
                assert!(e.origin().is_some_and(|o| o.line > 0), "{case}: located");
                assert!(
                    e.help().is_some_and(|h| h.contains("sops")),
                    "{case}: {:?}",
                    e.help()
                );
                assert!(
                    !e.to_string().contains("hunter2"),
                    "{case}: the value is never printed"
                );
            }
            None => {
                run.node("k8s:apps/web");
            }
        }
    }
}

#[test]
fn sops_inputs_need_sops_and_flux_nodes_need_flux() {
    let fixture = Fixture::new(&[
        ("kubernetes/flux/ks.yaml", &flux_ks("app", None, "  path: ./kubernetes/app\n")),
        (
            "kubernetes/app/secret.sops.yaml",
            &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: ENC[AES256_GCM,data:x,type:str]\n{SOPS_META}"),
        ),
    ]);
    let run = fixture.run(KubernetesMode::Auto);
    let node = run.node("k8s:flux-system/app");
    assert_eq!(
        node.params["sops_files"],
        json!(["kubernetes/app/secret.sops.yaml"])
    );
    let tools: Vec<String> = K8sRule
        .requirements(node)
        .into_iter()
        .map(|r| match r {
            Requirement::Tool { name } => name,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tools, ["kubectl", "flux", "sops"]);
}

#[test]
fn flux_paths_that_leave_the_repo_or_do_not_exist_are_refused() {
    let kust = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ./ok.yaml\n  - ../../../../etc/passwd\n";
    for (case, path, source, refused) in [
        ("escapes", "../../etc", "GitRepository", Some("escapes the repo")),
        ("absolute", "/etc", "GitRepository", Some("absolute path")),
        ("missing", "./kubernetes/missing", "GitRepository", Some("spec.path `./kubernetes/missing` of Flux Kustomization `app` in kubernetes/ks.yaml:")),
        ("a file", "./kubernetes/ks.yaml", "GitRepository", Some("is a file, not a folder")),
        ("resource escapes", "./kubernetes/app", "GitRepository", Some("resource in kubernetes/app/kustomization.yaml:5:5: `../../../../etc/passwd` escapes the repo")),
        ("other source", "./elsewhere", "OCIRepository", None),
    ] {
        let ks = flux_ks("app", None, &format!("  path: {path}\n")).replace("GitRepository", source);
        let fixture = Fixture::new(&[
            ("kubernetes/ks.yaml", &ks),
            ("kubernetes/app/kustomization.yaml", kust),
            ("kubernetes/app/ok.yaml", "kind: ConfigMap\n"),
        ]);
        let run = fixture.run(KubernetesMode::Auto);
        match refused {
            Some(msg) => {
                let e = run.err();
                assert!(e.to_string().contains(msg), "{case}: {e}");
                assert!(e.origin().is_some_and(|o| o.line > 0), "{case}: located: {:?}", e.origin());
                assert!(e.help().is_some(), "{case}: a hint");
            }
            None => {
                assert!(run.node("k8s:flux-system/app").files.is_empty(), "{case}");
                assert!(run.notes.iter().any(|n| n.contains("not in this repo")), "{case}: {:?}", run.notes);
            }
        }
    }
}

#[test]
fn a_symlink_out_of_the_repo_is_refused() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("x.yaml"), "kind: ConfigMap\n").expect("write");
    let fixture = Fixture::new(&[("kubernetes/apps/web/deploy.yaml", "kind: Deployment\n")]);
    let link = fixture.dir.path().join("kubernetes/apps/web/linked.yaml");
    std::os::unix::fs::symlink(outside.path().join("x.yaml"), link).expect("symlink");
    let run = fixture.run(KubernetesMode::Plain);
    assert!(
        run.err().to_string().contains("outside the repo"),
        "{}",
        run.err()
    );
}

#[test]
fn an_absent_tree_is_a_note() {
    let fixture = Fixture::new(&[("inventory/topology.yaml", "nodes: {}\n")]);
    let run = fixture.run(KubernetesMode::Auto);
    assert!(run.nodes().is_empty());
    assert_eq!(
        run.notes,
        ["no Kubernetes tree at kubernetes: no k8s nodes"]
    );
}

#[test]
fn broken_yaml_is_an_error_only_where_a_node_reads_it() {
    let fixture = Fixture::new(&[
        ("kubernetes/apps/web/deploy.yaml", "kind: Deployment\n"),
        (
            "kubernetes/cm-template.yaml",
            "data:\n  {{- toYaml .Values | nindent 2 }}\n  k: [\n",
        ),
    ]);
    let run = fixture.run(KubernetesMode::Plain);
    assert!(
        run.notes
            .iter()
            .any(|n| n.contains("kubernetes/cm-template.yaml") && n.contains("skipped")),
        "{:?}",
        run.notes
    );
    fixture.write("kubernetes/apps/web/bad.yaml", "a: [\n");
    let run = fixture.run(KubernetesMode::Plain);
    let e = run.err();
    assert!(
        e.to_string()
            .starts_with("malformed YAML in kubernetes/apps/web/bad.yaml:"),
        "{e}"
    );
}

/// The sample homelab of this repo: Flux-shaped, every `dependsOn` resolves, every node
/// realizes.
#[test]
fn the_sample_tree_plans() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = run_at(&repo, "cluster/kubernetes", KubernetesMode::Auto);
    let nodes = run.nodes().to_vec();
    if nodes.is_empty() {
        assert!(!run.notes.is_empty(), "an empty tree is noted");
        return;
    }
    assert!(nodes.iter().all(|n| n.params["mode"] == "flux"));
    hl_engine::Graph::build(nodes)
        .unwrap_or_else(|e| panic!("sample graph: {e} ({:?})", e.origin()));
}

/// A 20,000-manifest tree: `cargo test -p hl-rules --release k8s -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn twenty_thousand_manifests_plan_quickly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut apps = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for app in 0..2000 {
        let base = dir.path().join(format!("kubernetes/apps/app{app}"));
        std::fs::create_dir_all(base.join("app")).expect("mkdir");
        apps.push_str(&format!("  - ./app{app}/ks.yaml\n"));
        let ks = flux_ks(
            &format!("app{app}"),
            None,
            &format!("  path: ./kubernetes/apps/app{app}/app\n  dependsOn:\n    - name: root\n"),
        );
        std::fs::write(base.join("ks.yaml"), ks).expect("write");
        for m in 0..10 {
            let doc = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{m}\n  namespace: app{app}\ndata:\n  key: value-${{DOMAIN}}\n");
            std::fs::write(base.join(format!("app/cm{m}.yaml")), doc).expect("write");
        }
    }
    std::fs::write(dir.path().join("kubernetes/apps/kustomization.yaml"), apps).expect("write");
    std::fs::write(
        dir.path().join("kubernetes/root.yaml"),
        flux_ks("root", None, "  path: ./kubernetes/apps\n"),
    )
    .expect("write");
    let start = std::time::Instant::now();
    let run = run_at(dir.path(), "kubernetes", KubernetesMode::Auto);
    assert_eq!(run.nodes().len(), 2001);
    eprintln!(
        "discover + realize of 20,000 manifests: {:?}",
        start.elapsed()
    );
}
