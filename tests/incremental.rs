//! The load cache: a plan reuses what the loaders found last time unless something they
//! depended on moved, including a file appearing where a loader looked for one and found
//! nothing. A user notices a wrong reuse as a plan that misses their change.

mod common;

use common::{stat, Lab};
use serde_json::Value;

/// The changes planned, L0 checks aside.
fn updates(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["action"] != "noop" && s["action"] != "check")
        .map(|s| {
            format!(
                "{} {}",
                s["action"].as_str().unwrap(),
                s["address"].as_str().unwrap()
            )
        })
        .collect()
}

const OVERRIDE: &str = "hosts/SATURN/runtime/forgejo/docker-compose.override.yml";
const OVERRIDE_TEXT: &str =
    "services:\n  forgejo:\n    environment:\n      FORGEJO__server__DISABLE_SSH: \"true\"\n";

/// A no-op plan with the load cache reads no file at all.
#[test]
fn noop_plan_reads_no_file() {
    let lab = Lab::adopted();
    lab.plan_json(&["--stats"]);
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 0);
    assert_eq!(stat(&plan, "files_read"), 0, "{}", plan["stats"]);
}

/// A host override appearing where none was (two folders deep) is planned at once, though the
/// loader only looked for it and found nothing last time.
#[test]
fn an_override_appearing_where_none_was_is_planned() {
    let lab = Lab::adopted();
    let (code, _) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    lab.write(OVERRIDE, OVERRIDE_TEXT);
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(updates(&plan), ["update compose:forgejo@SATURN"]);
}

/// The same when the folder above it already existed (empty) at the last plan.
#[test]
fn an_override_appearing_in_an_existing_folder_is_planned() {
    let lab = Lab::adopted();
    std::fs::create_dir_all(lab.path("hosts/SATURN/runtime")).unwrap();
    let (code, _) = lab.plan_json(&[]);
    assert_eq!(code, 0);
    lab.write(OVERRIDE, OVERRIDE_TEXT);
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(updates(&plan), ["update compose:forgejo@SATURN"]);
    // And gone again: back to the recorded state.
    std::fs::remove_file(lab.path(OVERRIDE)).unwrap();
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 0, "{plan}");
}
