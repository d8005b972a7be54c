//! `hl apply` against real parts: three OpenSSH test hosts with their own Docker engines
//! (scripts/testbed.sh), docker-compose on them, the real binary. Every test holds the testbed
//! alone and starts from a clean slate.

#[path = "common/testbed.rs"]
mod testbed;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::Testbed;

/// A homelab of three services, one per test host, in a temp dir.
struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
    control: PathBuf,
    tb: Testbed,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Lab {
    fn new(tb: Testbed) -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lab");
        let control = tmp.path().join("control");
        let cache = tmp.path().join("cache");
        let mut topo = String::from("environment: test\nnodes:\n");
        topo.push_str(&format!(
            "  ctl: {{role: control, transport: local, runtime_root: {}}}\n",
            control.display()
        ));
        for h in &tb.hosts {
            topo.push_str(&format!(
                "  {}: {{address: {}, runtime_root: {}}}\n",
                h.name,
                h.name,
                h.runtime_root.display()
            ));
        }
        let lab = Lab {
            _tmp: tmp,
            root,
            cache,
            control,
            tb,
        };
        lab.write("inventory/topology.yaml", &topo);
        for (svc, host) in [("db", "h1"), ("web", "h2"), ("cache", "h3")] {
            lab.service(svc, "v1");
            lab.write(
                &format!("hosts/{host}/services.yaml"),
                &format!("services: [{svc}]\n"),
            );
        }
        lab.write(
            "services/web/service.yaml",
            "name: web\ndependencies: [db]\n",
        );
        lab
    }

    fn service(&self, svc: &str, conf: &str) {
        let network = if self.tb.network.is_empty() {
            "bridge".to_string()
        } else {
            self.tb.network.clone()
        };
        self.write(
            &format!("services/{svc}/docker-compose.yml"),
            &format!(
                "services:\n  {svc}:\n    image: {}\n    container_name: {svc}\n    command: [\"sleep\", \"3600\"]\n    restart: unless-stopped\n    network_mode: {network}\n    volumes:\n      - ./app.conf:/app.conf:ro\n",
                self.tb.image
            ),
        );
        self.write(&format!("services/{svc}/app.conf"), &format!("{conf}\n"));
        self.write(
            &format!("services/{svc}/healthcheck.sh"),
            &format!(
                "#!/bin/sh\n[ \"$(docker inspect -f '{{{{.State.Running}}}}' {svc})\" = true ]\n"
            ),
        );
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hl"));
        cmd.arg("-C")
            .arg(&self.root)
            .args(args)
            .env("HL_CACHE_DIR", &self.cache)
            .env("HL_SSH_CONFIG", &self.tb.ssh_config)
            .env("NO_COLOR", "1")
            .env_remove("HL_ENV")
            .stdin(Stdio::null());
        cmd
    }

    fn hl(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    #[track_caller]
    fn apply_ok(&self, args: &[&str]) -> Run {
        let mut all = vec!["apply", "--yes"];
        all.extend_from_slice(args);
        let run = self.hl(&all);
        assert_eq!(
            run.code, 0,
            "--- stdout\n{}\n--- stderr\n{}",
            run.stdout, run.stderr
        );
        run
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// What is recorded: the state file with the journal of a run in progress (or killed)
    /// replayed over it, as hl itself reads it.
    fn state(&self) -> Value {
        let mut state: Value = fs::read(self.root.join(".hl/state.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_else(|_| serde_json::json!({"nodes": {}}));
        let journal = fs::read_to_string(self.root.join(".hl/state.journal")).unwrap_or_default();
        for line in journal.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let addr = entry["address"].as_str().unwrap().to_string();
            let nodes = state["nodes"].as_object_mut().unwrap();
            match &entry["record"] {
                Value::Null => nodes.remove(&addr),
                r => nodes.insert(addr, r.clone()),
            };
        }
        state
    }

    fn recorded(&self) -> Vec<String> {
        self.state()["nodes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn ids(&self, host: &str, project: &str) -> Vec<String> {
        self.tb
            .compose_containers(host, project)
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    fn running(&self, host: &str, project: &str) -> bool {
        let cs = self.tb.compose_containers(host, project);
        !cs.is_empty() && cs.iter().all(|c| c.state == "running")
    }

    fn wait_until(&self, what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting until {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn setup() -> (testbed::Exclusive, Lab) {
    let tb = Testbed::get();
    let guard = tb.exclusive();
    tb.reset(&[]);
    (guard, Lab::new(tb))
}

#[test]
fn a_full_apply_then_a_no_op_plan() {
    let (_g, lab) = setup();
    let run = lab.apply_ok(&[]);
    assert!(run.stdout.contains("Apply: 3 applied."), "{}", run.stdout);
    for (host, svc) in [("h1", "db"), ("h2", "web"), ("h3", "cache")] {
        assert!(lab.running(host, svc), "{svc} runs on {host}");
        let root = &lab.tb.host(host).runtime_root;
        let current = fs::read_link(root.join(format!("releases/{svc}/current"))).unwrap();
        assert_eq!(
            current.to_string_lossy(),
            lab.state()["nodes"][format!("compose:{svc}@{host}")]["output"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            fs::read_to_string(root.join(format!("releases/{svc}/current/app.conf"))).unwrap(),
            "v1\n"
        );
    }
    assert_eq!(
        lab.recorded(),
        vec!["compose:cache@h3", "compose:db@h1", "compose:web@h2"]
    );
    let plan = lab.hl(&["plan"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    // web depends on db: db finished before web started.
    let events = lab.events();
    let pos = |kind: &str, svc: &str| {
        events
            .iter()
            .position(|e| e["type"] == kind && e["service"] == svc)
            .unwrap()
    };
    assert!(pos("deployment_completed", "db") < pos("deployment_started", "web"));
}

impl Lab {
    /// Every event written, in order of time then file.
    fn events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut files = Vec::new();
        collect(&self.control.join("events"), &mut files);
        files.sort();
        for f in files {
            for line in fs::read_to_string(f).unwrap().lines() {
                all.push(serde_json::from_str::<Value>(line).unwrap());
            }
        }
        all.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
        all
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            collect(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn one_service_edited_only_it_is_re_upped() {
    let (_g, lab) = setup();
    lab.apply_ok(&[]);
    let (db, cache) = (lab.ids("h1", "db"), lab.ids("h3", "cache"));
    lab.write("services/web/app.conf", "v2\n");
    let plan = lab.hl(&["plan"]);
    assert_eq!(plan.code, 2);
    assert!(
        plan.stdout.contains("~ update   compose:web@h2"),
        "{}",
        plan.stdout
    );
    let run = lab.apply_ok(&[]);
    assert!(run.stdout.contains("Apply: 1 applied."), "{}", run.stdout);
    assert_eq!(lab.ids("h1", "db"), db, "db's container was not touched");
    assert_eq!(
        lab.ids("h3", "cache"),
        cache,
        "cache's container was not touched"
    );
    let root = &lab.tb.host("h2").runtime_root;
    assert_eq!(
        fs::read_to_string(root.join("releases/web/current/app.conf")).unwrap(),
        "v2\n"
    );
    assert!(
        root.join("releases/web/previous").exists(),
        "the release before is kept for rollback"
    );
    assert!(lab.running("h2", "web"));
}

#[test]
fn a_failing_healthcheck_fails_the_node_and_says_which_check() {
    let (_g, lab) = setup();
    lab.write(
        "services/cache/healthcheck.sh",
        "#!/bin/sh\necho \"cache is not warm\"\nexit 1\n",
    );
    let run = lab.hl(&["apply", "--yes"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("failed   compose:cache@h3: healthcheck healthcheck.sh of cache failed on h3 (exit 1): cache is not warm"), "{}", run.stdout);
    assert!(run.stdout.contains("2 applied, 1 failed"), "{}", run.stdout);
    assert_eq!(
        lab.recorded(),
        vec!["compose:db@h1", "compose:web@h2"],
        "a failed node is not recorded"
    );
    let events = lab.events();
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "healthcheck_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["service"], "cache");
    assert_eq!(failed[0]["node"], "h3");
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one correlation id per run");
}

#[test]
fn a_second_concurrent_apply_is_refused_with_the_holders_name() {
    let (_g, lab) = setup();
    lab.write("services/db/healthcheck.sh", "#!/bin/sh\nsleep 4\n");
    let mut first = lab.spawn(&["apply", "--yes", "-j", "1"]);
    lab.wait_until("the first apply holds the lock", || {
        fs::read_to_string(lab.root.join(".hl/lock")).is_ok_and(|t| t.contains("\"pid\""))
    });
    let second = lab.hl(&["apply", "--yes"]);
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains(&format!(
            "the state is locked by `hl apply` (pid {}",
            first.id()
        )),
        "{}",
        second.stderr
    );
    assert!(first.wait().unwrap().success());
}

#[test]
fn killed_mid_run_the_next_apply_finishes_without_redoing_anything() {
    let (_g, lab) = setup();
    // db is slow to become healthy, so the run can be killed while web waits for it.
    lab.write("services/db/healthcheck.sh", "#!/bin/sh\nsleep 3\n");
    let mut first = lab.spawn(&["apply", "--yes", "-j", "1"]);
    lab.wait_until("cache is recorded", || {
        lab.recorded().contains(&"compose:cache@h3".to_string())
    });
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    let done = lab.recorded();
    assert!(
        !done.contains(&"compose:web@h2".to_string()),
        "killed before web: {done:?}"
    );
    let ids_cache = lab.ids("h3", "cache");

    let refused = lab.hl(&["apply", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("stale lock"), "{}", refused.stderr);
    let run = lab.apply_ok(&["--force-unlock"]);
    assert!(
        !run.stderr.contains("compose:cache@h3: started"),
        "cache was done and is not redone: {}",
        run.stderr
    );
    assert_eq!(lab.ids("h3", "cache"), ids_cache);
    assert_eq!(
        lab.recorded(),
        vec!["compose:cache@h3", "compose:db@h1", "compose:web@h2"]
    );
    assert_eq!(lab.hl(&["plan"]).code, 0);
}

#[test]
fn a_host_cut_off_mid_apply_fails_alone_and_the_next_apply_finishes_it() {
    let (_g, lab) = setup();
    // web (h2) waits for db (h1), whose healthcheck takes a while: h2 is cut meanwhile.
    lab.write("services/db/healthcheck.sh", "#!/bin/sh\nsleep 3\n");
    let run = lab.spawn(&["apply", "--yes", "--retries", "1", "--timeout", "8"]);
    lab.wait_until("db is being applied", || {
        lab.events()
            .iter()
            .any(|e| e["type"] == "deployment_started" && e["service"] == "db")
    });
    let cut = lab.tb.cut("h2");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("2 applied, 1 failed"), "{stdout}");
    assert!(stdout.contains("failed   compose:web@h2: h2: "), "{stdout}");
    assert!(
        stderr.contains("compose:web@h2: attempt 1 failed"),
        "retried: {stderr}"
    );
    assert!(lab.running("h1", "db") && lab.running("h3", "cache"));
    cut.restore();
    let again = lab.apply_ok(&[]);
    assert!(
        again.stdout.contains("Apply: 1 applied."),
        "{}",
        again.stdout
    );
    assert!(lab.running("h2", "web"));
}

#[test]
fn an_unreachable_host_stops_the_run_before_anything_changes_unless_skipped() {
    let (_g, lab) = setup();
    let _cut = lab.tb.cut("h3");
    let run = lab.hl(&["apply", "--yes"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("unreachable: h3"), "{}", run.stderr);
    assert!(lab.recorded().is_empty(), "nothing changed");
    let run = lab.hl(&["apply", "--yes", "--skip-unreachable"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("2 applied, 1 skipped on unreachable hosts"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("unreachable h3: compose:cache@h3"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.recorded(), vec!["compose:db@h1", "compose:web@h2"]);
}

#[test]
fn drift_is_seen_with_refresh_and_converged() {
    let (_g, lab) = setup();
    lab.apply_ok(&[]);
    let out = lab.tb.docker("h1", &["stop", "db"]);
    assert!(out.status.success());
    assert_eq!(
        lab.hl(&["plan"]).code,
        0,
        "without --refresh the state is trusted"
    );
    let plan = lab.hl(&["plan", "--refresh"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains("~ update   compose:db@h1"),
        "{}",
        plan.stdout
    );
    let run = lab.apply_ok(&["--refresh"]);
    assert!(run.stdout.contains("drift: db is exited"), "{}", run.stdout);
    assert!(lab.running("h1", "db"));
}

#[test]
fn delete_needs_approval_then_takes_the_service_down() {
    let (_g, lab) = setup();
    lab.apply_ok(&[]);
    lab.write("hosts/h3/services.yaml", "services: []\n");
    let refused = lab.hl(&["apply", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("1 destructive step is not approved: delete compose:cache@h3"),
        "{}",
        refused.stderr
    );
    assert!(lab.running("h3", "cache"), "nothing was changed");
    lab.apply_ok(&["--approve", "compose:cache@h3"]);
    assert!(lab.ids("h3", "cache").is_empty(), "its containers are gone");
    assert!(!lab
        .tb
        .host("h3")
        .runtime_root
        .join("releases/cache")
        .exists());
    assert_eq!(lab.recorded(), vec!["compose:db@h1", "compose:web@h2"]);
}

#[test]
fn rollback_switches_back_and_the_plan_says_why() {
    let (_g, lab) = setup();
    lab.apply_ok(&[]);
    lab.write("services/cache/app.conf", "v2\n");
    lab.apply_ok(&[]);
    let root = &lab.tb.host("h3").runtime_root;
    let run = lab.hl(&["rollback", "compose:cache@h3"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        fs::read_to_string(root.join("releases/cache/current/app.conf")).unwrap(),
        "v1\n"
    );
    assert!(lab.running("h3", "cache"));
    let plan = lab.hl(&["plan"]);
    assert_eq!(plan.code, 2);
    assert!(
        plan.stdout.contains("rolled back by `hl rollback`"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_corrupted_cache_object_is_detected_evicted_and_rebuilt() {
    let (_g, lab) = setup();
    let built = lab.hl(&["build", "compose:cache@h3"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    // Corrupt every stored object of the cache: each is verified on read.
    let mut files = Vec::new();
    collect(&lab.cache.join("cas"), &mut files);
    for f in &files {
        fs::write(f, b"bit rot").unwrap();
    }
    let run = lab.apply_ok(&[]);
    assert!(
        run.stderr
            .contains("cache: a corrupted object of compose:cache@h3 was evicted; rebuilding it"),
        "{}",
        run.stderr
    );
    assert!(lab.running("h3", "cache"));
    assert_eq!(
        fs::read_to_string(
            lab.tb
                .host("h3")
                .runtime_root
                .join("releases/cache/current/app.conf")
        )
        .unwrap(),
        "v1\n"
    );
}

#[test]
fn an_offline_first_host_that_is_away_only_warns() {
    let (_g, lab) = setup();
    let topo = std::fs::read_to_string(lab.root.join("inventory/topology.yaml")).unwrap();
    lab.write(
        "inventory/topology.yaml",
        &topo.replace(
            "  h3: {address: h3,",
            "  h3: {offline_first: true, address: h3,",
        ),
    );
    let _cut = lab.tb.cut("h3");
    let run = lab.hl(&["apply", "--yes"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("warning: h3 is unreachable, its steps are skipped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("2 applied, 1 skipped on unreachable hosts"),
        "{}",
        run.stdout
    );
    assert!(lab
        .events()
        .iter()
        .any(|e| e["type"] == "node_offline" && e["node"] == "h3"));
}

#[test]
fn ctrl_c_finishes_the_steps_in_flight_records_them_and_stops() {
    let (_g, lab) = setup();
    lab.write("services/db/healthcheck.sh", "#!/bin/sh\nsleep 3\n");
    let child = lab.spawn(&["apply", "--yes", "-j", "1"]);
    lab.wait_until("db is being applied", || {
        lab.events()
            .iter()
            .any(|e| e["type"] == "deployment_started" && e["service"] == "db")
    });
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        stderr.contains("interrupted: finishing the steps in flight"),
        "{stderr}"
    );
    assert!(
        lab.recorded().contains(&"compose:db@h1".to_string()),
        "the step in flight finished and was recorded"
    );
    assert!(lab.running("h1", "db"));
    assert!(stdout.contains("not started compose:web@h2"), "{stdout}");
    // The lock was released cleanly: the next apply needs no --force-unlock.
    lab.apply_ok(&[]);
    assert_eq!(lab.recorded().len(), 3);
}

#[test]
fn a_release_switched_by_hand_is_drift() {
    let (_g, lab) = setup();
    lab.apply_ok(&[]);
    let releases = lab.tb.host("h3").runtime_root.join("releases/cache");
    let v1 = fs::read_link(releases.join("current")).unwrap();
    lab.write("services/cache/app.conf", "v2\n");
    lab.apply_ok(&[]);
    // Someone points `current` back at the old release on the host, by hand.
    fs::remove_file(releases.join("current")).unwrap();
    std::os::unix::fs::symlink(&v1, releases.join("current")).unwrap();
    let plan = lab.hl(&["plan", "--refresh"]);
    assert_eq!(plan.code, 2, "{}{}", plan.stdout, plan.stderr);
    let short = &v1.to_string_lossy()[..12];
    assert!(
        plan.stdout.contains(&format!(
            "drift: the host runs release {short}, not the recorded"
        )),
        "{}",
        plan.stdout
    );
    lab.apply_ok(&["--refresh"]);
    assert_eq!(
        fs::read_to_string(releases.join("current/app.conf")).unwrap(),
        "v2\n"
    );
}
