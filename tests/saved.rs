//! Saved plans: `hl plan -o FILE` then `hl apply FILE` applies exactly the saved steps and
//! refuses, by name, only those whose inputs or recorded state moved since. Images build
//! locally (qemu-img), so these run without any host.

#[path = "common/images.rs"]
mod images;

use std::fs;
use std::path::Path;

use images::{ImageLab as Repo, BLANK};

fn lab() -> Repo {
    Repo::new(&[("a", BLANK), ("b", BLANK)])
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn an_unrelated_apply_in_between_leaves_the_saved_plan_valid() {
    let r = lab();
    let file = r.save(&["--target", "image:a"]);
    let (code, _, err) = r.hl(&["apply", "--target", "image:b", "--yes"]);
    assert_eq!(code, 0, "{err}");
    // The state moved (image:b was applied), but not under image:a: the saved plan holds.
    let (code, out, err) = r.hl(&["apply", file.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("refused image"), "{err}");
    assert!(out.contains("1 applied"), "{out}");
    assert_eq!(r.recorded(), vec!["image:a", "image:b"]);
}

#[test]
fn a_step_whose_input_moved_is_refused_by_name_and_the_others_apply() {
    let r = lab();
    let file = r.save(&[]);
    edit(
        &r.root.join("inventory/images/a.yaml"),
        "size_gb: 1",
        "size_gb: 2",
    );
    let (code, out, err) = r.hl(&["apply", file.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused image:a: its inputs moved since the plan was saved"),
        "{err}"
    );
    assert!(out.contains("1 applied"), "{out}");
    assert_eq!(r.recorded(), vec!["image:b"]);
}

#[test]
fn a_step_whose_state_moved_is_refused() {
    let r = lab();
    let file = r.save(&[]);
    assert_eq!(r.hl(&["apply", "--target", "image:a", "--yes"]).0, 0);
    let before = r.state()["nodes"]["image:a"].clone();
    let (code, _, err) = r.hl(&["apply", file.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused image:a: its recorded state moved"),
        "{err}"
    );
    assert_eq!(
        r.state()["nodes"]["image:a"],
        before,
        "the refused step changed nothing"
    );
}

#[test]
fn all_or_nothing_refuses_the_whole_plan() {
    let r = lab();
    let file = r.save(&[]);
    edit(
        &r.root.join("inventory/images/a.yaml"),
        "size_gb: 1",
        "size_gb: 2",
    );
    let (code, _, err) = r.hl(&["apply", file.to_str().unwrap(), "--yes", "--all-or-nothing"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--all-or-nothing refuses the whole plan"),
        "{err}"
    );
    assert!(r.recorded().is_empty(), "nothing was applied");
}
