//! The harness of the end-to-end tests, after ripgrep's `tests/util.rs`: each test gets its own
//! copy of the sample homelab (the `inventory`, `hosts`, `services` and `cluster` folders of this
//! repo) in a fresh temp dir, and runs the real `hl` binary on it with `-C <copy>`, its own
//! `HL_CACHE_DIR` and no `HL_ENV`. Nothing is shared between tests, so they run in parallel.
//!
//! The expected plans are computed from the sample's files here (placements, VMs, Talos nodes,
//! Flux Kustomizations), independently of hl's loader, so a test says what a user expects
//! rather than what hl happens to do.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

/// The folders of the sample homelab a test copies.
pub const SAMPLE: [&str; 4] = ["inventory", "hosts", "services", "cluster"];

/// A Flux Kustomization `flux-system/extra` over paperless's app folder, for tests that add
/// one (or break the file that holds it).
pub const EXTRA_FLUX_KUSTOMIZATION: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: extra
  namespace: flux-system
spec:
  path: ./cluster/kubernetes/apps/paperless/app
  sourceRef:
    kind: GitRepository
    name: flux-system
";

/// A temp copy of the sample homelab, with its own cache folder.
pub struct Lab {
    tmp: TempDir,
    root: PathBuf,
    cache: PathBuf,
}

/// What one run of `hl` did.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics, showing both streams, unless the exit code is `code`.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code {} (want {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Lab {
    /// A fresh copy: nothing recorded, no `.hl/`, an empty cache.
    pub fn fresh() -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix("hl-e2e-")
            .tempdir_in(temp_base())
            .expect("temp dir");
        let root = tmp.path().join("lab");
        let cache = tmp.path().join("cache");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in SAMPLE {
            copy_tree(&src.join(dir), &root.join(dir));
        }
        // Written after every copy: once the file systems' clock is past it, no copy is racy.
        let marker = tmp.path().join("copied");
        fs::write(&marker, "").expect("marker");
        hl_engine::time::settle(&marker);
        Lab { tmp, root, cache }
    }

    /// A fresh copy after `hl state adopt`: the homelab runs as the repo describes.
    pub fn adopted() -> Lab {
        let lab = Lab::fresh();
        lab.adopt();
        lab
    }

    /// The repo root of the copy.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache folder (`HL_CACHE_DIR`).
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// A repo-relative path of the copy.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `hl` with the test's environment: `-C <copy>`, its cache, no `HL_ENV`, no colours.
    pub fn command(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("hl").expect("the hl binary is built");
        cmd.arg("-C")
            .arg(&self.root)
            .current_dir(self.tmp.path())
            .env("HL_CACHE_DIR", &self.cache)
            .env("NO_COLOR", "1")
            .env_remove("HL_ENV")
            .env_remove("HL_LOG");
        cmd
    }

    /// Runs `hl ARGS...`.
    pub fn hl(&self, args: &[&str]) -> Run {
        self.hl_env(args, &[])
    }

    /// Runs `hl ARGS...` with extra environment variables.
    pub fn hl_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("hl runs");
        Run {
            code: out.status.code().expect("hl exits, not killed by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// `hl plan --json ARGS...`: the exit code and the plan.
    pub fn plan_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        let run = self.hl(&all);
        assert!(
            run.code == 0 || run.code == 2,
            "hl plan failed\n--- stderr\n{}",
            run.stderr
        );
        (run.code, run.json())
    }

    /// `hl plan --json --stats` with extra environment variables, which must plan (exit 0 or
    /// 2): the exit code, the plan without its stats, the stats, and standard error.
    pub fn plan_stats(&self, env: &[(&str, &str)]) -> (i32, Value, Value, String) {
        let run = self.hl_env(&["plan", "--json", "--stats"], env);
        assert!(run.code == 0 || run.code == 2, "{}", run.stderr);
        let mut v = run.json();
        let stats = v
            .as_object_mut()
            .expect("a plan")
            .remove("stats")
            .expect("stats");
        (run.code, v, stats, run.stderr)
    }

    /// `hl state adopt`, which must succeed.
    pub fn adopt(&self) {
        let run = self.hl(&["state", "adopt"]);
        run.code(0);
        assert!(
            run.stdout.contains("Nothing else was changed."),
            "{}",
            run.stdout
        );
    }

    /// The text of a repo file.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Writes a repo file (creating its folder).
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("a file has a folder")).expect("create folder");
        fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {rel}: {e}"));
        // As an edit made before a plan, not within the tick the plan starts in (which would
        // make it racy: trusted by no cache).
        hl_engine::time::settle(&p);
    }

    /// Rewrites a repo file with `f`; panics if `f` changes nothing (an edit that silently
    /// missed would make a test pass for the wrong reason).
    #[track_caller]
    pub fn edit(&self, rel: &str, f: impl FnOnce(&str) -> String) {
        let old = self.read(rel);
        let new = f(&old);
        assert_ne!(old, new, "the edit of {rel} changed nothing");
        self.write(rel, &new);
    }

    /// Replaces the one occurrence of `from` in a repo file by `to`.
    #[track_caller]
    pub fn replace(&self, rel: &str, from: &str, to: &str) {
        self.edit(rel, |text| {
            assert_eq!(
                text.matches(from).count(),
                1,
                "`{from}` must occur exactly once in {rel}"
            );
            text.replacen(from, to, 1)
        });
    }

    /// Everything hl may have written: `.hl/` in the repo and the cache folder, path -> bytes
    /// (`None` for a folder). Empty when hl wrote nothing.
    pub fn written(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        for dir in [self.root.join(".hl"), self.cache.clone()] {
            snapshot_tree(self.tmp.path(), &dir, &mut out);
        }
        out
    }

    /// Replaces the temp paths of this lab in `text` by `[LAB]`, for snapshots.
    pub fn mask(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[LAB]/lab")
            .replace(&self.tmp.path().display().to_string(), "[LAB]")
    }

    /// A repo YAML file (first document) as JSON.
    pub fn yaml(&self, rel: &str) -> Value {
        serde_yaml_ng::from_str(&self.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    // ---- the sample homelab, read independently of hl ---------------------------------------

    /// The inventory's hosts and their tags.
    pub fn hosts(&self) -> BTreeMap<String, BTreeSet<String>> {
        let topo = self.yaml("inventory/topology.yaml");
        topo["nodes"]
            .as_object()
            .expect("topology.yaml has nodes")
            .iter()
            .map(|(name, n)| {
                let tags = n["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str);
                (name.clone(), tags.map(str::to_string).collect())
            })
            .collect()
    }

    /// `compose:<svc>@<HOST>` for every service listed in `hosts/<HOST>/services.yaml`.
    pub fn placements(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for host in self.host_dirs() {
            let rel = format!("hosts/{host}/services.yaml");
            if !self.path(&rel).is_file() {
                continue;
            }
            for entry in self.yaml(&rel)["services"].as_array().into_iter().flatten() {
                let svc = entry
                    .as_str()
                    .or_else(|| entry["name"].as_str())
                    .expect("a service name");
                out.insert(format!("compose:{svc}@{host}"));
            }
        }
        out
    }

    /// The compose nodes placed on `host`.
    pub fn placements_on(&self, host: &str) -> BTreeSet<String> {
        let suffix = format!("@{host}");
        self.placements()
            .into_iter()
            .filter(|a| a.ends_with(&suffix))
            .collect()
    }

    /// `vm:<HOST>` for every `hosts/<HOST>/machine.yaml`.
    pub fn vms(&self) -> BTreeSet<String> {
        self.host_dirs()
            .into_iter()
            .filter(|h| self.path(&format!("hosts/{h}/machine.yaml")).is_file())
            .map(|h| format!("vm:{h}"))
            .collect()
    }

    /// The VMs with a disk built from `image`.
    pub fn vms_using(&self, image: &str) -> BTreeSet<String> {
        self.vms()
            .into_iter()
            .filter(|vm| {
                let host = vm.trim_start_matches("vm:");
                let machine = self.yaml(&format!("hosts/{host}/machine.yaml"));
                machine["disks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["image"] == image)
            })
            .collect()
    }

    /// `image:<name>` for every recipe in `inventory/images/`.
    pub fn images(&self) -> BTreeSet<String> {
        list(&self.path("inventory/images"))
            .into_iter()
            .filter(|n| self.path(&format!("inventory/images/{n}")).is_file())
            .filter_map(|n| {
                n.strip_suffix(".yaml")
                    .or_else(|| n.strip_suffix(".yml"))
                    .map(str::to_string)
            })
            .map(|n| format!("image:{n}"))
            .collect()
    }

    /// The nodes of `cluster/talos/talconfig.yaml`.
    pub fn talos(&self) -> Vec<TalosNode> {
        let tc = self.yaml("cluster/talos/talconfig.yaml");
        let refs = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|p| p.strip_prefix('@'))
                .map(|p| format!("cluster/talos/{}", p.trim_start_matches("./")))
                .collect()
        };
        let global = refs(&tc["patches"]);
        tc["nodes"]
            .as_array()
            .expect("talconfig.yaml has nodes")
            .iter()
            .map(|n| {
                let control_plane = n["controlPlane"] == true;
                let role = if control_plane {
                    &tc["controlPlane"]["patches"]
                } else {
                    &tc["worker"]["patches"]
                };
                let mut patches = global.clone();
                patches.extend(refs(role));
                patches.extend(refs(&n["patches"]));
                TalosNode {
                    hostname: n["hostname"].as_str().expect("a hostname").to_string(),
                    control_plane,
                    patches,
                }
            })
            .collect()
    }

    /// `talos:<hostname>` for every Talos node.
    pub fn talos_addresses(&self) -> BTreeSet<String> {
        self.talos()
            .iter()
            .map(|n| format!("talos:{}", n.hostname))
            .collect()
    }

    /// The Talos nodes whose machine config uses the patch file `rel` (global, role or own).
    pub fn talos_using(&self, rel: &str) -> BTreeSet<String> {
        self.talos()
            .iter()
            .filter(|n| n.patches.iter().any(|p| p == rel))
            .map(|n| format!("talos:{}", n.hostname))
            .collect()
    }

    /// Every Flux `Kustomization` under `cluster/kubernetes`: its `k8s:<namespace>/<name>`
    /// address and its `spec.path` (repo-relative, without `./`).
    pub fn flux_kustomizations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut files = Vec::new();
        walk(&self.path("cluster/kubernetes"), &mut files);
        for file in files {
            let name = file.to_string_lossy();
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            let text = fs::read_to_string(&file).expect("read manifest");
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let Ok(doc) = Value::deserialize(doc) else {
                    continue;
                };
                let flux = doc["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("kustomize.toolkit.fluxcd.io/"));
                if !flux || doc["kind"] != "Kustomization" {
                    continue;
                }
                let ns = doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("flux-system");
                let name = doc["metadata"]["name"]
                    .as_str()
                    .expect("a Kustomization has a name");
                let path = doc["spec"]["path"]
                    .as_str()
                    .expect("a Flux Kustomization has spec.path");
                out.insert(
                    format!("k8s:{ns}/{name}"),
                    path.trim_start_matches("./")
                        .trim_end_matches('/')
                        .to_string(),
                );
            }
        }
        out
    }

    /// The address of the Flux Kustomization whose `spec.path` is `dir`.
    pub fn flux_owner(&self, dir: &str) -> String {
        let owners: Vec<String> = self
            .flux_kustomizations()
            .into_iter()
            .filter(|(_, p)| p == dir)
            .map(|(a, _)| a)
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "exactly one Flux Kustomization has spec.path ./{dir}: {owners:?}"
        );
        owners.into_iter().next().expect("one owner")
    }

    fn host_dirs(&self) -> Vec<String> {
        list(&self.path("hosts"))
            .into_iter()
            .filter(|h| self.path(&format!("hosts/{h}")).is_dir())
            .collect()
    }
}

/// One node of `talconfig.yaml`, with every patch file its config is made of, in order.
#[derive(Debug, Clone)]
pub struct TalosNode {
    /// `hostname`.
    pub hostname: String,
    /// `controlPlane`.
    pub control_plane: bool,
    /// Repo paths of the global, role and own patch files.
    pub patches: Vec<String>,
}

/// The visible steps of a JSON plan, as (address, action), without the L0 `check` steps.
pub fn steps(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .expect("a plan has steps")
        .iter()
        .filter(|s| s["action"] != "check")
        .map(|s| (text(&s["address"]), text(&s["action"])))
        .collect()
}

/// The same steps as a set, for exact comparison.
pub fn changes(plan: &Value) -> BTreeSet<(String, String)> {
    steps(plan).into_iter().collect()
}

/// The expected set of steps: each address with its action.
pub fn expect<A: Into<String>>(
    items: impl IntoIterator<Item = (A, &'static str)>,
) -> BTreeSet<(String, String)> {
    items
        .into_iter()
        .map(|(a, act)| (a.into(), act.to_string()))
        .collect()
}

/// The same action for every address.
pub fn all<A: Into<String>>(
    addrs: impl IntoIterator<Item = A>,
    action: &'static str,
) -> BTreeSet<(String, String)> {
    addrs
        .into_iter()
        .map(|a| (a.into(), action.to_string()))
        .collect()
}

/// The L0 checks of a plan: address -> the changes that need it.
pub fn checks(plan: &Value) -> BTreeMap<String, Vec<String>> {
    plan["steps"]
        .as_array()
        .expect("a plan has steps")
        .iter()
        .filter(|s| s["action"] == "check")
        .map(|s| {
            let needed: Vec<String> = s["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "needed_by")
                .flat_map(|c| c["addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| text(&a))
                .collect();
            (text(&s["address"]), needed)
        })
        .collect()
}

/// The step of one node.
#[track_caller]
pub fn step<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["steps"]
        .as_array()
        .expect("a plan has steps")
        .iter()
        .find(|s| s["address"] == address)
        .unwrap_or_else(|| panic!("no step for {address} in\n{plan:#}"))
}

/// The causes of a step, one short line each (digests left out; tests that care read them).
pub fn causes(step: &Value) -> Vec<String> {
    step["causes"]
        .as_array()
        .expect("a step has causes")
        .iter()
        .map(|c| match c["type"].as_str().expect("a tagged cause") {
            "file" => format!("file {} {}", text(&c["path"]), text(&c["change"])),
            "param" => format!("param {}: {} -> {}", text(&c["key"]), c["old"], c["new"]),
            "dependency" => format!("dependency {}", text(&c["address"])),
            "placement" => format!("placement {} {}", text(&c["address"]), text(&c["action"])),
            "forces_replacement" => format!("forces_replacement {}", text(&c["what"])),
            "rule_version" => format!("rule_version {} -> {}", c["old"], c["new"]),
            "needed_by" => format!("needed_by {}", c["addresses"]),
            other => other.to_string(),
        })
        .collect()
}

/// The `stats` object of `hl plan --json --stats`.
pub fn stat(plan: &Value, key: &str) -> u64 {
    plan["stats"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no stats.{key} in {}", plan["stats"]))
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// 1-based line and column of the first occurrence of `needle` in `text`.
pub fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not found"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, col)
}

/// Where the labs live: `HL_E2E_TMPDIR` if set, else `/dev/shm` when there is one, else the
/// system temp dir. hl fsyncs every state and cache write (as it should); on a tmpfs that costs
/// nothing, on a busy disk it is most of the suite's time.
fn temp_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("HL_E2E_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create folder");
    for entry in
        fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()))
    {
        let entry = entry.expect("list entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).expect("read link");
            std::os::unix::fs::symlink(target, &dst).expect("copy symlink");
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("cannot copy {}: {e}", src.display()));
        }
    }
}

fn snapshot_tree(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    let rel = dir
        .strip_prefix(base)
        .expect("inside the lab")
        .to_path_buf();
    if !meta.is_dir() {
        out.insert(rel, Some(fs::read(dir).expect("read written file")));
        return;
    }
    out.insert(rel, None);
    for entry in fs::read_dir(dir).expect("list written folder") {
        snapshot_tree(base, &entry.expect("entry").path(), out);
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| !n.starts_with('.'));
    names.sort();
    names
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
