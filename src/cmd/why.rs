//! `hl why ADDR`: the chain from each changed file, through every hash it moved, to this node,
//! with the changed lines.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use clap::Args;
use hl_engine::{Action, Address, Cause, Content, Digest, Error, RepoPath};

use crate::render::cause_line;
use crate::session::{Options, Session};

/// Arguments of `hl why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The node to explain, e.g. compose:mosquitto@SATURN.
    address: String,
}

/// Runs `hl why`.
pub fn run(opts: &Options, args: WhyArgs) -> Result<u8, Error> {
    let session = Session::open(opts)?;
    let addr = session.address(&args.address)?;
    session.save_stat_cache()?;
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    explain(&session, &addr, 0, &mut seen, &mut out)?;
    print!("{out}");
    Ok(0)
}

fn explain(
    s: &Session,
    addr: &Address,
    depth: usize,
    seen: &mut BTreeSet<Address>,
    out: &mut String,
) -> Result<(), Error> {
    let pad = "  ".repeat(depth);
    let Some(step) = s.plan.step(addr) else {
        let _ = writeln!(out, "{pad}{addr}: not in the plan");
        return Ok(());
    };
    let mut head = format!("{pad}{addr}: {}", step.action.word());
    if let (Some(old), Some(new)) = (step.prior_input, step.input) {
        if old != new {
            let _ = write!(head, "  (input {} -> {})", old.short(), new.short());
        }
    }
    if step.will_build {
        head.push_str("  (will build)");
    }
    let _ = writeln!(out, "{head}");
    if !seen.insert(addr.clone()) {
        let _ = writeln!(out, "{pad}  (explained above)");
        return Ok(());
    }
    if step.action == Action::NoOp && step.causes.is_empty() {
        let _ = writeln!(
            out,
            "{pad}  nothing changed: its input hash is the one recorded"
        );
        return Ok(());
    }
    for cause in &step.causes {
        let _ = writeln!(out, "{pad}  because {}", cause_line(cause));
        match cause {
            Cause::File { path, old, new, .. } => {
                diff(s, path, *old, *new, &format!("{pad}    "), out)?
            }
            Cause::Dependency { address, old, new } => {
                let short = |d: &Option<Digest<hl_engine::Output>>| {
                    d.map_or("(none)".into(), |d| d.short())
                };
                let _ = writeln!(out, "{pad}    output {} -> {}", short(old), short(new));
                explain(s, address, depth + 2, seen, out)?;
            }
            Cause::Placement { address, .. } => explain(s, address, depth + 2, seen, out)?,
            _ => {}
        }
    }
    Ok(())
}

/// The changed lines of a file: the recorded content comes from the store (kept there by
/// `hl state adopt` and `hl apply`), the current content from the work tree.
fn diff(
    s: &Session,
    path: &RepoPath,
    old: Option<Digest<Content>>,
    new: Option<Digest<Content>>,
    pad: &str,
    out: &mut String,
) -> Result<(), Error> {
    match crate::render::Diffs::recorded(&s.caches.store, &s.files).unified(path, old, new) {
        Some(text) => {
            for line in text.lines().take(200) {
                let _ = writeln!(out, "{pad}{line}");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "{pad}(the recorded content of {path} is not in the cache; only its hash is known)"
            );
        }
    }
    Ok(())
}
