//! Transports: running argv vectors on a host, on this machine or through the system OpenSSH
//! client, with the user's `~/.ssh/config`, agent and known_hosts, and one multiplexed
//! connection per host (ControlMaster), which is what homelab users already trust.
//!
//! Remote commands are never shell strings built from repo data: each argv element is quoted
//! for the remote shell, and scripts are constants of hl's with data passed as positional
//! parameters. Every command runs in its own process group, so a Ctrl-C aimed at hl lets
//! in-flight steps finish instead of killing them halfway.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// How a host is reached.
#[derive(Debug, Clone)]
pub enum Via {
    /// This machine.
    Local,
    /// OpenSSH.
    Ssh(SshTarget),
}

/// Where ssh connects.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// What ssh connects to (a name from ~/.ssh/config, a DNS name or an address).
    pub destination: String,
    /// Port, when not ssh's default or config's.
    pub port: Option<u16>,
    /// Login user, when not ssh's default or config's.
    pub user: Option<String>,
    /// An ssh_config file to use instead of ~/.ssh/config (`HL_SSH_CONFIG`).
    pub config: Option<PathBuf>,
    /// Where the ControlMaster sockets live.
    pub control_dir: PathBuf,
    /// Seconds to wait for a connection.
    pub connect_timeout: u32,
}

/// A host and how to reach it.
#[derive(Debug, Clone)]
pub struct Transport {
    host: String,
    via: Via,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// A failed command, with whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached (refused, timed out, no route): transient.
    #[error("{host}: cannot connect: {message}")]
    Unreachable {
        /// The host.
        host: String,
        /// What ssh said.
        message: String,
    },
    /// The command ran past its time: transient.
    #[error("{host}: `{command}` timed out after {secs}s")]
    Timeout {
        /// The host.
        host: String,
        /// The command.
        command: String,
        /// The limit.
        secs: u64,
    },
    /// The command ran and failed: not transient.
    #[error("{host}: `{command}` failed (exit {code}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        /// The host.
        host: String,
        /// The command.
        command: String,
        /// Its exit code.
        code: i32,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// The local program could not be started (ssh missing).
    #[error("cannot run {program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
}

impl TransportError {
    /// Whether trying again may help: connection faults and time-outs, nothing else.
    pub fn transient(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. } | TransportError::Timeout { .. }
        )
    }
}

/// Quotes one argument for a POSIX shell: `'it'\''s'`.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

const CONNECT_FAULTS: [&str; 9] = [
    "Connection refused",
    "Connection timed out",
    "timed out",
    "No route to host",
    "Connection reset",
    "Connection closed",
    "Network is unreachable",
    "Could not resolve hostname",
    "kex_exchange_identification",
];

/// The content-addressed upload: a release is unpacked into a staging folder beside its final
/// name and renamed into place, so a host never sees half a release; a release already there
/// is left alone (same name, same content).
const UPLOAD: &str = r#"set -e
final="$1"; staging="$1.staging.$$"
[ -d "$final" ] && exit 0
mkdir -p "$(dirname "$final")"
rm -rf "$staging"; mkdir -p "$staging"
tar -x -C "$staging" -f -
mv "$staging" "$final""#;

impl Transport {
    /// This machine.
    pub fn local(host: &str) -> Transport {
        Transport {
            host: host.to_string(),
            via: Via::Local,
        }
    }

    /// A host over ssh.
    pub fn ssh(host: &str, target: SshTarget) -> Transport {
        Transport {
            host: host.to_string(),
            via: Via::Ssh(target),
        }
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn command(&self, argv: &[&str]) -> Command {
        match &self.via {
            Via::Local => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
            Via::Ssh(t) => {
                let mut c = Command::new("ssh");
                c.args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ControlMaster=auto",
                    "-o",
                    "ControlPersist=60",
                ]);
                c.arg("-o")
                    .arg(format!("ControlPath={}/%C", t.control_dir.display()));
                c.arg("-o")
                    .arg(format!("ConnectTimeout={}", t.connect_timeout));
                c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]);
                if let Some(f) = &t.config {
                    c.arg("-F").arg(f);
                }
                if let Some(p) = t.port {
                    c.arg("-p").arg(p.to_string());
                }
                if let Some(u) = &t.user {
                    c.arg("-l").arg(u);
                }
                let remote: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                c.arg("--").arg(&t.destination).arg(remote.join(" "));
                c
            }
        }
    }

    /// Runs `argv` on the host; a non-zero exit is an error.
    pub fn run(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        let out = self.run_status(argv, stdin, timeout)?;
        if out.code != 0 {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.trim().lines().rev().take(5).collect();
            return Err(TransportError::Failed {
                host: self.host.clone(),
                command: argv.join(" "),
                code: out.code,
                stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(out)
    }

    /// Runs `argv` on the host and returns how it ended, whatever the exit code; only a failure
    /// to reach the host or to start is an error.
    pub fn run_status(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, TransportError> {
        let mut cmd = self.command(argv);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let program = match &self.via {
            Via::Local => argv[0].to_string(),
            Via::Ssh(_) => "ssh".to_string(),
        };
        let mut child = cmd.spawn().map_err(|e| TransportError::Spawn {
            program,
            message: e.to_string(),
        })?;
        let writer = stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("piped");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let reader = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        };
        let out_t = reader(Box::new(child.stdout.take().expect("piped")));
        let err_t = reader(Box::new(child.stderr.take().expect("piped")));
        let status = match child.wait_timeout(timeout) {
            Ok(Some(s)) => s,
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TransportError::Timeout {
                    host: self.host.clone(),
                    command: argv.join(" "),
                    secs: timeout.as_secs(),
                });
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let out = Output {
            code: status.code().unwrap_or(-1),
            stdout: out_t.join().unwrap_or_default(),
            stderr: err_t.join().unwrap_or_default(),
        };
        if matches!(self.via, Via::Ssh(_)) && out.code == 255 {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if CONNECT_FAULTS.iter().any(|f| stderr.contains(f)) || stderr.is_empty() {
                return Err(TransportError::Unreachable {
                    host: self.host.clone(),
                    message: stderr,
                });
            }
        }
        Ok(out)
    }

    /// One round trip: is the host there?
    pub fn ping(&self, timeout: Duration) -> Result<(), TransportError> {
        self.run(&["true"], None, timeout).map(|_| ())
    }

    /// Uploads a file tree to `dir` on the host, atomically (see [`UPLOAD`]).
    pub fn upload(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        dir: &str,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let tarball = tarball(files);
        self.run(
            &["sh", "-c", UPLOAD, "hl-upload", dir],
            Some(&tarball),
            timeout,
        )
        .map(|_| ())
    }
}

/// A deterministic tar of a file tree: sorted, mtime 0, mode 0755 for scripts, 0644 otherwise.
pub fn tarball(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mtime(0);
        h.set_mode(if path.ends_with(".sh") || bytes.starts_with(b"#!") {
            0o755
        } else {
            0o644
        });
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, bytes.as_slice())
            .expect("writing to memory cannot fail");
    }
    b.into_inner().expect("writing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        for arg in [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "a\"b",
            "",
            "semi;colon",
            "*",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(arg)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), arg);
        }
    }

    #[test]
    fn local_runs_time_out_and_upload_atomically() {
        let t = Transport::local("here");
        let err = t
            .run(&["sleep", "5"], None, Duration::from_millis(200))
            .unwrap_err();
        assert!(err.transient(), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("releases/svc/abc");
        let files = BTreeMap::from([
            ("compose.yaml".to_string(), b"services: {}\n".to_vec()),
            (
                "healthcheck.sh".to_string(),
                b"#!/bin/sh\nexit 0\n".to_vec(),
            ),
            ("conf/x.conf".to_string(), b"x\n".to_vec()),
        ]);
        t.upload(&files, dest.to_str().unwrap(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(std::fs::read(dest.join("conf/x.conf")).unwrap(), b"x\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dest.join("healthcheck.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        let failed = t
            .run(
                &["sh", "-c", "echo boom >&2; exit 3"],
                None,
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(!failed.transient());
        assert!(failed.to_string().contains("boom"), "{failed}");
    }
}
