//! The load cache: a plan reuses what the loaders found last time unless something they
//! depended on moved, including a file appearing where a loader looked for one and found
//! nothing. A user notices a wrong reuse as a plan that misses their change.

mod common;

use common::{changes, expect, stat, Lab};
use serde_json::Value;

const OVERRIDE: &str = "hosts/SATURN/runtime/forgejo/docker-compose.override.yml";
const OVERRIDE_TEXT: &str =
    "services:\n  forgejo:\n    environment:\n      FORGEJO__server__DISABLE_SSH: \"true\"\n";

/// A no-op plan with the load cache reads no file at all and runs no loader.
#[test]
fn noop_plan_reads_no_file() {
    let lab = Lab::adopted();
    lab.plan_json(&["--stats"]);
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 0);
    assert_eq!(stat(&plan, "files_read"), 0, "{}", plan["stats"]);
    assert_eq!(stat(&plan, "loaders_run"), 0, "{}", plan["stats"]);
}

/// Editing a bind-mounted config file changes what the service runs, not what the loaders
/// found (they only asked whether it is a file): no loader runs, and that service alone is
/// updated, after reading the file (hashing) and its release's inputs (realize).
#[test]
fn a_config_file_edit_runs_no_loader() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    lab.edit("services/mosquitto/mosquitto.conf", |t| {
        format!("{t}max_connections 200\n")
    });
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(
        changes(&plan),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
    assert_eq!(stat(&plan, "loaders_run"), 0, "{}", plan["stats"]);
    assert_eq!(stat(&plan, "files_hashed"), 1, "{}", plan["stats"]);
    // A file turning into a folder is a change of kind: the compose loader runs again.
    std::fs::remove_file(lab.path("services/mosquitto/mosquitto.conf")).unwrap();
    std::fs::create_dir(lab.path("services/mosquitto/mosquitto.conf")).unwrap();
    let (_, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(stat(&plan, "loaders_run"), 1, "{}", plan["stats"]);
}

/// Plans once, writes the override, and checks that the next plan updates that service.
fn override_appears(lab: &Lab) {
    let (code, _) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    lab.write(OVERRIDE, OVERRIDE_TEXT);
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(
        changes(&plan),
        expect([("compose:forgejo@SATURN", "update")])
    );
}

/// A host override appearing where none was (two folders deep) is planned at once, though the
/// loader only looked for it and found nothing last time.
#[test]
fn an_override_appearing_where_none_was_is_planned() {
    override_appears(&Lab::adopted());
}

/// The same when the folder above it already existed (empty) at the last plan.
#[test]
fn an_override_appearing_in_an_existing_folder_is_planned() {
    let lab = Lab::adopted();
    std::fs::create_dir_all(lab.path("hosts/SATURN/runtime")).unwrap();
    override_appears(&lab);
    // And gone again: back to the recorded state.
    std::fs::remove_file(lab.path(OVERRIDE)).unwrap();
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0, "{plan}");
}

/// A record of the state is parsed in full only when its node changed: a hand-broken input
/// list is a clear error then (naming the file and the way out), and nothing is written.
#[test]
fn a_broken_state_record_is_a_clear_error_when_its_node_changes() {
    let lab = Lab::adopted();
    let path = lab.path(".hl/state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let rec = &mut state["nodes"]["compose:mosquitto@CHELSTY-INFRA"];
    assert!(
        rec.is_object(),
        "the sample places mosquitto on CHELSTY-INFRA"
    );
    rec["files"] = serde_json::json!({"../outside": "not a digest"});
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();

    let (code, _) = lab.plan_json(&[]);
    assert_eq!(code, 0, "a no-op does not read the broken part");

    lab.edit("services/mosquitto/mosquitto.conf", |t| {
        format!("{t}max_connections 200\n")
    });
    let hl_dir = |lab: &Lab| {
        let mut w = lab.written();
        w.retain(|p, _| p.starts_with(lab.path(".hl")));
        w
    };
    let before = hl_dir(&lab);
    let run = lab.hl(&["plan"]);
    run.code(1);
    assert!(
        run.stderr.contains("broken record") && run.stderr.contains("hl state adopt"),
        "{}",
        run.stderr
    );
    assert!(hl_dir(&lab) == before, "a refused plan wrote to .hl/");
}
