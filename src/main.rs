//! `hl`: plan and converge a homelab kept as one Git monorepo.
//!
//! The CLI is thin: it turns arguments into a checked request, runs the engine and renders what
//! comes back. Plans and JSON go to stdout; notes, progress and errors to stderr.

mod against;
mod apply;
mod cmd;
mod diag;
mod loadcache;
mod memory;
mod planindex;
mod planmemo;
mod planpatch;
mod render;
mod saved;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A content-addressed build and plan engine for homelabs kept as one Git monorepo.
#[derive(Debug, Parser)]
#[command(name = "hl", version, about, max_term_width = 100)]
struct Cli {
    /// Run as if started in DIR (the homelab repo, or a folder inside it).
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    repo: Option<PathBuf>,

    /// Where the content-addressed cache lives [default: $XDG_CACHE_HOME/hl or ~/.cache/hl].
    #[arg(long, global = true, env = "HL_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Converge the homelab: the plan, approval, the L0 runway, then every change in parallel.
    Apply(cmd::apply::ApplyArgs),
    /// Switch a node back to the release it ran before and start it again.
    Rollback(cmd::rollback::RollbackArgs),
    /// Build a node's artifact into the cache (--rebuild ignores the cache, --check compares).
    Build(cmd::build::BuildArgs),
    /// Remove cache objects that neither the state nor the current plan reach.
    Gc(cmd::gc::GcArgs),
    /// Show the minimal plan that makes the homelab match the repo (exit 0: no changes, 2: changes, 1: error).
    Plan(cmd::plan::PlanArgs),
    /// Trace why a node is in the plan: from each changed file, through every hash it moved.
    Why(cmd::why::WhyArgs),
    /// Run the L0 runway checks the planned changes need (tools, env, credentials, hosts).
    Check(cmd::check::CheckArgs),
    /// Print the dependency graph as Graphviz dot or Mermaid.
    Graph(cmd::graph::GraphArgs),
    /// Show one node: kind, layer, inputs, edges and hashes.
    Show(cmd::show::ShowArgs),
    /// Inspect or edit the recorded state.
    #[command(subcommand)]
    State(cmd::state::StateCommand),
}

/// mimalloc: a plan of a large homelab makes millions of small allocations (paths, records,
/// nodes) and frees them all at exit; glibc's allocator spent a fifth of a no-op plan on them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HL_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let ctx = session::Options {
        repo: cli.repo,
        cache_dir: cli.cache_dir,
    };
    let result = match cli.command {
        Command::Plan(a) => cmd::plan::run(&ctx, a),
        Command::Apply(a) => cmd::apply::run(&ctx, a),
        Command::Rollback(a) => cmd::rollback::run(&ctx, a),
        Command::Build(a) => cmd::build::run(&ctx, a),
        Command::Gc(a) => cmd::gc::run(&ctx, a),
        Command::Why(a) => cmd::why::run(&ctx, a),
        Command::Check(a) => cmd::check::run(&ctx, a),
        Command::Graph(a) => cmd::graph::run(&ctx, a),
        Command::Show(a) => cmd::show::run(&ctx, a),
        Command::State(c) => cmd::state::run(&ctx, c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            diag::report(&e);
            ExitCode::from(1)
        }
    }
}
