//! `hl check`: the L0 runway. Runs the checks the planned changes need (or all with `--all`):
//! tools, environment variables, credential files, reachable hosts. Reads only.

use std::fmt::Write as _;

use clap::Args;
use hl_engine::{Action, Error};
use rayon::prelude::*;
use serde_json::json;

use crate::session::{Options, Session};

/// Arguments of `hl check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Run every check of the homelab, not only those the planned changes need.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    select: super::SelectArgs,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hl check`; exit 1 when a check that is not a warning fails.
pub fn run(opts: &Options, args: CheckArgs) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    let plan = s.selected_plan(&args.select.selector()?)?;
    s.save_stat_cache()?;
    let checks: Vec<_> = if args.all {
        s.graph
            .nodes()
            .filter(|n| n.address.kind() == "check")
            .collect()
    } else {
        plan.steps
            .iter()
            .filter(|st| st.action == Action::Check)
            .filter_map(|st| s.graph.get(&st.address))
            .collect()
    };
    let mut results: Vec<_> = checks
        .par_iter()
        .map(|n| (n.address.clone(), hl_rules::check::run(n, &s.lab.topology)))
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let failed = results.iter().filter(|(_, o)| !o.ok && !o.warning).count();
    if args.json {
        let v = json!({
            "format_version": 1,
            "environment": s.lab.topology.environment,
            "checks": results.iter().map(|(a, o)| json!({"address": a, "ok": o.ok, "warning": o.warning, "detail": o.detail})).collect::<Vec<_>>(),
            "failed": failed,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        let mut out = String::new();
        let env = s.lab.topology.environment.as_deref().unwrap_or("(unnamed)");
        let _ = writeln!(
            out,
            "L0 runway: {} checks for environment `{env}`",
            results.len()
        );
        for (a, o) in &results {
            let mark = match (o.ok, o.warning) {
                (true, _) => "ok  ",
                (false, true) => "warn",
                (false, false) => "FAIL",
            };
            let _ = writeln!(out, "  {mark}  {a}  {}", o.detail);
        }
        let _ = writeln!(
            out,
            "{}",
            if failed == 0 {
                "Runway clear.".to_string()
            } else {
                format!("{failed} checks failed: fix them before applying.")
            }
        );
        print!("{out}");
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
