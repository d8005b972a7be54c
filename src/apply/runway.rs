//! The L0 runway before an apply: every check the changes need runs (in parallel), before
//! anything changes. A host that does not answer is unreachable: an offline-first host's nodes
//! are skipped with a warning; any other host fails the run unless `--skip-unreachable`.

use std::collections::{BTreeMap, BTreeSet};

use hl_engine::{Action, Address, Graph, Plan};
use hl_rules::check::Outcome;
use hl_rules::Topology;
use rayon::prelude::*;

/// What the runway found.
#[derive(Debug, Default)]
pub struct Runway {
    /// Checks that passed.
    pub passed: Vec<(Address, String)>,
    /// Hosts that did not answer, with why, and whether they are offline-first.
    pub unreachable: BTreeMap<String, (String, bool)>,
    /// Other checks that failed (a missing tool, an unset variable).
    pub failed: Vec<(Address, String)>,
}

/// Runs the plan's checks.
pub fn run(plan: &Plan, graph: &Graph, topology: &Topology) -> Runway {
    let checks: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Check)
        .filter_map(|s| graph.get(&s.address))
        .collect();
    let results: Vec<(Address, Outcome)> = checks
        .par_iter()
        .map(|n| (n.address.clone(), hl_rules::check::run(n, topology)))
        .collect();
    let mut r = Runway::default();
    let down: BTreeSet<String> = results
        .iter()
        .filter(|(a, o)| !o.ok && a.name() == "ssh")
        .filter_map(|(a, _)| a.host().map(str::to_string))
        .collect();
    for (a, o) in results {
        match (o.ok, a.host()) {
            (true, _) => r.passed.push((a, o.detail)),
            (false, Some(h)) if a.name() == "ssh" => {
                let offline_first = topology.hosts.get(h).is_some_and(|x| x.offline_first);
                r.unreachable
                    .insert(h.to_string(), (o.detail, offline_first));
            }
            // A remote tool on a host that is down is that host's problem, said once.
            (false, Some(h)) if down.contains(h) => {}
            (false, _) => r.failed.push((a, o.detail)),
        }
    }
    r
}
