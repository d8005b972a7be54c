//! Saved plans: `hl plan -o FILE` then `hl apply FILE` applies exactly the saved steps and
//! refuses, by name, only those whose inputs or recorded state moved since. Images build
//! locally (qemu-img), so these run without any host.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lab");
        let cache = tmp.path().join("cache");
        fs::create_dir_all(root.join("inventory/images")).unwrap();
        fs::write(root.join("hl.yaml"), "environment: test\n").unwrap();
        for name in ["a", "b"] {
            fs::write(
                root.join(format!("inventory/images/{name}.yaml")),
                "builder: qemu-img\nformat: qcow2\nsize_gb: 1\n",
            )
            .unwrap();
        }
        Repo {
            _tmp: tmp,
            root,
            cache,
        }
    }

    fn hl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::cargo_bin("hl")
            .unwrap()
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .env("HL_CACHE_DIR", &self.cache)
            .env_remove("HL_ENV")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn save(&self, extra: &[&str]) -> PathBuf {
        let file = self.root.join("../plan.json");
        let mut args = vec!["plan", "-o", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, err) = self.hl(&args);
        assert_eq!(code, 2, "{err}");
        file
    }

    fn state(&self) -> Value {
        serde_json::from_slice(
            &fs::read(self.root.join(".hl/state.json"))
                .unwrap_or_else(|_| b"{\"nodes\":{}}".to_vec()),
        )
        .unwrap()
    }

    fn recorded(&self) -> Vec<String> {
        self.state()["nodes"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn an_unrelated_apply_in_between_leaves_the_saved_plan_valid() {
    let r = Repo::new();
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
    let r = Repo::new();
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
    let r = Repo::new();
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
    let r = Repo::new();
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
