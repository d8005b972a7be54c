//! The testbed of the end-to-end tests of `hl apply`: three real OpenSSH test hosts (`h1`,
//! `h2`, `h3`), each with its own Docker engine, brought up by `scripts/testbed.sh up` (which
//! `scripts/test.sh` runs before `cargo test`). This module reads what the script wrote to
//! `$HL_TESTBED_DIR/env` and drives the script for faults (`cut`, `restore`) and clean slates
//! (`reset`). See docs/testing.md.
//!
//! Include it from a test with `#[path = "common/testbed.rs"] mod testbed;` (or from
//! `common/mod.rs` with `pub mod testbed;`). It uses only std.
//!
//! ```ignore
//! let tb = Testbed::get();
//! let _only_me = tb.exclusive(); // the hosts are shared by every test
//! tb.reset(&[]);
//! // ... write an inventory naming tb.hosts (address, port, runtime_root), run `hl apply` ...
//! let ids = tb.compose_containers("h1", "web");
//! let cut = tb.cut("h2"); // h2 now times out; restored when `cut` is dropped
//! ```

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The script that brings the testbed up and drives it.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed.sh");

/// Where the testbed lives unless `HL_TESTBED_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/tmp/hl-testbed";

/// How the test hosts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each host is an sshd in its own network namespace with its own Docker engine; a cut
    /// host's connections time out.
    Netns,
    /// Fallback where namespaces cannot be made: sshds on 127.0.0.1:2201-2203 sharing the
    /// local engine; a cut host refuses connections.
    Loopback,
}

/// One test host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestHost {
    /// Its name in the testbed's `ssh_config` (`h1`), which also prints as its `hostname`.
    pub name: String,
    /// The address its sshd listens on (`10.213.7.11`; `127.0.0.1` in loopback mode).
    pub address: String,
    /// The port its sshd listens on (22; 2201.. in loopback mode).
    pub port: u16,
    /// Its runtime root (`<dir>/hosts/h1/opt/homelab`): the hosts share this machine's
    /// filesystem, so a test reads a host's releases there directly.
    pub runtime_root: PathBuf,
    /// `DOCKER_HOST` of its engine (its SSH sessions have it set).
    pub docker_host: String,
}

/// One container of a compose project, as `docker ps -a` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The short id: it changes when compose recreates the container.
    pub id: String,
    /// `running`, `exited`, `created`, `restarting`, ...
    pub state: String,
}

/// The testbed as `scripts/testbed.sh up` left it.
#[derive(Debug, Clone)]
pub struct Testbed {
    /// Its folder (`HL_TESTBED_DIR`).
    pub dir: PathBuf,
    /// The OpenSSH client config naming the hosts: `ssh -F <ssh_config> h1 -- docker ps`.
    pub ssh_config: PathBuf,
    /// The client's private key (ed25519), authorized for root on every host.
    pub ssh_key: PathBuf,
    /// A known_hosts file with the hosts' keys, for tests that check host keys strictly
    /// (`ssh_config` itself does not).
    pub known_hosts: PathBuf,
    /// `h1`, `h2`, `h3`.
    pub hosts: Vec<TestHost>,
    /// The image the test services run (`hl-test/busybox:1`, busybox and nothing else; present
    /// in every engine, never pulled).
    pub image: String,
    /// The compose command that works on the hosts, as argv (`["docker-compose"]`).
    pub compose: Vec<String>,
    /// How the hosts are made.
    pub mode: Mode,
    /// The network mode compose services get on the hosts: `bridge` (the default network
    /// works) or `none`.
    pub network: String,
    /// Whether each host has its own engine (netns mode). When false, every host sees the
    /// same containers and two hosts must not run the same compose project.
    pub per_host_engines: bool,
}

impl Testbed {
    /// The testbed of `$HL_TESTBED_DIR` (default `/tmp/hl-testbed`). Panics, saying how to
    /// bring it up, when it is not up.
    #[track_caller]
    pub fn get() -> Testbed {
        let dir = std::env::var_os("HL_TESTBED_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        let env = dir.join("env");
        if !env.is_file() {
            panic!(
                "the testbed is not up: run scripts/testbed.sh up (scripts/test.sh does it); \
                 no {}",
                env.display()
            );
        }
        Testbed::from_env_file(&env).unwrap_or_else(|e| panic!("{}: {e}", env.display()))
    }

    /// Reads an env file written by `scripts/testbed.sh up`.
    pub fn from_env_file(path: &Path) -> Result<Testbed, String> {
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let vars = parse_env(&text);
        let get = |k: &str| {
            vars.get(k).cloned().ok_or_else(|| {
                format!("no {k} (written by an older scripts/testbed.sh? run it again)")
            })
        };
        let mut hosts = Vec::new();
        for name in get("HL_TESTBED_HOSTS")?.split_whitespace() {
            let key = |what: &str| format!("HL_TESTBED_{}_{what}", name.to_uppercase());
            let port = get(&key("PORT"))?;
            hosts.push(TestHost {
                name: name.to_string(),
                address: get(&key("ADDRESS"))?,
                port: port
                    .parse()
                    .map_err(|_| format!("{} is not a port: {port}", key("PORT")))?,
                runtime_root: PathBuf::from(get(&key("RUNTIME_ROOT"))?),
                docker_host: get(&key("DOCKER_HOST"))?,
            });
        }
        let mode = match get("HL_TESTBED_MODE")?.as_str() {
            "netns" => Mode::Netns,
            "loopback" => Mode::Loopback,
            other => return Err(format!("unknown HL_TESTBED_MODE {other}")),
        };
        Ok(Testbed {
            dir: PathBuf::from(get("HL_TESTBED_DIR")?),
            ssh_config: PathBuf::from(get("HL_TESTBED_SSH_CONFIG")?),
            ssh_key: PathBuf::from(get("HL_TESTBED_SSH_KEY")?),
            known_hosts: PathBuf::from(get("HL_TESTBED_KNOWN_HOSTS")?),
            hosts,
            image: get("HL_TESTBED_IMAGE")?,
            compose: get("HL_TESTBED_COMPOSE")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            mode,
            network: get("HL_TESTBED_NETWORK")?,
            per_host_engines: get("HL_TESTBED_ENGINES")? == "per-host",
        })
    }

    /// The host named `name`.
    #[track_caller]
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name} (hosts: {:?})", self.names()))
    }

    /// The hosts' names.
    pub fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    /// Holds the testbed for one test until dropped: the hosts, their engines and runtime
    /// roots are shared by every test of every binary (and by nextest's parallel processes),
    /// so a test that changes them takes this first. A file lock, released on drop or exit.
    #[track_caller]
    pub fn exclusive(&self) -> Exclusive {
        let path = self.dir.join("tests.lock");
        let file =
            File::create(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        Exclusive { _file: file }
    }

    /// `ssh -F <ssh_config> HOST -- ARGS...`. As always with ssh, the remote shell parses the
    /// arguments joined by spaces: quote what it must not split.
    pub fn ssh(&self, host: &str, args: &[&str]) -> Output {
        let host = self.host(host);
        Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .args(["-o", "BatchMode=yes", &host.name, "--"])
            .args(args)
            .output()
            .expect("ssh runs")
    }

    /// `docker ARGS...` against the engine of HOST, from here (not through SSH: it works
    /// while the host is cut).
    pub fn docker(&self, host: &str, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host(host).docker_host)
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker runs")
    }

    /// The containers of compose project `project` on HOST, running or not, sorted by id:
    /// `docker ps -a --filter label=com.docker.compose.project=NAME --format '{{.ID}} {{.State}}'`.
    #[track_caller]
    pub fn compose_containers(&self, host: &str, project: &str) -> Vec<Container> {
        let label = format!("label=com.docker.compose.project={project}");
        let out = self.docker(
            host,
            &[
                "ps",
                "-a",
                "--filter",
                &label,
                "--format",
                "{{.ID}} {{.State}}",
            ],
        );
        let stdout = checked(&format!("docker ps on {host}"), &out);
        let mut all: Vec<Container> = stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, state)| Container {
                id: id.to_string(),
                state: state.trim().to_string(),
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Cuts HOST off: in netns mode its link goes down, so connections to it (new ones and a
    /// ControlMaster's) time out; in loopback mode its sshd and sessions are killed, so
    /// connections are refused. Restored when the guard is dropped (even by a panic), or by
    /// [`Cut::restore`].
    #[track_caller]
    #[must_use = "the host is restored as soon as the guard is dropped"]
    pub fn cut(&self, host: &str) -> Cut<'_> {
        self.host(host);
        self.script(&["cut", host]);
        Cut {
            testbed: self,
            host: host.to_string(),
            restored: false,
        }
    }

    /// Undoes a cut of HOST and waits until it answers over SSH again.
    #[track_caller]
    pub fn restore(&self, host: &str) {
        self.host(host);
        self.script(&["restore", host]);
    }

    /// A clean slate: removes every container (and unused network) of the engines of HOSTS
    /// (all hosts when empty; in loopback mode, where the engine is shared, the compose
    /// containers only) and empties their runtime roots.
    #[track_caller]
    pub fn reset(&self, hosts: &[&str]) {
        let mut args = vec!["reset"];
        args.extend_from_slice(hosts);
        self.script(&args);
    }

    /// Runs `scripts/testbed.sh ARGS...` on this testbed; panics with its output if it fails.
    #[track_caller]
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(SCRIPT)
            .args(args)
            .env("HL_TESTBED_DIR", &self.dir)
            .output()
            .expect("bash runs");
        checked(&format!("scripts/testbed.sh {}", args.join(" ")), &out)
    }
}

/// The guard of [`Testbed::exclusive`].
pub struct Exclusive {
    _file: File,
}

/// The guard of [`Testbed::cut`]: the host is restored when it is dropped.
pub struct Cut<'a> {
    testbed: &'a Testbed,
    host: String,
    restored: bool,
}

impl Cut<'_> {
    /// Restores the host now (and waits until it answers over SSH).
    #[track_caller]
    pub fn restore(mut self) {
        self.restored = true;
        self.testbed.restore(&self.host);
    }
}

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        if std::thread::panicking() {
            // A second panic would abort the test binary and hide the first one.
            let _ = Command::new("bash")
                .arg(SCRIPT)
                .args(["restore", &self.host])
                .env("HL_TESTBED_DIR", &self.testbed.dir)
                .output();
        } else {
            self.testbed.restore(&self.host);
        }
    }
}

/// `KEY=VALUE` lines (a value may be in double quotes); `#` comments and blank lines skipped.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The stdout of a command that must have succeeded; else a panic with both streams.
#[track_caller]
fn checked(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{what} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}
