//! `hl show ADDR`: everything hl knows about one node.

use std::fmt::Write as _;

use clap::Args;
use hl_engine::{canonical_pretty, Error};
use serde_json::json;

use crate::session::{Options, Session};

/// Arguments of `hl show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The node, e.g. vm:CHELSTY-HA.
    address: String,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `hl show`.
pub fn run(opts: &Options, args: ShowArgs) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    let addr = s.address(&args.address)?;
    s.save_stat_cache()?;
    let node = s.graph.get(&addr);
    let ev = s.eval.get(&addr);
    let rec = s.state.get(&addr);
    let step = s.plan.step(&addr);
    let deps: Vec<_> = s
        .graph
        .deps(&addr)
        .into_iter()
        .map(|(a, k)| json!({"address": a, "edge": k}))
        .collect();
    let dependents: Vec<_> = s
        .graph
        .dependents(&addr)
        .into_iter()
        .map(|(a, k)| json!({"address": a, "edge": k}))
        .collect();
    let v = json!({
        "address": addr,
        "kind": addr.kind(),
        "layer": node.map(|n| n.layer).or(rec.map(|r| r.layer)),
        "declared_in": node.map(|n| n.origin.to_string()),
        "labels": node.map(|n| &n.labels),
        "params": node.map(|n| &n.params),
        "files": ev.map(|e| &e.files),
        "dependencies": deps,
        "dependents": dependents,
        "input": ev.map(|e| e.input),
        "output": ev.map(|e| e.output),
        "built": ev.map(|e| e.built),
        "recorded": rec.map(|r| json!({"input": r.input, "output": r.output, "via": r.via})),
        "plan": step.map(|s| s.action),
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    let mut out = String::new();
    let _ = writeln!(out, "{addr}");
    let _ = writeln!(out, "  kind      {}", addr.kind());
    if let Some(l) = v["layer"].as_str() {
        let _ = writeln!(out, "  layer     {l}");
    }
    if let Some(n) = node {
        let _ = writeln!(out, "  declared  {}", n.origin);
        if !n.labels.is_empty() {
            let _ = writeln!(
                out,
                "  labels    {}",
                n.labels.iter().cloned().collect::<Vec<_>>().join(" ")
            );
        }
    }
    if let Some(e) = ev {
        let _ = writeln!(out, "  input     {}", e.input);
        let _ = writeln!(
            out,
            "  output    {}{}",
            e.output,
            if e.built {
                ""
            } else {
                "  (input-addressed: not built yet)"
            }
        );
    }
    match rec {
        Some(r) => {
            let _ = writeln!(
                out,
                "  recorded  input {} output {} (via {})",
                r.input.short(),
                r.output.short(),
                r.via
            );
        }
        None => {
            let _ = writeln!(out, "  recorded  nothing (not applied or adopted yet)");
        }
    }
    if let Some(st) = step {
        let _ = writeln!(out, "  plan      {}", st.action.word());
    }
    if let Some(e) = ev.filter(|e| !e.files.is_empty()) {
        let _ = writeln!(out, "  files");
        for (p, d) in &e.files {
            let _ = writeln!(out, "    {}  {p}", d.short());
        }
    }
    for (title, list) in [
        ("depends on", s.graph.deps(&addr)),
        ("needed by", s.graph.dependents(&addr)),
    ] {
        if !list.is_empty() {
            let _ = writeln!(out, "  {title}");
            for (a, k) in list {
                let _ = writeln!(out, "    {a}  ({k})");
            }
        }
    }
    if let Some(n) = node {
        let _ = writeln!(out, "  params");
        for line in canonical_pretty(&n.params).lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    print!("{out}");
    Ok(0)
}
