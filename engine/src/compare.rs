//! Comparing two desired states (two revisions) without any recorded state: what `hl plan
//! --against BASE` runs in CI, with no credentials and no network.
//!
//! Both sides are hashed together, node by node in an order that is topological for both. A
//! node whose input digest is the same on both sides is the same node: its output is taken
//! from the action cache when known and otherwise left as a stand-in derived from the input,
//! the same on both sides, so nothing is realized for it. Only the nodes whose inputs differ
//! are realized (on each side), which is where early cutoff needs real outputs. With the files
//! that git says are unchanged known by their blob ids, the cost follows the diff.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::address::Address;
use crate::digest::{Digest, Input, Output};
use crate::error::Error;
use crate::evaluate::{
    cached, prepare, produce, unbuilt_output, Caches, Evaluated, Evaluation, Registry,
};
use crate::files::FileSet;
use crate::graph::Graph;
use crate::node::Node;
use crate::statcache::StatCache;
use crate::state::{Record, State, STATE_FORMAT};

/// One side of a comparison.
pub struct Side<'a> {
    /// Its graph.
    pub graph: &'a Graph,
    /// Its files.
    pub files: &'a FileSet,
}

fn hash_side(side: &Side<'_>) -> Result<(), Error> {
    side.files.hash_all(
        &crate::evaluate::input_files(side.graph),
        &StatCache::default(),
    )?;
    Ok(())
}

/// The stand-in output of a node that is identical on both sides and not in the action cache.
fn same_output(input: &Digest<Input>) -> Digest<Output> {
    Digest::of(format!("same:{}", input.hex()).as_bytes())
}

/// An order of the union of both graphs' addresses that is topological for each; `None` when
/// the two disagree so much that the union has a cycle.
fn joint_order(head: &Graph, base: &Graph) -> Option<Vec<Address>> {
    let mut deps: BTreeMap<Address, BTreeSet<Address>> = BTreeMap::new();
    for g in [head, base] {
        for n in g.nodes() {
            let e = deps.entry(n.address.clone()).or_default();
            e.extend(g.deps(&n.address).into_iter().map(|(a, _)| a.clone()));
        }
    }
    let mut waiting: HashMap<Address, usize> =
        deps.iter().map(|(a, d)| (a.clone(), d.len())).collect();
    let mut dependents: HashMap<Address, Vec<Address>> = HashMap::new();
    for (a, ds) in &deps {
        for d in ds {
            dependents.entry(d.clone()).or_default().push(a.clone());
        }
    }
    let mut ready: VecDeque<Address> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(a, _)| a.clone())
        .collect();
    let mut sorted: Vec<Address> = ready.drain(..).collect();
    sorted.sort();
    ready.extend(sorted);
    let mut order = Vec::with_capacity(deps.len());
    while let Some(a) = ready.pop_front() {
        for d in dependents.get(&a).into_iter().flatten() {
            let n = waiting.get_mut(d).expect("every dependent is a node");
            *n -= 1;
            if *n == 0 {
                ready.push_back(d.clone());
            }
        }
        order.push(a);
    }
    (order.len() == deps.len()).then_some(order)
}

/// Hashes both sides together; see the module's comment.
pub fn evaluate_pair(
    head: &Side<'_>,
    base: &Side<'_>,
    registry: &Registry,
    caches: &Caches,
) -> Result<(Evaluation, Evaluation), Error> {
    let pair = evaluate_both(head, base, registry, caches);
    // The actions recorded are written even when a node failed, as they were one by one.
    let flushed = caches.actions.flush();
    let pair = pair?;
    flushed?;
    Ok(pair)
}

fn evaluate_both(
    head: &Side<'_>,
    base: &Side<'_>,
    registry: &Registry,
    caches: &Caches,
) -> Result<(Evaluation, Evaluation), Error> {
    hash_side(head)?;
    hash_side(base)?;
    let order = joint_order(head.graph, base.graph).ok_or_else(|| Error::Repo {
        message: "the two revisions order their nodes in contradicting ways (a dependency reversed between them)".into(),
        origin: None,
        help: Some("compare against a closer revision".into()),
    })?;
    let (mut h, mut b): (Evaluation, Evaluation) = (BTreeMap::new(), BTreeMap::new());
    for addr in order {
        let (hn, bn) = (head.graph.get(&addr), base.graph.get(&addr));
        let rule = registry.rule(addr.kind())?;
        let hp = hn
            .map(|n| prepare(head.graph, rule, head.files, &h, n))
            .transpose()?;
        let bp = bn
            .map(|n| prepare(base.graph, rule, base.files, &b, n))
            .transpose()?;
        let same = matches!((&hp, &bp), (Some(x), Some(y)) if x.0 == y.0);
        let out = |side: &Side<'_>,
                   node: &Node,
                   p: &crate::evaluate::Prepared|
         -> Result<(Digest<Output>, bool), Error> {
            if let Some(o) = cached(caches, &addr, &p.0)? {
                return Ok((o, true));
            }
            if !rule.cheap() {
                return Ok((unbuilt_output(&p.0), false));
            }
            if same {
                return Ok((same_output(&p.0), true));
            }
            Ok((produce(rule, node, side.files, caches, &p.0, &p.2)?, true))
        };
        let eval =
            |p: &crate::evaluate::Prepared, (output, built): (Digest<Output>, bool)| Evaluated {
                input: p.0,
                output,
                built,
                files: p.1.clone(),
                inputs: p.2.clone(),
            };
        if let (Some(n), Some(p)) = (hn, &hp) {
            h.insert(addr.clone(), eval(p, out(head, n, p)?));
        }
        if let (Some(n), Some(p)) = (bn, &bp) {
            let o = if same {
                (h[&addr].output, h[&addr].built)
            } else {
                out(base, n, p)?
            };
            b.insert(addr.clone(), eval(p, o));
        }
    }
    Ok((h, b))
}

/// The base side as if it were the recorded state, so the ordinary plan compares against it.
pub fn state_of(base: &Graph, eval: &Evaluation, registry: &Registry) -> Result<State, Error> {
    let mut nodes = BTreeMap::new();
    for n in base.nodes() {
        let rule = registry.rule(n.address.kind())?;
        if !rule.stateful() {
            continue;
        }
        let ev = &eval[&n.address];
        nodes.insert(n.address.clone(), Record::of(n, rule.version(), ev, "base"));
    }
    Ok(State {
        format_version: STATE_FORMAT,
        nodes,
    })
}
