//! The plan as a pull-request comment that reads well on Forgejo, Gitea and GitHub: a one-line
//! verdict, a table of counts per layer and action, destructive changes first under a warning,
//! then one collapsible `<details>` per node with its causes and the changed lines. Long plans
//! are cut to stay under a comment's size limit, saying how much was left out.

use std::fmt::Write as _;

use hl_engine::{Action, Cause, Layer, Plan, Step};

use super::{cause_line, visible, Diffs, Revisions};

/// GitHub's limit on a comment body; Forgejo and Gitea allow more.
pub const COMMENT_LIMIT: usize = 65_536;
/// Room kept for the closing lines.
const RESERVE: usize = 1_024;
/// The marker that lets a CI job find and update its own comment.
pub const MARKER: &str = "<!-- hl-plan -->";

const ORDER: [Action; 5] = [
    Action::Replace,
    Action::Delete,
    Action::Create,
    Action::Update,
    Action::NoOp,
];

/// Renders the comment.
pub fn markdown(plan: &Plan, revs: Option<&Revisions>, diffs: &Diffs<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let changes: Vec<&Step> = plan.steps.iter().filter(|s| s.action.is_change()).collect();
    let destructive = changes.iter().filter(|s| s.destructive).count();
    let against = revs.map_or(String::new(), |r| {
        format!(" — `{}` against `{}`", r.head_name(), r.base_name())
    });
    if changes.is_empty() {
        let _ = writeln!(out, "### hl plan: no changes{against}\n");
        let _ = writeln!(out, "Nothing in L0-L4 changes.");
    } else {
        let warn = if destructive > 0 {
            format!(" ⚠️ {destructive} destructive")
        } else {
            String::new()
        };
        let _ = writeln!(out, "### hl plan: {}{warn}{against}\n", short_summary(plan));
    }
    if revs.is_some_and(|r| r.dirty) {
        let _ = writeln!(
            out,
            "_The work tree had uncommitted changes; they are planned as part of HEAD._\n"
        );
    }
    if !changes.is_empty() {
        table(&mut out, plan);
    }
    if destructive > 0 {
        let _ = writeln!(out, "> [!WARNING]\n> {destructive} destructive change{} (replace or delete) need{} explicit approval when applied:", if destructive == 1 { "" } else { "s" }, if destructive == 1 { "s" } else { "" });
        for s in changes.iter().filter(|s| s.destructive) {
            let _ = writeln!(out, "> - **{}** `{}`", s.action.word(), s.address);
        }
        out.push('\n');
    }

    let mut shown: Vec<&Step> = Vec::new();
    for a in ORDER {
        shown.extend(plan.steps.iter().filter(|s| s.action == a && visible(s)));
    }
    let total = shown.len();
    let mut left_out = 0;
    for (i, s) in shown.iter().enumerate() {
        let block = details(s, diffs);
        if out.len() + block.len() + RESERVE > COMMENT_LIMIT {
            left_out = total - i;
            break;
        }
        out.push_str(&block);
    }
    if left_out > 0 {
        let _ = writeln!(out, "\n_… and {left_out} more node{} not shown: the comment would pass its size limit. Run `hl plan --against` locally for all of it._", if left_out == 1 { "" } else { "s" });
    }
    let checks = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Check)
        .count();
    if checks > 0 {
        let _ = writeln!(
            out,
            "\n<sub>{checks} L0 runway check{} will run before apply (`hl check`).</sub>",
            if checks == 1 { "" } else { "s" }
        );
    }
    out
}

/// Only the non-zero counts: "2 to update, 1 to replace".
fn short_summary(plan: &Plan) -> String {
    let c = plan.counts();
    let parts: Vec<String> = [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
    ]
    .iter()
    .filter_map(|a| {
        c.get(a)
            .filter(|n| **n > 0)
            .map(|n| format!("{n} to {}", a.word()))
    })
    .collect();
    parts.join(", ")
}

fn table(out: &mut String, plan: &Plan) {
    let _ = writeln!(
        out,
        "| layer | create | update | replace | delete |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for layer in Layer::ALL {
        let n = |a: Action| {
            plan.steps
                .iter()
                .filter(|s| s.layer == layer && s.action == a)
                .count()
        };
        let row = [
            n(Action::Create),
            n(Action::Update),
            n(Action::Replace),
            n(Action::Delete),
        ];
        if row.iter().all(|c| *c == 0) {
            continue;
        }
        let cell = |c: usize| {
            if c == 0 {
                "·".to_string()
            } else {
                c.to_string()
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            layer.title(),
            cell(row[0]),
            cell(row[1]),
            cell(row[2]),
            cell(row[3])
        );
    }
    out.push('\n');
}

fn details(s: &Step, diffs: &Diffs<'_>) -> String {
    let mut b = String::new();
    let sign = match s.action {
        Action::Create => "🟢 create",
        Action::Update => "🟡 update",
        Action::Replace => "🔴 replace",
        Action::Delete => "🔴 delete",
        Action::NoOp => "⚪ no-op",
        Action::Check => "check",
    };
    let mut extra = String::new();
    if s.will_build {
        extra.push_str(" (will build)");
    }
    let _ = writeln!(
        b,
        "<details><summary>{sign} <code>{}</code>{extra}</summary>\n",
        s.address
    );
    for c in &s.causes {
        let _ = writeln!(b, "- {}", escape(&cause_line(c)));
        if let Cause::File { path, old, new, .. } = c {
            if let Some(diff) = diffs.unified(path, *old, *new) {
                let fence = if diff.contains("```") { "~~~~" } else { "```" };
                let lines: Vec<&str> = diff.lines().collect();
                let cut = lines.len() > 80;
                let _ = writeln!(b, "\n  {fence}diff");
                for l in lines.iter().take(80) {
                    let _ = writeln!(b, "  {l}");
                }
                if cut {
                    let _ = writeln!(b, "  … {} more lines", lines.len() - 80);
                }
                let _ = writeln!(b, "  {fence}\n");
            }
        }
    }
    b.push_str("\n</details>\n");
    b
}

/// Keeps a cause's text from being read as markup.
fn escape(s: &str) -> String {
    s.replace('<', "&lt;").replace('>', "&gt;")
}
