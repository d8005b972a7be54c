//! `hl build ADDR`: build a node's artifact into the cache. `--rebuild` ignores what is
//! cached; `--check` builds again and compares with the cached output, naming each file that
//! differs (a reproducibility check).

use std::collections::BTreeSet;

use clap::Args;
use hl_cache::Fetched;
use hl_engine::{Artifact, Digest, Error, Output, RealizeCtx};

use crate::session::{Options, Session};

/// Arguments of `hl build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The node, e.g. image:debian-12.
    address: String,
    /// Build even when the cache holds the output (and replace it).
    #[arg(long)]
    rebuild: bool,
    /// Build again and compare with the cached output; exit 1 when a file differs.
    #[arg(long, conflicts_with = "rebuild")]
    check: bool,
}

fn size(a: &Artifact) -> String {
    let bytes: usize = a.files.values().map(Vec::len).sum();
    format!(
        "{} file{}, {:.1} KiB",
        a.files.len(),
        if a.files.len() == 1 { "" } else { "s" },
        bytes as f64 / 1024.0
    )
}

/// Runs `hl build`.
pub fn run(opts: &Options, args: BuildArgs) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    let addr = s.address(&args.address)?;
    s.save_stat_cache()?;
    let node = s.node(&addr)?;
    let rule = s.registry.rule(addr.kind())?;
    let ev = &s.eval[&addr];
    let cached: Option<(Digest<Output>, Artifact)> = match s.caches.actions.get(ev.input.bytes())? {
        Fetched::Hit(o) => {
            let out = Digest::from_bytes(o);
            match s.caches.artifact(&out)? {
                Fetched::Hit(a) => Some((out, a)),
                Fetched::Evicted => {
                    eprintln!(
                        "warning: a corrupted cache object of {addr} was evicted; rebuilding it"
                    );
                    None
                }
                Fetched::Miss => None,
            }
        }
        _ => None,
    };
    let build = || -> Result<Artifact, Error> {
        eprintln!("{addr}: building");
        rule.realize(
            node,
            &RealizeCtx {
                files: &s.files,
                inputs: &ev.inputs,
            },
        )
    };
    if args.check {
        let (reference, first_build) = match cached {
            Some((_, a)) => (a, false),
            None => {
                let a = build()?;
                let out = s.caches.put_artifact(&a)?;
                s.caches.actions.put(ev.input.bytes(), out.bytes())?;
                (a, true)
            }
        };
        let again = build()?;
        let names: BTreeSet<&String> = reference.files.keys().chain(again.files.keys()).collect();
        let differ: Vec<&String> = names
            .into_iter()
            .filter(|n| reference.files.get(*n) != again.files.get(*n))
            .collect();
        if differ.is_empty() {
            println!(
                "{addr}: reproducible: {} the same, output {}",
                if first_build {
                    "two builds are"
                } else {
                    "the rebuild and the cached output are"
                },
                again.digest().short()
            );
            return Ok(0);
        }
        let (n, one) = (differ.len(), differ.len() == 1);
        println!(
            "{addr}: NOT reproducible: {n} file{} differ{}:",
            if one { "" } else { "s" },
            if one { "s" } else { "" }
        );
        for n in differ {
            let what = match (reference.files.get(n), again.files.get(n)) {
                (Some(_), None) => "only in the cached output",
                (None, Some(_)) => "only in the rebuild",
                _ => "content differs",
            };
            println!("  {n}: {what}");
        }
        return Ok(1);
    }
    if let (Some((out, a)), false) = (&cached, args.rebuild) {
        println!("{addr}: cached, output {} ({})", out.short(), size(a));
        return Ok(0);
    }
    let a = build()?;
    let out = s.caches.put_artifact(&a)?;
    s.caches.actions.put(ev.input.bytes(), out.bytes())?;
    println!("{addr}: built, output {} ({})", out.short(), size(&a));
    Ok(0)
}
