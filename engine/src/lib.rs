//! hl-engine: the generic machine of `hl`. Addresses, typed digests, the graph, hashing with a
//! stat cache and an action cache, the plan and the state. It never names a node kind: the
//! kinds live in `hl-rules` behind the [`Rule`] trait.
//!
//! ```no_run
//! use hl_engine::{Graph, Registry, FileSet, StatCache, Caches, State, evaluate, plan};
//! # fn nodes() -> Vec<hl_engine::Node> { vec![] }
//! let graph = Graph::build(nodes()).unwrap();
//! let registry = Registry::default();
//! let files = FileSet::new(std::path::Path::new(".")).unwrap();
//! let stat = StatCache::load(std::path::Path::new(".hl/statcache"));
//! let caches = Caches::open(std::path::Path::new("/tmp/hl-cache")).unwrap();
//! let state = State::load(std::path::Path::new(".hl/state.json")).unwrap();
//! let (eval, _stat) = evaluate::evaluate(&graph, &registry, &files, &stat, &caches, &state).unwrap();
//! let plan = plan::compute(&graph, &registry, &eval, &state, &Default::default()).unwrap();
//! println!("{} steps", plan.steps.len());
//! ```
#![deny(missing_docs)]

pub mod address;
pub mod compare;
pub mod digest;
pub mod error;
pub mod evaluate;
pub mod events;
pub mod files;
pub mod graph;
pub mod journal;
pub mod lock;
pub mod node;
pub mod params;
pub mod plan;
pub mod repopath;
pub mod scheduler;
pub mod select;
pub mod statcache;
pub mod state;
pub mod time;
pub mod transport;

/// The most items of a parallel loop over files or nodes one rayon task takes, where other
/// parallel work may run at the same time (loaders side by side, caches saved while the plan's
/// index is written). Rayon splits a loop adaptively, by the threads idle when it starts: a
/// loop started while both threads were busy was cut in a few large pieces, and the last one
/// ran on one thread while the other idled. Small tasks keep every thread fed; their cost (a
/// few hundred per loop) is nothing beside the work of one file.
pub const PAR_TASK: usize = 64;

pub use address::{Address, Layer};
pub use digest::{
    canonical_json, canonical_pretty, canonical_pretty_digest, Content, Digest, Input, Output,
};
pub use error::{Class, Error};
pub use evaluate::{Caches, Evaluated, Evaluation, Registry};
pub use files::{
    Cutoff, Dependence, Derivation, Entry, Fact, Facts, FileSet, Kind, Observations, Rederive,
    RepoPath, Seen, Source, Stats, StatsSnapshot,
};
pub use graph::Graph;
pub use node::{
    ApplyCtx, Artifact, Edge, EdgeKind, Node, Observed, Origin, RealizeCtx, Requirement, Rule,
};
pub use params::Params;
pub use plan::{Action, Cause, Plan, Step};
pub use scheduler::{FailureKind, JobError};
pub use select::Selector;
pub use statcache::{StatCache, StatKey, StatUpdate};
pub use state::{Lazy, Record, State};
pub use transport::Transport;
