//! The load cache: a plan reuses what the loaders found last time unless something they
//! depended on moved, including a file appearing where a loader looked for one and found
//! nothing. A user notices a wrong reuse as a plan that misses their change.

mod common;

use std::fs;

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

/// The same when the service's own runtime folder already existed (empty) at the last plan.
#[test]
fn an_override_appearing_in_the_services_empty_runtime_folder_is_planned() {
    let lab = Lab::adopted();
    std::fs::create_dir_all(lab.path("hosts/SATURN/runtime/forgejo")).unwrap();
    override_appears(&lab);
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

const PAPERLESS_APP: &str = "cluster/kubernetes/apps/paperless/app";

/// Rewrites a repo file the way editors and `git checkout` do: a new file renamed over it, so
/// its folder's metadata moves too.
fn replace_by_rename(lab: &Lab, rel: &str, from: &str, to: &str) {
    let text = lab.read(rel);
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in {rel}");
    let tmp = format!("{rel}.tmp~");
    lab.write(&tmp, &text.replacen(from, to, 1));
    std::fs::rename(lab.path(&tmp), lab.path(rel)).unwrap();
    hl_engine::time::settle(&lab.path(rel).with_file_name(""));
}

/// An image bump in one manifest changes nothing the k8s loader takes from the file (is it a
/// Flux Kustomization, is it encrypted, does it hold a plaintext Secret): the loader does not
/// run, and the plan still updates that Kustomization, whether the file was written in place
/// or renamed over (its folder's entries are the same).
#[test]
fn a_manifest_edit_the_loader_takes_nothing_from_runs_no_loader() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    let owner = lab.flux_owner(PAPERLESS_APP);
    let file = format!("{PAPERLESS_APP}/deployment.yaml");
    lab.replace(&file, "paperless-ngx:2.13.5", "paperless-ngx:2.13.6");
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(changes(&plan), expect([(owner.as_str(), "update")]));
    assert_eq!(stat(&plan, "loaders_run"), 0, "{}", plan["stats"]);

    replace_by_rename(&lab, &file, "paperless-ngx:2.13.6", "paperless-ngx:2.13.7");
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(changes(&plan), expect([(owner.as_str(), "update")]));
    assert_eq!(stat(&plan, "loaders_run"), 0, "{}", plan["stats"]);
    // What held is recorded as it is now: the next plan reads nothing.
    let (_, again) = lab.plan_json(&["--stats"]);
    assert_eq!(stat(&again, "files_read"), 0, "{}", again["stats"]);
    assert_eq!(again["steps"], plan["steps"]);
}

/// An edit that does change what the loader takes from a manifest runs it: a plaintext
/// Secret appended to a manifest is refused (and never printed), however little moved.
#[test]
fn a_plaintext_secret_added_to_a_manifest_is_still_refused() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    let file = format!("{PAPERLESS_APP}/deployment.yaml");
    lab.edit(&file, |t| {
        format!(
            "{t}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\nstringData:\n  \
             password: hunter2-not-a-var\n"
        )
    });
    let run = lab.hl(&["plan"]);
    run.code(1);
    assert!(run.stderr.contains("leak"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// A Flux Kustomization's spec is what the loader takes from `ks.yaml`: changing it runs the
/// loader, the Kustomization that applies the `ks.yaml` is updated, and the app's own step
/// carries the new spec (its manifests are the same, so its bundle is too).
#[test]
fn a_flux_spec_edit_runs_the_loader() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    let app = lab.flux_owner(PAPERLESS_APP);
    let parent = lab.flux_owner("cluster/kubernetes/apps");
    lab.replace(
        "cluster/kubernetes/apps/paperless/ks.yaml",
        "interval: 30m",
        "interval: 15m",
    );
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(
        changes(&plan),
        expect([(parent.as_str(), "update"), (app.as_str(), "no_op")])
    );
    assert_eq!(stat(&plan, "loaders_run"), 1, "{}", plan["stats"]);
    let step = common::step(&plan, &app);
    assert!(step.to_string().contains("15m"), "{step}");
}

/// A compose file's image bump: the compose loader takes only the parts naming repo files
/// from it, so it does not run; the service is updated.
#[test]
fn a_compose_image_bump_runs_no_loader() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    lab.replace(
        "services/mosquitto/docker-compose.yml",
        "image: eclipse-mosquitto:2.0.20",
        "image: eclipse-mosquitto:2.0.21",
    );
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(
        changes(&plan),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
    assert_eq!(stat(&plan, "loaders_run"), 0, "{}", plan["stats"]);
}

/// What one edit teaches a plan (the file's new digest, an observation that still holds) is
/// appended to journals beside the caches instead of rewriting them (megabytes on a large
/// homelab), and the next plan reads it back: it hashes and reads nothing.
#[test]
fn one_edit_is_journalled_not_rewritten() {
    let lab = Lab::adopted();
    lab.plan_json(&[]);
    let hl = |name: &str| std::fs::read(lab.path(".hl").join(name)).ok();
    let (statcache, loadcache) = (hl("statcache"), hl("loadcache"));
    assert!(statcache.is_some() && loadcache.is_some());
    lab.replace(
        &format!("{PAPERLESS_APP}/deployment.yaml"),
        "paperless-ngx:2.13.5",
        "paperless-ngx:2.13.6",
    );
    let (code, plan) = lab.plan_json(&[]);
    assert_eq!(code, 2, "{plan}");
    assert!(hl("statcache") == statcache, "the stat cache was rewritten");
    assert!(hl("loadcache") == loadcache, "the load cache was rewritten");
    assert!(hl("statcache.log").is_some() && hl("loadcache.log").is_some());

    let (code, again) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2);
    assert_eq!(again["steps"], plan["steps"]);
    assert_eq!(stat(&again, "files_hashed"), 0, "{}", again["stats"]);
    assert_eq!(stat(&again, "files_read"), 0, "{}", again["stats"]);
}

/// A YAML file in the Flux tree that does not parse is a note; made into a Flux
/// Kustomization, it is a node at once (the loader read it whole, not through facts).
#[test]
fn a_broken_file_made_valid_is_loaded() {
    let lab = Lab::adopted();
    let extra = "cluster/kubernetes/apps/extra.yaml";
    lab.write(extra, "a: [\n");
    let run = lab.hl(&["plan"]);
    assert!(run.stderr.contains("extra.yaml"), "{}", run.stderr);
    lab.write(extra, common::EXTRA_FLUX_KUSTOMIZATION);
    let (code, plan) = lab.plan_json(&["--stats"]);
    assert_eq!(code, 2, "{plan}");
    assert_eq!(stat(&plan, "loaders_run"), 1, "{}", plan["stats"]);
    assert!(
        changes(&plan).contains(&("k8s:flux-system/extra".to_string(), "create".to_string())),
        "{plan}"
    );
}

/// A service's compose file is found from one listing of its folder: renamed to another name
/// compose takes, or made a symlink to a file beside it, it is still the one read (and a
/// folder without one is still an error that says so).
#[test]
fn a_compose_file_renamed_or_linked_is_still_found() {
    let lab = Lab::adopted();
    let addr = "compose:mosquitto@CHELSTY-INFRA";
    let dir = lab.path("services/mosquitto");
    fs::rename(dir.join("docker-compose.yml"), dir.join("compose.yaml")).unwrap();
    let (_, plan) = lab.plan_json(&[]);
    assert!(
        !changes(&plan).contains(&(addr.to_string(), "delete".to_string())),
        "{plan}"
    );
    fs::rename(dir.join("compose.yaml"), dir.join("real.yml")).unwrap();
    std::os::unix::fs::symlink("real.yml", dir.join("docker-compose.yml")).unwrap();
    let (_, plan) = lab.plan_json(&[]);
    assert!(
        !changes(&plan).contains(&(addr.to_string(), "delete".to_string())),
        "{plan}"
    );
    fs::remove_file(dir.join("docker-compose.yml")).unwrap();
    let run = lab.hl(&["plan"]);
    run.code(1);
    assert!(
        run.stderr
            .contains("no compose file in services/mosquitto/"),
        "{}",
        run.stderr
    );
}
