//! `hl plan` on the sample homelab: the fresh plan, the stat cache, and freshness (adopt, edit
//! one input, assert exactly the steps planned and their causes, as cargo's
//! `tests/testsuite/freshness.rs` does).

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::*;

// ---- fresh copy and adopt ------------------------------------------------------------------

/// Nothing recorded: every node is to create, images say they will be built; after `hl state
/// adopt` the same repo plans nothing.
#[test]
fn fresh_copy_creates_everything_and_adopt_settles_it() {
    let lab = Lab::fresh();
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2, "a plan with changes exits 2");
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["has_changes"], true);

    let got = changes(&plan);
    let creates: BTreeSet<String> = got.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(
        got,
        all(creates.clone(), "create"),
        "every node of a fresh copy is to create"
    );
    let mut want = lab.images();
    want.extend(lab.vms());
    want.extend(lab.talos_addresses());
    want.extend(lab.placements());
    let without_k8s: BTreeSet<String> = creates
        .iter()
        .filter(|a| !a.starts_with("k8s:"))
        .cloned()
        .collect();
    assert_eq!(
        without_k8s, want,
        "one node per image recipe, machine.yaml, Talos node and placement"
    );
    for (addr, _) in &got {
        let s = step(&plan, addr);
        assert_eq!(causes(s), ["new"], "{addr}");
        assert_eq!(s["destructive"], false, "{addr}");
        assert_eq!(
            s["will_build"],
            addr.starts_with("image:"),
            "{addr}: only images are built"
        );
        assert_eq!(s["prior_input"], serde_json::Value::Null, "{addr}");
    }
    assert_eq!(plan["summary"]["create"], got.len());

    let human = lab.hl(&["plan"]);
    human.code(2);
    let summary = format!(
        "Plan: {} to create, 0 to update, 0 to replace, 0 to delete;",
        got.len()
    );
    assert!(human.stdout.contains(&summary), "{}", human.stdout);
    for image in lab.images() {
        let line = human
            .stdout
            .lines()
            .find(|l| l.contains(&image))
            .expect("the image is listed");
        assert!(line.ends_with("(will build)"), "{line}");
    }

    let adopt = lab.hl(&["state", "adopt"]);
    adopt.code(0);
    let n = got.len();
    assert_eq!(
        adopt.stdout,
        format!("Adopted {n} nodes ({n} recorded in all). Nothing else was changed.\n")
    );

    let human = lab.hl(&["plan"]);
    human.code(0);
    assert_eq!(human.stdout, "No changes. The homelab matches the repo.\n");
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(plan["has_changes"], false);
    assert_eq!(
        plan["steps"],
        serde_json::json!([]),
        "no step is shown, not even a runway check"
    );
}

/// A plan of a fresh copy realizes every node for its output and records each action in the
/// cache, all of them in one pack file (`hl_cache::ActionCache::flush`); a second plan, with
/// still nothing recorded in the state, finds every one there and realizes none.
#[test]
fn a_second_plan_of_a_fresh_copy_realizes_nothing() {
    let lab = Lab::fresh();
    let (_, first) = lab.plan_json(&["--stats"]);
    let (code, second) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "nothing is recorded yet");
    assert!(
        stat(&first, "nodes_realized") >= 32,
        "enough actions for a pack: {}",
        first["stats"]
    );
    assert!(
        lab.cache().join("ac-packs").is_dir(),
        "the actions were recorded as a pack"
    );
    assert_eq!(stat(&second, "nodes_realized"), 0, "{}", second["stats"]);
    assert_eq!(first["steps"], second["steps"]);
}

/// The stat cache: a no-op plan stats files but hashes none and realizes nothing; one edited
/// file is the one file hashed.
#[test]
fn noop_plan_hashes_no_file_and_one_edit_hashes_one() {
    let lab = Lab::adopted();
    let (_, first) = lab.plan_json(&["--stats"]);
    let (code, second) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 0);
    assert!(
        stat(&second, "files_statted") > 0,
        "files are still statted: {}",
        second["stats"]
    );
    assert_eq!(stat(&second, "files_hashed"), 0, "{}", second["stats"]);
    assert_eq!(stat(&second, "nodes_realized"), 0, "{}", second["stats"]);
    assert_eq!(
        stat(&first, "files_hashed"),
        0,
        "adopt already filled the stat cache: {}",
        first["stats"]
    );

    lab.edit("services/mosquitto/mosquitto.conf", |t| {
        format!("{t}max_connections 200\n")
    });
    let (code, edited) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2);
    assert_eq!(stat(&edited, "files_hashed"), 1, "{}", edited["stats"]);
    assert_eq!(
        stat(&edited, "nodes_realized"),
        1,
        "only mosquitto reads the file: {}",
        edited["stats"]
    );

    let human = lab.hl(&["plan", "--stats"]);
    human.code(2);
    assert!(
        human.stderr.contains(" 0 files hashed, "),
        "the edit is in the stat cache now: {}",
        human.stderr
    );
    assert!(
        human.stderr.contains(" 0 nodes realized"),
        "{}",
        human.stderr
    );
}

// ---- L4 compose ----------------------------------------------------------------------------

/// A new image tag in one compose file: that service is updated, nothing else.
#[test]
fn compose_file_edit_updates_that_service_only() {
    let lab = Lab::adopted();
    lab.replace(
        "services/mosquitto/docker-compose.yml",
        "eclipse-mosquitto:2.0.20\n",
        "eclipse-mosquitto:2.0.21\n",
    );
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);
    let addr = "compose:mosquitto@CHELSTY-INFRA";
    assert_eq!(changes(&plan), expect([(addr, "update")]));
    let s = step(&plan, addr);
    assert_eq!(
        causes(s),
        ["file services/mosquitto/docker-compose.yml modified"]
    );
    assert_eq!(s["destructive"], false);
    assert_ne!(s["causes"][0]["old"], s["causes"][0]["new"]);
    assert_ne!(s["input"], s["prior_input"]);
    // The runway the update needs, and only that.
    let want = [
        (
            "check:ssh@CHELSTY-INFRA".to_string(),
            vec![addr.to_string()],
        ),
        (
            "check:tool/docker@CHELSTY-INFRA".to_string(),
            vec![addr.to_string()],
        ),
    ];
    assert_eq!(checks(&plan), want.into_iter().collect());
}

/// A comment in a compose file moves its input hash but not the release: a no-op that says so.
#[test]
fn compose_comment_edit_is_noop_output_identical() {
    let lab = Lab::adopted();
    lab.edit("services/mosquitto/docker-compose.yml", |t| {
        t.replacen(
            "    restart: unless-stopped\n",
            "    restart: unless-stopped   # keep it up\n",
            1,
        )
    });
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0, "nothing to do");
    assert_eq!(plan["has_changes"], false);
    let addr = "compose:mosquitto@CHELSTY-INFRA";
    assert_eq!(changes(&plan), expect([(addr, "no_op")]));
    let s = step(&plan, addr);
    assert_eq!(
        causes(s),
        [
            "file services/mosquitto/docker-compose.yml modified",
            "output_identical"
        ]
    );
    assert!(s["causes"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"type": "output_identical"})));
    assert_eq!(s["output"], s["prior_output"]);
    assert_ne!(s["input"], s["prior_input"]);
    assert!(checks(&plan).is_empty(), "a no-op needs no runway");

    let human = lab.hl(&["plan"]);
    human.code(0);
    assert!(
        human.stdout.contains("input changed, output identical"),
        "{}",
        human.stdout
    );
}

/// A file the compose file bind-mounts is an input: docker compose alone would miss the edit.
#[test]
fn bind_mounted_config_edit_updates_the_service() {
    let lab = Lab::adopted();
    lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_queued_messages 5000\n",
        "max_queued_messages 10000\n",
    );
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);
    let addr = "compose:mosquitto@CHELSTY-INFRA";
    assert_eq!(changes(&plan), expect([(addr, "update")]));
    assert_eq!(
        causes(step(&plan, addr)),
        ["file services/mosquitto/mosquitto.conf modified"]
    );
}

/// The plan without its `stats`, to compare plans of runs that did different work.
fn without_stats(mut plan: serde_json::Value) -> serde_json::Value {
    if let Some(m) = plan.as_object_mut() {
        m.remove("stats");
    }
    plan
}

/// One service's compose file edited in a planned repo: the compose loader runs again, but of
/// the repo's files it reads only the edited one (every other file's facts come from the last
/// run); realizing the one changed node reads that node's own inputs, and nothing else is
/// read. The plan is the one a fresh load gives. Undoing the edit reads the one file alone,
/// since the release it gives is already known.
#[test]
fn compose_edit_reads_only_that_service() {
    let lab = Lab::adopted();
    let (_, settled) = lab.plan_json(&["--stats"]);
    assert_eq!(stat(&settled, "files_read"), 0, "{}", settled["stats"]);
    let compose = "services/mosquitto/docker-compose.yml";
    let before = lab.read(compose);
    lab.replace(
        compose,
        "eclipse-mosquitto:2.0.20\n",
        "eclipse-mosquitto:2.0.21\n",
    );

    let (code, edited) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2);
    let addr = "compose:mosquitto@CHELSTY-INFRA";
    assert_eq!(changes(&edited), expect([(addr, "update")]));
    assert_eq!(stat(&edited, "nodes_realized"), 1, "{}", edited["stats"]);
    // The compose file and service.yaml (made canonical for the release); the files the
    // release copies as they are (mosquitto.conf, env.example, healthcheck.sh) are not read:
    // their digests are the ones hashing made.
    assert_eq!(
        stat(&edited, "files_read"),
        2,
        "only mosquitto's files are read: {}",
        edited["stats"]
    );

    // The same plan from a load that remembers nothing.
    fs::remove_file(lab.path(".hl/loadcache")).expect("the load cache was saved");
    fs::remove_dir_all(lab.path(".hl/facts")).expect("facts were saved");
    let (code, fresh) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2);
    assert!(
        stat(&fresh, "files_read") > 5 * stat(&edited, "files_read"),
        "a fresh load reads every service: {}",
        fresh["stats"]
    );
    assert_eq!(without_stats(edited), without_stats(fresh));

    lab.write(compose, &before);
    let (code, undone) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 0, "back to what runs");
    assert_eq!(
        stat(&undone, "files_read"),
        1,
        "only the compose file is read: {}",
        undone["stats"]
    );
    let human = lab.hl(&["plan"]);
    human.code(0);
    assert_eq!(human.stdout, "No changes. The homelab matches the repo.\n");
}

/// Takes uptime-kuma off PIHA (its `- name:` line and the `exposure:` line under it).
fn remove_uptime_kuma(lab: &Lab) {
    lab.edit("hosts/PIHA/services.yaml", |t| {
        let mut out = String::new();
        let mut lines = t.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("- name: uptime-kuma") {
                let exposure = lines.next().expect("uptime-kuma has an exposure line");
                assert!(exposure.trim_start().starts_with("exposure:"), "{exposure}");
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    });
}

/// A service removed from a host's services.yaml is deleted, and that is destructive.
#[test]
fn service_removed_from_host_is_a_destructive_delete() {
    let lab = Lab::adopted();
    remove_uptime_kuma(&lab);
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);
    let addr = "compose:uptime-kuma@PIHA";
    assert_eq!(changes(&plan), expect([(addr, "delete")]));
    let s = step(&plan, addr);
    assert_eq!(s["destructive"], true);
    assert_eq!(causes(s), ["removed"]);
    assert_eq!(s["layer"], "L4");

    let human = lab.hl(&["plan"]);
    human.code(2);
    let line = human
        .stdout
        .lines()
        .find(|l| l.contains(addr))
        .expect("the delete is listed");
    assert!(
        line.contains("delete") && line.contains("[destructive: needs approval]"),
        "{line}"
    );
    assert!(
        human
            .stdout
            .contains("0 to create, 0 to update, 0 to replace, 1 to delete"),
        "{}",
        human.stdout
    );
}

/// Deleting a service needs the same runway as updating it: ssh to the host and docker on it.
#[test]
fn service_removed_from_host_needs_the_runway_of_that_host() {
    let lab = Lab::adopted();
    remove_uptime_kuma(&lab);
    let (_, plan) = lab.plan_json(&[]);
    assert_eq!(
        changes(&plan),
        expect([("compose:uptime-kuma@PIHA", "delete")])
    );
    let c = checks(&plan);
    for check in ["check:ssh@PIHA", "check:tool/docker@PIHA"] {
        assert_eq!(
            c.get(check),
            Some(&vec!["compose:uptime-kuma@PIHA".to_string()]),
            "{check} in {c:?}"
        );
    }
}

// ---- L1 image -> L2 VM -> what is placed on it ----------------------------------------------

/// Grows debian-12 in the recipe of the sample.
fn edit_debian_recipe(lab: &Lab) {
    lab.replace(
        "inventory/images/debian-12.yaml",
        "\nsize_gb: 32 ",
        "\nsize_gb: 40 ",
    );
}

/// An image recipe edited: the image is rebuilt, every VM booting it is replaced, and what
/// runs on those VMs is applied again. Nothing else moves.
#[test]
fn image_recipe_edit_rebuilds_image_replaces_vm_and_reapplies_what_runs_on_it() {
    let lab = Lab::adopted();
    edit_debian_recipe(&lab);
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);

    let vms = lab.vms_using("debian-12");
    assert_eq!(
        vms,
        BTreeSet::from(["vm:CHELSTY-HA".to_string()]),
        "the sample boots CHELSTY-HA from debian-12"
    );
    let mut placed = BTreeSet::new();
    for vm in &vms {
        let host = vm.trim_start_matches("vm:");
        placed.extend(lab.placements_on(host));
        placed.extend(
            lab.talos_addresses()
                .into_iter()
                .filter(|t| t.trim_start_matches("talos:").eq_ignore_ascii_case(host)),
        );
    }
    assert!(!placed.is_empty());
    let mut want = expect([("image:debian-12", "update")]);
    want.extend(all(vms.clone(), "replace"));
    want.extend(all(placed.clone(), "update"));
    assert_eq!(changes(&plan), want);

    let image = step(&plan, "image:debian-12");
    assert_eq!(image["will_build"], true);
    assert_eq!(image["destructive"], false);
    assert_eq!(causes(image), ["param size_gb: 32 -> 40"]);
    for vm in &vms {
        let s = step(&plan, vm);
        assert_eq!(s["destructive"], true, "{vm}");
        assert_eq!(s["will_build"], false, "{vm}");
        assert_eq!(
            causes(s),
            [
                "dependency image:debian-12",
                "forces_replacement image:debian-12"
            ],
            "{vm}"
        );
    }
    for addr in &placed {
        let s = step(&plan, addr);
        assert_eq!(s["destructive"], false, "{addr}");
        assert_eq!(causes(s), ["placement vm:CHELSTY-HA replace"], "{addr}");
    }
    assert!(
        plan["summary"]["replace"] == 1 && plan["summary"]["update"] == 1 + placed.len(),
        "{}",
        plan["summary"]
    );
}

/// A comment in a recipe changes nothing: the recipe's keys are the parameters.
#[test]
fn image_recipe_comment_edit_changes_nothing() {
    let lab = Lab::adopted();
    lab.edit("inventory/images/debian-12.yaml", |t| {
        format!("# rebuilt monthly\n{t}")
    });
    let run = lab.hl(&["plan"]);
    run.code(0);
    assert_eq!(run.stdout, "No changes. The homelab matches the repo.\n");
}

/// What a user sees after the image-recipe edit, masked of temp paths.
#[test]
fn snapshot_of_the_plan_after_an_image_recipe_edit() {
    let lab = Lab::adopted();
    edit_debian_recipe(&lab);
    let run = lab.hl(&["plan"]);
    run.code(2);
    insta::assert_snapshot!("image_recipe_edit", lab.mask(&run.stdout));
}

/// The placement cause reads as English, for a VM replaced and for a VM created (its services
/// adopted, the VM not).
#[test]
fn placement_cause_reads_as_english() {
    let lab = Lab::adopted();
    edit_debian_recipe(&lab);
    let run = lab.hl(&["plan"]);
    assert!(
        run.stdout
            .contains("runs on vm:CHELSTY-HA, which is replaced\n"),
        "{}",
        run.stdout
    );

    let lab = Lab::fresh();
    lab.hl(&["state", "adopt", "--target", "compose:*"]).code(0);
    let run = lab.hl(&["plan"]);
    assert!(
        run.stdout
            .contains("runs on vm:CHELSTY-HA, which is created\n"),
        "{}",
        run.stdout
    );
}

// ---- L3 Talos ------------------------------------------------------------------------------

/// Each patch file of the sample, edited for real: only the Talos nodes whose config uses it
/// (from talconfig.yaml: global, role or own patches) are updated.
#[test]
fn talos_patch_edit_updates_only_the_nodes_using_it() {
    let cases = [
        // a per-node patch
        (
            "cluster/talos/patches/kube-w-1.yaml",
            "vm.max_map_count: \"262144\"",
            "vm.max_map_count: \"524288\"",
        ),
        // control-plane role patches
        (
            "cluster/talos/patches/controller/cluster.yaml",
            "enforce: baseline",
            "enforce: restricted",
        ),
        (
            "cluster/talos/patches/controller/machine-features.yaml",
            "forwardKubeDNSToHost: false",
            "forwardKubeDNSToHost: true",
        ),
        // a worker role patch
        (
            "cluster/talos/patches/worker/node-labels.yaml",
            "zone: proxima",
            "zone: proxima-b",
        ),
        // a global patch
        (
            "cluster/talos/patches/global/machine-time.yaml",
            "bootTimeout: 2m0s",
            "bootTimeout: 3m0s",
        ),
    ];
    for (file, from, to) in cases {
        let lab = Lab::adopted();
        let users = lab.talos_using(file);
        assert!(!users.is_empty(), "{file} is used by some node");
        lab.replace(file, from, to);
        let (code, plan) = lab.plan_json(&[]);
        assert_eq!(code, 2, "{file}");
        assert_eq!(changes(&plan), all(users.clone(), "update"), "{file}");
        for addr in &users {
            let s = step(&plan, addr);
            assert_eq!(
                causes(s),
                [format!("file {file} modified")],
                "{file}: {addr}"
            );
            assert_eq!(s["layer"], "L3");
        }
    }
}

/// The expected sets above are not trivial: a node patch, a role patch and a global patch
/// reach different nodes of the sample.
#[test]
fn talos_patch_users_differ_by_kind_of_patch() {
    let lab = Lab::fresh();
    let everyone = lab.talos_addresses();
    let node = lab.talos_using("cluster/talos/patches/kube-w-1.yaml");
    let cp = lab.talos_using("cluster/talos/patches/controller/cluster.yaml");
    let global = lab.talos_using("cluster/talos/patches/global/machine-time.yaml");
    assert_eq!(node, BTreeSet::from(["talos:kube-w-1".to_string()]));
    let want_cp: BTreeSet<String> = lab
        .talos()
        .iter()
        .filter(|n| n.control_plane)
        .map(|n| format!("talos:{}", n.hostname))
        .collect();
    assert_eq!(cp, want_cp);
    assert!(cp.len() >= 3 && cp.len() < everyone.len());
    assert_eq!(global, everyone);
}

/// A comment in a role patch: each of its nodes is a no-op, "output identical".
#[test]
fn talos_patch_comment_edit_is_noop_output_identical() {
    let lab = Lab::adopted();
    let file = "cluster/talos/patches/controller/cluster.yaml";
    let users = lab.talos_using(file);
    lab.edit(file, |t| format!("{t}# reviewed: nothing to change\n"));
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    assert_eq!(changes(&plan), all(users.clone(), "no_op"));
    for addr in &users {
        assert_eq!(
            causes(step(&plan, addr)),
            [
                format!("file {file} modified"),
                "output_identical".to_string()
            ]
        );
    }
}

/// A new install disk means reinstalling the node: replace, destructive. (kube-cp-2, not
/// kube-w-1: kube-w-1's own patch sets `machine.install.disk`, which wins over `installDisk`,
/// so there the same edit is rightly a no-op, "output identical".)
#[test]
fn talos_install_disk_change_replaces_the_node() {
    let lab = Lab::adopted();
    lab.edit("cluster/talos/talconfig.yaml", |t| {
        let at = t
            .find("- hostname: kube-cp-2")
            .expect("kube-cp-2 is in talconfig.yaml");
        let (head, tail) = t.split_at(at);
        format!(
            "{head}{}",
            tail.replacen("installDisk: /dev/sda", "installDisk: /dev/vda", 1)
        )
    });
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), expect([("talos:kube-cp-2", "replace")]));
    let s = step(&plan, "talos:kube-cp-2");
    assert_eq!(s["destructive"], true);
    let c = causes(s);
    assert!(
        c.contains(&"param installDisk: \"/dev/sda\" -> \"/dev/vda\"".to_string()),
        "{c:?}"
    );
    assert!(
        c.contains(&"forces_replacement installDisk".to_string()),
        "{c:?}"
    );
}

// ---- L4 Kubernetes -------------------------------------------------------------------------

const PAPERLESS: &str = "cluster/kubernetes/apps/paperless/app";

/// One k8s node per Flux Kustomization, all to create on a fresh copy.
#[test]
fn fresh_copy_has_one_k8s_node_per_flux_kustomization() {
    let lab = Lab::fresh();
    let (_, plan) = lab.plan_json(&[]);
    let k8s: BTreeSet<(String, String)> = changes(&plan)
        .into_iter()
        .filter(|(a, _)| a.starts_with("k8s:"))
        .collect();
    let want = lab.flux_kustomizations().into_keys();
    assert_eq!(k8s, all(want, "create"));
}

/// A manifest edited under one app's `spec.path`: that app's node updates, nothing else.
#[test]
fn kubernetes_manifest_edit_updates_only_that_app() {
    let lab = Lab::adopted();
    let file = format!("{PAPERLESS}/deployment.yaml");
    lab.replace(&file, "paperless-ngx:2.13.5", "paperless-ngx:2.13.6");
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2);
    let addr = lab.flux_owner(PAPERLESS);
    assert_eq!(changes(&plan), expect([(addr.clone(), "update")]));
    assert_eq!(
        causes(step(&plan, &addr)),
        [format!("file {file} modified")]
    );
}

/// A manifest edited after a plan: the k8s loader runs again but reads that file alone, every
/// other file's facts coming from the last run (`.hl/facts/k8s`), so the files read are the
/// edited one and the inputs of the one node realized again; the plan is what a fresh load
/// of the tree plans.
#[test]
fn kubernetes_manifest_edit_reads_only_what_the_edit_touches() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    let file = format!("{PAPERLESS}/deployment.yaml");
    lab.replace(&file, "paperless-ngx:2.13.5", "paperless-ngx:2.13.6");
    let (code, mut edited) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2);
    assert_eq!(stat(&edited, "nodes_realized"), 1, "{}", edited["stats"]);
    let inputs = std::fs::read_dir(lab.path(PAPERLESS))
        .expect("app folder")
        .count() as u64;
    assert_eq!(
        stat(&edited, "files_read"),
        inputs,
        "the edited manifest (read once by the loader, hashing and realize), then the rest \
         of paperless's inputs by realize: {}",
        edited["stats"]
    );

    for stale in ["loadcache", "facts"] {
        let p = lab.path(".hl").join(stale);
        assert!(p.exists(), "{stale}");
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("rm facts");
        } else {
            std::fs::remove_file(p).expect("rm loadcache");
        }
    }
    let (_, mut fresh) = lab.plan_json(&["--stats"]);
    assert!(
        stat(&fresh, "files_read") > 2 * inputs,
        "a fresh load reads the whole tree: {}",
        fresh["stats"]
    );
    for plan in [&mut edited, &mut fresh] {
        plan.as_object_mut().expect("plan").remove("stats");
    }
    assert_eq!(edited, fresh);
}

/// A comment in a manifest: the bundle is normalised, so the app is a no-op, "output identical".
#[test]
fn kubernetes_comment_edit_is_noop_output_identical() {
    let lab = Lab::adopted();
    let file = format!("{PAPERLESS}/deployment.yaml");
    lab.replace(
        &file,
        "  replicas: 1\n",
        "  replicas: 1                  # SQLite: one writer\n",
    );
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    let addr = lab.flux_owner(PAPERLESS);
    assert_eq!(changes(&plan), expect([(addr.clone(), "no_op")]));
    assert_eq!(
        causes(step(&plan, &addr)),
        [
            format!("file {file} modified"),
            "output_identical".to_string()
        ]
    );
}

/// A plan takes each k8s node's output digest from the documents' digests discovery derived
/// (no second parse), and a compose node's from the digests hashing made of the files its
/// release copies (no second read); `hl build` makes the artifacts. Both must name the same
/// artifact, or every dependent of a node would plan an update after each apply.
#[test]
fn the_planned_output_of_a_node_is_the_digest_of_its_built_artifact() {
    let lab = Lab::fresh();
    let (_, plan) = lab.plan_json(&[]);
    // Every compose node: with and without a host's override, with and without a contract
    // (the plan takes their digests from what discovery kept; a build makes the files).
    for (kind, count) in [("k8s:", 4), ("compose:", usize::MAX)] {
        let nodes: Vec<(String, String)> = plan["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["address"].as_str().is_some_and(|a| a.starts_with(kind)))
            .map(|s| {
                (
                    s["address"].as_str().expect("address").to_string(),
                    s["output"].as_str().expect("a planned output").to_string(),
                )
            })
            .collect();
        assert!(
            nodes.len() >= 3,
            "the sample homelab has {kind} nodes: {nodes:?}"
        );
        if kind == "compose:" {
            assert!(
                nodes.iter().any(|(a, _)| a == "compose:caddy@VPS"),
                "the sample homelab's caddy on VPS has an override: {nodes:?}"
            );
        }
        for (address, output) in nodes.iter().take(count) {
            let built = lab.hl(&["build", address]);
            built.code(0);
            assert!(
                built.stderr.contains(&format!("output {}", &output[..12]))
                    || built.stdout.contains(&format!("output {}", &output[..12])),
                "{address}: planned {output}, built:\n{}{}",
                built.stdout,
                built.stderr
            );
        }
    }
}
