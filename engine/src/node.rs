//! Nodes, edges and the Rule trait: what a node kind must say about its nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::address::{Address, Layer};
use crate::digest::{Digest, Output};
use crate::error::Error;
use crate::files::{FileSet, RepoPath};
use crate::params::Params;
use crate::scheduler::{JobCtx, JobError};
use crate::transport::Transport;

/// Where something was written in the repo: a file, and a line and column when known (1-based).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The file.
    pub path: RepoPath,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub col: u32,
}

impl Origin {
    /// A whole file.
    pub fn file(path: RepoPath) -> Origin {
        Origin {
            path,
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.path),
            (l, 0) => write!(f, "{}:{l}", self.path),
            (l, c) => write!(f, "{}:{l}:{c}", self.path),
        }
    }
}

/// How a node depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// The dependency's output is part of this node's input: hashes flow along it.
    Input,
    /// Apply after the dependency; nothing is hashed.
    Order,
    /// This node runs on the dependency (a host's VM): replacing it re-applies this node.
    Placement,
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeKind::Input => "input",
            EdgeKind::Order => "order",
            EdgeKind::Placement => "placement",
        })
    }
}

/// A dependency as a loader declares it; the graph resolves and checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The node depended on.
    pub to: Address,
    /// What the dependency means.
    pub kind: EdgeKind,
    /// Where the reference was written, for errors.
    pub origin: Option<Origin>,
}

/// One deployable thing, as discovered from the repo. Everything hashed about it is here:
/// its kind's rule, its canonical parameters, its input files and its input edges.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// The node's address.
    pub address: Address,
    /// Its layer.
    pub layer: Layer,
    /// Parameters from the repo, canonicalised by the rule; hashed and diffed key by key.
    pub params: Params,
    /// Files whose content goes into the node (deduplicated, sorted by the graph).
    pub files: Vec<RepoPath>,
    /// Its dependencies.
    pub edges: Vec<Edge>,
    /// Labels for selection: the host name and the host's tags (`@tag`).
    pub labels: BTreeSet<String>,
    /// Where the node is declared.
    pub origin: Origin,
}

/// What a node realizes to: a small file tree (relative path -> bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Artifact {
    /// The files, by path inside the artifact.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Artifact {
    /// An artifact of one file.
    pub fn single(name: &str, bytes: impl Into<Vec<u8>>) -> Artifact {
        let mut files = BTreeMap::new();
        files.insert(name.to_string(), bytes.into());
        Artifact { files }
    }

    /// The canonical manifest: one `path\tblake3\n` line per file, sorted by path.
    pub fn manifest(&self) -> String {
        let hashes: BTreeMap<String, [u8; 32]> = self
            .files
            .iter()
            .map(|(path, bytes)| (path.clone(), *blake3::hash(bytes).as_bytes()))
            .collect();
        manifest_of(&hashes)
    }

    /// The output digest: blake3 over the canonical manifest.
    pub fn digest(&self) -> Digest<Output> {
        Digest::of(self.manifest().as_bytes())
    }

    /// The output digest of an artifact whose files have these blake3 digests, by path: what
    /// [`Artifact::digest`] gives, for a rule that knows each file's digest without the file
    /// (see [`Rule::output_digest`]).
    pub fn digest_of(hashes: &BTreeMap<String, [u8; 32]>) -> Digest<Output> {
        Digest::of(manifest_of(hashes).as_bytes())
    }
}

/// The canonical manifest of files with these digests.
fn manifest_of(hashes: &BTreeMap<String, [u8; 32]>) -> String {
    let mut m = String::new();
    for (path, hash) in hashes {
        m.push_str(path);
        m.push('\t');
        m.push_str(&blake3::Hash::from_bytes(*hash).to_hex());
        m.push('\n');
    }
    m
}

/// What a change needs from the machine it runs on: the L0 runway derives its checks from these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Requirement {
    /// A program on the control node's PATH.
    Tool {
        /// Program name.
        name: String,
    },
    /// A program on a remote host.
    RemoteTool {
        /// Program name.
        name: String,
        /// Host name.
        host: String,
    },
    /// An environment variable set on the control node.
    Env {
        /// Variable name.
        name: String,
    },
    /// A readable credential file on the control node (`~` expanded).
    File {
        /// The path.
        path: String,
    },
    /// A readable credential file: the path in `env` when that variable is set, else `default`
    /// (`~` expanded), the way talosctl, kubectl and sops find theirs.
    Credential {
        /// What it is, for the check's address (`talosconfig`, `kubeconfig`, `age-key`).
        name: String,
        /// The variable that overrides the path.
        env: Option<String>,
        /// The default path.
        default: String,
    },
    /// A host reachable over SSH.
    Reachable {
        /// Host name.
        host: String,
    },
}

/// What the rule of a node kind gives the engine during realize.
pub struct RealizeCtx<'a> {
    /// The repo's files, read at most once per run.
    pub files: &'a FileSet,
    /// The output digests of this node's input edges.
    pub inputs: &'a BTreeMap<Address, Digest<Output>>,
}

/// A node kind: how its nodes hash, realize and change. The engine knows nodes only through
/// this trait, so a new kind is one new implementation and nothing else.
pub trait Rule: Send + Sync {
    /// The kind, as in addresses.
    fn kind(&self) -> &'static str;

    /// Bumped whenever realize changes what it produces: the version is hashed, so a new
    /// version re-plans every node of the kind (deliberately).
    fn version(&self) -> u32;

    /// The layer of every node of this kind.
    fn layer(&self) -> Layer;

    /// Whether realize is cheap and pure enough to run during plan. Expensive builders
    /// (images) are input-addressed in the plan until they are built.
    fn cheap(&self) -> bool {
        true
    }

    /// Whether nodes of this kind are recorded in state (checks are not: they only read).
    fn stateful(&self) -> bool {
        true
    }

    /// Renders the node's artifact from its inputs. Must be pure: same inputs, same bytes.
    fn realize(&self, node: &Node, ctx: &RealizeCtx<'_>) -> Result<Artifact, Error>;

    /// The digest of the artifact [`Rule::realize`] would make, when the rule can tell it
    /// without making it (from what its loader derived this run); `None` to realize. A plan
    /// needs the digest alone. Whenever it answers, it must be `realize(..)?.digest()`.
    fn output_digest(
        &self,
        _node: &Node,
        _ctx: &RealizeCtx<'_>,
    ) -> Option<Result<Digest<Output>, Error>> {
        None
    }

    /// Top-level parameter keys whose change replaces the node instead of updating it.
    fn replace_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether a change in any input dependency's output replaces the node (a VM whose disk
    /// image changed is made anew, not edited).
    fn replace_on_inputs(&self) -> bool {
        false
    }

    /// What converging this node needs from the machine (tools, env, credentials, hosts).
    fn requirements(&self, _node: &Node) -> Vec<Requirement> {
        Vec::new()
    }

    /// The host that converging this node talks to over SSH, if any: it is reached before
    /// anything is built for the node, and the per-host cap counts against it.
    fn host(&self, node: &Node) -> Option<String> {
        node.address.host().map(str::to_string)
    }

    /// Makes the world match the artifact (upload, switch, start).
    fn converge(&self, node: &Node, _ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        Err(JobError::unsupported(format!(
            "{}: hl has no provider that converges `{}` nodes yet",
            node.address,
            self.kind()
        )))
    }

    /// Checks that what converged works (a healthcheck); a failure fails the node.
    fn verify(&self, _node: &Node, _ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        Ok(())
    }

    /// Removes the node from the world: a delete, or the first half of a replace. For a node
    /// gone from the repo, `node` carries its recorded parameters.
    fn destroy(&self, node: &Node, _ctx: &ApplyCtx<'_>) -> Result<(), JobError> {
        Err(JobError::unsupported(format!(
            "{}: hl has no provider that destroys `{}` nodes yet",
            node.address,
            self.kind()
        )))
    }

    /// Switches the node back to the release it ran before and starts it; returns the output
    /// digest (hex) it now runs.
    fn rollback(&self, node: &Node, _ctx: &ApplyCtx<'_>) -> Result<String, JobError> {
        Err(JobError::unsupported(format!(
            "{}: `{}` nodes cannot be rolled back",
            node.address,
            self.kind()
        )))
    }

    /// Reads what the target actually runs, for `--refresh`: drift is a difference from what
    /// the state recorded.
    fn observe(&self, _node: &Node, _ctx: &ApplyCtx<'_>) -> Result<Observed, JobError> {
        Ok(Observed::Unknown)
    }
}

/// What converge, verify, destroy and observe are given.
pub struct ApplyCtx<'a> {
    /// The artifact to converge to (absent for destroy and observe).
    pub artifact: Option<&'a Artifact>,
    /// Its output digest (the release name), or the recorded one for destroy and observe.
    pub output: Option<Digest<Output>>,
    /// The node's host, when it has one.
    pub transport: Option<&'a Transport>,
    /// Where to report progress.
    pub job: Option<&'a JobCtx>,
    /// The time limit of each command.
    pub timeout: Duration,
}

impl ApplyCtx<'_> {
    /// Reports progress, when a job is listening.
    pub fn say(&self, text: impl Into<String>) {
        if let Some(j) = self.job {
            j.say(text);
        }
    }

    /// The transport, or an error naming the node that needs one.
    pub fn transport(&self, node: &Node) -> Result<&Transport, JobError> {
        self.transport
            .ok_or_else(|| JobError::failed(format!("{}: no transport to its host", node.address)))
    }
}

/// What a target was found to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Observed {
    /// The rule cannot observe this kind.
    Unknown,
    /// It runs what was recorded.
    Matches,
    /// It runs something else, or is stopped: what was found.
    Drifted {
        /// What differs, for people.
        what: String,
    },
    /// It is not there at all.
    Absent,
}
