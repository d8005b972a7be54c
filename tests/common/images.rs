//! A homelab of image recipes only, in a temp dir: images build locally (qemu-img or a
//! command), so tests of the cache and of saved plans need no host. Include it with
//! `#[path = "common/images.rs"] mod images;`.

#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

/// A blank 1 GiB qcow2 disk: built by qemu-img, reproducibly.
pub const BLANK: &str = "builder: qemu-img\nformat: qcow2\nsize_gb: 1\n";

/// The repo and its cache.
pub struct ImageLab {
    _tmp: tempfile::TempDir,
    /// The repo root.
    pub root: PathBuf,
    /// `HL_CACHE_DIR`.
    pub cache: PathBuf,
}

impl ImageLab {
    /// A repo with these recipes (`name`, text) under inventory/images/.
    pub fn new(recipes: &[(&str, &str)]) -> ImageLab {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lab");
        let cache = tmp.path().join("cache");
        fs::create_dir_all(root.join("inventory/images")).unwrap();
        fs::write(root.join("hl.yaml"), "environment: test\n").unwrap();
        for (name, text) in recipes {
            fs::write(root.join(format!("inventory/images/{name}.yaml")), text).unwrap();
        }
        ImageLab {
            _tmp: tmp,
            root,
            cache,
        }
    }

    /// Runs `hl -C <repo> ARGS...`: exit code, stdout, stderr.
    pub fn hl(&self, args: &[&str]) -> (i32, String, String) {
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

    /// `hl plan -o FILE EXTRA...` (which must plan changes); returns FILE.
    pub fn save(&self, extra: &[&str]) -> PathBuf {
        let file = self.root.join("../plan.json");
        let mut args = vec!["plan", "-o", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, err) = self.hl(&args);
        assert_eq!(code, 2, "{err}");
        file
    }

    /// The state file (empty when absent).
    pub fn state(&self) -> Value {
        serde_json::from_slice(
            &fs::read(self.root.join(".hl/state.json"))
                .unwrap_or_else(|_| b"{\"nodes\":{}}".to_vec()),
        )
        .unwrap()
    }

    /// The recorded addresses.
    pub fn recorded(&self) -> Vec<String> {
        self.state()["nodes"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}
