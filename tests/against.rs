//! `hl plan --against BASE [--head REV]` on a real git repo made from the sample homelab: each
//! test commits the sample, makes the change a pull request would, commits it, and plans one
//! revision against the other, as CI does. git runs for real, with an empty global config and
//! fixed identities and dates, so commit ids are the same on every run.
//!
//! Each scenario asserts the exact plan (every step, its causes, and how its digests moved), the
//! `revisions` of `--json`, and a snapshot of the `--markdown` comment with commit ids and temp
//! paths masked.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use common::*;
use serde_json::{json, Value};

// ---- the harness: a git repo of the sample homelab --------------------------------------------

/// The environment of every git and hl run: no user or system git config, a fixed identity
/// and fixed dates (so commit ids are reproducible), no pager, no prompts.
const GIT_ENV: [(&str, &str); 10] = [
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_AUTHOR_NAME", "hl tests"),
    ("GIT_AUTHOR_EMAIL", "tests@hl.invalid"),
    ("GIT_COMMITTER_NAME", "hl tests"),
    ("GIT_COMMITTER_EMAIL", "tests@hl.invalid"),
    ("GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
];

/// A copy of the sample homelab that is a git repo (branch `main`, one commit tagged `base`).
struct Repo {
    lab: Lab,
    /// Commits by name, for masking them in snapshots.
    names: Vec<(String, String)>,
}

impl Repo {
    fn new() -> Repo {
        let mut repo = Repo {
            lab: Lab::fresh(),
            names: Vec::new(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.commit("base");
        repo.git(&["tag", "base"]);
        repo
    }

    fn root(&self) -> &Path {
        self.lab.root()
    }

    /// Runs git in the repo; panics unless it succeeds. Returns stdout, trimmed.
    #[track_caller]
    fn git(&self, args: &[&str]) -> String {
        git_in(self.root(), args)
    }

    /// Commits everything (`git add -A`) as `name`; returns the commit id.
    #[track_caller]
    fn commit(&mut self, name: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", name]);
        let sha = self.sha("HEAD");
        self.names.push((name.to_string(), sha.clone()));
        sha
    }

    fn sha(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev])
    }

    /// Runs `hl ARGS...` in the repo, with git isolated as above.
    fn hl(&self, args: &[&str]) -> Run {
        self.lab.hl_env(args, &GIT_ENV)
    }

    /// `hl plan --json ARGS...` (exit 0 or 2): the exit code and the plan.
    fn plan_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        let run = self.hl(&all);
        assert!(
            run.code == 0 || run.code == 2,
            "hl plan failed ({})\n--- stderr\n{}",
            run.code,
            run.stderr
        );
        (run.code, run.json())
    }

    /// `hl plan --markdown ARGS...`, masked for a snapshot.
    #[track_caller]
    fn markdown(&self, args: &[&str], code: i32) -> String {
        let mut all = vec!["plan", "--markdown"];
        all.extend_from_slice(args);
        let run = self.hl(&all);
        run.code(code);
        self.mask(&run.stdout)
    }

    /// Commit ids (whole, 12 and 7 characters) replaced by `<name>`, temp paths by `[LAB]`.
    fn mask(&self, text: &str) -> String {
        let mut out = self.lab.mask(text);
        for (name, sha) in &self.names {
            for n in [40, 12, 7] {
                out = out.replace(&sha[..n], &format!("<{name}>"));
            }
        }
        out
    }
}

#[track_caller]
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(GIT_ENV)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {} failed\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("git speaks UTF-8 here")
        .trim()
        .to_string()
}

/// `hl` run in another folder than a [`Lab`]'s (a clone), with its own cache.
fn hl_in(root: &Path, cache: &Path, args: &[&str]) -> Run {
    let out = assert_cmd::Command::cargo_bin("hl")
        .expect("the hl binary is built")
        .arg("-C")
        .arg(root)
        .args(args)
        .env("HL_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .env_remove("HL_ENV")
        .env_remove("HL_LOG")
        .envs(GIT_ENV)
        .output()
        .expect("hl runs");
    Run {
        code: out.status.code().expect("hl exits"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    }
}

// ---- reading a plan ------------------------------------------------------------------------

/// How a digest moved between the base (`prior_*`) and the head: `=` same, `≠` changed, `+`
/// only now, `-` only before.
fn moved(step: &Value, now: &str, before: &str) -> &'static str {
    let hex = |v: &Value| {
        v.as_str().map(|s| {
            assert!(
                s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
                "a digest: {s}"
            );
            s.to_string()
        })
    };
    match (hex(&step[now]), hex(&step[before])) {
        (Some(a), Some(b)) if a == b => "=",
        (Some(_), Some(_)) => "≠",
        (Some(_), None) => "+",
        (None, Some(_)) => "-",
        (None, None) => "",
    }
}

/// Every visible step, one line each: layer, action, address, flags, how its input and output
/// digests moved, and its causes. A file cause's digests are checked against its change kind.
fn outline(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .expect("a plan has steps")
        .iter()
        .map(|s| {
            for c in s["causes"].as_array().expect("causes") {
                if c["type"] == "file" {
                    let (old, new) = (&c["old"], &c["new"]);
                    match c["change"].as_str() {
                        Some("modified") => {
                            assert!(old.is_string() && new.is_string() && old != new, "{c}")
                        }
                        Some("added") => assert!(old.is_null() && new.is_string(), "{c}"),
                        Some("removed") => assert!(old.is_string() && new.is_null(), "{c}"),
                        other => panic!("file change {other:?}"),
                    }
                }
            }
            let mut flags = String::new();
            if s["destructive"] == true {
                flags.push_str(" destructive");
            }
            if s["will_build"] == true {
                flags.push_str(" will_build");
            }
            format!(
                "{} {} {}{flags} in{} out{} | {}",
                s["layer"].as_str().expect("layer"),
                s["action"].as_str().expect("action"),
                s["address"].as_str().expect("address"),
                moved(s, "input", "prior_input"),
                moved(s, "output", "prior_output"),
                causes(s).join("; ")
            )
        })
        .collect()
}

/// The `revisions` object `--json` adds.
fn revisions(base: &str, base_commit: &str, head: Option<(&str, &str)>, dirty: bool) -> Value {
    json!({
        "base": base,
        "base_commit": base_commit,
        "head": head.map_or("work tree", |h| h.0),
        "head_commit": head.map(|h| h.1),
        "dirty": dirty,
    })
}

/// Everything in a plan but its steps.
#[track_caller]
fn assert_frame(repo: &Repo, plan: &Value, revs: Value, summary: [u64; 5]) {
    let [create, update, replace, delete, check] = summary;
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["root"], repo.root().display().to_string());
    assert_eq!(plan["environment"], "home");
    assert_eq!(
        plan["has_changes"],
        create + update + replace + delete > 0,
        "has_changes"
    );
    assert_eq!(
        plan["summary"],
        json!({ "create": create, "update": update, "replace": replace, "delete": delete, "check": check })
    );
    assert_eq!(plan["notes"], json!([]));
    assert_eq!(plan["revisions"], revs);
}

/// Every file of the work tree (`.git` aside) with its bytes and modification time.
fn tree_snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, SystemTime)>) {
        for e in fs::read_dir(dir).expect("list") {
            let p = e.expect("entry").path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            let meta = fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).expect("inside").to_path_buf();
                let bytes = fs::read(&p).unwrap_or_default();
                out.insert(rel, (bytes, meta.modified().expect("mtime")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What git says about the repo: HEAD, every ref, the stash, the status (ignored files too).
fn git_snapshot(repo: &Repo) -> Vec<String> {
    [
        vec!["rev-parse", "HEAD"],
        vec!["symbolic-ref", "HEAD"],
        vec!["for-each-ref"],
        vec!["stash", "list"],
        vec![
            "status",
            "--porcelain=v1",
            "--untracked-files=all",
            "--ignored",
        ],
        vec!["worktree", "list", "--porcelain"],
    ]
    .iter()
    .map(|args| repo.git(args))
    .collect()
}

// ---- scenarios ---------------------------------------------------------------------------------

/// One compose file edited: that service is updated, with its runway checks, the changed line
/// shown; the work tree (clean, at the edit) is HEAD.
#[test]
fn compose_file_edited() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/docker-compose.yml",
        "      retries: 3\n",
        "      retries: 5\n",
    );
    repo.commit("edit");
    let base = repo.sha("HEAD~1");

    let (code, plan) = repo.plan_json(&["--against", "HEAD~1"]);
    assert_eq!(code, 2, "changes exit 2");
    assert_frame(
        &repo,
        &plan,
        revisions("HEAD~1", &base, None, false),
        [0, 1, 0, 0, 2],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:ssh@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            r#"L0 check check:tool/docker@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            "L4 update compose:mosquitto@CHELSTY-INFRA in≠ out≠ | file services/mosquitto/docker-compose.yml modified",
        ]
    );
    assert!(
        repo.lab
            .placements()
            .iter()
            .filter(|a| a.starts_with("compose:mosquitto@"))
            .eq(["compose:mosquitto@CHELSTY-INFRA"].iter()),
        "the sample places mosquitto on CHELSTY-INFRA only"
    );
    insta::assert_snapshot!(
        "compose_file_edited",
        repo.markdown(&["--against", "HEAD~1"], 2)
    );
}

/// A comment-only edit of a compose file: the input moved, the rendered release did not, so
/// the node is a no-op with cause `output_identical`, and the plan exits 0.
#[test]
fn comment_only_edit_is_a_no_op() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/docker-compose.yml",
        "# Mosquitto MQTT broker for the chelsty site",
        "# The Mosquitto MQTT broker of the chelsty site",
    );
    repo.commit("comment");
    let base = repo.sha("HEAD~1");

    let (code, plan) = repo.plan_json(&["--against", "HEAD~1"]);
    assert_eq!(code, 0, "no changes exit 0");
    assert_frame(
        &repo,
        &plan,
        revisions("HEAD~1", &base, None, false),
        [0, 0, 0, 0, 0],
    );
    assert_eq!(
        outline(&plan),
        ["L4 no_op compose:mosquitto@CHELSTY-INFRA in≠ out= | file services/mosquitto/docker-compose.yml modified; output_identical"]
    );
    insta::assert_snapshot!(
        "comment_only_edit",
        repo.markdown(&["--against", "HEAD~1"], 0)
    );
}

/// An image recipe edited: the image is rebuilt, every VM booting from it is replaced
/// (destructive), and everything placed on those VMs is applied again.
#[test]
fn image_recipe_edited() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "inventory/images/debian-12.yaml",
        "size_gb: 32 ",
        "size_gb: 40 ",
    );
    repo.commit("image");
    let base = repo.sha("HEAD~1");

    let (code, plan) = repo.plan_json(&["--against", "HEAD~1"]);
    assert_eq!(code, 2);
    assert_frame(
        &repo,
        &plan,
        revisions("HEAD~1", &base, None, false),
        [0, 3, 1, 0, 5],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:env/PROXMOX_API_TOKEN in+ out+ | needed_by ["vm:CHELSTY-HA"]"#,
            r#"L0 check check:ssh@CHELSTY-HA in+ out+ | needed_by ["compose:homeassistant@CHELSTY-HA","compose:stability-agent@CHELSTY-HA"]"#,
            r#"L0 check check:ssh@CHELSTY-INFRA in+ out+ | needed_by ["vm:CHELSTY-HA"]"#,
            r#"L0 check check:tool/docker@CHELSTY-HA in+ out+ | needed_by ["compose:homeassistant@CHELSTY-HA","compose:stability-agent@CHELSTY-HA"]"#,
            r#"L0 check check:tool/qemu-img in+ out+ | needed_by ["image:debian-12"]"#,
            "L1 update image:debian-12 will_build in≠ out≠ | param size_gb: 32 -> 40",
            "L2 replace vm:CHELSTY-HA destructive in≠ out≠ | dependency image:debian-12; forces_replacement image:debian-12",
            // Their own inputs did not move: they are applied again because their host is new.
            "L4 update compose:homeassistant@CHELSTY-HA in= out= | placement vm:CHELSTY-HA replace",
            "L4 update compose:stability-agent@CHELSTY-HA in= out= | placement vm:CHELSTY-HA replace",
        ]
    );
    // The same sets, read from the sample independently of hl.
    let vms = repo.lab.vms_using("debian-12");
    assert_eq!(vms, BTreeSet::from(["vm:CHELSTY-HA".to_string()]));
    let placed: BTreeSet<String> = vms
        .iter()
        .flat_map(|vm| repo.lab.placements_on(vm.trim_start_matches("vm:")))
        .collect();
    let l4: BTreeSet<String> = steps(&plan)
        .into_iter()
        .filter(|(a, _)| a.starts_with("compose:"))
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        l4, placed,
        "everything placed on the replaced VMs, nothing else"
    );
    // The VM's dependency cause names the image's output digests on both sides.
    let image = step(&plan, "image:debian-12");
    let vm = step(&plan, "vm:CHELSTY-HA");
    assert_eq!(vm["causes"][0]["old"], image["prior_output"]);
    assert_eq!(vm["causes"][0]["new"], image["output"]);

    insta::assert_snapshot!(
        "image_recipe_edited",
        repo.markdown(&["--against", "HEAD~1"], 2)
    );
}

/// A service removed from a host's services.yaml: a destructive delete, with the runway checks
/// the deletion needs on that host.
#[test]
fn service_removed_from_a_host_is_a_destructive_delete() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "hosts/SATURN/services.yaml",
        "  - name: forgejo\n    exposure: tailnet            # reached publicly only through caddy on VPS\n",
        "",
    );
    repo.commit("remove forgejo");
    let base = repo.sha("HEAD~1");

    let (code, mut plan) = repo.plan_json(&["--against", "HEAD~1", "--stats"]);
    assert_eq!(code, 2);
    // What the compose loader found moved: it runs on the base side too (6 + 1).
    assert_eq!(stat(&plan, "loaders_run"), 7, "{}", plan["stats"]);
    plan.as_object_mut().expect("a plan").remove("stats");
    assert_frame(
        &repo,
        &plan,
        revisions("HEAD~1", &base, None, false),
        [0, 0, 0, 1, 2],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:ssh@SATURN in+ out+ | needed_by ["compose:forgejo@SATURN"]"#,
            r#"L0 check check:tool/docker@SATURN in+ out+ | needed_by ["compose:forgejo@SATURN"]"#,
            "L4 delete compose:forgejo@SATURN destructive in- out- | removed",
        ]
    );
    insta::assert_snapshot!(
        "service_removed",
        repo.markdown(&["--against", "HEAD~1"], 2)
    );
}

/// Renames with identical content. What is truly "no change" depends on what reads the file:
/// a file no node reads plans nothing at all, not even a no-op; a Talos patch renamed (and its
/// reference in talconfig.yaml) renders the same machine config: a no-op, output identical. A
/// bind-mounted file renamed (and the compose reference to it) is an update, rightly: the
/// release on the host mounts another path.
#[test]
fn renamed_files_with_identical_content() {
    let mut repo = Repo::new();
    repo.git(&[
        "mv",
        "services/mosquitto/README.md",
        "services/mosquitto/NOTES.md",
    ]);
    let readme = repo.commit("readme");
    repo.git(&["tag", "readme"]);

    repo.git(&[
        "mv",
        "cluster/talos/patches/kube-w-1.yaml",
        "cluster/talos/patches/worker-one.yaml",
    ]);
    repo.lab.replace(
        "cluster/talos/talconfig.yaml",
        "\"@./patches/kube-w-1.yaml\"",
        "\"@./patches/worker-one.yaml\"",
    );
    let talos = repo.commit("talos");
    repo.git(&["tag", "talos"]);

    repo.git(&[
        "mv",
        "services/mosquitto/mosquitto.conf",
        "services/mosquitto/broker.conf",
    ]);
    repo.lab.replace(
        "services/mosquitto/docker-compose.yml",
        "./mosquitto.conf:",
        "./broker.conf:",
    );
    let mount = repo.commit("mount");
    repo.git(&["tag", "mount"]);
    let base = repo.sha("base");

    // Nothing reads a README: no step at all, and nothing to hash (git says the only changed
    // paths are the two names, and no node has either as an input).
    let (code, plan) = repo.plan_json(&["--against", "base", "--head", "readme", "--stats"]);
    assert_eq!(code, 0);
    let revs = revisions("base", &base, Some(("readme", &readme)), false);
    let mut no_stats = plan.clone();
    no_stats.as_object_mut().expect("object").remove("stats");
    assert_frame(&repo, &no_stats, revs, [0, 0, 0, 0, 0]);
    assert_eq!(outline(&plan), Vec::<String>::new());
    assert_eq!(stat(&plan, "files_hashed"), 0);
    assert_eq!(stat(&plan, "nodes_realized"), 0);
    insta::assert_snapshot!(
        "renamed_readme",
        repo.markdown(&["--against", "base", "--head", "readme"], 0)
    );

    let (code, plan) = repo.plan_json(&["--against", "readme", "--head", "talos"]);
    assert_eq!(code, 0, "a renamed Talos patch changes no machine config");
    assert_frame(
        &repo,
        &plan,
        revisions("readme", &readme, Some(("talos", &talos)), false),
        [0, 0, 0, 0, 0],
    );
    assert_eq!(
        outline(&plan),
        [concat!(
            "L3 no_op talos:kube-w-1 in≠ out= | ",
            "param patches[5].file: \"cluster/talos/patches/kube-w-1.yaml\" -> \"cluster/talos/patches/worker-one.yaml\"; ",
            "file cluster/talos/patches/kube-w-1.yaml removed; ",
            "file cluster/talos/patches/worker-one.yaml added; ",
            "output_identical"
        )]
    );
    let causes = &step(&plan, "talos:kube-w-1")["causes"];
    assert_eq!(
        causes[1]["old"], causes[2]["new"],
        "the renamed patch has the same content digest under both names"
    );
    insta::assert_snapshot!(
        "renamed_talos_patch",
        repo.markdown(&["--against", "readme", "--head", "talos"], 0)
    );

    let (code, plan) = repo.plan_json(&["--against", "talos", "--head", "mount"]);
    assert_eq!(code, 2, "the release mounts another path on the host");
    assert_frame(
        &repo,
        &plan,
        revisions("talos", &talos, Some(("mount", &mount)), false),
        [0, 1, 0, 0, 2],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:ssh@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            r#"L0 check check:tool/docker@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            concat!(
                "L4 update compose:mosquitto@CHELSTY-INFRA in≠ out≠ | ",
                "file services/mosquitto/broker.conf added; ",
                "file services/mosquitto/docker-compose.yml modified; ",
                "file services/mosquitto/mosquitto.conf removed"
            ),
        ]
    );
    let causes = &step(&plan, "compose:mosquitto@CHELSTY-INFRA")["causes"];
    assert_eq!(causes[0]["new"], causes[2]["old"], "same content, new name");
    insta::assert_snapshot!(
        "renamed_bind_mount",
        repo.markdown(&["--against", "talos", "--head", "mount"], 2)
    );
}

/// A Kubernetes manifest renamed, with its kustomization.yaml `resources:` entry: kustomize
/// builds the same objects, so Flux applies nothing new. The bundle module says "neither an
/// edit kustomize would not see nor moving a document between files changes the output
/// digest", but the kustomization.yaml document itself (its `resources:` list of file names)
/// is part of the bundle, so the rename is planned as an update.
#[test]
fn renamed_kubernetes_manifest_is_output_identical() {
    let mut repo = Repo::new();
    repo.git(&[
        "mv",
        "cluster/kubernetes/apps/paperless/app/service.yaml",
        "cluster/kubernetes/apps/paperless/app/svc.yaml",
    ]);
    repo.lab.replace(
        "cluster/kubernetes/apps/paperless/app/kustomization.yaml",
        "./service.yaml",
        "./svc.yaml",
    );
    repo.commit("rename manifest");
    let (code, plan) = repo.plan_json(&["--against", "HEAD~1"]);
    assert_eq!(
        outline(&plan),
        [concat!(
            "L4 no_op k8s:flux-system/paperless in≠ out= | ",
            "file cluster/kubernetes/apps/paperless/app/kustomization.yaml modified; ",
            "file cluster/kubernetes/apps/paperless/app/service.yaml removed; ",
            "file cluster/kubernetes/apps/paperless/app/svc.yaml added; ",
            "output_identical"
        )]
    );
    assert_eq!(code, 0);
}

/// `main...HEAD` is the merge base: a branch is planned against where it forked, so what
/// landed on main since is not shown reversed (as `--against main` shows it).
#[test]
fn merge_base_with_three_dots() {
    let mut repo = Repo::new();
    repo.git(&["switch", "--quiet", "-c", "feature"]);
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.commit("feature");
    repo.git(&["switch", "--quiet", "main"]);
    repo.lab.edit("services/caddy/Caddyfile", |t| {
        format!("{t}# main moved on\n")
    });
    repo.commit("main");
    repo.git(&["switch", "--quiet", "feature"]);
    let fork = repo.sha("base");
    assert_eq!(repo.git(&["merge-base", "main", "HEAD"]), fork);

    let (code, plan) = repo.plan_json(&["--against", "main...HEAD"]);
    assert_eq!(code, 2);
    assert_frame(
        &repo,
        &plan,
        revisions("main...HEAD", &fork, None, false),
        [0, 1, 0, 0, 2],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:ssh@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            r#"L0 check check:tool/docker@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            "L4 update compose:mosquitto@CHELSTY-INFRA in≠ out≠ | file services/mosquitto/mosquitto.conf modified",
        ]
    );
    // `main...` (HEAD implied) is the same revision.
    let (_, implied) = repo.plan_json(&["--against", "main..."]);
    assert_eq!(implied["revisions"]["base_commit"], fork.as_str());
    assert_eq!(implied["steps"], plan["steps"]);

    // Against main itself, main's own edit shows up too, undone by this branch.
    let (_, tip) = repo.plan_json(&["--against", "main"]);
    assert_eq!(
        changes(&tip),
        expect([
            ("compose:caddy@VPS", "update"),
            ("compose:mosquitto@CHELSTY-INFRA", "update"),
        ])
    );
    insta::assert_snapshot!(
        "merge_base",
        repo.markdown(&["--against", "main...HEAD"], 2)
    );
}

/// `--head REV` plans one commit against another from git objects alone, whatever the work
/// tree holds (another commit checked out, uncommitted edits): those change nothing and are
/// left as they were.
#[test]
fn head_revision_while_the_work_tree_is_elsewhere() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    let one = repo.commit("one");
    repo.git(&["tag", "v1"]);
    repo.lab.replace(
        "inventory/images/debian-12.yaml",
        "size_gb: 32 ",
        "size_gb: 40 ",
    );
    repo.commit("two");
    // The work tree: at `two`, with an uncommitted edit and an untracked file.
    repo.lab.edit("services/caddy/Caddyfile", |t| {
        format!("{t}# not committed\n")
    });
    repo.lab.write("services/caddy/scratch.txt", "untracked\n");
    let before = (tree_snapshot(repo.root()), git_snapshot(&repo));

    let base = repo.sha("base");
    let (code, plan) = repo.plan_json(&["--against", "base", "--head", "v1"]);
    assert_eq!(code, 2);
    assert_frame(
        &repo,
        &plan,
        revisions("base", &base, Some(("v1", &one)), false),
        [0, 1, 0, 0, 2],
    );
    assert_eq!(
        outline(&plan),
        [
            r#"L0 check check:ssh@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            r#"L0 check check:tool/docker@CHELSTY-INFRA in+ out+ | needed_by ["compose:mosquitto@CHELSTY-INFRA"]"#,
            "L4 update compose:mosquitto@CHELSTY-INFRA in≠ out≠ | file services/mosquitto/mosquitto.conf modified",
        ]
    );
    insta::assert_snapshot!(
        "head_revision",
        repo.markdown(&["--against", "base", "--head", "v1"], 2)
    );
    let human = repo.hl(&["plan", "--against", "base", "--head", "v1"]);
    human.code(2);
    assert!(
        repo.mask(&human.stdout)
            .starts_with("Plan of v1 (<one>) against base (<base>):\n"),
        "{}",
        human.stdout
    );
    assert_eq!(
        (tree_snapshot(repo.root()), git_snapshot(&repo)),
        before,
        "the work tree and git's refs, stash and status are as they were"
    );
}

/// Nothing under `.hl/` is read or written, and neither the work tree nor git's state moves:
/// no checkout, no stash, no ref, no file touched, in any mode of `--against`.
#[test]
fn nothing_under_hl_is_written_and_the_work_tree_is_untouched() {
    // A repo never planned before: no `.hl/` appears.
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.commit("edit");
    let before = (tree_snapshot(repo.root()), git_snapshot(&repo));
    for args in [
        &["plan", "--against", "HEAD~1"][..],
        &["plan", "--against", "HEAD~1", "--json", "--stats"],
        &["plan", "--against", "HEAD~1", "--markdown"],
        &["plan", "--against", "base", "--head", "HEAD"],
        &["plan", "--against", "main...HEAD"],
    ] {
        repo.hl(args)
            .code(if args.contains(&"main...HEAD") { 0 } else { 2 });
    }
    assert!(!repo.root().join(".hl").exists(), "no .hl/ was created");
    assert_eq!((tree_snapshot(repo.root()), git_snapshot(&repo)), before);

    // A repo with a recorded state and a stat cache: both are left byte for byte, and the
    // recorded state is not what the plan is against (it would say "no changes": adopt ran
    // after the edit).
    let repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.lab.adopt();
    assert!(repo.root().join(".hl/state.json").is_file());
    let before = (tree_snapshot(repo.root()), git_snapshot(&repo));
    let (code, plan) = repo.plan_json(&["--against", "HEAD"]);
    assert_eq!(
        code, 2,
        "planned against HEAD's desired state, not .hl/state.json"
    );
    assert_eq!(
        changes(&plan),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
    assert_eq!((tree_snapshot(repo.root()), git_snapshot(&repo)), before);
}

/// Cost follows the diff. A one-file diff of the sample homelab (mosquitto.conf, an input of
/// one compose node), the work tree (clean) as HEAD, a cold cache:
/// - files statted 1: the work tree side stats only the changed file; every other input has
///   the same blob id on both sides and is known by it;
/// - files hashed 2: that file, once per side;
/// - blobs read 1: the base's version of that file; every other file the base side reads (its
///   loaders read the YAML they parse) is the head's bytes, since git says it is unchanged;
/// - nodes realized 2: `compose:mosquitto@CHELSTY-INFRA` on each side, since early cutoff needs
///   both outputs; every other node has the same input digest on both sides and is not
///   realized at all.
///
/// - loaders run 6: the head side's inventory and five kinds; the base side runs none, since
///   the diff (a bind-mounted config file) changes nothing any loader found: the base's nodes
///   are the head's.
///
/// Run again with the cache kept (as CI does with `~/.cache/hl`), the two outputs come from
/// the action cache: nothing is realized. (Files read is the loaders' business and left out.)
#[test]
fn stats_of_a_one_file_diff() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.commit("one file");
    assert_eq!(
        repo.git(&["diff", "--name-only", "HEAD~1", "HEAD"]),
        "services/mosquitto/mosquitto.conf"
    );
    let counts = |plan: &Value| {
        [
            "files_statted",
            "files_hashed",
            "blobs_read",
            "nodes_realized",
            "loaders_run",
        ]
        .map(|k| stat(plan, k))
    };
    let (code, cold) = repo.plan_json(&["--against", "HEAD~1", "--stats"]);
    assert_eq!(code, 2);
    assert_eq!(
        changes(&cold),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
    assert_eq!(
        counts(&cold),
        [1, 2, 1, 2, 6],
        "statted, hashed, blobs, realized, loaders"
    );

    let (_, warm) = repo.plan_json(&["--against", "HEAD~1", "--stats"]);
    assert_eq!(
        counts(&warm),
        [1, 2, 1, 0, 6],
        "statted, hashed, blobs, realized, loaders"
    );
    assert_eq!(warm["steps"], cold["steps"], "the cache changes no digest");

    // The human `--stats` line says the same on stderr.
    let run = repo.hl(&["plan", "--against", "HEAD~1", "--stats"]);
    run.code(2);
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("stats: "))
        .expect("a stats line");
    assert!(
        line.contains(" 1 files statted, 2 files hashed, ")
            && line.ends_with(" 1 git blobs read, 0 nodes realized, 6 loaders run"),
        "{line}"
    );
}

// ---- bad input -------------------------------------------------------------------------------

/// An unknown revision is refused before anything is read or written, with the closest branch.
#[test]
fn unknown_revision_suggests_the_closest_branch() {
    let repo = Repo::new();
    repo.git(&["branch", "feature-x"]);
    for args in [
        &["plan", "--against", "featur-x"][..],
        &["plan", "--against", "featur-x", "--json"],
        &["plan", "--against", "HEAD", "--head", "featur-x"],
    ] {
        let run = repo.hl(args);
        run.code(1);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr
                .contains("unknown revision `featur-x`\n  help: did you mean `feature-x`?\n"),
            "{args:?}\n{}",
            run.stderr
        );
    }
    let run = repo.hl(&["plan", "--against", "no-such-thing"]);
    run.code(1);
    assert!(
        run.stderr.contains("unknown revision `no-such-thing`"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("did you mean"),
        "nothing is close: {}",
        run.stderr
    );
    assert_eq!(repo.lab.written(), BTreeMap::new(), "nothing written");
}

/// A revision whose homelab does not load: the error says which side, by the revision's name
/// and commit, then the file:line:column; nothing is written. The same for the head side.
#[test]
fn a_revision_that_does_not_load_names_its_side_and_line() {
    let mut repo = Repo::new();
    let good = repo.lab.read("services/mosquitto/service.yaml");
    let bad = good.replace(
        "owner_node: CHELSTY-INFRA\n",
        "owner_node: CHELSTY-INFRA: oops\n",
    );
    // The parser stops at the second `:` of that line.
    let (line, col) = line_col(&bad, ": oops");
    assert_eq!((line, col), (2, 26));
    let want = |side: &str| {
        format!(
            "  × in {side}: malformed YAML in services/mosquitto/service.yaml:{line}:{col}: mapping values are not allowed in this context"
        )
    };
    repo.lab.write("services/mosquitto/service.yaml", &bad);
    let broken = repo.commit("broken");
    repo.lab.write("services/mosquitto/service.yaml", &good);
    repo.commit("fixed");

    let run = repo.hl(&["plan", "--against", "HEAD~1", "--markdown"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.lines().next(),
        Some(want(&format!("HEAD~1 ({})", &broken[..12])).as_str())
    );

    // The head side (the work tree) broken, the base fine.
    repo.lab.write("services/mosquitto/service.yaml", &bad);
    let run = repo.hl(&["plan", "--against", "HEAD", "--json"]);
    run.code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr.lines().next(),
        Some(want("the work tree").as_str())
    );
    assert_eq!(repo.lab.written(), BTreeMap::new(), "nothing written");
}

/// The error on a revision's malformed file says where, but then claims "the line is not
/// shown: it holds a secret" of a line that holds none: `Error::quotable` is false for every
/// `OnSide` error (its line cannot be read from disk), and src/diag.rs words every
/// non-quotable origin as a secret.
#[test]
fn a_revision_error_does_not_claim_a_secret() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/service.yaml",
        "owner_node: CHELSTY-INFRA\n",
        "owner_node: CHELSTY-INFRA: oops\n",
    );
    repo.commit("broken");
    let run = repo.hl(&["plan", "--against", "HEAD", "--head", "HEAD"]);
    run.code(1);
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

/// A dirty work tree is HEAD, uncommitted changes and untracked files included, and every
/// output says so: a note on stderr, a line in the comment, `revisions.dirty` in JSON.
#[test]
fn a_dirty_work_tree_is_planned_and_said() {
    let repo = Repo::new();
    let base = repo.sha("HEAD");
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    let (code, plan) = repo.plan_json(&["--against", "HEAD"]);
    assert_eq!(code, 2);
    assert_frame(
        &repo,
        &plan,
        revisions("HEAD", &base, None, true),
        [0, 1, 0, 0, 2],
    );
    assert_eq!(
        changes(&plan),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );

    let note = "note: the work tree has uncommitted changes; they are planned as part of HEAD\n";
    let run = repo.hl(&["plan", "--against", "HEAD"]);
    run.code(2);
    assert_eq!(run.stderr, note);
    assert!(
        run.stdout
            .starts_with("Plan of the work tree (with uncommitted changes) against HEAD ("),
        "{}",
        run.stdout
    );
    let md = repo.markdown(&["--against", "HEAD"], 2);
    assert!(
        md.contains(
            "\n_The work tree had uncommitted changes; they are planned as part of HEAD._\n"
        ),
        "{md}"
    );
    assert!(
        md.contains("— `the work tree (with uncommitted changes)` against `HEAD (<base>)`"),
        "{md}"
    );
    insta::assert_snapshot!("dirty_work_tree", md);

    // An untracked file alone makes the tree dirty too, though it is an input of nothing: so
    // the CI workflow writes its comment outside the checkout.
    let repo = Repo::new();
    repo.lab.write("plan.md", "");
    let (code, plan) = repo.plan_json(&["--against", "HEAD"]);
    assert_eq!(code, 0);
    assert_eq!(plan["revisions"]["dirty"], true);
    assert_eq!(outline(&plan), Vec::<String>::new());
}

/// A shallow clone lacking BASE (what a CI checkout with the default `fetch-depth: 1` is): a
/// clear error naming the revision and the fix, exit 1, nothing written.
#[test]
fn shallow_clone_lacking_base() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.commit("edit");
    let tmp = tempfile::tempdir().expect("temp dir");
    let clone = tmp.path().join("clone");
    let cache = tmp.path().join("cache");
    let url = format!("file://{}", repo.root().display());
    git_in(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &url,
            clone.to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(
        git_in(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );

    for rev in ["HEAD~1", "origin/main~1"] {
        let run = hl_in(&clone, &cache, &["plan", "--against", rev, "--markdown"]);
        run.code(1);
        assert_eq!(run.stdout, "", "{rev}");
        assert!(
            run.stderr.contains(&format!("unknown revision `{rev}`")),
            "{rev}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("shallow"), "{rev}: {}", run.stderr);
        assert!(
            run.stderr.contains("fetch-depth: 0"),
            "{rev}: {}",
            run.stderr
        );
    }
    // A checkout of the pull request alone has no origin/main: the fix is to fetch it.
    git_in(&clone, &["update-ref", "-d", "refs/remotes/origin/main"]);
    let run = hl_in(&clone, &cache, &["plan", "--against", "origin/main"]);
    run.code(1);
    assert!(
        run.stderr.contains("unknown revision `origin/main`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`git fetch origin main`"),
        "{}",
        run.stderr
    );
    assert!(!clone.join(".hl").exists(), "no .hl/ in the clone");
    assert!(!cache.exists(), "no cache written");

    // Once the history is there, the same command plans.
    git_in(
        &clone,
        &[
            "fetch",
            "--quiet",
            "--unshallow",
            "origin",
            "main:refs/remotes/origin/main",
        ],
    );
    let run = hl_in(
        &clone,
        &cache,
        &["plan", "--against", "origin/main~1", "--json"],
    );
    run.code(2);
    assert_eq!(
        changes(&run.json()),
        expect([("compose:mosquitto@CHELSTY-INFRA", "update")])
    );
}

/// In a shallow clone the advice for `HEAD~1` is `git fetch origin HEAD~1`, and for
/// `origin/main~1` it is `git fetch origin main~1` after "did you mean `origin/main`?": neither
/// command works (a remote serves refs, not `~1` of them), and `origin/main` is not what was
/// meant. What works is deepening the history: `git fetch --unshallow` (or `--deepen`), or
/// `fetch-depth: 0` in CI.
#[test]
fn shallow_clone_advice_is_a_command_that_works() {
    let mut repo = Repo::new();
    repo.lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_inflight_messages 40",
        "max_inflight_messages 50",
    );
    repo.commit("edit");
    let tmp = tempfile::tempdir().expect("temp dir");
    let clone = tmp.path().join("clone");
    let url = format!("file://{}", repo.root().display());
    git_in(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &url,
            clone.to_str().expect("UTF-8"),
        ],
    );
    for rev in ["HEAD~1", "origin/main~1"] {
        let run = hl_in(
            &clone,
            &tmp.path().join("cache"),
            &["plan", "--against", rev],
        );
        run.code(1);
        assert!(
            run.stderr.contains("git fetch --unshallow"),
            "{rev}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("git fetch origin HEAD~1")
                && !run.stderr.contains("git fetch origin main~1"),
            "no fetch of a `~1`: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("did you mean"),
            "{rev}: {}",
            run.stderr
        );
    }
}

/// `git status`, run to tell whether the work tree is dirty, refreshes the index's stat data
/// and rewrites `.git/index` when a file was touched: a plan that promises to touch nothing
/// writes to the repo (and can collide with the user's own git commands on `index.lock`).
/// `git --no-optional-locks status` does not write.
#[test]
fn the_git_index_is_not_rewritten() {
    let repo = Repo::new();
    let caddy = repo.root().join("services/caddy/Caddyfile");
    // Same content, new mtime: the index's stat data is stale.
    let text = fs::read(&caddy).expect("read");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(&caddy, text).expect("write");
    let index = repo.root().join(".git/index");
    let before = fs::read(&index).expect("index");
    repo.hl(&["plan", "--against", "HEAD"]).code(0);
    assert!(
        fs::read(&index).expect("index") == before,
        ".git/index was rewritten"
    );
}

/// The base side loads only what the diff changes for the loaders. A manifest's image bump
/// changes nothing the k8s loader takes from the file, so the base's nodes are the head's
/// (6 loaders, the head's); a Flux spec edit changes what it takes from `ks.yaml`, so the k8s
/// loader runs on the base too (7), and the base's spec shows in the plan.
#[test]
fn the_base_side_loads_only_what_the_diff_moved() {
    let mut repo = Repo::new();
    let app = "cluster/kubernetes/apps/paperless/app";
    let owner = repo.lab.flux_owner(app);
    repo.lab.replace(
        &format!("{app}/deployment.yaml"),
        "paperless-ngx:2.13.5",
        "paperless-ngx:2.13.6",
    );
    repo.commit("image bump");
    let (code, plan) = repo.plan_json(&["--against", "HEAD~1", "--stats"]);
    assert_eq!(code, 2);
    assert_eq!(changes(&plan), expect([(owner.as_str(), "update")]));
    assert_eq!(stat(&plan, "loaders_run"), 6, "{}", plan["stats"]);

    let parent = repo.lab.flux_owner("cluster/kubernetes/apps");
    repo.lab.replace(
        "cluster/kubernetes/apps/paperless/ks.yaml",
        "interval: 30m",
        "interval: 15m",
    );
    repo.commit("flux interval");
    let (code, plan) = repo.plan_json(&["--against", "HEAD~1", "--stats"]);
    assert_eq!(code, 2);
    assert_eq!(stat(&plan, "loaders_run"), 7, "{}", plan["stats"]);
    assert!(
        changes(&plan).contains(&(parent.clone(), "update".to_string())),
        "{plan}"
    );
    let step = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["address"] == owner.as_str())
        .expect("the app's step: its spec changed");
    assert!(
        step.to_string().contains("30m") && step.to_string().contains("15m"),
        "{step}"
    );
}

/// A file that stops parsing on the head side (a Flux Kustomization turned into broken YAML,
/// a note there) is loaded on the base side too: the Kustomization it held there is deleted.
#[test]
fn a_file_broken_on_the_head_side_is_loaded_on_the_base_side() {
    let mut repo = Repo::new();
    let extra = "cluster/kubernetes/apps/extra.yaml";
    repo.lab.write(extra, common::EXTRA_FLUX_KUSTOMIZATION);
    repo.commit("extra");
    repo.lab.write(extra, "a: [\n");
    repo.commit("broken");
    let (code, plan) = repo.plan_json(&["--against", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(code, 2, "{plan}");
    assert!(
        changes(&plan).contains(&("k8s:flux-system/extra".to_string(), "delete".to_string())),
        "{plan}"
    );
}

/// A file the loaders read through a symlink whose target the diff changed: git says the
/// link is the same, its content is not; the base side loads it again.
#[test]
fn a_symlinked_file_whose_target_changed_is_loaded_on_the_base_side() {
    let mut repo = Repo::new();
    let listing = "hosts/SATURN/services.yaml";
    let target = "hosts/shared/saturn-services.yaml";
    let text = repo.lab.read(listing);
    repo.lab.write(target, &text);
    std::fs::remove_file(repo.lab.path(listing)).unwrap();
    std::os::unix::fs::symlink("../shared/saturn-services.yaml", repo.lab.path(listing)).unwrap();
    repo.commit("services.yaml through a link");
    repo.lab.write(target, &format!("{text}  - mosquitto\n"));
    repo.commit("mosquitto on SATURN");
    let (code, plan) = repo.plan_json(&["--against", "HEAD~1", "--head", "HEAD"]);
    assert_eq!(code, 2, "{plan}");
    assert!(
        changes(&plan).contains(&("compose:mosquitto@SATURN".to_string(), "create".to_string())),
        "{plan}"
    );
}
