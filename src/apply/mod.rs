//! What `hl apply` does per step: build or fetch the artifact, converge, verify, and hand back
//! the record to write. The command (`cmd/apply.rs`) runs these through the engine's scheduler
//! and records each result as it arrives, so an interrupted apply is its own resume.

pub mod approve;
pub mod progress;
pub mod runway;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hl_cache::Fetched;
use hl_engine::evaluate::input_digest;
use hl_engine::scheduler::{Job, JobCtx};
use hl_engine::{
    Action, Address, ApplyCtx, Artifact, Caches, Digest, EdgeKind, Evaluation, FileSet, Graph,
    JobError, Node, Origin, Output, RealizeCtx, Record, Registry, RepoPath, Step, Transport,
};

/// Everything the jobs of one apply share.
pub struct Env {
    /// The rules.
    pub registry: Registry,
    /// The repo's files.
    pub files: Arc<FileSet>,
    /// The content cache.
    pub caches: Caches,
    /// The desired nodes.
    pub nodes: HashMap<Address, Node>,
    /// What the state recorded before this run.
    pub old: HashMap<Address, Record>,
    /// The plan's evaluation.
    pub eval: Evaluation,
    /// Input edges of each node.
    pub input_deps: HashMap<Address, Vec<Address>>,
    /// How to reach each host.
    pub transports: HashMap<String, Transport>,
    /// Outputs as they really are after this run's builds (an image built now replaces its
    /// input-addressed stand-in, and what depends on it is hashed again with the real one).
    pub outputs: Mutex<HashMap<Address, Digest<Output>>>,
    /// Time limit of each remote command.
    pub timeout: Duration,
}

/// What a finished step leaves to record.
pub enum Done {
    /// The node now runs this.
    Recorded(Box<Record>),
    /// The node is gone.
    Deleted,
}

impl Env {
    /// A node gone from the repo, as the state recorded it (for destroy).
    fn ghost(&self, addr: &Address) -> Option<Node> {
        let rec = self.old.get(addr)?;
        Some(Node {
            address: addr.clone(),
            layer: rec.layer,
            params: rec.params.get().ok()?.clone().into(),
            files: Vec::new(),
            edges: Vec::new(),
            labels: rec.labels.clone(),
            origin: Origin::file(RepoPath::new(".hl/state.json").expect("a valid path")),
        })
    }

    /// The host a step talks to.
    pub fn host_of(&self, addr: &Address) -> Option<String> {
        let rule = self.registry.rule(addr.kind()).ok()?;
        match self.nodes.get(addr) {
            Some(n) => rule.host(n),
            None => self.ghost(addr).and_then(|g| rule.host(&g)),
        }
    }

    fn ctx<'a>(
        &'a self,
        node: &Node,
        artifact: Option<&'a Artifact>,
        output: Option<Digest<Output>>,
        job: &'a JobCtx,
    ) -> ApplyCtx<'a> {
        let transport = self
            .host_of(&node.address)
            .and_then(|h| self.transports.get(&h));
        ApplyCtx {
            artifact,
            output,
            transport,
            job: Some(job),
            timeout: self.timeout,
        }
    }

    /// The artifact of a node for an input digest: from the cache (every object verified), or
    /// built now. A corrupted object is evicted, said so, and rebuilt.
    fn artifact(
        &self,
        node: &Node,
        input: &Digest<hl_engine::Input>,
        inputs: &BTreeMap<Address, Digest<Output>>,
        job: &JobCtx,
    ) -> Result<(Artifact, Digest<Output>), JobError> {
        let rule = self.registry.rule(node.address.kind())?;
        if let Fetched::Hit(out) = self
            .caches
            .actions
            .get(input.bytes())
            .map_err(|e| JobError::failed(e.to_string()))?
        {
            let out = Digest::from_bytes(out);
            match self.caches.artifact(&out)? {
                Fetched::Hit(a) => return Ok((a, out)),
                Fetched::Evicted => {
                    let msg = format!(
                        "cache: a corrupted object of {} was evicted; rebuilding it",
                        node.address
                    );
                    eprintln!("warning: {msg}");
                    job.say(msg);
                }
                // A plan records what a node renders to without storing it.
                Fetched::Miss => {}
            }
        }
        job.say(if rule.cheap() {
            "rendering"
        } else {
            "building"
        });
        let art = rule.realize(
            node,
            &RealizeCtx {
                files: &self.files,
                inputs,
            },
        )?;
        let out = self.caches.put_artifact(&art)?;
        self.caches
            .actions
            .put(input.bytes(), out.bytes())
            .map_err(|e| JobError::failed(e.to_string()))?;
        Ok((art, out))
    }

    /// Runs one step.
    pub fn work(&self, step: &Step, job: &JobCtx) -> Result<Done, JobError> {
        let addr = &step.address;
        let rule = self.registry.rule(addr.kind())?;
        if step.action == Action::Delete {
            let ghost = self
                .ghost(addr)
                .ok_or_else(|| JobError::failed(format!("{addr}: nothing recorded to delete")))?;
            let old = self.old.get(addr).map(|r| r.output);
            rule.destroy(&ghost, &self.ctx(&ghost, None, old, job))?;
            return Ok(Done::Deleted);
        }
        let node = self
            .nodes
            .get(addr)
            .ok_or_else(|| JobError::failed(format!("{addr}: not in the repo")))?;
        let ev = &self.eval[addr];
        let inputs: BTreeMap<Address, Digest<Output>> = {
            let outs = self.outputs.lock().expect("no panics hold this lock");
            self.input_deps
                .get(addr)
                .into_iter()
                .flatten()
                .map(|d| {
                    (
                        d.clone(),
                        outs.get(d).copied().unwrap_or(self.eval[d].output),
                    )
                })
                .collect()
        };
        let input = input_digest(rule, node, &ev.files, &inputs);
        let (artifact, output) = self.artifact(node, &input, &inputs, job)?;
        if step.action == Action::Replace {
            if let Some(ghost) = self.ghost(addr) {
                job.say("replacing: destroying the old one first");
                let old = self.old.get(addr).map(|r| r.output);
                rule.destroy(&ghost, &self.ctx(&ghost, None, old, job))?;
            }
        }
        let ctx = self.ctx(node, Some(&artifact), Some(output), job);
        rule.converge(node, &ctx)?;
        rule.verify(node, &ctx)?;
        // Keep what went in, so `hl why` can show changed lines after this apply.
        for p in ev.files.keys() {
            if let Ok(bytes) = self.files.read(p) {
                let _ = self.caches.store.put(&bytes);
            }
        }
        self.outputs
            .lock()
            .expect("no panics hold this lock")
            .insert(addr.clone(), output);
        Ok(Done::Recorded(Box::new(Record {
            input,
            output,
            built: true,
            inputs,
            ..Record::of(node, rule.version(), ev, "apply")
        })))
    }
}

/// The jobs of a plan: one per change, after the changes it depends on. A delete of a VM waits
/// for the deletes of what ran on it.
pub fn jobs(env: &Arc<Env>, graph: &Graph, steps: &[Step]) -> Vec<Job<Done>> {
    let changing: HashMap<&Address, &Step> = steps
        .iter()
        .filter(|s| s.action.is_change())
        .map(|s| (&s.address, s))
        .collect();
    let mut out = Vec::new();
    for step in changing.values() {
        let addr = &step.address;
        let deps: Vec<Address> = if step.action == Action::Delete {
            changing
                .values()
                .filter(|o| {
                    o.action == Action::Delete
                        && addr.kind() == "vm"
                        && o.address.host() == Some(addr.name())
                })
                .map(|o| o.address.clone())
                .collect()
        } else {
            graph
                .deps(addr)
                .into_iter()
                .filter(|(d, _)| changing.contains_key(d))
                .map(|(d, _)| d.clone())
                .collect()
        };
        let (env2, step2) = (env.clone(), (*step).clone());
        out.push(Job {
            address: addr.clone(),
            host: env.host_of(addr),
            deps,
            work: Arc::new(move |job| env2.work(&step2, job)),
        });
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

/// Input edges per node, from the graph.
pub fn input_deps(graph: &Graph) -> HashMap<Address, Vec<Address>> {
    graph
        .nodes()
        .map(|n| {
            let deps = graph
                .deps(&n.address)
                .into_iter()
                .filter(|(_, k)| *k == EdgeKind::Input)
                .map(|(a, _)| a.clone())
                .collect();
            (n.address.clone(), deps)
        })
        .collect()
}
