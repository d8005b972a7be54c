//! The plan memo patched: after an edit that moves input files and nothing the loaders take
//! from them, `hl plan` makes again only the nodes the edit reaches. A user would notice a
//! wrong patch as a plan that differs from the one made whole, so every case compares the
//! two, and says what the patch did (`plan_patched`: the nodes evaluated again).

mod common;

use common::{changes, checks, expect, Lab};
use serde_json::Value;

/// `hl plan --json --stats`: the exit code, the plan without its stats, and the nodes the
/// patch evaluated again (`None`: recalled or made whole).
fn plan(lab: &Lab) -> (i32, Value, Option<u64>, Value) {
    let (code, v, stats, _) = lab.plan_stats(&[]);
    (code, v, stats["plan_patched"].as_u64(), stats)
}

/// The plan made whole (the memo removed first), without its stats.
fn whole(lab: &Lab) -> (i32, Value) {
    std::fs::remove_file(lab.path(".hl/planmemo")).expect("a memo was kept");
    let (code, v, patched, stats) = plan(lab);
    assert_eq!(patched, None);
    assert_eq!(stats["plan_recalled"], false);
    (code, v)
}

/// A plan patched after an edit: it says so, and is the plan made whole.
#[track_caller]
fn patched(lab: &Lab) -> (i32, Value, u64, Value) {
    let (code, v, patched, stats) = plan(lab);
    let n = patched.unwrap_or_else(|| panic!("not patched: {stats}"));
    assert_eq!(stats["loaders_run"], 0, "{stats}");
    assert_eq!(
        whole(lab),
        (code, v.clone()),
        "the patched plan is the whole one"
    );
    (code, v, n, stats)
}

/// A lab adopted, with a plan kept.
fn kept() -> Lab {
    let lab = Lab::adopted();
    let (code, _, patched, _) = plan(&lab);
    assert_eq!((code, patched), (0, None));
    lab
}

/// A config file of a compose service edited: that service updates, its host's runway checks
/// are needed; the edit undone, nothing is left to do. One node evaluated again each time.
#[test]
fn a_config_edit_and_its_undo_are_patched() {
    let lab = kept();
    let conf = "services/mosquitto/mosquitto.conf";
    let before = lab.read(conf);
    lab.edit(conf, |t| format!("{t}max_connections 200\n"));
    let (code, edited, n, stats) = patched(&lab);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&edited),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
    assert!(!checks(&edited).is_empty(), "its runway: {edited}");
    assert_eq!((n, &stats["files_hashed"]), (1, &Value::from(1)));

    lab.write(conf, &before);
    let (code, undone, n, _) = patched(&lab);
    assert_eq!((code, n), (0, 1));
    assert!(
        changes(&undone).is_empty() && checks(&undone).is_empty(),
        "{undone}"
    );
}

/// A file written again with the same bytes: its metadata moved, the plan did not.
#[test]
fn the_same_bytes_written_again_patch_to_the_same_plan() {
    let lab = kept();
    let (_, first) = whole(&lab);
    let conf = "services/mosquitto/mosquitto.conf";
    lab.edit(conf, |t| format!("{t}\n"));
    lab.edit(conf, |t| t.strip_suffix('\n').expect("added").to_string());
    let (code, again, _, _) = patched(&lab);
    assert_eq!((code, again), (0, first));
}

/// An image's input file edited: the image will build anew, so every VM booting it changes
/// (its input is the image's output), what is placed on those VMs is applied again, and the
/// runway checks of all of them are needed: a change that travels edges, patched.
#[test]
fn an_edit_that_travels_input_and_placement_edges_is_patched() {
    let lab = kept();
    lab.edit("inventory/images/debian-12/user-data.yaml", |t| {
        format!("{t}packages: [htop]\n")
    });
    let (code, plan, n, _) = patched(&lab);
    assert_eq!(code, 2);
    let changed = changes(&plan);
    assert!(
        changed.iter().any(|(a, _)| a == "image:debian-12"),
        "{plan}"
    );
    let vms = lab.vms_using("debian-12");
    assert!(!vms.is_empty());
    for vm in &vms {
        assert!(
            changed.iter().any(|(a, _)| a == vm),
            "{vm} boots the image: {plan}"
        );
        let host = vm.trim_start_matches("vm:");
        for placed in lab.placements_on(host) {
            assert!(
                changed.iter().any(|(a, _)| *a == placed),
                "{placed} runs on {vm}: {plan}"
            );
        }
    }
    assert!(
        n as usize > vms.len(),
        "the image and its VMs at least: {n} evaluated"
    );
}

/// Edits one after another, each planned: each plan is patched from the one before, and each
/// is the plan made whole.
#[test]
fn edits_in_a_row_are_each_patched() {
    let lab = kept();
    let edits: [(&str, &str, &str); 3] = [
        (
            "cluster/talos/patches/kube-w-1.yaml",
            "vm.max_map_count: \"262144\"",
            "vm.max_map_count: \"524288\"",
        ),
        (
            "services/mosquitto/mosquitto.conf",
            "max_queued_messages 5000\n",
            "max_queued_messages 10000\n",
        ),
        ("services/caddy/Caddyfile", "", ""),
    ];
    let mut changed = std::collections::BTreeSet::new();
    for (file, from, to) in edits {
        if from.is_empty() {
            lab.edit(file, |t| format!("{t}# reviewed\n"));
        } else {
            lab.replace(file, from, to);
        }
        let (code, plan, _, _) = patched(&lab);
        assert_eq!(code, 2);
        let now = changes(&plan);
        assert!(now.is_superset(&changed), "{file}: earlier changes kept");
        assert!(now.len() > changed.len(), "{file} changed something");
        changed = now;
    }
    assert!(changed.iter().any(|(a, _)| a.starts_with("talos:")));
}

/// With a node recorded but gone from the repo (its delete pending, its runway checks needed
/// by it), an edit of a service on the same host is patched: the delete stays, and the host's
/// checks are needed by both.
#[test]
fn a_pending_delete_survives_a_patch() {
    let lab = kept();
    lab.replace(
        "hosts/CHELSTY-INFRA/services.yaml",
        "  - stability-agent\n",
        "",
    );
    let (code, removed, patched_, _) = plan(&lab);
    assert_eq!((code, patched_), (2, None), "a loader ran: made whole");
    assert_eq!(
        changes(&removed),
        expect([("compose:stability-agent@CHELSTY-INFRA", "delete")])
    );
    lab.edit("services/mosquitto/mosquitto.conf", |t| {
        format!("{t}max_connections 200\n")
    });
    let (code, plan, _, _) = patched(&lab);
    assert_eq!(code, 2);
    let both = checks(&plan)
        .into_values()
        .filter(|needed| needed.len() == 2)
        .count();
    assert!(both > 0, "{plan}");
    assert!(
        changes(&plan).contains(&(
            "compose:stability-agent@CHELSTY-INFRA".into(),
            "delete".into()
        )),
        "{plan}"
    );
}

/// A new state between two edits (`hl state adopt` records what was pending): the next edit
/// is patched against the new records, wherever they now lie in the state file.
#[test]
fn an_edit_after_a_new_state_is_patched_against_it() {
    let lab = kept();
    let conf = "services/mosquitto/mosquitto.conf";
    let before = lab.read(conf);
    lab.edit(conf, |t| format!("{t}max_connections 200\n"));
    let (code, _, _, _) = patched(&lab);
    assert_eq!(code, 2);
    lab.adopt();
    let (code, adopted, patched_, _) = plan(&lab);
    assert_eq!((code, patched_), (0, None), "a new state: made whole");
    assert!(changes(&adopted).is_empty());

    lab.write(conf, &before);
    let (code, undone, n, _) = patched(&lab);
    assert_eq!((code, n), (2, 1));
    assert_eq!(
        changes(&undone),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")]),
        "the recorded config is the edited one now"
    );
}

/// Rounds of random edits (seeded, so a failure repeats): one to three files a round among
/// the services', the Talos patches, the Flux apps' and an image's, each given a comment,
/// written back as it was, or rewritten with the same bytes. After each round the plan, patched
/// or not (an edit a loader takes in makes it whole), is the plan made whole; most rounds are
/// patched.
#[test]
fn random_edits_patch_to_the_whole_plan() {
    let lab = kept();
    let mut files: Vec<String> = Vec::new();
    for dir in [
        "services",
        "cluster/talos/patches",
        "cluster/kubernetes/apps",
        "inventory/images/debian-12",
    ] {
        let mut found = Vec::new();
        walk(&lab.path(dir), &mut found);
        files.extend(
            found
                .iter()
                .filter_map(|p| p.strip_prefix(lab.root()).ok()?.to_str().map(String::from))
                .filter(|p| !p.contains(".sops.") && !p.ends_with(".md") && !p.ends_with(".py")),
        );
    }
    files.sort();
    let originals: Vec<String> = files.iter().map(|f| lab.read(f)).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (rounds, mut patched_rounds) = (60, 0);
    for round in 0..rounds {
        let mut edited = Vec::new();
        for _ in 0..1 + next(3) {
            let i = next(files.len());
            let text = match next(3) {
                0 => format!("{}# round {round}\n", lab.read(&files[i])),
                1 => originals[i].clone(),
                _ => lab.read(&files[i]),
            };
            lab.write(&files[i], &text);
            edited.push(files[i].as_str());
        }
        let (code, plan_, n, _) = plan(&lab);
        patched_rounds += usize::from(n.is_some());
        assert_eq!(
            whole(&lab),
            (code, plan_),
            "round {round}, after editing {edited:?} (patched: {n:?})"
        );
    }
    assert!(
        patched_rounds * 2 > rounds,
        "only {patched_rounds} of {rounds} rounds patched"
    );
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Most input files moved at once (a branch switched under the repo): the plan is made whole,
/// in parallel, rather than patched node by node; it plans every change.
#[test]
fn many_files_moved_at_once_make_the_plan_whole() {
    let lab = kept();
    let mut found = Vec::new();
    walk(&lab.path("services"), &mut found);
    walk(&lab.path("cluster/kubernetes/apps"), &mut found);
    let edited: Vec<std::path::PathBuf> = found
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".sh") || name.ends_with(".example") || name.contains("/app/")
        })
        .filter(|p| !p.to_string_lossy().contains(".sops."))
        .collect();
    assert!(edited.len() > 30, "{} files", edited.len());
    for p in &edited {
        let text = std::fs::read_to_string(p).expect("text");
        std::fs::write(p, format!("{text}# moved\n")).expect("write");
    }
    let (code, plan_, n, _) = plan(&lab);
    assert_eq!((code, n), (2, None), "made whole");
    assert_eq!(whole(&lab), (code, plan_.clone()));
    assert!(changes(&plan_).len() > 10, "{plan_}");
}

/// A state journal left by an apply that did not finish: the state file alone is not the
/// state, so no plan is patched against it (each is made whole, and right) until a new state
/// folds the journal in.
#[test]
fn a_state_journal_makes_plans_whole() {
    let lab = kept();
    let journal = lab.path(".hl/state.journal");
    std::fs::write(&journal, "{\"address\":\"compose:gone@NOWHERE\",\"rec").expect("a torn line");
    let (code, _, n, _) = plan(&lab);
    assert_eq!((code, n), (0, None));
    lab.edit("services/mosquitto/mosquitto.conf", |t| {
        format!("{t}max_connections 200\n")
    });
    let (code, edited, n, _) = plan(&lab);
    assert_eq!((code, n), (2, None), "not patched");
    assert_eq!(whole(&lab), (code, edited));
}
