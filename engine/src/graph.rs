//! The graph: every node of every layer, its edges resolved and checked. Loading refuses
//! duplicate addresses, unknown dependencies (with a did-you-mean), layer inversions and cycles
//! (printed), before anything is hashed or written.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::address::Address;
use crate::error::Error;
use crate::node::{Edge, EdgeKind, Node};

/// The checked dependency graph. Edges point from a dependency to its dependent, so a
/// topological order lists dependencies first.
#[derive(Debug)]
pub struct Graph {
    graph: DiGraph<Node, EdgeKind>,
    index: FxHashMap<Address, NodeIndex>,
}

impl Graph {
    /// Builds and checks the graph from the loaders' nodes.
    pub fn build(mut nodes: Vec<Node>) -> Result<Graph, Error> {
        // Each node's files in order, in parallel: the nodes of a large homelab read tens of
        // thousands.
        nodes
            .par_iter_mut()
            .with_max_len(crate::PAR_TASK)
            .for_each(|node| {
                node.files.sort();
                node.files.dedup();
            });
        let mut graph: DiGraph<Node, EdgeKind> =
            DiGraph::with_capacity(nodes.len(), nodes.len() * 2);
        let mut index: FxHashMap<Address, NodeIndex> =
            FxHashMap::with_capacity_and_hasher(nodes.len(), Default::default());
        for node in nodes {
            if let Some(&first) = index.get(&node.address) {
                return Err(Error::Duplicate {
                    address: node.address,
                    first: graph[first].origin.clone(),
                    second: node.origin,
                });
            }
            let addr = node.address.clone();
            index.insert(addr, graph.add_node(node));
        }
        for &ix in index.values() {
            let node = &graph[ix];
            for edge in &node.edges {
                let Some(&dep) = index.get(&edge.to) else {
                    let mut sorted: Vec<&Address> = index.keys().collect();
                    sorted.sort();
                    return Err(unknown(node, edge, &sorted));
                };
                let dep_layer = graph[dep].layer;
                if dep_layer > node.layer {
                    return Err(Error::LayerInversion {
                        from: node.address.clone(),
                        from_layer: node.layer,
                        to: edge.to.clone(),
                        to_layer: dep_layer,
                        origin: edge.origin.clone().or(Some(node.origin.clone())),
                    });
                }
            }
        }
        let mut edges = Vec::new();
        for &ix in index.values() {
            // The strongest kind wins when a pair is related twice (input > placement > order).
            let mut best: BTreeMap<NodeIndex, EdgeKind> = BTreeMap::new();
            for edge in &graph[ix].edges {
                let dep = index[&edge.to];
                let e = best.entry(dep).or_insert(edge.kind);
                if rank(edge.kind) > rank(*e) {
                    *e = edge.kind;
                }
            }
            edges.extend(best.into_iter().map(|(dep, kind)| (dep, ix, kind)));
        }
        for (dep, ix, kind) in edges {
            graph.add_edge(dep, ix, kind);
        }
        let g = Graph { graph, index };
        g.check_cycles()?;
        Ok(g)
    }

    fn check_cycles(&self) -> Result<(), Error> {
        for scc in tarjan_scc(&self.graph) {
            let looped =
                scc.len() > 1 || self.graph.edges_connecting(scc[0], scc[0]).next().is_some();
            if !looped {
                continue;
            }
            // Walk "depends on" edges inside the component from its smallest address until we
            // come back: that is one cycle, printed in the order a reader follows it.
            let start = *scc
                .iter()
                .min_by_key(|&&ix| &self.graph[ix].address)
                .expect("components are never empty");
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = self
                    .graph
                    .neighbors_directed(cur, Direction::Incoming)
                    .filter(|n| scc.contains(n))
                    .min_by_key(|&n| {
                        // Prefer closing the loop, then unvisited nodes, then by address.
                        (n != start, path.contains(&n), self.graph[n].address.clone())
                    })
                    .expect("a node of a cycle has a dependency inside it");
                path.push(next);
                if next == start || path.len() > scc.len() + 1 {
                    break;
                }
                cur = next;
            }
            let first_edge = self.graph[path[0]]
                .edges
                .iter()
                .find(|e| e.to == self.graph[path[1]].address)
                .and_then(|e| e.origin.clone());
            return Err(Error::Cycle {
                cycle: path
                    .iter()
                    .map(|&ix| self.graph[ix].address.clone())
                    .collect(),
                origin: first_edge,
            });
        }
        Ok(())
    }

    /// The node at an address.
    pub fn get(&self, addr: &Address) -> Option<&Node> {
        self.index.get(addr).map(|&ix| &self.graph[ix])
    }

    /// Whether the graph holds the address.
    pub fn contains(&self, addr: &Address) -> bool {
        self.index.contains_key(addr)
    }

    /// Every node, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.graph.node_weights()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The dependencies of a node, with the kind of each edge, sorted by address.
    pub fn deps(&self, addr: &Address) -> Vec<(&Address, EdgeKind)> {
        self.neighbours(addr, Direction::Incoming)
    }

    /// The dependents of a node, with the kind of each edge, sorted by address.
    pub fn dependents(&self, addr: &Address) -> Vec<(&Address, EdgeKind)> {
        self.neighbours(addr, Direction::Outgoing)
    }

    fn neighbours(&self, addr: &Address, dir: Direction) -> Vec<(&Address, EdgeKind)> {
        let Some(&ix) = self.index.get(addr) else {
            return Vec::new();
        };
        let mut out: Vec<(&Address, EdgeKind)> = self
            .graph
            .edges_directed(ix, dir)
            .map(|e| {
                let other = if dir == Direction::Incoming {
                    petgraph::visit::EdgeRef::source(&e)
                } else {
                    petgraph::visit::EdgeRef::target(&e)
                };
                (&self.graph[other].address, *e.weight())
            })
            .collect();
        out.sort();
        out
    }

    /// The nodes in waves: every node comes after all its dependencies, and the nodes of one
    /// wave are independent of each other (so a wave can be hashed in parallel).
    pub fn waves(&self) -> Vec<Vec<&Node>> {
        let mut depth: HashMap<NodeIndex, usize> = HashMap::with_capacity(self.len());
        let order =
            petgraph::algo::toposort(&self.graph, None).expect("cycles are refused at build");
        let mut waves: Vec<Vec<&Node>> = Vec::new();
        for ix in order {
            let d = self
                .graph
                .neighbors_directed(ix, Direction::Incoming)
                .map(|dep| depth[&dep] + 1)
                .max()
                .unwrap_or(0);
            depth.insert(ix, d);
            if waves.len() <= d {
                waves.resize_with(d + 1, Vec::new);
            }
            waves[d].push(&self.graph[ix]);
        }
        for w in &mut waves {
            w.sort_by(|a, b| a.address.cmp(&b.address));
        }
        waves
    }

    /// Every address, sorted.
    pub fn addresses(&self) -> Vec<&Address> {
        let mut v: Vec<&Address> = self.index.keys().collect();
        v.sort();
        v
    }
}

fn rank(k: EdgeKind) -> u8 {
    match k {
        EdgeKind::Order => 0,
        EdgeKind::Placement => 1,
        EdgeKind::Input => 2,
    }
}

fn unknown(node: &Node, edge: &Edge, known: &[&Address]) -> Error {
    Error::UnknownDependency {
        from: node.address.clone(),
        to: edge.to.clone(),
        origin: edge.origin.clone().or(Some(node.origin.clone())),
        suggestion: did_you_mean(&edge.to, known.iter().copied()),
    }
}

/// The known address closest to `wanted`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wanted: &Address,
    known: impl IntoIterator<Item = &'a Address>,
) -> Option<Address> {
    let w = wanted.to_string();
    known
        .into_iter()
        .map(|a| (strsim::jaro_winkler(&w, &a.to_string()), a))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Layer;
    use crate::files::RepoPath;
    use crate::node::Origin;

    fn node(addr: &str, layer: Layer, deps: &[&str]) -> Node {
        Node {
            address: addr.parse().unwrap(),
            layer,
            params: serde_json::Value::Null.into(),
            files: vec![],
            edges: deps
                .iter()
                .map(|d| Edge {
                    to: d.parse().unwrap(),
                    kind: EdgeKind::Order,
                    origin: None,
                })
                .collect(),
            labels: Default::default(),
            origin: Origin::file(RepoPath::new("x.yaml").unwrap()),
        }
    }

    #[test]
    fn refuses_bad_graphs_with_the_culprits_named() {
        use Layer::*;
        let cases: Vec<(Vec<Node>, &str)> = vec![
            (
                vec![
                    node("compose:a@H", L4, &["compose:b@H"]),
                    node("compose:b@H", L4, &["compose:a@H"]),
                ],
                "dependency cycle: compose:a@H -> compose:b@H -> compose:a@H",
            ),
            (
                vec![
                    node("vm:X", L2, &["compose:a@X"]),
                    node("compose:a@X", L4, &[]),
                ],
                "layer inversion: vm:X (L2) depends on compose:a@X (L4)",
            ),
            (
                vec![
                    node("compose:a@H", L4, &["compose:mosquito@H"]),
                    node("compose:mosquitto@H", L4, &[]),
                ],
                "compose:a@H depends on unknown node `compose:mosquito@H`",
            ),
            (
                vec![node("image:x", L1, &[]), node("image:x", L1, &[])],
                "duplicate address image:x",
            ),
        ];
        for (nodes, want) in cases {
            let err = Graph::build(nodes).unwrap_err();
            assert!(err.to_string().starts_with(want), "got: {err}");
        }
    }

    #[test]
    fn suggests_the_closest_address() {
        let err = Graph::build(vec![
            node("compose:a@H", Layer::L4, &["compose:mosquito@H"]),
            node("compose:mosquitto@H", Layer::L4, &[]),
        ])
        .unwrap_err();
        assert_eq!(
            err.help().as_deref(),
            Some("did you mean `compose:mosquitto@H`?")
        );
    }

    #[test]
    fn waves_put_dependencies_first() {
        let g = Graph::build(vec![
            node("compose:c@H", Layer::L4, &["compose:b@H"]),
            node("compose:b@H", Layer::L4, &["compose:a@H"]),
            node("compose:a@H", Layer::L4, &[]),
        ])
        .unwrap();
        let names: Vec<Vec<String>> = g
            .waves()
            .iter()
            .map(|w| w.iter().map(|n| n.address.to_string()).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["compose:a@H"],
                vec!["compose:b@H"],
                vec!["compose:c@H"]
            ]
        );
    }
}
