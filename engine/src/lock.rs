//! The state lock: `.hl/lock`, held with an OS file lock (flock) for the length of a run and
//! naming its holder (host, pid, since, command) in its content. A second run refuses with that
//! name. A run that ended without releasing (killed, crashed) leaves its name behind though the
//! OS lock is gone: that is a stale lock, reported, and taken over only with `--force-unlock`,
//! because its steps may have been half-done and a person should know.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::time::{rfc3339, unix_now};

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The machine.
    pub host: String,
    /// The process.
    pub pid: u32,
    /// Since when (RFC 3339).
    pub since: String,
    /// What it runs.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (pid {} on {}, since {})",
            self.command, self.pid, self.host, self.since
        )
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    /// A stale holder this run took over, to be reported.
    pub took_over: Option<Holder>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Lock {
    /// Takes the lock in `dir` for `command`.
    pub fn acquire(dir: &Path, command: &str, force_unlock: bool) -> Result<Lock, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("cannot open", &path, e))?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let previous: Option<Holder> = serde_json::from_str(&text).ok();
        if file.try_lock().is_err() {
            let who = previous.map_or("another hl".to_string(), |h| h.to_string());
            return Err(Error::Environment {
                message: format!("the state is locked by {who}"),
                help: Some(
                    "wait for it to finish; two runs must not change the same homelab at once"
                        .into(),
                ),
            });
        }
        let me = std::process::id();
        let mut took_over = None;
        if let Some(h) = previous.filter(|h| h.pid != me) {
            let state = if h.host == hostname() && alive(h.pid) {
                "still running but unlocked"
            } else {
                "dead"
            };
            if !force_unlock {
                return Err(Error::Environment {
                    message: format!(
                        "stale lock: {h} ended without releasing the state ({state}); what it finished is recorded, a step it was in may be half-done"
                    ),
                    help: Some("check the hosts it touched, then run again with --force-unlock to take the lock over".into()),
                });
            }
            took_over = Some(h);
        }
        let holder = Holder {
            host: hostname(),
            pid: me,
            since: rfc3339(unix_now()),
            command: command.to_string(),
        };
        let json = serde_json::to_string(&holder).map_err(|e| Error::Internal(e.to_string()))?;
        file.set_len(0)
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.write_all(json.as_bytes())
            .map_err(|e| Error::io("cannot write", &path, e))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot write", &path, e))?;
        Ok(Lock {
            file,
            path,
            took_over,
        })
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Empty content means "released cleanly"; the OS lock goes with the file handle.
        let _ = self.file.set_len(0);
        let _ = self.file.sync_all();
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_stale_one_needs_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "hl apply", false).unwrap();
        let err = Lock::acquire(dir.path(), "hl apply", false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the state is locked by `hl apply` (pid"),
            "{err}"
        );
        drop(first);
        // Released cleanly: free.
        drop(Lock::acquire(dir.path(), "hl apply", false).unwrap());
        // A holder that died without releasing.
        let dead = Holder {
            host: hostname(),
            pid: 999_999_999,
            since: "2026-01-01T00:00:00Z".into(),
            command: "hl apply".into(),
        };
        std::fs::write(
            dir.path().join("lock"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        let err = Lock::acquire(dir.path(), "hl apply", false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("stale lock: `hl apply` (pid 999999999"),
            "{err}"
        );
        let taken = Lock::acquire(dir.path(), "hl apply", true).unwrap();
        assert_eq!(taken.took_over, Some(dead));
    }
}
