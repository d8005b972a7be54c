//! Rendering the plan: the human view (grouped by layer) and the JSON view render the same
//! steps. The JSON schema is documented in docs/plan-json.md.

use std::fmt::Write as _;

use hl_engine::{Action, Cause, Layer, Plan, StatsSnapshot, Step};
use serde_json::{json, Value};

/// The sign people scan for, per action.
fn sign(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace => "-/+",
        Action::Delete => "-",
        Action::Check => "?",
        Action::NoOp => "=",
    }
}

/// Whether a step is worth showing: a change, a check, or a no-op with something to say.
pub fn visible(s: &Step) -> bool {
    s.action != Action::NoOp || !s.causes.is_empty()
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// One line per cause, for people.
pub fn cause_line(c: &Cause) -> String {
    match c {
        Cause::New => "new: not in the recorded state".into(),
        Cause::Removed => "removed from the repo".into(),
        Cause::File { path, change, .. } => format!(
            "file {path} {}",
            match change {
                hl_engine::plan::FileChange::Modified => "changed",
                hl_engine::plan::FileChange::Added => "added",
                hl_engine::plan::FileChange::Removed => "no longer an input",
            }
        ),
        Cause::Param { key, old, new } => {
            format!("parameter {key}: {} -> {}", short(old), short(new))
        }
        Cause::Dependency { address, .. } => format!("dependency {address} changed its output"),
        Cause::Placement { address, action } => format!(
            "runs on {address}, which is {}",
            if *action == Action::Create {
                "created"
            } else {
                "replaced"
            }
        ),
        Cause::RuleVersion { old, new } => format!("rule version {old} -> {new}"),
        Cause::OutputIdentical => "input changed, output identical: nothing to do".into(),
        Cause::Drift { what } => format!("drift: {what}"),
        Cause::ForcesReplacement { what } => {
            format!("{what} cannot change in place: forces replacement")
        }
        Cause::NeededBy { addresses } => {
            let mut s = format!(
                "needed by {}",
                addresses
                    .iter()
                    .take(3)
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if addresses.len() > 3 {
                let _ = write!(s, " and {} more", addresses.len() - 3);
            }
            s
        }
    }
}

/// The summary line: counts of each change.
pub fn summary(plan: &Plan) -> String {
    let c = plan.counts();
    let n = |a| c.get(&a).copied().unwrap_or(0);
    let mut s = format!(
        "{} to create, {} to update, {} to replace, {} to delete",
        n(Action::Create),
        n(Action::Update),
        n(Action::Replace),
        n(Action::Delete)
    );
    if n(Action::Check) > 0 {
        let _ = write!(s, "; {} runway checks", n(Action::Check));
    }
    s
}

/// The human view.
pub fn human(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.steps.iter().any(visible) {
        out.push_str("No changes. The homelab matches the repo.\n");
        return out;
    }
    for layer in Layer::ALL {
        let steps: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| s.layer == layer && visible(s))
            .collect();
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", layer.title());
        for s in steps {
            let mut line = format!(
                "  {:>3} {:<8} {}",
                sign(s.action),
                s.action.word(),
                s.address
            );
            if s.will_build {
                line.push_str("  (will build)");
            }
            if let Some(Cause::NeededBy { addresses }) = s.causes.first() {
                let n = addresses.len();
                line.push_str(&format!(
                    "  ({n} change{} need{} it)",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                ));
            }
            if s.destructive {
                line.push_str("  [destructive: needs approval]");
            }
            let _ = writeln!(out, "{}", line.trim_end());
            for c in &s.causes {
                // A check's own line says enough; `hl check` and `--json` list who needs it.
                if matches!(c, Cause::New | Cause::NeededBy { .. }) {
                    continue;
                }
                let _ = writeln!(out, "              {}", cause_line(c));
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Plan: {}.", summary(plan));
    if plan.steps.iter().any(|s| s.destructive) {
        out.push_str("Destructive steps need approval when applied (--approve ADDR).\n");
    }
    out
}

/// The JSON view (format_version 1).
pub fn json(
    plan: &Plan,
    root: &str,
    environment: Option<&str>,
    notes: &[String],
    stats: Option<StatsSnapshot>,
) -> Value {
    let c = plan.counts();
    let n = |a| c.get(&a).copied().unwrap_or(0);
    let mut v = json!({
        "format_version": plan.format_version,
        "root": root,
        "environment": environment,
        "has_changes": plan.has_changes(),
        "summary": {
            "create": n(Action::Create),
            "update": n(Action::Update),
            "replace": n(Action::Replace),
            "delete": n(Action::Delete),
            "check": n(Action::Check),
        },
        "steps": plan.steps.iter().filter(|s| visible(s)).collect::<Vec<_>>(),
        "notes": notes,
    });
    if let Some(s) = stats {
        v["stats"] = json!(s);
    }
    v
}

mod diffs;
mod markdown;

pub use diffs::Diffs;
pub use markdown::markdown;

/// The two revisions of a comparison, as the user named them and as commits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revisions {
    /// BASE as given.
    pub base: String,
    /// Its commit.
    pub base_commit: String,
    /// HEAD as given (`work tree` when none was).
    pub head: String,
    /// Its commit, when it is one.
    pub head_commit: Option<String>,
    /// Whether the work tree, used as HEAD, has uncommitted changes.
    pub dirty: bool,
}

impl Revisions {
    /// `main (1a2b3c4)`.
    pub fn base_name(&self) -> String {
        format!(
            "{} ({})",
            self.base,
            &self.base_commit[..self.base_commit.len().min(7)]
        )
    }

    /// `feature (5d6e7f8)`, or `the work tree` (with uncommitted changes).
    pub fn head_name(&self) -> String {
        match &self.head_commit {
            Some(c) => format!("{} ({})", self.head, &c[..c.len().min(7)]),
            None if self.dirty => "the work tree (with uncommitted changes)".into(),
            None => "the work tree".into(),
        }
    }
}
