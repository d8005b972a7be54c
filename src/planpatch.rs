//! Patching the plan memo when a few input files moved and nothing else did: the loaders'
//! nodes all hold (each unit the same, or passing its cutoffs), the state, the binary and the
//! action cache's answers are as the memo recorded. Then the plan made again would differ
//! from the memo's only in the nodes those files reach, so only those are decoded, hashed and
//! compared with their records ([`crate::planindex`]): the nodes reading a moved file; their
//! input dependents, while outputs change (early cutoff stops it); the nodes placed on a node
//! whose create or replace appears or goes; and the runway checks of any of them. Each is
//! made by the code that makes a whole plan ([`hl_engine::evaluate::evaluate_one`],
//! [`hl_engine::plan::node_step`], [`hl_engine::plan::check_step`]), in the whole plan's
//! order, so the patched plan is the one a whole plan would print (the tests compare them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use std::path::Path;

use hl_engine::evaluate::evaluate_one;
use hl_engine::plan::{check_step, node_step};
use hl_engine::{
    Action, Address, Caches, Cause, Digest, Evaluated, FileSet, Input, Output, Plan, Record,
    RepoPath, StatCache, StatUpdate, Step,
};

use crate::planindex::{Eval, Evals, Kind, Nodes, Place, RecordAt};

/// A patched plan and what to save with it.
pub struct Patch {
    /// The plan's shown steps.
    pub plan: Plan,
    /// The place of each shown step's node (`u32::MAX` for a node gone from the repo).
    pub places: Vec<u32>,
    /// The evaluations of this run.
    pub evals: Evals,
    /// Expensive nodes evaluated again: (input before, input now and whether built, when not
    /// recorded with it).
    pub builds: Vec<(Digest<Input>, Option<Build>)>,
    /// What the stat cache learnt.
    pub update: StatUpdate,
    /// The nodes evaluated again.
    pub evaluated: usize,
}

/// An expensive node's input and whether the action cache knows its output.
pub type Build = (Digest<Input>, bool);

/// Where a deleted node's step goes in [`Patch::places`].
pub const GONE: u32 = u32::MAX;

/// The memo's plan (`shown`, its steps at `places`, the evaluations `evals`) patched for the
/// `moved` files; `None` when anything it needs is missing or fails (the plan is then made
/// whole, which reports errors with their full context).
pub fn patch(
    root: &Path,
    files: &FileSet,
    caches: &Caches,
    stat: &StatCache,
    (shown, places): (&Plan, &[u32]),
    mut evals: Evals,
    moved: &[RepoPath],
) -> Option<Patch> {
    let hl = crate::session::hl_dir(root);
    let nodes = Nodes::open(&hl).filter(|n| n.key == evals.key && n.len() == evals.evals.len())?;
    if places.len() != shown.steps.len() {
        return None;
    }
    let registry = hl_rules::registry();
    let stateful = |address: &str| -> Option<bool> {
        let kind = address.split(':').next()?;
        Some(registry.rule(kind).ok()?.stateful())
    };
    // A patch works node by node on one thread; past this many, the whole plan's parallel
    // waves are faster (a branch switched under the repo, say).
    let limit = (nodes.len() / 8).max(16);
    if moved.len() > limit {
        return None;
    }
    let mut update = files.hash_some(moved, stat).ok()?;
    let mut dirty = BTreeSet::new();
    for p in moved {
        dirty.extend(nodes.readers_of(p.as_str())?);
    }
    let state = std::cell::OnceCell::new();
    let record = |at: &RecordAt| -> Option<Record> {
        let file = state
            .get_or_init(|| std::fs::File::open(crate::session::state_path(root)).ok())
            .as_ref()?;
        let mut bytes = vec![0u8; at.len as usize];
        file.read_exact_at(&mut bytes, at.at).ok()?;
        let rec = hl_engine::state::record_at(&bytes).ok()?;
        (*rec.input.bytes() == at.input).then_some(rec)
    };
    let before: HashMap<u32, &Step> = places
        .iter()
        .zip(&shown.steps)
        .filter(|(p, _)| **p != GONE)
        .map(|(p, s)| (*p, s))
        .collect();
    let old_action = |i: u32| before.get(&i).map_or(Action::NoOp, |s| s.action);
    let mut steps: BTreeMap<u32, Step> = BTreeMap::new();
    let mut checks: BTreeMap<u32, Option<(Place, Evaluated)>> = BTreeMap::new();
    let mut builds = Vec::new();
    let mut evaluated = 0;
    while let Some(i) = dirty.pop_first() {
        evaluated += 1;
        if evaluated > limit {
            return None;
        }
        let at = i as usize;
        let place = nodes.place(i)?;
        let node = &place.node;
        let rule = registry.rule(node.address.kind()).ok()?;
        update
            .changed
            .extend(files.hash_some(&node.files, stat).ok()?.changed);
        let inputs = place
            .deps
            .iter()
            .filter(|(_, k, _)| *k == Kind::Input)
            .map(|(d, _, a)| {
                let output = evals.evals.get(*d as usize)?.output;
                Some((a.parse().ok()?, Digest::from_bytes(output)))
            })
            .collect::<Option<BTreeMap<Address, Digest<Output>>>>()?;
        let rec = match &evals.evals[at].record {
            Some(r) => Some(record(r)?),
            None => None,
        };
        let ev = evaluate_one(rule, node, files, caches, rec.as_ref(), inputs).ok()?;
        let now = Eval {
            input: *ev.input.bytes(),
            output: *ev.output.bytes(),
            built: ev.built,
            record: evals.evals[at].record.clone(),
        };
        let old = std::mem::replace(&mut evals.evals[at], now);
        if !rule.cheap() {
            let recorded = rec.as_ref().is_some_and(|r| r.input == ev.input);
            builds.push((
                Digest::from_bytes(old.input),
                (!recorded).then_some((ev.input, ev.built)),
            ));
        }
        if old.output != *ev.output.bytes() {
            dirty.extend(
                place
                    .dependents
                    .iter()
                    .filter(|(_, k, _)| *k == Kind::Input)
                    .map(|(j, _, _)| *j),
            );
        }
        if !rule.stateful() {
            checks.insert(i, Some((place, ev)));
            continue;
        }
        let placements = place
            .deps
            .iter()
            .filter(|(_, k, _)| *k == Kind::Placement)
            .map(|(d, _, a)| {
                let action = steps.get(d).map_or_else(|| old_action(*d), |s| s.action);
                Some((a.parse().ok()?, Some(action)))
            })
            .collect::<Option<Vec<(Address, Option<Action>)>>>()?;
        let step = node_step(node, rule, &ev, rec.as_ref(), &placements).ok()?;
        let creates = |a: Action| matches!(a, Action::Create | Action::Replace);
        if creates(step.action) != creates(old_action(i)) {
            dirty.extend(
                place
                    .dependents
                    .iter()
                    .filter(|(_, k, _)| *k == Kind::Placement)
                    .map(|(j, _, _)| *j),
            );
        }
        // The runway checks among its dependencies say which changes need them.
        for (d, _, a) in &place.deps {
            if !stateful(a)? {
                checks.entry(*d).or_insert(None);
            }
        }
        steps.insert(i, step);
    }
    // Recorded nodes gone from the repo: each has a delete step.
    let gone: Vec<&Address> = places
        .iter()
        .zip(&shown.steps)
        .filter(|(p, _)| **p == GONE)
        .map(|(_, s)| &s.address)
        .collect();
    for (c, known) in checks {
        let (place, ev) = match known {
            Some(k) => k,
            None => {
                let place = nodes.place(c)?;
                let e = &evals.evals[c as usize];
                let ev = Evaluated {
                    input: Digest::from_bytes(e.input),
                    output: Digest::from_bytes(e.output),
                    built: e.built,
                    files: BTreeMap::new(),
                    inputs: BTreeMap::new(),
                };
                (place, ev)
            }
        };
        let mut needed_by = Vec::new();
        for (d, _, a) in &place.dependents {
            let action = steps.get(d).map_or_else(|| old_action(*d), |s| s.action);
            if action.is_change() {
                needed_by.push(a.parse().ok()?);
            }
        }
        // Recorded nodes gone from the repo that need it, as before (the state is the same).
        for cause in before.get(&c).iter().flat_map(|s| &s.causes) {
            if let Cause::NeededBy { addresses } = cause {
                needed_by.extend(addresses.iter().filter(|a| gone.contains(a)).cloned());
            }
        }
        steps.insert(c, check_step(&place.node.address, &ev, needed_by));
    }
    // The whole plan's order: the graph's nodes by place, then the deletes, stably by layer.
    let mut shown_now: BTreeMap<u32, Step> =
        before.into_iter().map(|(p, s)| (p, s.clone())).collect();
    for (i, step) in steps {
        if crate::render::visible(&step) {
            shown_now.insert(i, step);
        } else {
            shown_now.remove(&i);
        }
    }
    let gone = shown
        .steps
        .iter()
        .zip(places)
        .filter(|(_, p)| **p == GONE)
        .map(|(s, _)| (GONE, s.clone()));
    let mut out: Vec<(u32, Step)> = shown_now.into_iter().chain(gone).collect();
    out.sort_by_key(|(_, s)| s.layer);
    let (places, steps) = out.into_iter().unzip();
    Some(Patch {
        plan: Plan {
            format_version: shown.format_version,
            steps,
        },
        places,
        evals,
        builds,
        update,
        evaluated,
    })
}
