//! `hl apply`: show the plan, get approval, run the L0 runway, converge in parallel, record
//! every node as it finishes, and end with a summary. Interrupted or failed, running it again
//! finishes the job without redoing what was recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use hl_engine::events::{EventLog, Severity};
use hl_engine::lock::Lock;
use hl_engine::scheduler::{self, Event, Options as SchedOptions};
use hl_engine::{Action, Address, Error, Plan};
use serde_json::json;

use crate::apply::{self, progress::Progress, Done, Env};
use crate::render;
use crate::session::{find, hl_dir, state_path, Options, Session};

/// Arguments of `hl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    select: super::SelectArgs,
    /// Apply the non-destructive changes without asking (never approves a replace or delete).
    #[arg(long)]
    yes: bool,
    /// Approve a destructive step (replace or delete) by address or glob; repeatable.
    #[arg(long, value_name = "ADDR|GLOB")]
    approve: Vec<String>,
    /// At most this many steps at once.
    #[arg(short = 'j', long, default_value_t = 4)]
    jobs: usize,
    /// At most this many steps at once on one host.
    #[arg(long, default_value_t = 2)]
    per_host: usize,
    /// Retries of a transient fault (connection refused, timeout), with backoff.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Seconds each remote command may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Apply to the hosts that answer and skip the others (offline-first hosts are always
    /// skipped with a warning when they do not answer).
    #[arg(long)]
    skip_unreachable: bool,
    /// Take over a stale lock left by an apply that died.
    #[arg(long)]
    force_unlock: bool,
    /// Ask each target what it runs first, and converge what drifted.
    #[arg(long)]
    refresh: bool,
    /// With a saved plan: refuse the whole plan when any step is stale, instead of only those.
    #[arg(long, requires = "plan_file")]
    all_or_nothing: bool,
    /// A plan saved with `hl plan -o FILE`: apply exactly its steps.
    #[arg(value_name = "PLAN_FILE")]
    plan_file: Option<std::path::PathBuf>,
}

/// Runs `hl apply`. Exit 0: all applied; 1: something failed or was refused; 130: interrupted.
pub fn run(opts: &Options, args: ApplyArgs) -> Result<u8, Error> {
    let root = find(opts)?;
    let lock = Lock::acquire(&hl_dir(&root), "hl apply", args.force_unlock)?;
    if let Some(h) = &lock.took_over {
        eprintln!("warning: took over the stale lock of {h}");
    }
    let mut session = Session::open_at(opts, root)?;
    if args.refresh {
        super::refresh::apply_drift(&mut session)?;
    }
    let mut plan = session.selected_plan(&args.select.selector()?)?;
    session.save_stat_cache()?;
    let mut refused = BTreeMap::new();
    if let Some(file) = &args.plan_file {
        let saved = crate::saved::SavedPlan::load(file)?;
        let (narrowed, stale) = saved.narrow(&plan, &session.state);
        for (a, why) in &stale {
            eprintln!("refused {a}: {why}");
        }
        if !stale.is_empty() && args.all_or_nothing {
            return Err(Error::Environment {
                message: format!("{} step{} of the saved plan are stale; --all-or-nothing refuses the whole plan", stale.len(), if stale.len() == 1 { "" } else { "s" }),
                help: Some("plan again (`hl plan -o FILE`) and review the new plan".into()),
            });
        }
        eprintln!(
            "saved plan {}: {} steps still valid, {} refused",
            file.display(),
            narrowed
                .steps
                .iter()
                .filter(|s| s.action.is_change())
                .count(),
            stale.len()
        );
        plan = narrowed;
        refused = stale;
    }
    print!("{}", render::human(&plan));
    if !plan.has_changes() {
        return Ok(if refused.is_empty() { 0 } else { 1 });
    }
    apply::approve::check(&plan, &args.approve, args.yes)?;

    let topology = session.lab.topology.clone();
    let runway = apply::runway::run(&plan, &session.graph, &topology);
    for (a, why) in &runway.failed {
        eprintln!("runway: FAIL {a}: {why}");
    }
    if !runway.failed.is_empty() {
        return Err(Error::Environment {
            message: format!(
                "the L0 runway failed ({} checks): nothing was changed",
                runway.failed.len()
            ),
            help: Some(
                "fix what the checks name (`hl check` runs them alone), then apply again".into(),
            ),
        });
    }
    let mut skipped_hosts: BTreeMap<String, String> = BTreeMap::new();
    let mut fatal = Vec::new();
    for (host, (why, offline_first)) in &runway.unreachable {
        if *offline_first || args.skip_unreachable {
            eprintln!("warning: {host} is unreachable, its steps are skipped: {why}");
            skipped_hosts.insert(host.clone(), why.clone());
        } else {
            fatal.push(format!("{host} ({why})"));
        }
    }
    if !fatal.is_empty() {
        return Err(Error::Environment {
            message: format!("unreachable: {}; nothing was changed", fatal.join(", ")),
            help: Some(
                "bring it back, or pass --skip-unreachable to apply to the hosts that answer"
                    .into(),
            ),
        });
    }

    let control = hl_rules::hosts::control(&topology);
    let (events_dir, control_name) = match control {
        Some((name, h)) if h.transport.as_deref() == Some("local") => (
            std::path::PathBuf::from(&h.runtime_root).join("events"),
            name.clone(),
        ),
        Some((name, _)) => (hl_dir(&session.root).join("events"), name.clone()),
        None => (hl_dir(&session.root).join("events"), "control".to_string()),
    };
    let transports: HashMap<String, hl_engine::Transport> = topology
        .hosts
        .keys()
        .filter_map(|h| hl_rules::hosts::transport(&topology, h).map(|t| (h.clone(), t)))
        .collect();
    let env = Arc::new(Env {
        registry: hl_rules::registry(),
        files: session.files.clone(),
        caches: session.caches.clone(),
        nodes: session
            .graph
            .nodes()
            .map(|n| (n.address.clone(), n.clone()))
            .collect(),
        old: session
            .state
            .nodes
            .iter()
            .map(|(a, r)| (a.clone(), r.clone()))
            .collect(),
        eval: session.eval.clone(),
        input_deps: apply::input_deps(&session.graph),
        transports,
        outputs: Mutex::new(HashMap::new()),
        timeout: Duration::from_secs(args.timeout),
    });
    let (steps, unreached) = split_unreachable(&plan, &env, &skipped_hosts);
    let jobs = apply::jobs(&env, &session.graph, &steps);
    let log = EventLog::new(events_dir);
    let mut progress = Progress::new(jobs.len(), log, control_name);
    for (a, host) in &unreached {
        progress.emit("node_offline", Severity::Warning, a, json!({"host": host}));
    }
    eprintln!(
        "Applying {} steps (correlation id {}):",
        jobs.len(),
        progress.log().correlation_id()
    );

    let mut state = session.state.clone();
    let path = state_path(&session.root);
    let mut journal = hl_engine::state::Journal::open(&path)?;
    let mut save_error: Option<Error> = None;
    let sched = SchedOptions {
        jobs: args.jobs,
        per_host: args.per_host,
        retries: args.retries,
        ..SchedOptions::default()
    };
    let summary = scheduler::run(jobs, &sched, |ev| {
        progress.on(&ev);
        if let Event::Finished {
            address,
            result: Ok(done),
            ..
        } = &ev
        {
            let record = match done {
                Done::Recorded(r) => {
                    state.nodes.insert(address.clone(), (**r).clone());
                    Some(&**r)
                }
                Done::Deleted => {
                    state.nodes.remove(address);
                    None
                }
            };
            // Journaled as each node finishes: a crash loses nothing that finished.
            if let Err(e) = journal.record(address, record) {
                save_error.get_or_insert(e);
            }
        }
    });
    if let Some(e) = save_error {
        return Err(e);
    }
    drop(journal);
    state.save(&path)?;
    progress.finish();
    drop(lock);
    print_summary(&summary, &unreached);
    for (a, why) in &refused {
        println!("  refused  {a}: {why}");
    }
    Ok(if summary.interrupted {
        130
    } else if summary.failed.is_empty()
        && summary.skipped.is_empty()
        // An offline-first host that is away is expected: it only warns.
        && unreached.values().all(|h| topology.hosts.get(h).is_some_and(|x| x.offline_first))
        && refused.is_empty()
    {
        0
    } else {
        1
    })
}

/// Leaves out the steps on unreachable hosts, and what depends on them.
fn split_unreachable(
    plan: &Plan,
    env: &Env,
    down: &BTreeMap<String, String>,
) -> (Vec<hl_engine::Step>, BTreeMap<Address, String>) {
    let mut out = BTreeMap::new();
    for s in &plan.steps {
        if let Some(h) = env.host_of(&s.address).filter(|h| down.contains_key(h)) {
            if s.action.is_change() {
                out.insert(s.address.clone(), h);
            }
        }
    }
    let steps = plan
        .steps
        .iter()
        .filter(|s| s.action != Action::Check && !out.contains_key(&s.address))
        .cloned()
        .collect();
    (steps, out)
}

fn print_summary(s: &scheduler::Summary, unreached: &BTreeMap<Address, String>) {
    let mut parts = vec![format!("{} applied", s.succeeded.len())];
    if !s.failed.is_empty() {
        parts.push(format!("{} failed", s.failed.len()));
    }
    if !s.skipped.is_empty() {
        parts.push(format!("{} skipped after a failure", s.skipped.len()));
    }
    if !unreached.is_empty() {
        parts.push(format!("{} skipped on unreachable hosts", unreached.len()));
    }
    if !s.not_started.is_empty() {
        parts.push(format!("{} not started (interrupted)", s.not_started.len()));
    }
    println!("\nApply: {}.", parts.join(", "));
    for (a, why) in &s.failed {
        println!("  failed   {a}: {why}");
    }
    for (a, because) in &s.skipped {
        println!("  skipped  {a}: depends on {because}, which failed");
    }
    let hosts: BTreeSet<&String> = unreached.values().collect();
    for h in hosts {
        let nodes: Vec<String> = unreached
            .iter()
            .filter(|(_, x)| *x == h)
            .map(|(a, _)| a.to_string())
            .collect();
        println!("  unreachable {h}: {}", nodes.join(", "));
    }
    for a in &s.not_started {
        println!("  not started {a}");
    }
    if !s.failed.is_empty() || !s.skipped.is_empty() || !unreached.is_empty() || s.interrupted {
        println!("What finished is recorded; run `hl apply` again to finish the rest.");
    }
}
