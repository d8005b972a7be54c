//! The embedded state: `.hl/state.json`, what was last applied (or adopted) per node.
//!
//! A record keeps everything a later plan needs to explain a change without the old tree:
//! the input and output digests, the parameters, and the digest of every input file and input
//! edge. Old file contents live in the store under those digests, so `hl why` can show lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
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
    pub params: Value,
    /// Input files and their content digests.
    pub files: BTreeMap<RepoPath, Digest<Content>>,
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

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version of this file.
    pub format_version: u32,
    /// Records by address.
    pub nodes: BTreeMap<Address, Record>,
}

impl State {
    /// Loads the state; an absent file is an empty state (everything is to create).
    pub fn load(path: &Path) -> Result<State, Error> {
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
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                format_version: STATE_FORMAT,
                nodes: BTreeMap::new(),
            }),
            Err(e) => Err(Error::io("cannot read state", path, e)),
        }
    }

    /// Writes the state atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut s =
            serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        s.push('\n');
        hl_cache::write_atomic(path, s.as_bytes())?;
        Ok(())
    }

    /// The record of a node.
    pub fn get(&self, addr: &Address) -> Option<&Record> {
        self.nodes.get(addr)
    }
}
