//! `hl state`: the recorded state. `adopt` records the desired hashes as applied and changes
//! nothing else: for a homelab that already runs as the repo describes (as `terraform import`).

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use hl_engine::{Error, Record};

use crate::session::{ensure_hl_dir, state_path, Options, Session};

/// `hl state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Record the repo's desired hashes as applied, for nodes that already run as described.
    Adopt(AdoptArgs),
    /// List the recorded nodes.
    List,
}

/// Arguments of `hl state adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    #[command(flatten)]
    select: super::SelectArgs,
}

/// Runs an `hl state` subcommand.
pub fn run(opts: &Options, cmd: StateCommand) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    match cmd {
        StateCommand::List => {
            s.save_stat_cache()?;
            let mut out = String::new();
            for (a, r) in &s.state.nodes {
                let _ = writeln!(
                    out,
                    "{a}  {}  output {}  (via {})",
                    r.layer,
                    r.output.short(),
                    r.via
                );
            }
            if s.state.nodes.is_empty() {
                out.push_str("The state is empty: nothing applied or adopted yet.\n");
            }
            print!("{out}");
            Ok(0)
        }
        StateCommand::Adopt(args) => adopt(&s, args),
    }
}

fn adopt(s: &Session, args: AdoptArgs) -> Result<u8, Error> {
    let sel = args.select.selector()?;
    let mut known = s.graph.addresses();
    known.extend(s.state.nodes.keys());
    sel.check_targets(&known)?;
    s.save_stat_cache()?;
    let mut state = s.state.clone();
    let mut adopted = 0;
    for node in s.graph.nodes() {
        let rule = s.registry.rule(node.address.kind())?;
        if !rule.stateful() || !sel.matches(&node.address, node.layer, &node.labels) {
            continue;
        }
        let ev = &s.eval[&node.address];
        // Keep the recorded content of each input, so `hl why` can show changed lines later.
        for p in ev.files.keys() {
            s.caches.store.put(&s.files.read(p)?)?;
        }
        let record = Record::of(node, rule.version(), ev, "adopt");
        if state.nodes.get(&node.address) != Some(&record) {
            adopted += 1;
        }
        state.nodes.insert(node.address.clone(), record);
    }
    ensure_hl_dir(&s.root)?;
    state.save(&state_path(&s.root))?;
    println!(
        "Adopted {adopted} nodes ({} recorded in all). Nothing else was changed.",
        state.nodes.len()
    );
    Ok(0)
}
