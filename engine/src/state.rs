//! The embedded state: `.hl/state.json`, what was last applied (or adopted) per node.
//!
//! A record keeps everything a later plan needs to explain a change without the old tree:
//! the input and output digests, the parameters, and the digest of every input file and input
//! edge. Old file contents live in the store under those digests, so `hl why` can show lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::address::{Address, Layer};
use crate::digest::{Content, Digest, Input, Output};
use crate::error::Error;
use crate::files::RepoPath;

/// The version of the state file's format.
pub const STATE_FORMAT: u32 = 1;

/// What was applied to one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The node's layer.
    pub layer: Layer,
    /// The rule version that produced it.
    pub rule_version: u32,
    /// The input digest applied.
    pub input: Digest<Input>,
    /// The output digest applied.
    pub output: Digest<Output>,
    /// Whether the output is a real build (false: input-addressed stand-in).
    #[serde(default = "yes")]
    pub built: bool,
    /// The parameters applied.
    pub params: Lazy<Value>,
    /// Input files and their content digests.
    pub files: Lazy<BTreeMap<RepoPath, Digest<Content>>>,
    /// Input edges and their output digests.
    pub inputs: BTreeMap<Address, Digest<Output>>,
    /// Selection labels (host, tags), so a deleted node can still be selected.
    #[serde(default)]
    pub labels: BTreeSet<String>,
    /// How the record got here: `adopt` or `apply`.
    pub via: String,
}

fn yes() -> bool {
    true
}

impl Record {
    /// What applying (or adopting, `via`) a node's evaluation records.
    pub fn of(
        node: &crate::node::Node,
        rule_version: u32,
        ev: &crate::evaluate::Evaluated,
        via: &str,
    ) -> Record {
        Record {
            layer: node.layer,
            rule_version,
            input: ev.input,
            output: ev.output,
            built: ev.built,
            params: Lazy::new(Value::clone(&node.params)),
            files: Lazy::new(ev.files.clone()),
            inputs: ev.inputs.clone(),
            labels: node.labels.clone(),
            via: via.into(),
        }
    }
}

/// A part of a record read from the state file but parsed only when used. A plan compares
/// every record's digests, but reads the parameters and input files of changed nodes alone,
/// and on a large homelab those are most of the file (a no-op plan parsed them all, 15 MB).
#[derive(Debug, Clone)]
pub struct Lazy<T> {
    raw: Option<Box<RawValue>>,
    value: OnceLock<Result<T, String>>,
}

impl<T> Lazy<T> {
    /// A part known already.
    pub fn new(value: T) -> Lazy<T> {
        Lazy {
            raw: None,
            value: OnceLock::from(Ok(value)),
        }
    }
}

impl<T: DeserializeOwned> Lazy<T> {
    /// The part, parsed on first use; an error when the state file holds something else there.
    pub fn get(&self) -> Result<&T, Error> {
        let parsed = self.value.get_or_init(|| match &self.raw {
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
            None => Err("missing".into()),
        });
        parsed.as_ref().map_err(|e| Error::Environment {
            message: format!("the hl state file has a broken record: {e}"),
            help: Some(
                "restore .hl/state.json from a backup, or remove it and run `hl state adopt`"
                    .into(),
            ),
        })
    }
}

impl<T: Serialize> Serialize for Lazy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.value.get(), &self.raw) {
            (Some(Ok(v)), _) => v.serialize(s),
            (_, Some(raw)) => raw.serialize(s),
            _ => Err(serde::ser::Error::custom(
                "a record part that is neither parsed nor read",
            )),
        }
    }
}

impl<'de, T> Deserialize<'de> for Lazy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lazy {
            raw: Some(Box::<RawValue>::deserialize(d)?),
            value: OnceLock::new(),
        })
    }
}

impl<T: DeserializeOwned + PartialEq> PartialEq for Lazy<T> {
    fn eq(&self, other: &Lazy<T>) -> bool {
        match (self.get(), other.get()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.raw.as_ref().map(|r| r.get()) == other.raw.as_ref().map(|r| r.get()),
        }
    }
}

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version of this file.
    pub format_version: u32,
    /// Records by address.
    pub nodes: BTreeMap<Address, Record>,
}

impl State {
    /// Loads the state, with the journal of a run that did not finish replayed over it; an
    /// absent file is an empty state (everything is to create).
    pub fn load(path: &Path) -> Result<State, Error> {
        Ok(Self::load_indexed(path)?.0)
    }

    /// [`State::load`], and where each record lies in the state file ([`record_spans`]) when
    /// no journal was replayed over it (then the file alone holds the state).
    pub fn load_indexed(path: &Path) -> Result<(State, Option<Spans>), Error> {
        let (mut state, spans) = Self::load_file(path)?;
        let journal = journal_path(path);
        if journal.exists() {
            state.replay(&journal);
            return Ok((state, None));
        }
        Ok((state, spans))
    }

    fn load_file(path: &Path) -> Result<(State, Option<Spans>), Error> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let state: State =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Environment {
                        message: format!("{} is not a valid hl state file: {e}", path.display()),
                        help: Some(
                            "restore it from a backup, or remove it and run `hl state adopt`"
                                .into(),
                        ),
                    })?;
                if state.format_version > STATE_FORMAT {
                    return Err(Error::Environment {
                        message: format!(
                            "{} has state format {}, newer than this hl understands ({STATE_FORMAT})",
                            path.display(),
                            state.format_version
                        ),
                        help: Some("upgrade hl".into()),
                    });
                }
                let spans = record_spans(&bytes).map(|v| v.into_iter().collect());
                Ok((state, spans))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((
                State {
                    format_version: STATE_FORMAT,
                    nodes: BTreeMap::new(),
                },
                Some(Spans::new()),
            )),
            Err(e) => Err(Error::io("cannot read state", path, e)),
        }
    }

    /// Writes the state atomically (temp file, fsync, rename), then drops the journal, whose
    /// records it now holds.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut s =
            serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        s.push('\n');
        hl_cache::write_atomic(path, s.as_bytes())?;
        let j = journal_path(path);
        match std::fs::remove_file(&j) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("cannot remove", j, e))
            }
            _ => Ok(()),
        }
    }

    /// Applies the lines of a journal, in order; a torn last line (a crash mid-write) is
    /// ignored, since the node it names did not finish being recorded.
    fn replay(&mut self, journal: &Path) {
        let Ok(text) = std::fs::read_to_string(journal) else {
            return;
        };
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<JournalEntry>(line) else {
                continue;
            };
            match entry.record {
                Some(r) => self.nodes.insert(entry.address, r),
                None => self.nodes.remove(&entry.address),
            };
        }
    }

    /// The record of a node.
    pub fn get(&self, addr: &Address) -> Option<&Record> {
        self.nodes.get(addr)
    }
}

/// Where each record of a state file lies: address -> byte range of its value.
pub type Spans = std::collections::HashMap<String, std::ops::Range<usize>>;

/// Where each record lies in a state file as [`State::save`] writes it, pretty-printed: each
/// record's address at four spaces' indent, its value closed by a brace at the same indent
/// (inside values, a newline is always escaped). Address and byte range of the value, in
/// file order; `None` when the file is not laid out that way. Lets a plan that needs a few
/// records read those alone ([`record_at`]) instead of parsing the whole file.
pub fn record_spans(bytes: &[u8]) -> Option<Vec<(String, std::ops::Range<usize>)>> {
    const KEY: &[u8] = b"\n    \"";
    const END: &[u8] = b"\n    }";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(k) = memchr::memmem::find(&bytes[at..], KEY) {
        let key_start = at + k + KEY.len() - 1;
        let line_end = key_start + memchr::memchr(b'\n', &bytes[key_start..])?;
        let line = &bytes[key_start..line_end];
        let key_len = line.strip_suffix(b": {")?.len();
        let address: String = serde_json::from_slice(&line[..key_len]).ok()?;
        let value_start = key_start + key_len + 2;
        let end = line_end + memchr::memmem::find(&bytes[line_end..], END)? + END.len();
        out.push((address, value_start..end));
        at = end;
    }
    Some(out)
}

/// The record at a span of a state file found by [`record_spans`].
pub fn record_at(bytes: &[u8]) -> Result<Record, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Environment {
        message: format!("the hl state file has a broken record: {e}"),
        help: Some(
            "restore .hl/state.json from a backup, or remove it and run `hl state adopt`".into(),
        ),
    })
}

/// Where the journal of a state file lives.
pub fn journal_path(state: &Path) -> std::path::PathBuf {
    state.with_extension("journal")
}

#[derive(Serialize, Deserialize)]
struct JournalEntry {
    address: Address,
    record: Option<Record>,
}

/// The journal of a run: one line per finished node, appended as it finishes. Rewriting the
/// whole state after every node costs O(n) each, O(n^2) a run; appending is O(1), and the state
/// file is written once at the end. A process that dies (kill -9) loses nothing: each line is
/// written whole before the next node starts, and the next load replays it. Lines are flushed
/// to the disk at most every 50 ms and at the end, so a power cut can lose the last instants.
pub struct Journal {
    file: std::fs::File,
    path: std::path::PathBuf,
    synced: std::time::Instant,
}

impl Journal {
    /// Opens (appends to) the journal of the state file at `state`.
    pub fn open(state: &Path) -> Result<Journal, Error> {
        let path = journal_path(state);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("cannot open", &path, e))?;
        Ok(Journal {
            file,
            path,
            synced: std::time::Instant::now(),
        })
    }

    /// Records that a node now runs `record` (or is gone, for `None`).
    pub fn record(&mut self, address: &Address, record: Option<&Record>) -> Result<(), Error> {
        use std::io::Write;
        let mut line =
            serde_json::to_string(&serde_json::json!({"address": address, "record": record}))
                .map_err(|e| Error::Internal(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        if self.synced.elapsed() > std::time::Duration::from_millis(50) {
            self.file
                .sync_data()
                .map_err(|e| Error::io("cannot sync", &self.path, e))?;
            self.synced = std::time::Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Record {
        Record {
            layer: Layer::L4,
            rule_version: 1,
            input: Digest::from_bytes([n; 32]),
            output: Digest::from_bytes([n; 32]),
            built: true,
            params: Lazy::new(Value::Null),
            files: Lazy::new(BTreeMap::new()),
            inputs: BTreeMap::new(),
            labels: BTreeSet::new(),
            via: "apply".into(),
        }
    }

    /// Each record of a saved state is found where it lies and reads back as itself.
    #[test]
    fn records_are_read_where_they_lie() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = State::load(&path).unwrap();
        for (i, a) in ["compose:a@H", "compose:b\\\"q@H", "talos:n1"]
            .iter()
            .enumerate()
        {
            let mut r = record(i as u8);
            r.params =
                Lazy::new(serde_json::json!({"text": "two\nlines }\n    }", "n": [1, {"x": {}}]}));
            state.nodes.insert(
                a.parse().unwrap_or_else(|_| "compose:c@H".parse().unwrap()),
                r,
            );
        }
        state.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let spans = record_spans(&bytes).expect("a saved state is laid out as saved");
        assert_eq!(spans.len(), state.nodes.len());
        for ((address, span), (addr, rec)) in spans.iter().zip(&state.nodes) {
            assert_eq!(address, &addr.to_string());
            assert_eq!(&record_at(&bytes[span.clone()]).unwrap(), rec);
        }
        assert_eq!(
            record_spans(b"{\"format_version\":1,\"nodes\":{}}"),
            Some(vec![])
        );

        // Loaded with its positions; with a journal replayed over it, the file no longer holds
        // the state alone, and no positions are given.
        let (loaded, spans) = State::load_indexed(&path).unwrap();
        assert_eq!(loaded, state);
        assert_eq!(spans.map(|s| s.len()), Some(state.nodes.len()));
        let mut j = Journal::open(&path).unwrap();
        j.record(&"compose:d@H".parse().unwrap(), Some(&record(9)))
            .unwrap();
        drop(j);
        let (replayed, spans) = State::load_indexed(&path).unwrap();
        assert_eq!(replayed.nodes.len(), state.nodes.len() + 1);
        assert!(spans.is_none());
    }

    #[test]
    fn a_journal_left_by_a_dead_run_is_replayed_and_a_save_folds_it_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (a, b): (Address, Address) = (
            "compose:a@H".parse().unwrap(),
            "compose:b@H".parse().unwrap(),
        );
        let mut base = State::load(&path).unwrap();
        base.nodes.insert(b.clone(), record(1));
        base.save(&path).unwrap();
        let mut j = Journal::open(&path).unwrap();
        j.record(&a, Some(&record(2))).unwrap();
        j.record(&b, None).unwrap();
        drop(j);
        // A torn last line, as a crash mid-write leaves it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .map(|mut f| {
                use std::io::Write;
                f.write_all(b"{\"address\":\"compose:c@H\",\"rec").unwrap()
            })
            .unwrap();
        let loaded = State::load(&path).unwrap();
        assert_eq!(
            loaded.nodes.keys().cloned().collect::<Vec<_>>(),
            vec![a.clone()]
        );
        loaded.save(&path).unwrap();
        assert!(!journal_path(&path).exists());
        assert_eq!(State::load(&path).unwrap(), loaded);
    }
}
