//! What a plan memo needs to be patched instead of made again when a few files moved (see
//! [`crate::planpatch`]), laid out so that a patch reads only what the moved files reach:
//!
//! - `.hl/plannodes`: each node of the graph by its place in the plan (a topological order):
//!   the node as the loaders found it and its edges both ways; and which nodes read each input
//!   file. Each is read alone. It changes only with the graph, so it is written again only
//!   when the load cache or the nodes recorded but gone from the repo are others
//!   ([`nodes_key`]); an apply that changes records alone leaves it as it is.
//! - `.hl/planevals`: each node's evaluation (input, output, built) and where its record lies
//!   in `state.json`, by place, fixed-width, read and written whole with every patch (under a
//!   megabyte for 8,000 nodes).

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hl_engine::{Address, EdgeKind, Evaluation, Graph, Node, Plan};
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 2;

/// A node's record in the state file: its input digest and where it lies
/// ([`hl_engine::state::record_spans`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAt {
    /// The recorded input digest.
    pub input: [u8; 32],
    /// Byte offset of the record's value in state.json.
    pub at: u64,
    /// Its length.
    pub len: u32,
}

/// An edge kind, as the index stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// [`EdgeKind::Input`].
    Input,
    /// [`EdgeKind::Order`].
    Order,
    /// [`EdgeKind::Placement`].
    Placement,
}

impl From<EdgeKind> for Kind {
    fn from(k: EdgeKind) -> Kind {
        match k {
            EdgeKind::Input => Kind::Input,
            EdgeKind::Order => Kind::Order,
            EdgeKind::Placement => Kind::Placement,
        }
    }
}

/// An edge to another node: its place, the kind, its address.
pub type Link = (u32, Kind, String);

/// One node at its place in the plan, as written (borrowed).
#[derive(Serialize)]
struct PlaceRef<'a> {
    node: &'a Node,
    deps: Vec<Link>,
    dependents: Vec<Link>,
}

/// One node at its place in the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Place {
    /// The node.
    pub node: Node,
    /// Its dependencies.
    pub deps: Vec<Link>,
    /// Its dependents.
    pub dependents: Vec<Link>,
}

/// The hash of a path in the readers table (a collision only makes a node looked at again).
fn path_hash(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    path.hash(&mut h);
    h.finish()
}

fn nodes_path(hl_dir: &Path) -> PathBuf {
    hl_dir.join("plannodes")
}

fn evals_path(hl_dir: &Path) -> PathBuf {
    hl_dir.join("planevals")
}

/// What the nodes file of a graph is keyed on: the binary, the load cache's generation and
/// the nodes recorded but gone from the repo with the runway checks their deletions need (the
/// graph is a function of the loaders' nodes and of those checks).
pub fn nodes_key(
    build: &str,
    loadcache: u64,
    gone: &std::collections::BTreeMap<Address, Vec<Address>>,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(build.as_bytes());
    h.update(&loadcache.to_le_bytes());
    for (a, checks) in gone {
        h.update(format!("{a} {checks:?}\n").as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Bytes before the table: format, key, node count, readers count.
const HEAD: u64 = 44;
/// Bytes of one table row (offset, length) and of one reader (path hash, place).
const ROW: u64 = 12;

/// The nodes file, open: places are read one by one.
pub struct Nodes {
    file: std::fs::File,
    /// The key it was made under.
    pub key: [u8; 32],
    count: u32,
    readers: u32,
}

impl Nodes {
    /// Opens the nodes file; `None` when absent or of another format.
    pub fn open(hl_dir: &Path) -> Option<Nodes> {
        let mut file = std::fs::File::open(nodes_path(hl_dir)).ok()?;
        let mut head = [0u8; HEAD as usize];
        file.read_exact(&mut head).ok()?;
        let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
        (word(0) == FORMAT).then(|| Nodes {
            key: head[4..36].try_into().expect("32 bytes"),
            count: word(36),
            readers: word(40),
            file,
        })
    }

    /// The number of places.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    fn row(&self, at: u64) -> Option<(u64, u32)> {
        let mut row = [0u8; ROW as usize];
        self.file.read_exact_at(&mut row, at).ok()?;
        Some((
            u64::from_le_bytes(row[..8].try_into().ok()?),
            u32::from_le_bytes(row[8..].try_into().ok()?),
        ))
    }

    /// The node at place `i`, with its edges.
    pub fn place(&self, i: u32) -> Option<Place> {
        if i >= self.count {
            return None;
        }
        let (offset, len) = self.row(HEAD + ROW * u64::from(i))?;
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact_at(&mut bytes, offset).ok()?;
        rmp_serde::from_slice(&bytes).ok()
    }

    /// The places of the nodes that may read `path` (a binary search of the readers table).
    pub fn readers_of(&self, path: &str) -> Option<Vec<u32>> {
        let h = path_hash(path);
        let start = HEAD + ROW * u64::from(self.count);
        let reader = |i: u32| self.row(start + ROW * u64::from(i));
        let (mut lo, mut hi) = (0, self.readers);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if reader(mid)?.0 < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut out = Vec::new();
        while lo < self.readers {
            match reader(lo)? {
                (x, place) if x == h => out.push(place),
                _ => break,
            }
            lo += 1;
        }
        Some(out)
    }
}

/// One node's evaluation, and where its record lies in the state file.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    /// The input digest.
    pub input: [u8; 32],
    /// The output digest.
    pub output: [u8; 32],
    /// Whether the output is built.
    pub built: bool,
    /// Its record, if any.
    pub record: Option<RecordAt>,
}

/// Bytes of one [`Eval`]: input, output, built, then whether recorded, the recorded input, the
/// record's offset and length.
const EVAL: usize = 32 + 32 + 1 + 1 + 32 + 8 + 4;

impl Eval {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.input);
        out.extend_from_slice(&self.output);
        out.push(u8::from(self.built));
        let none = RecordAt {
            input: [0; 32],
            at: 0,
            len: 0,
        };
        let r = self.record.as_ref().unwrap_or(&none);
        out.push(u8::from(self.record.is_some()));
        out.extend_from_slice(&r.input);
        out.extend_from_slice(&r.at.to_le_bytes());
        out.extend_from_slice(&r.len.to_le_bytes());
    }

    fn read(b: &[u8]) -> Option<Eval> {
        Some(Eval {
            input: b[..32].try_into().ok()?,
            output: b[32..64].try_into().ok()?,
            built: b[64] == 1,
            record: (b[65] == 1).then_some(RecordAt {
                input: b[66..98].try_into().ok()?,
                at: u64::from_le_bytes(b[98..106].try_into().ok()?),
                len: u32::from_le_bytes(b[106..110].try_into().ok()?),
            }),
        })
    }
}

/// Each node's evaluation and record by place.
#[derive(Debug, Clone, PartialEq)]
pub struct Evals {
    /// Ties them to a memo.
    pub id: u64,
    /// The nodes file they go with.
    pub key: [u8; 32],
    /// One per place.
    pub evals: Vec<Eval>,
}

impl Evals {
    /// Reads them; `None` when absent or unreadable.
    pub fn read(hl_dir: &Path) -> Option<Evals> {
        let bytes = std::fs::read(evals_path(hl_dir)).ok()?;
        let (head, rest) = bytes.split_at_checked(48)?;
        if head[..4] != FORMAT.to_le_bytes() || rest.len() % EVAL != 0 {
            return None;
        }
        // Sized up front: grown row by row, the vector was copied and its pages zeroed anew
        // several times, a fifth of a patch.
        let mut evals = Vec::with_capacity(rest.len() / EVAL);
        for row in rest.chunks_exact(EVAL) {
            evals.push(Eval::read(row)?);
        }
        Some(Evals {
            id: u64::from_le_bytes(head[4..12].try_into().ok()?),
            key: head[12..44].try_into().ok()?,
            evals,
        })
    }

    /// Writes them under a new id, which is returned; `None` when they could not be written
    /// (only work lost).
    pub fn write(&mut self, hl_dir: &Path) -> Option<u64> {
        self.id = hl_engine::journal::generation();
        let mut bytes = Vec::with_capacity(48 + EVAL * self.evals.len());
        bytes.extend_from_slice(&FORMAT.to_le_bytes());
        bytes.extend_from_slice(&self.id.to_le_bytes());
        bytes.extend_from_slice(&self.key);
        bytes.extend_from_slice(&u32::try_from(self.evals.len()).ok()?.to_le_bytes());
        for e in &self.evals {
            e.write(&mut bytes);
        }
        hl_cache::write_cached(&evals_path(hl_dir), &bytes).ok()?;
        Some(self.id)
    }
}

/// The place of each node of a graph in a plan made whole (no-ops included).
pub fn places<'a>(graph: &Graph, plan: &'a Plan) -> rustc_hash::FxHashMap<&'a Address, u32> {
    plan.steps
        .iter()
        .filter(|s| graph.contains(&s.address))
        .enumerate()
        .map(|(i, s)| (&s.address, i as u32))
        .collect()
}

/// Writes what a patch of a plan just made (`plan` whole) needs: the nodes file unless the
/// one there was made under `key`, and the evaluations, whose id is returned. `None` when a
/// piece could not be made or written.
pub fn keep(
    hl_dir: &Path,
    key: [u8; 32],
    graph: &Graph,
    eval: &Evaluation,
    plan: &Plan,
    state: &hl_engine::State,
    spans: Option<&hl_engine::state::Spans>,
) -> Option<u64> {
    let place = places(graph, plan);
    let order: Vec<&Node> = plan
        .steps
        .iter()
        .filter_map(|s| graph.get(&s.address))
        .collect();
    if order.len() != graph.len() {
        return None;
    }
    let spans = spans?;
    let evals = order
        .iter()
        .map(|n| {
            let ev = eval.get(&n.address)?;
            let record = match state.get(&n.address) {
                None => None,
                Some(r) => {
                    let span = spans.get(&n.address.to_string())?;
                    Some(RecordAt {
                        input: *r.input.bytes(),
                        at: span.start as u64,
                        len: u32::try_from(span.len()).ok()?,
                    })
                }
            };
            Some(Eval {
                input: *ev.input.bytes(),
                output: *ev.output.bytes(),
                built: ev.built,
                record,
            })
        })
        .collect::<Option<_>>()?;
    if Nodes::open(hl_dir).is_none_or(|n| n.key != key || n.len() != order.len()) {
        write_nodes(hl_dir, key, graph, &order, &place)?;
    }
    Evals { id: 0, key, evals }.write(hl_dir)
}

fn write_nodes(
    hl_dir: &Path,
    key: [u8; 32],
    graph: &Graph,
    order: &[&Node],
    place: &rustc_hash::FxHashMap<&Address, u32>,
) -> Option<()> {
    use rayon::prelude::*;
    use std::io::Write;
    let links = |edges: Vec<(&Address, EdgeKind)>| -> Option<Vec<Link>> {
        edges
            .into_iter()
            .map(|(a, k)| Some((*place.get(a)?, k.into(), a.to_string())))
            .collect()
    };
    let encoded: Vec<Vec<u8>> = order
        .par_iter()
        .with_max_len(hl_engine::PAR_TASK)
        .map(|node| {
            let place = PlaceRef {
                node,
                deps: links(graph.deps(&node.address))?,
                dependents: links(graph.dependents(&node.address))?,
            };
            rmp_serde::to_vec(&place).ok()
        })
        .collect::<Option<_>>()?;
    let mut readers: Vec<(u64, u32)> = order
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.files
                .iter()
                .map(move |p| (path_hash(p.as_str()), i as u32))
        })
        .collect();
    readers.sort_unstable();
    readers.dedup();
    // Streamed to a temp file renamed over the old one: the blobs are not copied into one
    // buffer first.
    let path = nodes_path(hl_dir);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
        out.write_all(&FORMAT.to_le_bytes())?;
        out.write_all(&key)?;
        out.write_all(&(order.len() as u32).to_le_bytes())?;
        out.write_all(&(readers.len() as u32).to_le_bytes())?;
        let mut at = HEAD + ROW * (order.len() + readers.len()) as u64;
        for b in &encoded {
            out.write_all(&at.to_le_bytes())?;
            out.write_all(&(b.len() as u32).to_le_bytes())?;
            at += b.len() as u64;
        }
        for (h, i) in &readers {
            out.write_all(&h.to_le_bytes())?;
            out.write_all(&i.to_le_bytes())?;
        }
        for b in &encoded {
            out.write_all(b)?;
        }
        out.into_inner()?;
        std::fs::rename(&tmp, &path)
    };
    if write().is_err() {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    Some(())
}
