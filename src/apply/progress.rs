//! Progress of an apply, one plain line per event on stderr (stable in CI logs and tests), and
//! the events log in the operators' format.

use std::time::Duration;

use hl_engine::events::{EventLog, Severity};
use hl_engine::scheduler::Event;
use hl_engine::{Address, FailureKind};
use serde_json::json;

use super::Done;

/// Draws progress and writes events.
pub struct Progress {
    total: usize,
    done: usize,
    log: EventLog,
    control: String,
}

fn service(a: &Address) -> String {
    if a.kind() == "compose" {
        a.name().to_string()
    } else {
        a.to_string()
    }
}

impl Progress {
    /// Progress over `total` steps, with events in `log`; `control` names the node events of
    /// host-less steps are filed under.
    pub fn new(total: usize, log: EventLog, control: String) -> Progress {
        Progress {
            total,
            done: 0,
            log,
            control,
        }
    }

    /// The events log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    fn node_of(&self, a: &Address) -> String {
        a.host().map_or(self.control.clone(), str::to_string)
    }

    /// Writes an event; a failure to write one is a warning, never a failed apply.
    pub fn emit(&self, kind: &str, sev: Severity, a: &Address, data: serde_json::Value) {
        if let Err(e) = self
            .log
            .emit(kind, sev, &self.node_of(a), &service(a), data)
        {
            eprintln!(
                "warning: cannot write event to {}: {e}",
                self.log.dir().display()
            );
        }
    }

    /// Renders one scheduler event.
    pub fn on(&mut self, ev: &Event<Done>) {
        let width = self.total.to_string().len();
        match ev {
            Event::Started { address, attempt } => {
                if *attempt == 1 {
                    eprintln!(
                        "  [{:>width$}/{}] {address}: started",
                        self.done, self.total
                    );
                    self.emit(
                        "deployment_started",
                        Severity::Info,
                        address,
                        json!({"address": address}),
                    );
                } else {
                    eprintln!(
                        "  [{:>width$}/{}] {address}: attempt {attempt}",
                        self.done, self.total
                    );
                }
            }
            Event::Message { address, text } => {
                eprintln!("  [{:>width$}/{}] {address}: {text}", self.done, self.total)
            }
            Event::Retrying {
                address,
                attempt,
                error,
                wait,
            } => {
                eprintln!("  [{:>width$}/{}] {address}: attempt {attempt} failed ({error}); retrying in {}", self.done, self.total, secs(*wait));
            }
            Event::Finished {
                address,
                result,
                elapsed,
            } => {
                self.done += 1;
                match result {
                    Ok(Done::Recorded(r)) => {
                        eprintln!(
                            "  [{:>width$}/{}] {address}: done in {}",
                            self.done,
                            self.total,
                            secs(*elapsed)
                        );
                        self.emit("deployment_completed", Severity::Info, address, json!({"address": address, "output": r.output, "seconds": elapsed.as_secs_f64()}));
                    }
                    Ok(Done::Deleted) => {
                        eprintln!(
                            "  [{:>width$}/{}] {address}: deleted in {}",
                            self.done,
                            self.total,
                            secs(*elapsed)
                        );
                        self.emit(
                            "deployment_completed",
                            Severity::Info,
                            address,
                            json!({"address": address, "deleted": true}),
                        );
                    }
                    Err(e) => {
                        eprintln!(
                            "  [{:>width$}/{}] {address}: FAILED: {}",
                            self.done, self.total, e.message
                        );
                        let kind = if e.kind == FailureKind::Healthcheck {
                            "healthcheck_failed"
                        } else {
                            "deployment_failed"
                        };
                        self.emit(
                            kind,
                            Severity::Error,
                            address,
                            json!({"address": address, "error": e.message}),
                        );
                    }
                }
            }
            Event::Skipped { address, because } => {
                self.done += 1;
                eprintln!(
                    "  [{:>width$}/{}] {address}: skipped: {because} failed",
                    self.done, self.total
                );
            }
            Event::Interrupted => {
                eprintln!("interrupted: finishing the steps in flight, starting no more")
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
