//! `hl graph`: the dependency graph as Graphviz dot or Mermaid, grouped by layer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use hl_engine::{Address, EdgeKind, Error, Layer};

use crate::session::{Options, Session};

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart (renders in Forgejo, Gitea and GitHub markdown).
    Mermaid,
}

/// Arguments of `hl graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
    #[command(flatten)]
    select: super::SelectArgs,
    /// Leave out the L0 runway checks.
    #[arg(long)]
    no_checks: bool,
}

/// Runs `hl graph`.
pub fn run(opts: &Options, args: GraphArgs) -> Result<u8, Error> {
    let s = Session::open(opts)?;
    let sel = args.select.selector()?;
    let all = s.graph.addresses();
    sel.check_targets(&all)?;
    s.save_stat_cache()?;
    // The selection and everything it depends on.
    let mut keep: BTreeSet<Address> = s
        .graph
        .nodes()
        .filter(|n| sel.matches(&n.address, n.layer, &n.labels))
        .map(|n| n.address.clone())
        .collect();
    let mut queue: VecDeque<Address> = keep.iter().cloned().collect();
    while let Some(a) = queue.pop_front() {
        for (d, _) in s.graph.deps(&a) {
            if keep.insert(d.clone()) {
                queue.push_back(d.clone());
            }
        }
    }
    if args.no_checks {
        keep.retain(|a| a.kind() != "check");
    }
    let mut by_layer: BTreeMap<Layer, Vec<&Address>> = BTreeMap::new();
    for a in &keep {
        if let Some(n) = s.graph.get(a) {
            by_layer.entry(n.layer).or_default().push(a);
        }
    }
    let ids: BTreeMap<&Address, usize> = keep.iter().enumerate().map(|(i, a)| (a, i)).collect();
    let mut out = String::new();
    match args.format {
        Format::Dot => {
            out.push_str(
                "digraph hl {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
            );
            for (layer, addrs) in &by_layer {
                let _ = writeln!(
                    out,
                    "  subgraph cluster_{layer} {{\n    label=\"{}\";",
                    layer.title()
                );
                for a in addrs {
                    let _ = writeln!(out, "    \"{a}\";");
                }
                out.push_str("  }\n");
            }
            for a in &keep {
                for (d, kind) in s.graph.deps(a) {
                    if keep.contains(d) {
                        let style = match kind {
                            EdgeKind::Input => "solid",
                            EdgeKind::Order => "dashed",
                            EdgeKind::Placement => "dotted",
                        };
                        let _ = writeln!(
                            out,
                            "  \"{d}\" -> \"{a}\" [label=\"{kind}\", style={style}];"
                        );
                    }
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (layer, addrs) in &by_layer {
                let _ = writeln!(out, "  subgraph {layer}[\"{}\"]", layer.title());
                for a in addrs {
                    let _ = writeln!(out, "    n{}[\"{a}\"]", ids[a]);
                }
                out.push_str("  end\n");
            }
            for a in &keep {
                for (d, kind) in s.graph.deps(a) {
                    if let Some(di) = ids.get(d) {
                        let arrow = match kind {
                            EdgeKind::Input => "-->",
                            _ => "-.->",
                        };
                        let _ = writeln!(out, "  n{di} {arrow}|{kind}| n{}", ids[a]);
                    }
                }
            }
        }
    }
    print!("{out}");
    Ok(0)
}
