//! Approval: destructive steps (replace, delete) are applied only when approved by name
//! (`--approve ADDR`, globs allowed) or confirmed at a terminal; `--yes` approves the rest, never
//! a destruction. Without a terminal nothing is assumed: the run stops and says what to pass.

use std::io::{BufRead, IsTerminal, Write};

use globset::Glob;
use hl_engine::{Error, Plan};

fn ask(question: &str) -> bool {
    eprint!("{question} ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == "yes"
}

/// Checks the approvals of a plan; returns an error naming what is missing.
pub fn check(plan: &Plan, approved: &[String], yes: bool) -> Result<(), Error> {
    let globs: Vec<_> = approved
        .iter()
        .map(|a| {
            Glob::new(a)
                .map(|g| g.compile_matcher())
                .map_err(|e| Error::repo(format!("bad --approve `{a}`: {e}"), None, None))
        })
        .collect::<Result<_, _>>()?;
    let tty = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let unapproved: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.destructive && !globs.iter().any(|g| g.is_match(s.address.to_string())))
        .map(|s| format!("{} {}", s.action.word(), s.address))
        .collect();
    if !unapproved.is_empty() {
        if !tty {
            return Err(Error::Environment {
                message: format!("{} destructive step{} not approved: {}", unapproved.len(), if unapproved.len() == 1 { " is" } else { "s are" }, unapproved.join(", ")),
                help: Some("approve each by name: --approve ADDR (globs allowed); --yes never approves a destruction".into()),
            });
        }
        for u in &unapproved {
            if !ask(&format!("{u}: this destroys it. Type `yes` to approve:")) {
                return Err(Error::Environment {
                    message: format!("not approved: {u}"),
                    help: None,
                });
            }
        }
    }
    let changes = plan
        .steps
        .iter()
        .filter(|s| s.action.is_change() && !s.destructive)
        .count();
    if changes > 0 && !yes {
        if !tty {
            return Err(Error::Environment {
                message: format!(
                    "{changes} change{} to apply and no terminal to confirm",
                    if changes == 1 { "" } else { "s" }
                ),
                help: Some("pass --yes to apply the non-destructive changes without asking".into()),
            });
        }
        if !ask(&format!(
            "Apply {changes} change{}? Type `yes`:",
            if changes == 1 { "" } else { "s" }
        )) {
            return Err(Error::Environment {
                message: "not applied".into(),
                help: None,
            });
        }
    }
    Ok(())
}
