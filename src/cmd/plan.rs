//! `hl plan`: desired (the repo) against recorded (the state), per node, with causes; or, with
//! `--against`, the desired state of two revisions compared (for CI: no state, no network).

use clap::Args;
use hl_engine::{Error, StatsSnapshot};
use serde_json::json;

use crate::render;
use crate::session::{Options, Session};

/// Arguments of `hl plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    select: super::SelectArgs,
    /// Print the plan as JSON (schema: docs/plan-json.md).
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the plan as a pull-request comment (GitHub, Gitea and Forgejo markdown).
    #[arg(long)]
    markdown: bool,
    /// Print the work done: files statted, hashed and read, git blobs read, nodes realized,
    /// loaders run.
    #[arg(long)]
    stats: bool,
    /// Compare against this git revision's desired state instead of the recorded state
    /// (a branch, tag, sha, origin/main, or main...HEAD for the merge base). Reads git objects
    /// only: no state, no network, nothing written under .hl/.
    #[arg(long, value_name = "REV")]
    against: Option<String>,
    /// With --against: the revision to plan [default: the work tree, uncommitted changes included].
    #[arg(long, value_name = "REV", requires = "against")]
    head: Option<String>,
    /// Ask each recorded target what it actually runs, and plan what drifted as updates.
    #[arg(long, conflicts_with = "against")]
    refresh: bool,
    /// Save the plan to FILE for `hl apply FILE`: each step with the input it was planned with
    /// and the state it was planned against.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        conflicts_with = "against"
    )]
    out: Option<std::path::PathBuf>,
}

/// Runs `hl plan`; the exit code is 0 for no changes and 2 for changes.
pub fn run(opts: &Options, args: PlanArgs) -> Result<u8, Error> {
    if let Some(base) = &args.against {
        return against(opts, &args, base);
    }
    let selector = args.select.selector()?;
    // The common case, nothing moved since the last plan: its plan, recalled.
    let plain = !args.refresh && args.out.is_none() && !args.markdown && selector.is_empty();
    let root = crate::session::find(opts)?;
    let (files, stat, loadcache) = if plain {
        match crate::planmemo::recall(opts, &root)? {
            Ok(memo) => return recalled(&args, &root, memo),
            Err(missed) => (missed.files, missed.stat, missed.loadcache),
        }
    } else {
        (
            std::sync::Arc::new(hl_engine::FileSet::new(&root)?),
            None,
            None,
        )
    };
    let mut session = Session::open_with(opts, root, files, stat, loadcache)?;
    if args.refresh {
        super::refresh::apply_drift(&mut session)?;
    }
    let plan = session.selected_plan(&selector)?;
    // The caches and the plan's index are written side by side; the memo, last, names both.
    let (saved, index) = rayon::join(
        || crate::session::phase("save", || session.save_stat_cache()),
        || plain.then(|| crate::session::phase("index", || crate::planmemo::index(&session))),
    );
    let saved = saved?;
    if let Some(index) = index {
        crate::session::phase("keep", || crate::planmemo::keep(&session, saved, index));
    }
    if let Some(out) = &args.out {
        crate::saved::SavedPlan::of(&plan, &session.root).save(out)?;
        eprintln!(
            "saved the plan to {}: apply it with `hl apply {}`",
            out.display(),
            out.display()
        );
    }
    let stats = session.files.stats.snapshot();
    if args.markdown {
        let diffs = render::Diffs::recorded(&session.caches.store, &session.files);
        print!("{}", render::markdown(&plan, None, &diffs));
        if args.stats {
            print_stats(session.graph.len(), stats, false, None);
        }
        let code = if plan.has_changes() { 2 } else { 0 };
        std::mem::forget(session);
        return Ok(code);
    }
    let view = View {
        root: &session.root,
        environment: session.lab.topology.environment.as_deref(),
        notes: &session.lab.notes,
        nodes: session.graph.len(),
        recalled: false,
        patched: None,
    };
    let code = show(&args, &plan, &view, stats)?;
    // The process ends right after this: freeing a large homelab's graph, evaluation and
    // state piece by piece would only cost time (a tenth of a no-op plan on a big tree).
    std::mem::forget(session);
    Ok(code)
}

/// Shows a plan recalled from the memo (see [`crate::planmemo`]).
fn recalled(
    args: &PlanArgs,
    root: &std::path::Path,
    memo: crate::planmemo::Recalled,
) -> Result<u8, Error> {
    crate::session::set_root(root);
    let topology = hl_rules::Topology {
        environment: memo.environment.clone(),
        ..Default::default()
    };
    hl_rules::check::environment_guard(&topology, std::env::var("HL_ENV").ok().as_deref())?;
    for note in &memo.notes {
        eprintln!("note: {note}");
    }
    let view = View {
        root,
        environment: memo.environment.as_deref(),
        notes: &memo.notes,
        nodes: memo.nodes,
        recalled: memo.patched.is_none(),
        patched: memo.patched,
    };
    show(args, &memo.plan, &view, memo.files.stats.snapshot())
}

/// What the human and JSON views show besides the plan.
struct View<'a> {
    root: &'a std::path::Path,
    environment: Option<&'a str>,
    notes: &'a [String],
    nodes: usize,
    /// Whether the plan was recalled from the memo.
    recalled: bool,
    /// When the memo's plan was patched: the nodes evaluated again.
    patched: Option<usize>,
}

/// Prints the plan, human or JSON; returns the exit code (0 no changes, 2 changes).
fn show(
    args: &PlanArgs,
    plan: &hl_engine::Plan,
    view: &View,
    stats: StatsSnapshot,
) -> Result<u8, Error> {
    if args.json {
        let mut v = render::json(
            plan,
            &view.root.display().to_string(),
            view.environment,
            view.notes,
            args.stats.then_some(stats),
        );
        if args.stats {
            v["stats"]["plan_recalled"] = view.recalled.into();
            v["stats"]["plan_patched"] = view.patched.into();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        print!("{}", render::human(plan));
    }
    if args.stats {
        print_stats(view.nodes, stats, view.recalled, view.patched);
    }
    Ok(if plan.has_changes() { 2 } else { 0 })
}

fn print_stats(nodes: usize, s: StatsSnapshot, recalled: bool, patched: Option<usize>) {
    let how = match (recalled, patched) {
        (true, _) => "; plan recalled: nothing moved since the last one".to_string(),
        (_, Some(n)) => format!("; plan patched: {n} nodes evaluated again"),
        _ => String::new(),
    };
    eprintln!(
        "stats: {nodes} nodes, {} files statted, {} files hashed, {} files read, {} git blobs read, {} nodes realized, {} loaders run{how}",
        s.files_statted, s.files_hashed, s.files_read, s.blobs_read, s.nodes_realized, s.loaders_run,
    );
}

fn against(opts: &Options, args: &PlanArgs, base: &str) -> Result<u8, Error> {
    let cmp = crate::against::compare(opts, base, args.head.as_deref())?;
    let sel = args.select.selector()?;
    let mut plan = cmp.plan.clone();
    if !sel.is_empty() {
        let known = cmp.head_graph.addresses();
        sel.check_targets(&known)?;
        let keep = sel.select(&cmp.head_graph, &cmp.plan, |_| Default::default());
        plan.retain(&keep);
    }
    let revisions = render::Revisions {
        base: cmp.base.0.clone(),
        base_commit: cmp.base.1.clone(),
        head: cmp.head.0.clone(),
        head_commit: cmp.head.1.clone(),
        dirty: cmp.dirty,
    };
    if cmp.dirty && !args.json {
        eprintln!("note: the work tree has uncommitted changes; they are planned as part of HEAD");
    }
    for note in &cmp.head_lab.notes {
        eprintln!("note: {note}");
    }
    let env = cmp.head_lab.topology.environment.as_deref();
    if args.json {
        let mut v = render::json(
            &plan,
            &cmp.head_files.root().display().to_string(),
            env,
            &cmp.head_lab.notes,
            args.stats.then_some(cmp.stats),
        );
        v["revisions"] = json!(revisions);
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else if args.markdown {
        let diffs = render::Diffs::between(&cmp.base_files, &cmp.head_files);
        print!("{}", render::markdown(&plan, Some(&revisions), &diffs));
    } else {
        println!(
            "Plan of {} against {}:\n",
            revisions.head_name(),
            revisions.base_name()
        );
        print!("{}", render::human(&plan));
    }
    if args.stats {
        print_stats(cmp.head_graph.len(), cmp.stats, false, None);
    }
    Ok(if plan.has_changes() { 2 } else { 0 })
}
