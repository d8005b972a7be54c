//! The release's digest a plan takes (from what discovery kept) against the release a build
//! makes, on a temp-dir repo.

use std::path::Path;

use hl_engine::{FileSet, RealizeCtx, RepoPath, Rule};

use super::{discover, ComposeRule};
use crate::inventory::Topology;
use crate::Ctx;

fn write(root: &Path, path: &str, text: &str) {
    let abs = root.join(path);
    std::fs::create_dir_all(abs.parent().expect("a parent")).expect("mkdir");
    std::fs::write(abs, text).expect("write");
}

/// Every placement's told digest is its built release's: a compose file alone in its folder
/// (its digest kept by discovery), one under a host's override, a contract, a bind mount in
/// the folder and one leaving it (relocated into the release), and a compose file two hosts
/// share.
#[test]
fn a_releases_told_digest_is_its_built_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "inventory/topology.yaml", "hosts: {}\n");
    write(
        root,
        "hosts/A/services.yaml",
        "services:\n  - app\n  - plain\n",
    );
    write(
        root,
        "hosts/B/services.yaml",
        "services:\n  - name: app\n    exposure: lan\n",
    );
    write(
        root,
        "hosts/B/runtime/app/docker-compose.override.yml",
        "services:\n  app:\n    environment:\n      MODE: b\n    volumes:\n      - ./extra.conf:/etc/extra.conf\n",
    );
    write(
        root,
        "services/app/docker-compose.yml",
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1\n    volumes:\n      - ./app.conf:/etc/app.conf:ro\n      - ../shared/common.conf:/etc/common.conf\n    environment:\n      - MODE=a\n",
    );
    write(root, "services/app/app.conf", "a = 1\n");
    write(root, "services/app/extra.conf", "extra = 1\n");
    write(
        root,
        "services/app/service.yaml",
        "name: app   # a comment the release does not keep\ndependencies: []\n",
    );
    write(root, "services/shared/common.conf", "common = 1\n");
    write(
        root,
        "services/plain/compose.yaml",
        "services:\n  plain:\n    image: busybox:1\n",
    );
    hl_engine::time::settle(&root.join("services/plain/compose.yaml"));

    let files = FileSet::new(root).expect("file set");
    files.watch();
    let topology = Topology::default();
    let ctx = Ctx::new(
        &files,
        &topology,
        RepoPath::new("inventory/topology.yaml").expect("path"),
    );
    let nodes = discover(&ctx).expect("discovery");
    let mut inputs: Vec<RepoPath> = nodes.iter().flat_map(|n| n.files.clone()).collect();
    inputs.sort();
    inputs.dedup();
    files
        .hash_all(&inputs, &Default::default())
        .expect("hashing");
    let mut addresses: Vec<String> = nodes.iter().map(|n| n.address.to_string()).collect();
    addresses.sort();
    assert_eq!(
        addresses,
        ["compose:app@A", "compose:app@B", "compose:plain@A"]
    );
    let inputs = Default::default();
    let ctx = RealizeCtx {
        files: &files,
        inputs: &inputs,
    };
    for node in &nodes {
        let told = ComposeRule
            .output_digest(node, &ctx)
            .expect("compose nodes tell their digest")
            .unwrap_or_else(|e| panic!("digest of {}: {e}", node.address));
        let built = ComposeRule
            .realize(node, &ctx)
            .unwrap_or_else(|e| panic!("realize {}: {e}", node.address));
        assert_eq!(told, built.digest(), "{}", node.address);
        let compose = String::from_utf8(built.files["compose.yaml"].clone()).expect("utf-8");
        if node.address.to_string() == "compose:app@A" {
            assert!(
                compose.contains("./_repo/services/shared/common.conf"),
                "{compose}"
            );
            assert!(built.files.contains_key("hl-service.json"));
        }
    }
}
