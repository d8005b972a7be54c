//! `--refresh`: ask each recorded target what it runs and turn what differs into drift steps.

use std::collections::HashMap;
use std::time::Duration;

use hl_engine::{Action, ApplyCtx, Cause, Error, Observed};
use rayon::prelude::*;

use crate::session::Session;

/// Observes every recorded node that the plan would leave alone; a drifted one becomes an
/// update with cause "drift".
pub fn apply_drift(session: &mut Session) -> Result<(), Error> {
    let topology = &session.lab.topology;
    let registry = &session.registry;
    let candidates: Vec<_> = session
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::NoOp && session.state.get(&s.address).is_some())
        .filter_map(|s| session.graph.get(&s.address))
        .collect();
    let found: HashMap<_, _> = candidates
        .par_iter()
        .filter_map(|node| {
            let rule = registry.rule(node.address.kind()).ok()?;
            let host = rule.host(node);
            let transport = host
                .as_deref()
                .and_then(|h| hl_rules::hosts::transport(topology, h));
            let ctx = ApplyCtx {
                artifact: None,
                output: session.state.get(&node.address).map(|r| r.output),
                transport: transport.as_ref(),
                job: None,
                timeout: Duration::from_secs(30),
            };
            match rule.observe(node, &ctx) {
                Ok(o) => Some((node.address.clone(), o)),
                Err(e) => {
                    eprintln!("warning: cannot observe {}: {}", node.address, e.message);
                    None
                }
            }
        })
        .collect();
    for step in &mut session.plan.steps {
        let what = match found.get(&step.address) {
            Some(Observed::Drifted { what }) => what.clone(),
            Some(Observed::Absent) => "it is not on its host".to_string(),
            _ => continue,
        };
        step.action = Action::Update;
        step.causes.push(Cause::Drift { what });
    }
    Ok(())
}
