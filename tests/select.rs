//! Selection: `--target ADDR|GLOB`, `--on HOST`, `--on @tag`, `--layer L`. Each keeps exactly
//! the expected steps; a selected node brings along the changes it depends on (as Terraform's
//! `-target` does), except under the strict `--layer`.

mod common;

use std::collections::BTreeSet;

use common::*;

#[test]
fn target_glob_keeps_the_services_of_one_host() {
    let lab = Lab::fresh();
    let (code, plan) = lab.plan_json(&["--target", "compose:*@PIHA"]);
    assert_eq!(code, 2);
    let piha = lab.placements_on("PIHA");
    assert_eq!(piha.len(), 5, "the sample's monitoring stack");
    assert_eq!(changes(&plan), all(piha, "create"));
    // The runway kept is the one these changes need.
    for (check, needed_by) in checks(&plan) {
        assert!(
            needed_by.iter().all(|a| a.ends_with("@PIHA")),
            "{check}: {needed_by:?}"
        );
    }
}

#[test]
fn on_host_keeps_what_runs_on_that_host() {
    let lab = Lab::fresh();
    let (code, plan) = lab.plan_json(&["--on", "PIHA"]);
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), all(lab.placements_on("PIHA"), "create"));
}

/// `--on @chelsty`: the services of both chelsty hosts, the VM CHELSTY-HA (itself tagged
/// chelsty) and, because the VM cannot be created without it, the image it boots.
#[test]
fn on_tag_keeps_the_tagged_hosts_and_what_they_need() {
    let lab = Lab::fresh();
    let tagged: BTreeSet<String> = lab
        .hosts()
        .into_iter()
        .filter(|(_, tags)| tags.contains("chelsty"))
        .map(|(h, _)| h)
        .collect();
    assert_eq!(
        tagged,
        BTreeSet::from(["CHELSTY-HA".to_string(), "CHELSTY-INFRA".to_string()])
    );
    let (code, plan) = lab.plan_json(&["--on", "@chelsty"]);
    assert_eq!(code, 2);
    let mut want: BTreeSet<String> = tagged.iter().flat_map(|h| lab.placements_on(h)).collect();
    want.insert("vm:CHELSTY-HA".into());
    want.insert("image:debian-12".into());
    assert_eq!(changes(&plan), all(want, "create"));
}

/// `--layer` is strict: the VMs alone, not the images they boot.
#[test]
fn layer_keeps_that_layer_only() {
    let lab = Lab::fresh();
    let (code, plan) = lab.plan_json(&["--layer", "L2"]);
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), all(lab.vms(), "create"));
    for (check, needed_by) in checks(&plan) {
        assert!(
            needed_by.iter().all(|a| a.starts_with("vm:")),
            "{check}: {needed_by:?}"
        );
    }
}

/// One service targeted after an image edit: its VM's replacement and the image rebuild come
/// along, because it runs on them; the other service on that VM does not.
#[test]
fn target_brings_along_the_changed_dependencies() {
    let lab = Lab::adopted();
    lab.replace(
        "inventory/images/debian-12.yaml",
        "\nsize_gb: 32 ",
        "\nsize_gb: 40 ",
    );
    let (code, plan) = lab.plan_json(&["--target", "compose:homeassistant@CHELSTY-HA"]);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&plan),
        expect([
            ("image:debian-12", "update"),
            ("vm:CHELSTY-HA", "replace"),
            ("compose:homeassistant@CHELSTY-HA", "update"),
        ])
    );
}

/// A selection where nothing changed exits 0, although the whole plan has changes.
#[test]
fn selection_without_changes_exits_zero() {
    let lab = Lab::adopted();
    lab.replace(
        "inventory/images/debian-12.yaml",
        "\nsize_gb: 32 ",
        "\nsize_gb: 40 ",
    );
    let run = lab.hl(&["plan", "--on", "PIHA"]);
    run.code(0);
    assert_eq!(run.stdout, "No changes. The homelab matches the repo.\n");
    let (code, plan) = lab.plan_json(&["--layer", "L1"]);
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), expect([("image:debian-12", "update")]));
}

#[test]
fn target_typo_is_refused_with_did_you_mean() {
    let lab = Lab::fresh();
    let run = lab.hl(&["plan", "--target", "compose:mosquito@CHELSTY-INFRA"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("--target `compose:mosquito@CHELSTY-INFRA` matches no node"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("did you mean `compose:mosquitto@CHELSTY-INFRA`?"),
        "{}",
        run.stderr
    );
}
