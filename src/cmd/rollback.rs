//! `hl rollback ADDR`: switch a node back to the release it ran before (`previous`) and start
//! it again. The state records what now runs, so the next plan shows the repo's newer release
//! as an update, with the rollback as its cause.

use std::time::Duration;

use clap::Args;
use hl_engine::lock::Lock;
use hl_engine::{ApplyCtx, Digest, Error};

use crate::session::{find, hl_dir, state_path, Options, Session};

/// Arguments of `hl rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The node, e.g. compose:mosquitto@CHELSTY-INFRA.
    address: String,
    /// Take over a stale lock left by an apply that died.
    #[arg(long)]
    force_unlock: bool,
}

/// Runs `hl rollback`.
pub fn run(opts: &Options, args: RollbackArgs) -> Result<u8, Error> {
    let root = find(opts)?;
    let _lock = Lock::acquire(&hl_dir(&root), "hl rollback", args.force_unlock)?;
    let s = Session::open_at(opts, root)?;
    let addr = s.address(&args.address)?;
    s.save_stat_cache()?;
    let node = s.node(&addr)?;
    let mut record = s.state.get(&addr).cloned().ok_or_else(|| {
        Error::repo(
            format!("{addr} was never applied: nothing to roll back"),
            None,
            None,
        )
    })?;
    let rule = s.registry.rule(addr.kind())?;
    let transport = rule
        .host(node)
        .and_then(|h| hl_rules::hosts::transport(&s.lab.topology, &h));
    let ctx = ApplyCtx {
        artifact: None,
        output: Some(record.output),
        transport: transport.as_ref(),
        job: None,
        timeout: Duration::from_secs(300),
    };
    let now = rule.rollback(node, &ctx).map_err(|e| Error::Environment {
        message: e.message,
        help: None,
    })?;
    let output = Digest::parse_hex(&now).ok_or_else(|| {
        Error::Internal(format!("the host answered `{now}`, not a release digest"))
    })?;
    record.output = output;
    // The input is no longer the one that produced this release: the next plan re-applies.
    record.input = Digest::of(format!("rollback:{now}").as_bytes());
    record.via = "rollback".into();
    let mut state = s.state.clone();
    state.nodes.insert(addr.clone(), record);
    state.save(&state_path(&s.root))?;
    println!(
        "{addr} rolled back to release {}. `hl plan` shows the repo's release as an update.",
        output.short()
    );
    Ok(0)
}
