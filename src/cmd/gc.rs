//! `hl gc`: remove what neither the state nor the current plan reaches from the cache: the
//! artifacts (and every file in them) that are recorded or planned, the recorded and current
//! contents of input files (for `hl why`), and their action-cache entries are kept.

use std::collections::HashSet;

use clap::Args;
use hl_cache::{Fetched, Hash};
use hl_engine::{Digest, Error, Output};

use crate::session::{Options, Session};

/// Arguments of `hl gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

fn keep_artifact(s: &Session, out: &Digest<Output>, keep: &mut HashSet<Hash>) -> Result<(), Error> {
    keep.insert(*out.bytes());
    if let Fetched::Hit(m) = s.caches.store.get(out.bytes())? {
        for line in String::from_utf8_lossy(&m).lines() {
            if let Some(d) = line
                .split_once('\t')
                .and_then(|(_, h)| Digest::<hl_engine::Content>::parse_hex(h))
            {
                keep.insert(*d.bytes());
            }
        }
    }
    Ok(())
}

/// Runs `hl gc`.
pub fn run(opts: &Options, args: GcArgs) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    s.save_stat_cache()?;
    let mut keep: HashSet<Hash> = HashSet::new();
    let mut keep_ac: HashSet<Hash> = HashSet::new();
    for r in s.state.nodes.values() {
        keep_artifact(&s, &r.output, &mut keep)?;
        keep.extend(r.files.get()?.values().map(|d| *d.bytes()));
        keep_ac.insert(*r.input.bytes());
    }
    for ev in s.eval.values() {
        keep_artifact(&s, &ev.output, &mut keep)?;
        keep.extend(ev.files.values().map(|d| *d.bytes()));
        keep_ac.insert(*ev.input.bytes());
    }
    let (mut freed, mut objects, mut kept, mut kept_bytes) = (0u64, 0usize, 0usize, 0u64);
    for (key, size) in s.caches.store.list()? {
        if keep.contains(&key) {
            kept += 1;
            kept_bytes += size;
            continue;
        }
        if !args.dry_run {
            s.caches.store.remove(&key)?;
        }
        freed += size;
        objects += 1;
    }
    let entries = s
        .caches
        .actions
        .retain(|key| keep_ac.contains(key), args.dry_run)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "gc: {} {objects} objects ({:.2} MiB) and {entries} action entries; kept {kept} objects ({:.2} MiB) that the state and the plan reach",
        if args.dry_run { "would remove" } else { "removed" },
        mib(freed),
        mib(kept_bytes)
    );
    Ok(0)
}
