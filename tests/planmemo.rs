//! The plan memo: `hl plan` where nothing moved prints the last plan instead of making it
//! again. A user notices a wrong recall as a plan that misses a change, so each thing a plan
//! is made of (files, loaders' view, state, environment, built images) is moved in turn.

mod common;
#[path = "common/images.rs"]
mod images;

use common::{changes, expect, Lab};
use serde_json::Value;

const RECALLED: &str = "the plan of .hl/planmemo";
const MOSQUITTO: &str = "compose:mosquitto@CHELSTY-INFRA";

/// `hl plan --json --stats`: the exit code, the plan (without its stats), and whether it was
/// recalled, which the stats and the log both say.
fn plan(lab: &Lab, env: &[(&str, &str)]) -> (i32, Value, bool) {
    let mut all = vec![("HL_LOG", "hl=info")];
    all.extend_from_slice(env);
    let (code, v, stats, stderr) = lab.plan_stats(&all);
    let recalled = stats["plan_recalled"].as_bool().expect("plan_recalled");
    assert_eq!(recalled, stderr.contains(RECALLED), "{stats}");
    (code, v, recalled)
}

/// Nothing moved since the last plan: the same plan, recalled, whether it has changes or
/// not, in the JSON view and the human one.
#[test]
fn a_plan_where_nothing_moved_is_recalled_as_it_was() {
    let lab = Lab::adopted();
    let (code, first, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (0, false), "adopt keeps no plan");
    let (code, again, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (0, true));
    assert_eq!(again, first);

    lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_queued_messages 5000\n",
        "max_queued_messages 10000\n",
    );
    let made = lab.hl(&["plan"]);
    made.code(2);
    let (code, pending, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (2, true));
    assert_eq!(changes(&pending), expect([(MOSQUITTO, "update")]));
    let again = lab.hl(&["plan", "--stats"]);
    again.code(2);
    assert!(
        again
            .stderr
            .contains("plan recalled: nothing moved since the last one"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout, made.stdout);
}

/// Each thing a plan is made of, moved, makes the plan again: an edit, a file touched (same
/// content: same plan), a new recorded state, a Flux spec (the loader's view).
#[test]
fn anything_the_plan_is_made_of_moving_makes_it_again() {
    let lab = Lab::adopted();
    plan(&lab, &[]);
    let (_, noop, recalled) = plan(&lab, &[]);
    assert!(recalled);

    let conf = "services/mosquitto/mosquitto.conf";
    lab.edit(conf, |t| format!("{t}max_connections 200\n"));
    let (code, edited, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (2, false));
    assert_eq!(changes(&edited), expect([(MOSQUITTO, "update")]));

    // The same bytes written again: the file's metadata moved, the plan did not.
    lab.edit(conf, |t| format!("{t}\n"));
    lab.edit(conf, |t| {
        t.strip_suffix('\n').expect("added above").to_string()
    });
    let (code, rewritten, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (2, false));
    assert_eq!(rewritten, edited);

    // A new state: what was pending is recorded.
    plan(&lab, &[]);
    lab.adopt();
    let (code, adopted, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (0, false));
    assert_eq!(adopted["steps"], noop["steps"]);

    let owner = lab.flux_owner("cluster/kubernetes/apps");
    lab.replace(
        "cluster/kubernetes/apps/paperless/ks.yaml",
        "interval: 30m",
        "interval: 15m",
    );
    let (code, flux, recalled) = plan(&lab, &[]);
    assert_eq!((code, recalled), (2, false));
    assert!(
        changes(&flux).contains(&(owner.clone(), "update".to_string())),
        "{flux}"
    );
}

/// The environment guard holds for a recalled plan too.
#[test]
fn a_recalled_plan_still_refuses_the_wrong_environment() {
    let lab = Lab::adopted();
    plan(&lab, &[]);
    assert!(plan(&lab, &[]).2);
    let run = lab.hl_env(&["plan"], &[("HL_ENV", "prod")]);
    run.code(1);
    assert!(run.stderr.contains("`prod`"), "{}", run.stderr);
}

/// An image built since the last plan (an expensive node: its output is known once built)
/// changes the plan though no file moved: it no longer "will build".
#[test]
fn an_image_built_since_makes_the_plan_again() {
    let r = images::ImageLab::new(&[("blank", images::BLANK)]);
    let will_build = |r: &images::ImageLab| {
        let (code, out, err) = r.hl(&["plan", "--json"]);
        assert_eq!(code, 2, "{err}");
        let v: Value = serde_json::from_str(&out).expect("JSON");
        let step = v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["address"] == "image:blank")
            .cloned()
            .expect("the image's step");
        step["will_build"].as_bool().expect("a flag")
    };
    // Planned until a plan is kept (the recipe was just written: racy at first).
    for _ in 0..3 {
        assert!(will_build(&r));
    }
    let (code, _, err) = r.hl(&["build", "image:blank"]);
    assert_eq!(code, 0, "{err}");
    assert!(!will_build(&r), "built: its output is known");
}
