//! The plan is data: one step per node with an action and its causes. The human view, `--json`
//! and `hl why` all render the same steps.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::address::{Address, Layer};
use crate::digest::{Content, Digest, Input, Output};
use crate::error::Error;
use crate::evaluate::{Evaluated, Evaluation, Registry};
use crate::files::RepoPath;
use crate::graph::Graph;
use crate::node::{EdgeKind, Node, Rule};
use crate::state::{Record, State};

/// The version of the plan's JSON schema (docs/plan-json.md).
pub const PLAN_FORMAT: u32 = 1;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not recorded yet: create it.
    Create,
    /// Recorded with another output: converge it in place.
    Update,
    /// Recorded, but a change needs it destroyed and made again. Destructive.
    Replace,
    /// Recorded but no longer in the repo: destroy it. Destructive.
    Delete,
    /// A runway check the changes need (L0: reads only).
    Check,
    /// Nothing to do.
    NoOp,
}

impl Action {
    /// Whether the step changes the world.
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Delete
        )
    }

    /// Whether the step destroys something and needs explicit approval.
    pub fn is_destructive(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }

    /// The word used in human output.
    pub fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Check => "check",
            Action::NoOp => "no-op",
        }
    }
}

/// How an input file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    /// Content differs.
    Modified,
    /// New input.
    Added,
    /// No longer an input.
    Removed,
}

/// Why a step is in the plan. Old and new values travel with it, so every renderer can show them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cause {
    /// The node is not in the state.
    New,
    /// The node is in the state but no longer in the repo.
    Removed,
    /// An input file changed.
    File {
        /// The file.
        path: RepoPath,
        /// How.
        change: FileChange,
        /// Its recorded digest.
        old: Option<Digest<Content>>,
        /// Its digest now.
        new: Option<Digest<Content>>,
    },
    /// A parameter changed.
    Param {
        /// Where in the parameters, e.g. `disks[0].size_gb`.
        key: String,
        /// The recorded value.
        old: Option<Value>,
        /// The value now.
        new: Option<Value>,
    },
    /// An input dependency's output changed.
    Dependency {
        /// The dependency.
        address: Address,
        /// Its recorded output.
        old: Option<Digest<Output>>,
        /// Its output now.
        new: Option<Digest<Output>>,
    },
    /// The host this node runs on is being replaced or created: the node is applied again.
    Placement {
        /// The host node.
        address: Address,
        /// What happens to it.
        action: Action,
    },
    /// The rule that builds this kind changed version.
    RuleVersion {
        /// Recorded.
        old: u32,
        /// Now.
        new: u32,
    },
    /// Inputs changed but the artifact is byte-for-byte the same (early cutoff).
    OutputIdentical,
    /// The target does not run what the state recorded (`--refresh`).
    Drift {
        /// What was found.
        what: String,
    },
    /// This change cannot be made in place.
    ForcesReplacement {
        /// The parameter or dependency that forces it.
        what: String,
    },
    /// A runway check needed by these changes.
    NeededBy {
        /// The changed nodes that need it.
        addresses: Vec<Address>,
    },
}

/// One node's step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// The node.
    pub address: Address,
    /// Its layer.
    pub layer: Layer,
    /// What happens.
    pub action: Action,
    /// Whether it destroys something (replace, delete).
    pub destructive: bool,
    /// An expensive node that will be built (input-addressed until then).
    pub will_build: bool,
    /// Why.
    pub causes: Vec<Cause>,
    /// Input digest now (absent for deletes).
    pub input: Option<Digest<Input>>,
    /// Output digest now (absent for deletes).
    pub output: Option<Digest<Output>>,
    /// Input digest recorded in the state (absent for creates).
    pub prior_input: Option<Digest<Input>>,
    /// Output digest recorded in the state.
    pub prior_output: Option<Digest<Output>>,
}

/// The plan: every node's step, in dependency order within each layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// JSON schema version.
    pub format_version: u32,
    /// One step per node (no-ops included; renderers hide them).
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether any step changes the world.
    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.action.is_change())
    }

    /// The step of a node.
    pub fn step(&self, addr: &Address) -> Option<&Step> {
        self.steps.iter().find(|s| &s.address == addr)
    }

    /// Count of steps per action.
    pub fn counts(&self) -> BTreeMap<Action, usize> {
        let mut m = BTreeMap::new();
        for s in &self.steps {
            *m.entry(s.action).or_insert(0) += 1;
        }
        m
    }

    /// Keeps only the steps whose address is in `keep`.
    pub fn retain(&mut self, keep: &BTreeSet<Address>) {
        self.steps.retain(|s| keep.contains(&s.address));
    }
}

/// Computes the plan: desired (graph + evaluation) against recorded (state). `removed_needs`
/// names, for nodes recorded but gone from the repo, the checks their deletion needs.
pub fn compute(
    graph: &Graph,
    registry: &Registry,
    eval: &Evaluation,
    state: &State,
    removed_needs: &BTreeMap<Address, Vec<Address>>,
) -> Result<Plan, Error> {
    use rayon::prelude::*;
    // A node's step reads the steps of its placements alone, which lie in earlier waves: the
    // nodes of one wave are planned side by side.
    let mut steps: rustc_hash::FxHashMap<&Address, Step> = Default::default();
    let mut order: Vec<&Address> = Vec::with_capacity(graph.len());
    let mut checks = Vec::new();
    for wave in graph.waves() {
        let mut stateful = Vec::with_capacity(wave.len());
        for node in wave {
            let rule = registry.rule(node.address.kind())?;
            order.push(&node.address);
            if rule.stateful() {
                stateful.push((node, rule));
            } else {
                checks.push(&node.address);
            }
        }
        let planned: Vec<Step> = stateful
            .par_iter()
            .with_max_len(crate::PAR_TASK)
            .map(|(node, rule)| {
                let placements: Vec<(Address, Option<Action>)> = graph
                    .deps(&node.address)
                    .into_iter()
                    .filter(|(_, kind)| *kind == EdgeKind::Placement)
                    .map(|(dep, _)| (dep.clone(), steps.get(dep).map(|s| s.action)))
                    .collect();
                node_step(
                    node,
                    *rule,
                    &eval[&node.address],
                    state.get(&node.address),
                    &placements,
                )
            })
            .collect::<Vec<Result<Step, Error>>>()
            .into_iter()
            .collect::<Result<_, Error>>()?;
        for ((node, _), step) in stateful.into_iter().zip(planned) {
            steps.insert(&node.address, step);
        }
    }

    let checked: Vec<Step> = checks
        .par_iter()
        .with_max_len(crate::PAR_TASK)
        .map(|addr| {
            let mut needed_by: Vec<Address> = graph
                .dependents(addr)
                .into_iter()
                .filter(|(d, _)| steps.get(*d).is_some_and(|s| s.action.is_change()))
                .map(|(d, _)| d.clone())
                .collect();
            needed_by.extend(
                removed_needs
                    .iter()
                    .filter(|(gone, checks)| {
                        !graph.contains(gone) && state.get(gone).is_some() && checks.contains(addr)
                    })
                    .map(|(gone, _)| gone.clone()),
            );
            check_step(addr, &eval[*addr], needed_by)
        })
        .collect();
    for (addr, step) in checks.into_iter().zip(checked) {
        steps.insert(addr, step);
    }

    let mut out: Vec<Step> = order.into_iter().filter_map(|a| steps.remove(a)).collect();
    for (addr, rec) in &state.nodes {
        if !graph.contains(addr) {
            out.push(Step {
                address: addr.clone(),
                layer: rec.layer,
                action: Action::Delete,
                destructive: true,
                will_build: false,
                causes: vec![Cause::Removed],
                input: None,
                output: None,
                prior_input: Some(rec.input),
                prior_output: Some(rec.output),
            });
        }
    }
    for s in &mut out {
        s.destructive = s.action.is_destructive();
    }
    // Stable: by layer, keeping dependency order inside a layer.
    out.sort_by_key(|s| s.layer);
    Ok(Plan {
        format_version: PLAN_FORMAT,
        steps: out,
    })
}

/// The step of a stateful node: its evaluation against its record. `placements` are its
/// placement dependencies with the action planned for each (`None`: no step).
pub fn node_step(
    node: &Node,
    rule: &dyn Rule,
    ev: &Evaluated,
    rec: Option<&Record>,
    placements: &[(Address, Option<Action>)],
) -> Result<Step, Error> {
    let mut step = Step {
        address: node.address.clone(),
        layer: node.layer,
        action: Action::NoOp,
        destructive: false,
        will_build: !ev.built,
        causes: Vec::new(),
        input: Some(ev.input),
        output: Some(ev.output),
        prior_input: rec.map(|r| r.input),
        prior_output: rec.map(|r| r.output),
    };
    match rec {
        None => {
            step.action = Action::Create;
            step.causes.push(Cause::New);
        }
        Some(rec) if rec.input == ev.input => {}
        Some(rec) => {
            step.causes = diff(rec, rule.version(), &node.params, ev)?;
            if rec.via == "rollback" {
                step.causes.push(Cause::Drift {
                    what: "rolled back by `hl rollback`; the repo wants the newer release".into(),
                });
            }
            if rec.output == ev.output && ev.built {
                step.causes.push(Cause::OutputIdentical);
            } else {
                step.action = Action::Update;
                if let Some(what) = forces_replacement(rule, &step.causes) {
                    step.action = Action::Replace;
                    step.causes.push(Cause::ForcesReplacement { what });
                }
            }
        }
    }
    if rec.is_some() {
        for (dep, action) in placements {
            if let Some(a @ (Action::Replace | Action::Create)) = *action {
                step.causes.push(Cause::Placement {
                    address: dep.clone(),
                    action: a,
                });
                if step.action == Action::NoOp {
                    step.action = Action::Update;
                }
            }
        }
    }
    step.will_build &= step.action.is_change();
    step.destructive = step.action.is_destructive();
    Ok(step)
}

/// The step of a runway check: a check when changes need it (`needed_by`), else nothing.
pub fn check_step(addr: &Address, ev: &Evaluated, mut needed_by: Vec<Address>) -> Step {
    needed_by.sort();
    needed_by.dedup();
    Step {
        address: addr.clone(),
        layer: Layer::L0,
        action: if needed_by.is_empty() {
            Action::NoOp
        } else {
            Action::Check
        },
        destructive: false,
        will_build: false,
        causes: if needed_by.is_empty() {
            vec![]
        } else {
            vec![Cause::NeededBy {
                addresses: needed_by,
            }]
        },
        input: Some(ev.input),
        output: Some(ev.output),
        prior_input: None,
        prior_output: None,
    }
}

fn forces_replacement(rule: &dyn Rule, causes: &[Cause]) -> Option<String> {
    causes.iter().find_map(|c| match c {
        Cause::Param { key, .. } => {
            let top = key.split(['.', '[']).next().unwrap_or(key);
            rule.replace_keys().contains(&top).then(|| key.clone())
        }
        Cause::Dependency { address, .. } if rule.replace_on_inputs() => Some(address.to_string()),
        _ => None,
    })
}

/// The causes of a change: rule version, parameters, files and input edges, old against new.
fn diff(rec: &Record, version: u32, params: &Value, ev: &Evaluated) -> Result<Vec<Cause>, Error> {
    let mut causes = Vec::new();
    let (old_params, old_files) = (rec.params.get()?, rec.files.get()?);
    if rec.rule_version != version {
        causes.push(Cause::RuleVersion {
            old: rec.rule_version,
            new: version,
        });
    }
    diff_values("", Some(old_params), Some(params), &mut causes);
    let paths: BTreeSet<&RepoPath> = old_files.keys().chain(ev.files.keys()).collect();
    for p in paths {
        let (old, new) = (old_files.get(p).copied(), ev.files.get(p).copied());
        if old != new {
            let change = match (old, new) {
                (None, _) => FileChange::Added,
                (_, None) => FileChange::Removed,
                _ => FileChange::Modified,
            };
            causes.push(Cause::File {
                path: p.clone(),
                change,
                old,
                new,
            });
        }
    }
    let deps: BTreeSet<&Address> = rec.inputs.keys().chain(ev.inputs.keys()).collect();
    for a in deps {
        let (old, new) = (rec.inputs.get(a).copied(), ev.inputs.get(a).copied());
        if old != new {
            causes.push(Cause::Dependency {
                address: a.clone(),
                old,
                new,
            });
        }
    }
    Ok(causes)
}

fn diff_values(key: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Cause>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                diff_values(&sub, a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{key}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(Cause::Param {
            key: if key.is_empty() {
                "(all)".into()
            } else {
                key.to_string()
            },
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameter_diffs_name_the_leaf_that_moved() {
        let mut out = Vec::new();
        diff_values(
            "",
            Some(&json!({"cores": 2, "disks": [{"image": "debian-12", "size_gb": 20}], "x": 1})),
            Some(&json!({"cores": 4, "disks": [{"image": "debian-12", "size_gb": 32}], "y": 1})),
            &mut out,
        );
        let keys: Vec<String> = out
            .iter()
            .map(|c| match c {
                Cause::Param { key, old, new } => format!("{key}: {old:?} -> {new:?}"),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                "cores: Some(Number(2)) -> Some(Number(4))",
                "disks[0].size_gb: Some(Number(20)) -> Some(Number(32))",
                "x: Some(Number(1)) -> None",
                "y: None -> Some(Number(1))",
            ]
        );
    }
}
