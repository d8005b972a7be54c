//! Events as JSON lines in the operators' format (`events/YYYY-MM-DD/<node>/events.jsonl`,
//! normalized types such as `deployment_started`, `healthcheck_failed`), one correlation id per
//! run, so the observers and agents that already read those files see what hl did.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::time::{date, rfc3339, unix_now};

/// How bad an event is.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Normal progress.
    Info,
    /// Something to look at.
    Warning,
    /// A failure.
    Error,
}

/// One event line.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// The normalized type: `deployment_started`, `deployment_completed`, `deployment_failed`,
    /// `healthcheck_failed`, `node_offline`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// How bad.
    pub severity: Severity,
    /// Who emitted it: always `hl`.
    pub source: String,
    /// The service (or node address) concerned.
    pub service: String,
    /// The host concerned.
    pub node: String,
    /// One id per run.
    pub correlation_id: String,
    /// Details. Never secrets: only addresses, digests, step messages.
    pub data: Value,
}

/// Where a run's events go.
#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
    correlation_id: String,
}

impl EventLog {
    /// Events under `dir` (a runtime root's `events/`), with a fresh correlation id.
    pub fn new(dir: PathBuf) -> EventLog {
        let seed = format!(
            "{}:{}:{:?}",
            unix_now(),
            std::process::id(),
            std::time::Instant::now()
        );
        let id = blake3::hash(seed.as_bytes()).to_hex()[..16].to_string();
        EventLog {
            dir,
            correlation_id: format!("hl-{id}"),
        }
    }

    /// This run's correlation id.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The folder events go to.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Appends one event. A failure to write an event is reported by the caller as a warning;
    /// it never fails an apply.
    pub fn emit(
        &self,
        kind: &str,
        severity: Severity,
        node: &str,
        service: &str,
        data: Value,
    ) -> std::io::Result<()> {
        let now = unix_now();
        let ev = Event {
            ts: rfc3339(now),
            kind: kind.to_string(),
            severity,
            source: "hl".into(),
            service: service.to_string(),
            node: node.to_string(),
            correlation_id: self.correlation_id.clone(),
            data,
        };
        let dir = self.dir.join(date(now)).join(node);
        std::fs::create_dir_all(&dir)?;
        let mut line = serde_json::to_string(&ev).map_err(std::io::Error::other)?;
        line.push('\n');
        // One write of one line with O_APPEND: concurrent writers never interleave within it.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        f.write_all(line.as_bytes())
    }
}
