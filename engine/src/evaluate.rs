//! Hashing the graph: input digests, realize on an action-cache miss, output digests, early
//! cutoff. Nodes of one wave are independent and are evaluated in parallel.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use crate::address::Address;
use crate::digest::{write_json_str, Content, Digest, Input, Output};
use crate::error::Error;
use crate::files::{FileSet, RepoPath, Stats};
use crate::graph::Graph;
use crate::node::{Artifact, EdgeKind, Node, RealizeCtx, Rule};
use crate::statcache::{StatCache, StatUpdate};
use crate::state::{Record, State};
use hl_cache::{ActionCache, Fetched, Store};

/// The rules by kind.
#[derive(Default)]
pub struct Registry {
    rules: HashMap<&'static str, Box<dyn Rule>>,
}

impl Registry {
    /// Adds a rule.
    pub fn add(&mut self, rule: Box<dyn Rule>) {
        self.rules.insert(rule.kind(), rule);
    }

    /// The rule of a kind.
    pub fn rule(&self, kind: &str) -> Result<&dyn Rule, Error> {
        self.rules
            .get(kind)
            .map(|r| r.as_ref())
            .ok_or_else(|| Error::Internal(format!("no rule for node kind `{kind}`")))
    }
}

/// The local cache: the content-addressed store and the action cache.
#[derive(Debug, Clone)]
pub struct Caches {
    /// Artifacts and input blobs by content.
    pub store: Store,
    /// Input digest -> output digest.
    pub actions: ActionCache,
}

impl Caches {
    /// Stores an artifact: each file by content, then its manifest, whose hash is the output
    /// digest, so an output digest is enough to find the whole artifact again.
    pub fn put_artifact(&self, artifact: &Artifact) -> Result<Digest<Output>, Error> {
        for bytes in artifact.files.values() {
            self.store.put(bytes)?;
        }
        let key = self.store.put(artifact.manifest().as_bytes())?;
        Ok(Digest::from_bytes(key))
    }

    /// The artifact of an output digest, every object verified. `Evicted` when an object was
    /// corrupted (it is removed, and the caller rebuilds), `Miss` when one is absent.
    pub fn artifact(&self, output: &Digest<Output>) -> Result<Fetched<Artifact>, Error> {
        let manifest = match self.store.get(output.bytes())? {
            Fetched::Hit(m) => m,
            Fetched::Miss => return Ok(Fetched::Miss),
            Fetched::Evicted => return Ok(Fetched::Evicted),
        };
        let text = String::from_utf8_lossy(&manifest).into_owned();
        let mut art = Artifact::default();
        for line in text.lines() {
            let Some((path, hex)) = line.split_once('\t') else {
                return Ok(Fetched::Evicted);
            };
            let Some(d) = Digest::<Content>::parse_hex(hex) else {
                return Ok(Fetched::Evicted);
            };
            match self.store.get(d.bytes())? {
                Fetched::Hit(b) => {
                    art.files.insert(path.to_string(), b);
                }
                Fetched::Miss => return Ok(Fetched::Miss),
                Fetched::Evicted => return Ok(Fetched::Evicted),
            }
        }
        Ok(Fetched::Hit(art))
    }

    /// The caches under one folder.
    pub fn open(root: &std::path::Path) -> Result<Caches, Error> {
        Ok(Caches {
            store: Store::open(root)?,
            actions: ActionCache::open(root)?,
        })
    }
}

/// One node, hashed.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// Digest of everything that went in.
    pub input: Digest<Input>,
    /// Digest of what came out; for an unbuilt expensive node, a stand-in derived from the input.
    pub output: Digest<Output>,
    /// False when the node is expensive and not built yet ("will build").
    pub built: bool,
    /// The content digest of each input file.
    pub files: BTreeMap<RepoPath, Digest<Content>>,
    /// The output digest of each input edge.
    pub inputs: BTreeMap<Address, Digest<Output>>,
}

/// What an evaluation produced, by address.
pub type Evaluation = BTreeMap<Address, Evaluated>;

/// The input digest of a node: rule kind and version, canonical params, input files and input
/// edges, in one canonical JSON document.
pub fn input_digest(
    rule: &dyn Rule,
    node: &Node,
    files: &BTreeMap<RepoPath, Digest<Content>>,
    inputs: &BTreeMap<Address, Digest<Output>>,
) -> Digest<Input> {
    // The canonical JSON of {files, inputs, kind, params, version} (keys in sorted order),
    // written into one buffer: the same bytes as `canonical_json` of that document, without
    // building it (a large homelab hashes tens of thousands of file entries).
    let mut b: Vec<u8> = Vec::with_capacity(256 + files.len() * 160);
    b.extend_from_slice(b"{\"files\":[");
    for (i, (p, d)) in files.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.push(b'[');
        write_json_str(p.as_str(), &mut b);
        b.extend_from_slice(b",\"");
        b.extend_from_slice(d.hex().as_bytes());
        b.extend_from_slice(b"\"]");
    }
    b.extend_from_slice(b"],\"inputs\":[");
    for (i, (a, d)) in inputs.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.push(b'[');
        write_json_str(&a.to_string(), &mut b);
        b.extend_from_slice(b",\"");
        b.extend_from_slice(d.hex().as_bytes());
        b.extend_from_slice(b"\"]");
    }
    b.extend_from_slice(b"],\"kind\":");
    write_json_str(rule.kind(), &mut b);
    b.extend_from_slice(b",\"params\":");
    b.extend_from_slice(node.params.canonical().as_bytes());
    b.extend_from_slice(format!(",\"version\":{}}}", rule.version()).as_bytes());
    let h = blake3::hash(&b);
    Digest::from_bytes(*h.as_bytes())
}

/// The stand-in output of an expensive node that has not been built: input-addressed.
pub fn unbuilt_output(input: &Digest<Input>) -> Digest<Output> {
    Digest::of(format!("unbuilt:{}", input.hex()).as_bytes())
}

/// Every input file of the graph's nodes, once each (deduplicated by hashing, not sorting: a
/// sort compares 60,000 long paths byte by byte on a large homelab).
pub(crate) fn input_files(graph: &Graph) -> Vec<RepoPath> {
    let mut seen: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
    graph
        .nodes()
        .flat_map(|n| n.files.iter())
        .filter(|p| seen.insert(p.as_str()))
        .cloned()
        .collect()
}

/// Hashes every node of the graph. Returns the evaluation and what the stat cache learnt.
pub fn evaluate(
    graph: &Graph,
    registry: &Registry,
    files: &FileSet,
    stat: &StatCache,
    caches: &Caches,
    state: &State,
) -> Result<(Evaluation, StatUpdate), Error> {
    let next_stat = files.hash_all(&input_files(graph), stat)?;

    let waves = || -> Result<Evaluation, Error> {
        let mut done: Evaluation = BTreeMap::new();
        for wave in graph.waves() {
            let results: Vec<Result<(Address, Evaluated), Error>> = wave
                .par_iter()
                .with_max_len(crate::PAR_TASK / 4)
                .map(|node| {
                    let ev = evaluate_node(graph, registry, files, caches, state, &done, node)?;
                    Ok((node.address.clone(), ev))
                })
                .collect();
            for r in results {
                let (a, ev) = r?;
                done.insert(a, ev);
            }
        }
        Ok(done)
    };
    // The actions recorded are written even when a node failed, as they were one by one.
    let done = waves();
    let flushed = caches.actions.flush();
    let done = done?;
    flushed?;
    Ok((done, next_stat))
}

fn evaluate_node(
    graph: &Graph,
    registry: &Registry,
    files: &FileSet,
    caches: &Caches,
    state: &State,
    done: &Evaluation,
    node: &Node,
) -> Result<Evaluated, Error> {
    let rule = registry.rule(node.address.kind())?;
    let inputs = input_outputs(graph, done, node);
    evaluate_one(rule, node, files, caches, state.get(&node.address), inputs)
}

/// Hashes one node whose files are hashed ([`FileSet::hash_all`]), given the outputs of its
/// input edges and its record in the state: its input digest, then its output from the
/// record, the action cache, or by realizing it (a cheap node). The action of a realize is
/// deferred: the caller flushes the action cache.
pub fn evaluate_one(
    rule: &dyn Rule,
    node: &Node,
    files: &FileSet,
    caches: &Caches,
    rec: Option<&Record>,
    inputs: BTreeMap<Address, Digest<Output>>,
) -> Result<Evaluated, Error> {
    let file_digests = file_digests(files, node)?;
    let input = input_digest(rule, node, &file_digests, &inputs);
    // The state already knows the output of this very input: no need to ask the cache (one
    // file read per node adds up on a large homelab's no-op plan).
    if let Some(rec) = rec.filter(|r| r.input == input) {
        return Ok(Evaluated {
            input,
            output: rec.output,
            built: rec.built,
            files: file_digests,
            inputs,
        });
    }
    let (output, built) = match cached(caches, &node.address, &input)? {
        Some(out) => (out, true),
        None if !rule.cheap() => match rec {
            // Built by an earlier apply whose cache entry is gone: the state still knows.
            Some(rec) if rec.input == input && rec.built => (rec.output, true),
            _ => (unbuilt_output(&input), false),
        },
        None => (produce(rule, node, files, caches, &input, &inputs)?, true),
    };
    Ok(Evaluated {
        input,
        output,
        built,
        files: file_digests,
        inputs,
    })
}

/// The output of each input edge of a node, from its evaluated dependencies.
fn input_outputs(
    graph: &Graph,
    done: &Evaluation,
    node: &Node,
) -> BTreeMap<Address, Digest<Output>> {
    graph
        .deps(&node.address)
        .into_iter()
        .filter(|(_, kind)| *kind == EdgeKind::Input)
        .map(|(a, _)| (a.clone(), done[a].output))
        .collect()
}

/// The digest of each input file of a node, hashed already ([`FileSet::hash_all`]).
fn file_digests(
    files: &FileSet,
    node: &Node,
) -> Result<BTreeMap<RepoPath, Digest<Content>>, Error> {
    node.files
        .iter()
        .map(|p| {
            files
                .digest(p)
                .map(|d| (p.clone(), d))
                .ok_or_else(|| Error::Internal(format!("{p} was not hashed")))
        })
        .collect()
}

/// What goes into a node: its files' digests, its input edges' outputs, and the input digest.
pub(crate) type Prepared = (
    Digest<Input>,
    BTreeMap<RepoPath, Digest<Content>>,
    BTreeMap<Address, Digest<Output>>,
);

/// Gathers a node's inputs from the hashed files and the outputs of its evaluated dependencies.
pub(crate) fn prepare(
    graph: &Graph,
    rule: &dyn Rule,
    files: &FileSet,
    done: &Evaluation,
    node: &Node,
) -> Result<Prepared, Error> {
    let file_digests = file_digests(files, node)?;
    let inputs = input_outputs(graph, done, node);
    let input = input_digest(rule, node, &file_digests, &inputs);
    Ok((input, file_digests, inputs))
}

/// The output the action cache records for an input digest; a corrupted entry is evicted and
/// said so, then treated as a miss.
pub(crate) fn cached(
    caches: &Caches,
    addr: &Address,
    input: &Digest<Input>,
) -> Result<Option<Digest<Output>>, Error> {
    Ok(match caches.actions.get(input.bytes())? {
        Fetched::Hit(out) => Some(Digest::from_bytes(out)),
        Fetched::Miss => None,
        Fetched::Evicted => {
            tracing::warn!("{addr}: corrupted action-cache entry evicted; rebuilding it");
            None
        }
    })
}

/// Realizes a node during a plan and records the action; returns the output digest. The
/// artifact itself is not stored: a plan needs its digest alone, and storing every file of
/// every realized node (a cold plan of a large homelab copied 120 MB into 45,000 objects, most
/// of its time) is left to `hl apply` and `hl build`, which realize again what they use. The
/// action is deferred: the caller flushes them all at once (one file for thousands of nodes,
/// see `hl_cache::ActionCache::flush`).
pub(crate) fn produce(
    rule: &dyn Rule,
    node: &Node,
    files: &FileSet,
    caches: &Caches,
    input: &Digest<Input>,
    inputs: &BTreeMap<Address, Digest<Output>>,
) -> Result<Digest<Output>, Error> {
    let ctx = RealizeCtx { files, inputs };
    let out = match rule.output_digest(node, &ctx) {
        Some(digest) => digest?,
        None => rule.realize(node, &ctx)?.digest(),
    };
    Stats::bump(&files.stats.nodes_realized);
    caches.actions.defer(input.bytes(), out.bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Layer;
    use crate::digest::canonical_json;
    use crate::node::Origin;
    use serde_json::{json, Value};

    struct R;
    impl Rule for R {
        fn kind(&self) -> &'static str {
            "compose"
        }
        fn version(&self) -> u32 {
            3
        }
        fn layer(&self) -> Layer {
            Layer::L4
        }
        fn realize(&self, _: &Node, _: &RealizeCtx<'_>) -> Result<Artifact, Error> {
            Ok(Artifact::default())
        }
    }

    /// The streamed encoding is byte for byte the canonical JSON of the input document (the
    /// digest every recorded state was made with), and the digest is pinned.
    #[test]
    fn input_digest_is_the_canonical_json_of_its_document() {
        let node = Node {
            address: "compose:a\"b@H"
                .parse()
                .unwrap_or_else(|_| "compose:ab@H".parse().unwrap()),
            layer: Layer::L4,
            params: json!({"z": 1, "a": ["x", {"k": "v\n"}]}).into(),
            files: vec![],
            edges: vec![],
            labels: Default::default(),
            origin: Origin::file(RepoPath::new("x.yaml").unwrap()),
        };
        let files = BTreeMap::from([
            (
                RepoPath::new("services/a/b c.yml").unwrap(),
                Digest::of(b"1"),
            ),
            (
                RepoPath::new("services/a/\"q\".conf").unwrap(),
                Digest::of(b"2"),
            ),
        ]);
        let inputs = BTreeMap::from([("image:x".parse().unwrap(), Digest::of(b"3"))]);
        let doc = json!({
            "kind": "compose",
            "version": 3,
            "params": node.params,
            "files": files.iter().map(|(p, d)| json!([p.as_str(), d.hex()])).collect::<Vec<Value>>(),
            "inputs": inputs.iter().map(|(a, d): (&Address, &Digest<Output>)| json!([a.to_string(), d.hex()])).collect::<Vec<Value>>(),
        });
        let want: Digest<Input> = Digest::of(canonical_json(&doc).as_bytes());
        assert_eq!(input_digest(&R, &node, &files, &inputs), want);
    }
}
