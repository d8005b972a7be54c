//! Selection: `--target ADDR|GLOB`, `--on HOST`, `--on @tag`, `--layer L`. A selected node
//! brings along the changes it depends on, as Terraform's `-target` does, because applying it
//! without them would converge against a world that is not there yet. `--layer` is strict: it
//! runs one layer by hand.

use std::collections::{BTreeSet, VecDeque};

use globset::{Glob, GlobMatcher};

use crate::address::{Address, Layer};
use crate::error::Error;
use crate::graph::{did_you_mean, Graph};
use crate::plan::Plan;

/// A checked selection.
#[derive(Debug, Default)]
pub struct Selector {
    targets: Vec<(String, GlobMatcher)>,
    on: Vec<String>,
    layers: Vec<Layer>,
}

impl Selector {
    /// Builds a selector; a glob that does not parse is refused.
    pub fn new(targets: &[String], on: &[String], layers: &[Layer]) -> Result<Selector, Error> {
        let targets = targets
            .iter()
            .map(|t| {
                Glob::new(t)
                    .map(|g| (t.clone(), g.compile_matcher()))
                    .map_err(|e| Error::repo(format!("bad --target `{t}`: {e}"), None, None))
            })
            .collect::<Result<_, _>>()?;
        Ok(Selector {
            targets,
            on: on.to_vec(),
            layers: layers.to_vec(),
        })
    }

    /// Whether nothing is selected explicitly (everything is).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.on.is_empty() && self.layers.is_empty()
    }

    /// Whether a node matches every given criterion.
    pub fn matches(&self, addr: &Address, layer: Layer, labels: &BTreeSet<String>) -> bool {
        let text = addr.to_string();
        (self.targets.is_empty() || self.targets.iter().any(|(_, g)| g.is_match(&text)))
            && (self.on.is_empty() || self.on.iter().any(|o| labels.contains(o)))
            && (self.layers.is_empty() || self.layers.contains(&layer))
    }

    /// Refuses a `--target` that matches no node, with the closest address.
    pub fn check_targets(&self, known: &[&Address]) -> Result<(), Error> {
        for (text, glob) in &self.targets {
            if !known.iter().any(|a| glob.is_match(a.to_string())) {
                let suggestion = text
                    .parse::<Address>()
                    .ok()
                    .and_then(|a| did_you_mean(&a, known.iter().copied()));
                return Err(Error::repo(
                    format!("--target `{text}` matches no node"),
                    None,
                    Some(match suggestion {
                        Some(s) => format!("did you mean `{s}`? (`hl graph` lists every address)"),
                        None => "`hl graph` lists every address".into(),
                    }),
                ));
            }
        }
        Ok(())
    }

    /// The addresses of the plan this selection keeps: the matching steps plus, unless `--layer`
    /// was given, the changed dependencies they need.
    pub fn select(
        &self,
        graph: &Graph,
        plan: &Plan,
        state_labels: impl Fn(&Address) -> BTreeSet<String>,
    ) -> BTreeSet<Address> {
        let labels = |a: &Address| {
            graph
                .get(a)
                .map(|n| n.labels.clone())
                .unwrap_or_else(|| state_labels(a))
        };
        let mut keep: BTreeSet<Address> = plan
            .steps
            .iter()
            .filter(|s| self.matches(&s.address, s.layer, &labels(&s.address)))
            .map(|s| s.address.clone())
            .collect();
        if self.layers.is_empty() {
            let mut queue: VecDeque<Address> = keep.iter().cloned().collect();
            while let Some(a) = queue.pop_front() {
                for (dep, _) in graph.deps(&a) {
                    let changed = plan
                        .step(dep)
                        .is_some_and(|s| s.action != crate::plan::Action::NoOp);
                    if changed && keep.insert(dep.clone()) {
                        queue.push_back(dep.clone());
                    }
                }
            }
        }
        keep
    }
}
