//! Progress of an apply, one plain line per event on stderr (stable in CI logs and tests), and
//! the events log in the operators' format.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
    draw: Draw,
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
            draw: Draw::new(total),
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
        match ev {
            Event::Started { address, attempt } => {
                if *attempt == 1 {
                    self.show(address, "started", false);
                    self.emit(
                        "deployment_started",
                        Severity::Info,
                        address,
                        json!({"address": address}),
                    );
                } else {
                    self.show(address, &format!("attempt {attempt}"), false);
                }
            }
            Event::Message { address, text } => self.show(address, text, false),
            Event::Retrying {
                address,
                attempt,
                error,
                wait,
            } => {
                let text = format!(
                    "attempt {attempt} failed ({error}); retrying in {}",
                    secs(*wait)
                );
                self.show(address, &text, false);
            }
            Event::Finished {
                address,
                result,
                elapsed,
            } => {
                self.done += 1;
                match result {
                    Ok(Done::Recorded(r)) => {
                        self.show(address, &format!("done in {}", secs(*elapsed)), true);
                        let data = json!({"address": address, "output": r.output, "seconds": elapsed.as_secs_f64()});
                        self.emit("deployment_completed", Severity::Info, address, data);
                    }
                    Ok(Done::Deleted) => {
                        self.show(address, &format!("deleted in {}", secs(*elapsed)), true);
                        self.emit(
                            "deployment_completed",
                            Severity::Info,
                            address,
                            json!({"address": address, "deleted": true}),
                        );
                    }
                    Err(e) => {
                        self.show(address, &format!("FAILED: {}", e.message), true);
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
                self.show(address, &format!("skipped: {because} failed"), true);
            }
            Event::Interrupted => {
                self.note("interrupted: finishing the steps in flight, starting no more")
            }
        }
    }

    /// A line for a node: on a terminal its own spinner line (cleared when it ends, and the
    /// last word printed above the bars); otherwise a plain line, stable in CI logs and tests.
    fn show(&mut self, address: &Address, text: &str, end: bool) {
        let (done, total) = (self.done, self.total);
        match &mut self.draw {
            Draw::Plain => {
                let width = total.to_string().len();
                eprintln!("  [{done:>width$}/{total}] {address}: {text}");
            }
            Draw::Bars {
                multi,
                overall,
                nodes,
            } => {
                let bar = nodes.entry(address.clone()).or_insert_with(|| {
                    let b = multi.insert_before(overall, ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {wide_msg}")
                            .expect("a valid template"),
                    );
                    b.set_prefix(address.to_string());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                bar.set_message(text.to_string());
                if end {
                    bar.finish_and_clear();
                    nodes.remove(address);
                    let _ = multi.println(format!("  {address}: {text}"));
                    overall.set_position(done as u64);
                }
            }
        }
    }

    /// A line that belongs to no node.
    pub fn note(&self, text: &str) {
        match &self.draw {
            Draw::Plain => eprintln!("{text}"),
            Draw::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
        }
    }

    /// Clears the bars before the summary.
    pub fn finish(&self) {
        if let Draw::Bars { overall, .. } = &self.draw {
            overall.finish_and_clear();
        }
    }
}

/// How progress is drawn.
enum Draw {
    Plain,
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        nodes: HashMap<Address, ProgressBar>,
    },
}

impl Draw {
    fn new(total: usize) -> Draw {
        if !std::io::stderr().is_terminal() || std::env::var_os("NO_COLOR").is_some() {
            return Draw::Plain;
        }
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("  [{bar:30}] {pos}/{len} steps  {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Draw::Bars {
            multi,
            overall,
            nodes: HashMap::new(),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
