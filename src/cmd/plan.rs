//! `hl plan`: desired (the repo) against recorded (the state), per node, with causes.

use clap::Args;
use hl_engine::Error;

use crate::render;
use crate::session::{Options, Session};

/// Arguments of `hl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    select: super::SelectArgs,
    /// Print the plan as JSON (schema: docs/plan-json.md).
    #[arg(long)]
    json: bool,
    /// Print the work done: files statted, hashed and read, nodes realized.
    #[arg(long)]
    stats: bool,
}

/// Runs `hl plan`; the exit code is 0 for no changes and 2 for changes.
pub fn run(opts: &Options, args: PlanArgs) -> Result<u8, Error> {
    let session = Session::open(opts)?;
    let plan = session.selected_plan(&args.select.selector()?)?;
    session.save_stat_cache()?;
    let stats = session.files.stats.snapshot();
    if args.json {
        let v = render::json(
            &plan,
            &session.root.display().to_string(),
            session.lab.topology.environment.as_deref(),
            &session.lab.notes,
            args.stats.then_some(stats),
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        print!("{}", render::human(&plan));
    }
    if args.stats {
        eprintln!(
            "stats: {} nodes, {} files statted, {} files hashed, {} files read, {} nodes realized",
            session.graph.len(),
            stats.files_statted,
            stats.files_hashed,
            stats.files_read,
            stats.nodes_realized
        );
    }
    Ok(if plan.has_changes() { 2 } else { 0 })
}
